"""The TUF side of the device: refresh the signed metadata from an HTTP(S) base URL or a
local directory, list the model versions offered (through the signed ``index.json`` target and
each target's signed custom fields), pick one, download it verified."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .._version import __version__
from ..bundle import parse_semver
from .errors import SyncError
from .probation.settings import decode_expectations

INDEX = "index.json"
log = logging.getLogger("edge_runtime.sync")


@dataclass(frozen=True)
class Offer:
    """A model version offered by the repository (all fields come from signed metadata)."""

    path: str
    name: str
    version: str
    channel: str
    rollout_bp: int
    min_runtime: Optional[str]
    length: int
    #: the publisher's probation expectations (decoded, validated; see probation.settings)
    probation: dict = field(default_factory=dict, compare=False, hash=False)


def rollout_bucket(device_id: str, name: str, version: str) -> int:
    """Stable 0…9999 bucket: the same devices are in a 10% canary on every run and every device."""
    digest = hashlib.sha256(f"{device_id}\0{name}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def admitted(offer: Offer, device_id: str) -> bool:
    return rollout_bucket(device_id, offer.name, offer.version) < offer.rollout_bp


class RepoClient:
    """ngclient.Updater with the app's trusted root as bootstrap (never the cache alone)."""

    def __init__(self, repo: str, trusted_root: bytes, cache_dir: Path, *,
                 max_target_bytes: int = 512 * 1024 * 1024, download_timeout_s: float = 600.0):
        try:
            from tuf.ngclient import Updater, UpdaterConfig

            from .fetcher import fetcher_for
        except ImportError as exc:
            raise SyncError(f"the sync agent needs python-tuf ({exc.name or exc} is missing): "
                            "pip install 'edge-runtime[sync]'") from None

        if "://" not in repo:
            repo = Path(repo).resolve().as_uri()
        repo = repo.rstrip("/")
        fetcher = fetcher_for(repo, download_timeout_s)  # metadata and targets alike
        self.metadata_dir = cache_dir / "metadata"
        self.targets_dir = cache_dir / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.max_target_bytes = max_target_bytes
        self._catalogue: Optional[dict] = None
        self.updater = Updater(str(self.metadata_dir), f"{repo}/metadata/", str(self.targets_dir),
                               f"{repo}/targets/", fetcher=fetcher, config=UpdaterConfig(),
                               bootstrap=trusted_root)

    def refresh(self) -> None:
        """Raises the TUF error (expired, bad signature, rollback, …) wrapped as SyncError."""
        from tuf.api.exceptions import DownloadError

        try:
            self.updater.refresh()
        except DownloadError as exc:  # unreachable, stalled, too slow, too long: nothing judged
            raise SyncError(f"repository metadata not fetched: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # tuf.api.exceptions.* and transport errors
            raise SyncError(f"repository metadata rejected: {type(exc).__name__}: {exc}") from exc

    def _index(self) -> dict:
        if self._catalogue is None:
            info = self.updater.get_targetinfo(INDEX)
            self._catalogue = {} if info is None else json.loads(Path(self._download(info)).read_text())
        return self._catalogue

    def revoked(self, name: str) -> dict[str, str]:
        """Versions of ``name`` the publisher revoked (signed, in the index), with the reason."""
        entries = (self._index().get("revoked") or {}).get(name) or {}
        return {str(v): str(r) for v, r in entries.items()} if isinstance(entries, dict) else {}

    def offers(self, name: Optional[str] = None) -> list[Offer]:
        index = self._index()
        out = []
        for model, paths in index.get("models", {}).items():
            if name and model != name:
                continue
            for path in paths:
                ti = self.updater.get_targetinfo(path)
                if ti is None:  # listed but not signed: ignore
                    continue
                c = (ti.custom or {}).get("edge_runtime") or {}
                try:
                    parse_semver(c["version"])
                    expect, warnings = decode_expectations(c.get("probation"))
                    for w in warnings:
                        log.warning("%s %s: %s", c["name"], c["version"], w)
                    out.append(Offer(path=path, name=c["name"], version=c["version"],
                                     channel=c.get("channel", "stable"), rollout_bp=int(c.get("rollout_bp", 10_000)),
                                     min_runtime=c.get("min_runtime"), length=ti.length, probation=expect))
                except (KeyError, TypeError, ValueError, Exception):  # noqa: BLE001
                    continue
        return sorted(out, key=lambda o: parse_semver(o.version))

    def _download(self, info: Any) -> str:
        if info.length > self.max_target_bytes:
            raise SyncError(f"{info.path} is {info.length} bytes, over the {self.max_target_bytes} limit")
        try:
            return self.updater.find_cached_target(info) or self.updater.download_target(info)
        except Exception as exc:
            raise SyncError(f"download of {info.path} rejected: {type(exc).__name__}: {exc}") from exc

    def purge_archives(self) -> None:
        """Delete every downloaded model archive from the TUF cache (ngclient would keep each one
        forever): the agent downloads one at a time and deletes it once installed or refused."""
        for p in self.targets_dir.rglob("*.tar.gz"):
            p.unlink(missing_ok=True)

    def download(self, offer: Offer) -> Path:
        info = self.updater.get_targetinfo(offer.path)
        if info is None:
            raise SyncError(f"{offer.path} is no longer offered")
        return Path(self._download(info))


def choose(offers: list[Offer], *, name: Optional[str], channel: str, device_id: str,
           known_bad: dict, current: Optional[str], pinned: Optional[str]) -> tuple[Optional[Offer], list[str]]:
    """The version to run and one log line per offer explaining the decision."""
    log = []
    best = None
    runtime = parse_semver(__version__)
    for o in offers:
        why = None
        if name and o.name != name:
            why = "other model"
        elif pinned and o.version != pinned:
            why = f"pinned to {pinned}"
        elif o.channel != channel:
            why = f"channel {o.channel} (device follows {channel})"
        elif o.version in known_bad:
            why = f"marked bad on this device: {known_bad[o.version]}"
        elif o.min_runtime and parse_semver(o.min_runtime) > runtime:
            why = f"needs edge-runtime ≥ {o.min_runtime} (have {__version__})"
        elif not pinned and not admitted(o, device_id):
            why = f"not in its {o.rollout_bp / 100:g}% rollout (bucket {rollout_bucket(device_id, o.name, o.version)})"
        if why:
            log.append(f"skip {o.name} {o.version}: {why}")
            continue
        if best is None or parse_semver(o.version) > parse_semver(best.version):
            best = o
    if best is not None and current and not pinned and parse_semver(best.version) <= parse_semver(current):
        log.append(f"stay on {current}: nothing newer admitted (newest admitted {best.version})")
        return None, log
    if best is not None:
        log.append(f"choose {best.name} {best.version} (channel {best.channel}, rollout {best.rollout_bp / 100:g}%)")
    return best, log


def device_id_default(state_dir: Path) -> str:
    """A random id made once per store (no hardware identifiers leave the device)."""
    f = state_dir / "device_id"
    try:
        return f.read_text().strip()
    except OSError:
        from ..fsutil import atomic_write_bytes

        new = os.urandom(16).hex()
        atomic_write_bytes(f, new.encode())
        return new
