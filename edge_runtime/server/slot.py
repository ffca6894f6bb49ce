"""What the server predicts with: one reference to a loaded model, and a watcher that follows
a sync store's ``active.json`` and swaps that reference when a new version is activated.

The swap is deliberately small (the sync agent's ``edge_runtime.hotswap`` may replace it):
the new version is loaded and golden-checked on the watcher thread, off the request path, and
only then is ``ModelSlot.current`` rebound. A request reads ``current`` once and uses that model
to the end, so requests in flight finish on the old version, new ones start on the new one, and
none fails or waits. A version that fails to load or to reproduce its golden rows is never
served; the old one keeps serving and the failure is counted and reported by ``/model``.

Store layout (written by the sync agent): ``active.json`` = ``{"current": "<version>",
"previous": ..., "known_bad": {...}, "history": [...]}`` replaced atomically, and
``versions/<version>/`` holding the bundle (a bundle directory, or one ``.tar.gz``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import BundleError, EdgeRuntimeError

log = logging.getLogger("edge_runtime.server")

ACTIVE_NAME = "active.json"
VERSIONS_DIR = "versions"


@dataclass(frozen=True)
class LoadedModel:
    """A model that passed its golden check, with where it came from."""

    model: Any  # edge_runtime.model.Model (typed loosely: this module must import without numpy)
    version: str
    source: str
    loaded_at: float = field(default_factory=time.time)


class ModelSlot:
    """Holds the served model. Reading ``current`` is one attribute load (atomic under the GIL)."""

    def __init__(self, current: Optional[LoadedModel] = None):
        self.current: Optional[LoadedModel] = current
        self.store: Optional[Path] = None
        self.last_swap_error: Optional[str] = None
        self.swaps = 0

    def set_initial(self, first: LoadedModel) -> None:
        """The model served from start-up (not counted as a swap)."""
        self.current = first

    def swap(self, new: LoadedModel) -> Optional[LoadedModel]:
        """Serve ``new`` from now on; returns the model it replaced (left to finish its requests)."""
        old, self.current = self.current, new
        self.swaps += 1
        self.last_swap_error = None
        return old


def is_sync_store(path: os.PathLike[str] | str) -> bool:
    p = Path(path)
    return p.is_dir() and (p / ACTIVE_NAME).is_file() and (p / VERSIONS_DIR).is_dir()


def read_active(store: Path) -> dict[str, Any]:
    """Parse ``active.json``.

    Raises:
        BundleError: unreadable, not JSON, or without a string ``current``.
    """
    try:
        data = json.loads((store / ACTIVE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{store / ACTIVE_NAME}: unreadable ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("current"), str):
        raise BundleError(f"{store / ACTIVE_NAME}: needs a string field 'current'")
    return data


def resolve_version_dir(store: Path, version: str) -> Path:
    """The bundle of ``version`` in the store: ``versions/<v>/`` itself when it holds a manifest,
    else its single ``*.tar.gz``.

    Raises:
        BundleError: the version name is unsafe or the version holds no bundle.
    """
    if not version or "/" in version or "\\" in version or version in (".", ".."):
        raise BundleError(f"{store}: unsafe version name {version!r} in {ACTIVE_NAME}")
    vdir = store / VERSIONS_DIR / version
    if (vdir / "manifest.json").is_file():
        return vdir
    archives = sorted(vdir.glob("*.tar.gz")) if vdir.is_dir() else []
    if len(archives) == 1:
        return archives[0]
    raise BundleError(f"{vdir}: no bundle (expected manifest.json or one .tar.gz)")


Loader = Callable[[Path], Any]


def load_checked(loader: Loader, path: Path, version: Optional[str] = None) -> LoadedModel:
    """Load (the loader checks golden rows) and check the manifest's version matches the store's.

    Raises:
        EdgeRuntimeError: whatever the loader raises (integrity, golden mismatch, no backend).
    """
    model = loader(path)
    got = model.manifest.version
    if version is not None and got != version:
        raise BundleError(f"{path}: manifest version {got} does not match the store's {version}")
    return LoadedModel(model, got, str(path))


class StoreWatcher:
    """Polls a store's ``active.json`` and swaps the slot to each newly activated version."""

    def __init__(self, store: Path, slot: ModelSlot, loader: Loader, *, interval: float = 0.5,
                 on_swap: Optional[Callable[[bool], None]] = None):
        self.store, self.slot, self.loader, self.interval = Path(store), slot, loader, interval
        self.on_swap = on_swap
        self._seen: Optional[tuple[int, int, int]] = None
        self._refused: Optional[str] = None  # version that failed; retried only if active.json changes
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        slot.store = self.store

    def start_model(self) -> LoadedModel:
        """Load the store's current version (falling back to ``previous``) before serving.

        Raises:
            EdgeRuntimeError: neither version loads and passes its golden check.
        """
        active = read_active(self.store)
        self._seen = self._stat()
        errors = []
        for key in ("current", "previous"):
            version = active.get(key)
            if not isinstance(version, str):
                continue
            try:
                loaded = load_checked(self.loader, resolve_version_dir(self.store, version), version)
            except EdgeRuntimeError as exc:
                errors.append(f"{key} {version}: {exc}")
                log.warning("store %s: %s %s not servable: %s", self.store, key, version, exc)
                continue
            self.slot.set_initial(loaded)
            if key == "previous":
                self.slot.last_swap_error = errors[-1]
            return loaded
        raise BundleError(f"{self.store}: no servable version ({'; '.join(errors) or 'none listed'})")

    def _stat(self) -> Optional[tuple[int, int, int]]:
        try:
            st = (self.store / ACTIVE_NAME).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def poll_once(self) -> bool:
        """Check ``active.json`` once; load, check and swap if it names another version.
        Returns True when a swap happened."""
        stat = self._stat()
        changed = stat != self._seen
        self._seen = stat
        if stat is None:
            return False
        try:
            version = read_active(self.store)["current"]
        except BundleError as exc:  # mid-write by a non-atomic writer, or broken: keep serving
            log.warning("%s", exc)
            return False
        cur = self.slot.current
        if cur is not None and cur.version == version:
            self._refused = None
            return False
        if version == self._refused and not changed:
            return False
        try:
            loaded = load_checked(self.loader, resolve_version_dir(self.store, version), version)
        except EdgeRuntimeError as exc:
            self._refused = version
            self.slot.last_swap_error = f"version {version}: {exc}"
            log.error("not swapping to %s: %s", version, exc)
            if self.on_swap:
                self.on_swap(False)
            return False
        old = self.slot.swap(loaded)
        self._refused = None
        log.info("swapped %s -> %s", old.version if old else None, loaded.version)
        if self.on_swap:
            self.on_swap(True)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad version
                log.exception("store watcher")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgert-store-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
