"""examples/desktop/app.py under a real X server (Xvfb): the Tkinter app syncs its first model
from a signed TUF repository on disk, predicts from its form, and after a new version is
published shows that version and predicts with it, without a restart. What the window shows
is read back from its widgets (the app's --state-file); a screenshot is kept in
tests/artifacts/desktop/ (gitignored)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from serve_support import cli_env, serve_bench, two_bundles  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "desktop" / "app.py"
ARTIFACTS = ROOT / "tests" / "artifacts" / "desktop"

pytest.importorskip("tuf")
pytest.importorskip("tkinter")
for tool in ("Xvfb", "xwd", "xwdtopnm", "pnmtopng"):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} missing (scripts/setup.d/80-xvfb.sh installs it)", allow_module_level=True)


@pytest.fixture()
def display() -> Iterator[str]:
    """A fresh Xvfb; it picks a free display number and writes it to a pipe (-displayfd)."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as fh:
        number = fh.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(read: Callable[[], Any], ok: Callable[[Any], bool], what: str, proc: subprocess.Popen,
              timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the app exited with {proc.returncode} while waiting for {what}"
        try:
            last = read()
        except (OSError, ValueError):
            last = None
        if last is not None and ok(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the window showed {last}")


def _screenshot(display: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    xwd = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True,
                         check=True, timeout=30)
    pnm = subprocess.run(["xwdtopnm"], input=xwd.stdout, capture_output=True, check=True, timeout=30)
    png = subprocess.run(["pnmtopng"], input=pnm.stdout, capture_output=True, check=True, timeout=30)
    out.write_bytes(png.stdout)


@pytest.mark.slow
def test_desktop_app_updates_its_model_from_a_local_repository(
        tmp_path: Path, two_bundles: tuple[Path, Path], display: str) -> None:  # noqa: F811
    from converters import publish as pub

    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    pub.publish(two_bundles[0], repo, keys)
    ui = tmp_path / "ui.json"
    env = dict(cli_env(), DISPLAY=display)
    with open(tmp_path / "app.log", "w") as log:  # the app keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, str(APP), "--repo", repo.as_uri(),
                                 "--root", str(keys / "root.json"), "--state", str(tmp_path / "state"),
                                 "--sync-every", "1", "--state-file", str(ui), "--self-test"],
                                env=env, stdout=subprocess.DEVNULL, stderr=log)

    def shown() -> dict[str, Any]:
        return json.loads(ui.read_text())

    try:
        first = _wait_for(shown, lambda s: s["version_label"] == "Model: breast-cancer 1.0.0"
                          and s["result"].startswith("Prediction by 1.0.0: "), "version 1.0.0", proc)
        assert first["features"] == 30
        _screenshot(display, ARTIFACTS / "desktop-1.0.0.png")

        pub.publish(two_bundles[1], repo, keys)  # the app is still running: it must pick this up
        second = _wait_for(shown, lambda s: s["version_label"] == "Model: breast-cancer 1.1.0"
                           and s["result"].startswith("Prediction by 1.1.0: "), "version 1.1.0", proc)
        assert "(p = " in second["result"] and second["status"].startswith(("up to date", "checking"))
        shot = ARTIFACTS / "desktop-1.1.0.png"
        _screenshot(display, shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 2000
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- app log ---\n{(tmp_path / 'app.log').read_text()[-3000:]}") from None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
