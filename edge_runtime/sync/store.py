"""The on-device version store: ``versions/<version>/`` plus an atomic ``active.json``.

Contract read by ``edgert serve``: ``active.json`` = {"current", "previous", "known_bad":
{version: reason}, "history": [{time, event, version, reason}]}; always replaced atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from ..bundle import parse_semver
from ..fsutil import atomic_write_json, fsync_dir
from .errors import NoVersionError, StoreLockedError

HISTORY_LIMIT = 200


def default_state_dir() -> Path:
    """Per-user data dir from platformdirs (``EDGERT_STATE_DIR`` overrides)."""
    env = os.environ.get("EDGERT_STATE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir
    return Path(user_data_dir("edge-runtime", appauthor=False)) / "state"


class VersionStore:
    """Unpacked, verified bundles and the record of which one is active."""

    def __init__(self, root: Optional[os.PathLike[str] | str] = None, keep: int = 3):
        self.root = Path(root) if root is not None else default_state_dir()
        self.versions_dir = self.root / "versions"
        self.active_path = self.root / "active.json"
        self.keep = max(2, int(keep))
        self.versions_dir.mkdir(parents=True, exist_ok=True)

    # --- record ------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.active_path.read_text())
        except FileNotFoundError:
            data = {}
        data.setdefault("current", None)
        data.setdefault("previous", None)
        data.setdefault("known_bad", {})
        data.setdefault("history", [])
        return data

    def write(self, data: dict[str, Any]) -> None:
        data["history"] = data.get("history", [])[-HISTORY_LIMIT:]
        atomic_write_json(self.active_path, data)

    def event(self, data: dict[str, Any], event: str, version: Optional[str],
              reason: str = "") -> None:
        data.setdefault("history", []).append(
            {"time": time.time(), "event": event, "version": version, "reason": reason})

    # --- versions ----------------------------------------------------------------------------
    def path_of(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ValueError(f"bad version string {version!r}")
        return self.versions_dir / version

    def installed(self) -> list[str]:
        """Complete version dirs (staging dirs start with '.'), oldest first."""
        out = [p.name for p in self.versions_dir.iterdir()
               if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists()]
        return sorted(out, key=parse_semver)

    def current_path(self) -> Path:
        cur = self.read()["current"]
        if not cur:
            raise NoVersionError(f"no active version in {self.root}")
        return self.path_of(cur)

    def install_dir(self, version: str, staged: Path) -> Path:
        """Move an unpacked, verified staging dir into place (atomic rename)."""
        dest = self.path_of(version)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staged, dest)
        fsync_dir(self.versions_dir)
        return dest

    def staging_dir(self, version: str) -> Path:
        path = self.versions_dir / f".staging-{version}-{os.getpid()}"
        if path.exists():
            shutil.rmtree(path)
        return path

    def activate(self, version: str, reason: str = "") -> dict[str, Any]:
        data = self.read()
        if data["current"] != version:
            data["previous"], data["current"] = data["current"], version
        self.event(data, "activate", version, reason)
        self.write(data)
        return data

    def mark_bad(self, version: str, reason: str, *, rollback: bool = True) -> dict[str, Any]:
        """Record ``version`` as bad; if it is current, switch back to the previous one."""
        data = self.read()
        data["known_bad"][version] = reason
        self.event(data, "mark_bad", version, reason)
        if rollback and data["current"] == version:
            back = data["previous"]
            if back is None or back in data["known_bad"]:
                back = next((v for v in reversed(self.installed())
                             if v != version and v not in data["known_bad"]), None)
            data["current"], data["previous"] = back, None
            self.event(data, "rollback", back, f"{version} failed: {reason}")
        self.write(data)
        return data

    def rollback(self, to: Optional[str] = None, reason: str = "manual") -> dict[str, Any]:
        data = self.read()
        target = to or data["previous"]
        if not target:
            raise NoVersionError("no previous version to roll back to")
        if target not in self.installed():
            raise NoVersionError(f"version {target} is not installed "
                                 f"(installed: {', '.join(self.installed()) or 'none'})")
        cur = data["current"]
        if to is None and cur:
            data["known_bad"][cur] = reason
        data["known_bad"].pop(target, None)
        data["current"], data["previous"] = target, cur if to is not None else None
        self.event(data, "rollback", target, reason)
        self.write(data)
        return data

    def prune(self) -> list[str]:
        """Delete old versions beyond ``keep`` and leftover staging dirs (never current/previous)."""
        data = self.read()
        protect = {data["current"], data["previous"]}
        removed = []
        for p in self.versions_dir.iterdir():
            if p.name.startswith(".staging-"):
                shutil.rmtree(p, ignore_errors=True)
        versions = self.installed()
        excess = len(versions) - self.keep
        for v in versions:
            if excess <= 0:
                break
            if v in protect:
                continue
            shutil.rmtree(self.path_of(v), ignore_errors=True)
            removed.append(v)
            excess -= 1
        return removed


class StoreLock:
    """An exclusive, non-blocking lock file so two agents never update one store."""

    def __init__(self, root: Path):
        self.path = Path(root) / ".lock"
        self._fh: Any = None

    def __enter__(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            import fcntl
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: best effort
            pass
        except OSError:
            self._fh.close()
            raise StoreLockedError(f"another agent holds {self.path}") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()
