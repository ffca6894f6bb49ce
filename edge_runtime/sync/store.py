"""The version store: ``versions/<version>/`` unpacked, verified bundles and one ``active.json``
record (current, previous, known-bad, probation, history), always replaced atomically, so a
crash at any instant leaves the old record or the new one, never half of one."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Union

from ..bundle import parse_semver, unpack_bundle
from ..fsutil import atomic_write_json, fsync_dir
from ..paths import user_dir

ACTIVE = "active.json"
HISTORY_LIMIT = 200


def default_state_dir() -> Path:
    return user_dir("data", "EDGERT_STATE_DIR")


class VersionStore:
    """One device's models. Only :meth:`write_active` changes which version is served."""

    def __init__(self, state_dir: Union[str, os.PathLike[str], None] = None, keep: int = 3):
        self.root = Path(state_dir) if state_dir is not None else default_state_dir()
        self.versions = self.root / "versions"
        self.keep = max(2, keep)
        self.versions.mkdir(parents=True, exist_ok=True)

    # --- the record -------------------------------------------------------------------------
    def read_active(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / ACTIVE).read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("current", None)
        data.setdefault("previous", None)
        data.setdefault("known_bad", {})
        data.setdefault("history", [])
        data.setdefault("probation", None)
        data.setdefault("pinned", None)
        return data

    def write_active(self, record: dict[str, Any]) -> None:
        record["history"] = record.get("history", [])[-HISTORY_LIMIT:]
        atomic_write_json(self.root / ACTIVE, record)

    @staticmethod
    def event(record: dict[str, Any], event: str, version: Optional[str], reason: str = "") -> None:
        record.setdefault("history", []).append(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event,
             "version": version, "reason": reason})

    # --- versions ---------------------------------------------------------------------------
    def path(self, version: str) -> Path:
        return self.versions / version

    def installed(self) -> list[str]:
        out = []
        for p in self.versions.iterdir():
            if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists():
                try:
                    parse_semver(p.name)
                except Exception:  # noqa: BLE001 - foreign directories are not versions
                    continue
                out.append(p.name)
        return sorted(out, key=parse_semver)

    def install(self, version: str, archive: Path) -> Path:
        """Unpack (members checked, digests verified, built aside then renamed into place)."""
        dst = self.path(version)
        if dst.exists():
            shutil.rmtree(dst)  # an older, unverified leftover of the same version
            fsync_dir(self.versions)
        return unpack_bundle(archive, dst)

    def remove_leftovers(self) -> None:
        """Half-unpacked directories from a crash (they are hidden: ``.<name>.*``)."""
        for p in self.versions.iterdir():
            if p.name.startswith("."):
                shutil.rmtree(p, ignore_errors=True)

    def prune(self) -> list[str]:
        """Keep the newest ``keep`` versions, never the current or previous one."""
        rec = self.read_active()
        protected = {rec["current"], rec["previous"]}
        removable = [v for v in self.installed() if v not in protected]
        excess = len(self.installed()) - self.keep
        gone = []
        for v in removable[: max(0, excess)]:
            shutil.rmtree(self.path(v), ignore_errors=True)
            gone.append(v)
        if gone:
            fsync_dir(self.versions)
        return gone

    def current_path(self) -> Optional[Path]:
        cur = self.read_active()["current"]
        return self.path(cur) if cur else None
