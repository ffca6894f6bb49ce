"""A desktop app that embeds edge-runtime: predicts from a form, and updates its model in the
background from a signed local repository (a TUF repository on disk or a USB stick, written by
``edgert publish``), without restarting and without blocking the window.

    python examples/desktop/app.py --repo file:///media/usb/repo --root root.json --state ~/.myapp

Only the standard library (Tkinter) and the device install of edge-runtime (``[sync]`` extra and a
backend). The model lives in ``HotSwapModel`` (the library's one hot-swap implementation): a
background thread runs the sync agent's state machine (download, verify, trial, activate), the
model's watcher swaps to each activated version off the UI thread, and the window reads the
version served every 200 ms. ``--state-file`` writes what the window shows (read back from the
widgets) for tests and for a support script.
"""

from __future__ import annotations

import argparse
import logging
import threading
import tkinter as tk
from pathlib import Path
from typing import Any, Optional

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.fsutil import atomic_write_json
from edge_runtime.inputs import text_value
from edge_runtime.inputs.schema import show

log = logging.getLogger("desktop")
TICK_MS = 200


class Updater(threading.Thread):
    """Runs one sync pass every ``every_s`` seconds until stopped; never touches Tk (not
    thread-safe): the UI reads ``status``."""

    def __init__(self, repo: str, root_json: Path, state: Path, every_s: float):
        super().__init__(daemon=True, name="model-updater")
        from edge_runtime.sync.agent import SyncAgent

        self.agent = SyncAgent(repo, root_json.read_bytes(), state, echo=log.info)
        self.every_s = every_s
        self.stop = threading.Event()
        self.status = "checking for updates..."

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                result = self.agent.sync_once()
                self.status = f"up to date ({result.version})" if not result.rejected else \
                    f"refused {result.rejected[0]}: {result.rejected[1][:80]}"
            except EdgeRuntimeError as exc:  # offline, stick removed, bad metadata: keep serving
                self.status = f"update check failed: {str(exc)[:100]}"
            self.stop.wait(self.every_s)


class DesktopApp:
    """The window: the served model's name and version, one entry per feature, Predict."""

    def __init__(self, root: tk.Tk, state: Path, updater: Optional[Updater], *,
                 state_file: Optional[Path] = None, self_test: bool = False):
        self.root, self.state, self.updater = root, state, updater
        self.state_file, self.self_test = state_file, self_test
        self.model: Any = None  # HotSwapModel, once the store has a version
        self.shown_version: Optional[str] = None
        self.entries: dict[str, tk.Entry] = {}
        root.title("edge-runtime desktop example")
        self.version_label = tk.Label(root, text="Model: waiting for a first version", font=("", 14))
        self.version_label.pack(anchor="w", padx=8, pady=4)
        self.form = tk.Frame(root)
        self.form.pack(fill="both", padx=8)
        self.predict_button = tk.Button(root, text="Predict", command=self.predict, state="disabled")
        self.predict_button.pack(anchor="w", padx=8, pady=4)
        self.result_label = tk.Label(root, text="", font=("", 12))
        self.result_label.pack(anchor="w", padx=8)
        self.status_label = tk.Label(root, text="", fg="gray40")
        self.status_label.pack(anchor="w", padx=8, pady=4)
        root.after(0, self.tick)

    def _open_model(self) -> None:
        from edge_runtime.hotswap import HotSwapModel
        from edge_runtime.sync.store import VersionStore

        if not VersionStore(self.state).read_active().get("current"):
            return
        try:
            self.model = HotSwapModel(self.state, check_every_s=TICK_MS / 1000)
        except EdgeRuntimeError as exc:
            self.result_label.config(text=f"no usable model yet: {exc}")
            return
        self.model.follow()  # swaps in its own thread: no load ever runs on the UI thread

    def _build_form(self, loaded: Any) -> None:
        manifest = loaded.model.manifest
        names = [f.name for f in manifest.features]
        if list(self.entries) == names:
            return
        for child in self.form.winfo_children():
            child.destroy()
        golden = (manifest.golden or {}).get("inputs") or [[""] * len(names)]
        self.entries = {}
        for i, name in enumerate(names):
            r, c = divmod(i, 3)
            tk.Label(self.form, text=name, anchor="e", width=22).grid(row=r, column=2 * c, sticky="e")
            entry = tk.Entry(self.form, width=12)
            value = golden[0][i]  # a first row to edit: the bundle's first golden row
            entry.insert(0, "" if value is None else show(float(value), loaded.model.artifact.input_dtype))
            entry.grid(row=r, column=2 * c + 1, padx=2, pady=1)
            self.entries[name] = entry
        self.predict_button.config(state="normal")

    def predict(self) -> None:
        """The form's row through the served model; a bad field is named in the window."""
        if self.model is None:
            return
        row = {name: text_value(e.get()) for name, e in self.entries.items()}
        try:
            with self.model.lease() as loaded:
                label = self.model.run(loaded, "predict", [row])[0]
                text = f"Prediction by {loaded.version}: {label}"
                if loaded.model.task == "classification":
                    proba = self.model.run(loaded, "predict_proba", [row])[0]
                    text += f" (p = {max(proba):.3f})"
        except EdgeRuntimeError as exc:  # InputError names the feature
            text = f"Cannot predict: {exc}"
        self.result_label.config(text=text)

    def tick(self) -> None:
        if self.model is None:
            self._open_model()
        loaded = self.model.current if self.model is not None else None
        if loaded is not None and loaded.version != self.shown_version:
            self._build_form(loaded)
            self.version_label.config(text=f"Model: {loaded.model.manifest.name} {loaded.version}")
            self.shown_version = loaded.version
            if self.self_test:
                self.predict_button.invoke()
        if self.updater is not None:
            self.status_label.config(text=self.updater.status)
        if self.state_file is not None:
            self.write_state()
        self.root.after(TICK_MS, self.tick)

    def write_state(self) -> None:
        """What the window shows, read from the widgets themselves."""
        atomic_write_json(self.state_file, {  # type: ignore[arg-type]
            "version_label": self.version_label.cget("text"),
            "result": self.result_label.cget("text"),
            "status": self.status_label.cget("text"),
            "features": len(self.entries),
            "window_id": self.root.winfo_id(),
        })

    def close(self) -> None:
        if self.updater is not None:
            self.updater.stop.set()
        if self.model is not None:
            self.model.close()
        self.root.destroy()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="TUF repository: file:///path (USB stick) or http(s) URL")
    ap.add_argument("--root", required=True, type=Path, help="trusted root.json shipped with the app")
    ap.add_argument("--state", required=True, type=Path, help="the app's model store directory")
    ap.add_argument("--sync-every", type=float, default=60.0, help="seconds between update checks")
    ap.add_argument("--state-file", type=Path, help="write what the window shows here (tests, support)")
    ap.add_argument("--self-test", action="store_true", help="press Predict after each model change")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="desktop: %(message)s")
    args.state.mkdir(parents=True, exist_ok=True)
    updater = Updater(args.repo, args.root, args.state, args.sync_every)
    root = tk.Tk()
    app = DesktopApp(root, args.state, updater, state_file=args.state_file, self_test=args.self_test)
    root.protocol("WM_DELETE_WINDOW", app.close)
    updater.start()
    try:
        root.mainloop()
    except KeyboardInterrupt:
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
