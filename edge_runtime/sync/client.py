"""TUF client: ngclient Updater over HTTP or a local directory (USB), and version choice."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import unquote, urlparse

from ..bundle import parse_semver

log = logging.getLogger("edge_runtime.sync")


def rollout_bucket(device_id: str, version: str) -> float:
    """Stable share in [0, 1) for a device and version: the same devices every time."""
    h = hashlib.sha256(f"{device_id}\0{version}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def admitted(device_id: str, version: str, share: float) -> bool:
    return rollout_bucket(device_id, version) < share


@dataclass
class Candidate:
    target: str
    name: str
    version: str
    channel: str
    rollout: float
    min_runtime: str
    length: int


def _fetcher(is_file: bool, max_seconds: float) -> Any:
    """A fetcher for files (USB) or HTTP that gives up after ``max_seconds`` per file."""
    import time

    from tuf.api.exceptions import DownloadError, DownloadHTTPError
    from tuf.ngclient import FetcherInterface, Urllib3Fetcher

    class BoundedFetcher(FetcherInterface):
        """Same TUF checks for both sources; bounded time (TUF bounds the length)."""

        def __init__(self) -> None:
            self._http = None if is_file else Urllib3Fetcher(socket_timeout=30)

        def _chunks(self, url: str) -> Iterator[bytes]:
            if self._http is not None:
                yield from self._http._fetch(url)
                return
            path = Path(unquote(urlparse(url).path))
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                raise DownloadHTTPError(f"{path} not found", 404) from None
            with fh:
                while chunk := fh.read(65536):
                    yield chunk

        def _fetch(self, url: str) -> Iterator[bytes]:
            deadline = time.monotonic() + max_seconds
            for chunk in self._chunks(url):
                if time.monotonic() > deadline:
                    raise DownloadError(f"{url}: took longer than {max_seconds:.0f} s")
                yield chunk

    return BoundedFetcher()


class TufSource:
    """One repository (``http(s)://...`` base URL or a directory) seen through TUF."""

    def __init__(self, source: str, cache_dir: Path, trusted_root: bytes,
                 max_seconds: float = 600.0):
        from tuf.ngclient import Updater, UpdaterConfig
        self.cache_dir = Path(cache_dir)
        meta_dir = self.cache_dir / "metadata"
        self.target_dir = self.cache_dir / "downloads"
        meta_dir.mkdir(parents=True, exist_ok=True)
        self.target_dir.mkdir(parents=True, exist_ok=True)
        if "://" in source and not source.startswith("file://"):
            base = source.rstrip("/")
            fetcher = _fetcher(False, max_seconds)
        else:
            base = Path(source.removeprefix("file://")).resolve().as_uri()
            fetcher = _fetcher(True, max_seconds)
        config = UpdaterConfig(prefix_targets_with_hash=False)
        self.updater = Updater(str(meta_dir), f"{base}/metadata/", str(self.target_dir),
                               f"{base}/targets/", fetcher=fetcher, config=config,
                               bootstrap=trusted_root)
        self.meta_dir = meta_dir
        self.revoked: list[str] = []

    def refresh(self) -> list[Candidate]:
        """Fetch and verify top-level metadata; list the published model versions."""
        from tuf.api.metadata import Metadata
        self.updater.refresh()
        targets = Metadata.from_file(str(self.meta_dir / "targets.json")).signed
        custom = targets.unrecognized_fields.get("custom") or {}
        self.revoked = [str(v) for v in custom.get("revoked", [])]
        out = []
        for path, tf in targets.targets.items():
            info = (tf.unrecognized_fields.get("custom") or {}).get("edge_runtime")
            if not isinstance(info, dict):
                continue
            out.append(Candidate(path, str(info.get("name")), str(info.get("version")),
                                 str(info.get("channel", "stable")),
                                 int(info.get("rollout_bp", 10000)) / 10000,
                                 str(info.get("min_runtime", "0.0.0")), tf.length))
        return out

    def download(self, target: str) -> Path:
        """Download and verify (length + hashes from signed metadata) one target."""
        info = self.updater.get_targetinfo(target)
        if info is None:
            raise LookupError(f"target {target} is not in the signed metadata")
        cached = self.updater.find_cached_target(info)
        if cached:
            return Path(cached)
        return Path(self.updater.download_target(info))


def choose(candidates: list[Candidate], *, device_id: str, channel: str,
           known_bad: dict[str, str], pinned: Optional[str], runtime_version: str,
           max_bytes: int, model_name: Optional[str] = None
           ) -> tuple[Optional[Candidate], list[str]]:
    """Pick the version to run; returns it and one log line per decision."""
    lines = []
    ok = []
    for c in sorted(candidates, key=lambda c: parse_semver(c.version), reverse=True):
        why = None
        if model_name and c.name != model_name:
            why = f"model {c.name} is not {model_name}"
        elif pinned and c.version != pinned:
            why = f"pinned to {pinned}"
        elif c.channel != channel:
            why = f"channel {c.channel} != {channel}"
        elif c.version in known_bad:
            why = f"marked bad locally: {known_bad[c.version]}"
        elif parse_semver(c.min_runtime) > parse_semver(runtime_version):
            why = f"needs runtime >= {c.min_runtime}"
        elif c.length > max_bytes:
            why = f"{c.length} bytes exceeds the {max_bytes}-byte limit"
        elif not pinned and not admitted(device_id, c.version, c.rollout):
            why = f"outside the {c.rollout:.0%} rollout"
        if why:
            lines.append(f"skip {c.version}: {why}")
        else:
            ok.append(c)
    if ok:
        lines.append(f"choose {ok[0].version}: newest admitted for channel {channel}")
        return ok[0], lines
    return None, lines


def device_id(state_dir: Path) -> str:
    """A random id kept in the state dir (``EDGERT_DEVICE_ID`` overrides)."""
    env = os.environ.get("EDGERT_DEVICE_ID")
    if env:
        return env
    path = Path(state_dir) / "device_id"
    if path.exists():
        return path.read_text().strip()
    from ..fsutil import atomic_write_bytes
    value = os.urandom(16).hex()
    atomic_write_bytes(path, value.encode())
    return value
