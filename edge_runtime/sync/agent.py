"""The update state machine: download -> verify -> unpack -> load -> smoke -> switch -> probation.

Each step is named; ``EDGERT_KILL_AT=<step>`` makes the process SIGKILL itself there (tests).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .._version import __version__
from ..bundle import open_bundle, unpack_bundle
from .client import TufSource, choose, device_id
from .errors import SyncError
from .store import StoreLock, VersionStore

log = logging.getLogger("edge_runtime.sync")

STEPS = ("refresh", "download", "verify", "unpack", "install", "load", "smoke",
         "switch", "prune", "done")
MAX_BYTES = 200 * 1024 * 1024


def _step(name: str) -> None:
    log.debug("step %s", name)
    if os.environ.get("EDGERT_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def smoke_test(path: Path, backend: str = "auto") -> None:
    """Load the bundle and check its golden rows; raise on any failure."""
    from ..loader import load
    model = load(path, backend=backend, verify=True)
    try:
        model.check_golden()
    finally:
        model.close()


@dataclass
class SyncConfig:
    source: str
    state_dir: Path
    trusted_root: bytes
    channel: str = "stable"
    pinned: Optional[str] = None
    model_name: Optional[str] = None
    keep: int = 3
    max_bytes: int = MAX_BYTES
    conditions: dict[str, Callable[[], bool]] = field(default_factory=dict)
    backend: str = "auto"
    max_seconds: float = 600.0  # per downloaded file


@dataclass
class SyncResult:
    action: str  # "updated" | "up-to-date" | "refused" | "skipped"
    version: Optional[str]
    log: list[str]


def sync_once(cfg: SyncConfig) -> SyncResult:
    """One update attempt under the store lock. Never leaves the store without its old model."""
    store = VersionStore(cfg.state_dir, keep=cfg.keep)
    lines: list[str] = []

    def say(msg: str) -> None:
        lines.append(msg)
        log.info(msg)

    with StoreLock(store.root):
        for name, cond in cfg.conditions.items():
            if not cond():
                say(f"skip update: condition '{name}' not met")
                return SyncResult("skipped", store.read()["current"], lines)
        state = store.read()
        if (state.get("probation") or {}).get("version") == state["current"] and state["current"]:
            before = state["current"]
            if check_startup(store, cfg.backend) != before:
                say(f"rolled back from {before}: it no longer loads (crash on start)")
        _step("refresh")
        try:
            src = TufSource(cfg.source, store.root / "tuf", cfg.trusted_root,
                            cfg.max_seconds)
            cands = src.refresh()
        except Exception as exc:  # noqa: BLE001 - network or TUF refusal: keep the old model
            say(f"metadata refused: {type(exc).__name__}: {exc}")
            raise SyncError(f"metadata refused: {type(exc).__name__}: {exc}") from exc
        state = store.read()
        fresh = [v for v in src.revoked if v not in state["known_bad"]]
        for v in fresh:  # signed revocation: never run it again, leave it if it is current
            state["known_bad"][v] = "revoked by the publisher"
            store.event(state, "revoked", v, "listed as revoked in signed targets metadata")
            say(f"{v} revoked by the publisher")
        if fresh:
            store.write(state)
        chosen, why = choose(cands, device_id=device_id(store.root), channel=cfg.channel,
                             known_bad=state["known_bad"], pinned=cfg.pinned,
                             runtime_version=__version__, max_bytes=cfg.max_bytes,
                             model_name=cfg.model_name)
        for w in why:
            say(w)
        if chosen is None:
            return SyncResult("up-to-date", state["current"], lines)
        if chosen.version == state["current"]:
            say(f"already running {chosen.version}")
            return SyncResult("up-to-date", chosen.version, lines)
        v = chosen.version
        if v in store.installed():  # e.g. back to an older kept version: no re-download
            try:
                smoke_test(store.path_of(v), cfg.backend)
            except Exception as exc:  # noqa: BLE001
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                say(f"refuse installed {v}: {reason}")
                store.mark_bad(v, reason, rollback=False)
                return SyncResult("refused", state["current"], lines)
            return _switch(store, v, say, lines)
        try:
            _step("download")
            archive = src.download(chosen.target)  # TUF: length + sha256 from signed targets
        except Exception as exc:  # noqa: BLE001 - a bad mirror/network: retry later, not bad
            say(f"refuse {v} for now: download failed verification: {type(exc).__name__}: {exc}")
            return SyncResult("refused", state["current"], lines)
        try:
            _step("verify")
            staging = store.staging_dir(v)
            _step("unpack")
            unpack_bundle(archive, staging)
            bundle = open_bundle(staging)
            bundle.verify()  # manifest digests of every artifact
            if bundle.manifest.data.get("version") != v:
                raise SyncError(f"bundle says version {bundle.manifest.data.get('version')}, "
                                f"signed metadata says {v}")
            _step("install")
            path = store.install_dir(v, staging)
            _step("load")
            _step("smoke")
            smoke_test(path, cfg.backend)
        except Exception as exc:  # noqa: BLE001 - every failure refuses the version
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            say(f"refuse {v}: {reason}")
            store.mark_bad(v, reason, rollback=False)
            shutil.rmtree(store.path_of(v), ignore_errors=True)
            store.prune()
            return SyncResult("refused", store.read()["current"], lines)
        return _switch(store, v, say, lines)


def _switch(store: VersionStore, v: str, say: Callable[[str], None],
            lines: list[str]) -> SyncResult:
    _step("switch")
    state = store.read()
    if state["current"] != v:
        state["previous"], state["current"] = state["current"], v
    store.event(state, "activate", v, "passed smoke test; probation started")
    state["probation"] = {"version": v, "started": time.time()}
    store.write(state)  # one atomic replace: pointer and probation flip together
    say(f"activated {v} (previous {state['previous']})")
    _step("prune")
    removed = store.prune()
    if removed:
        say(f"pruned {', '.join(removed)}")
    _step("done")
    return SyncResult("updated", v, lines)


def end_probation(store: VersionStore, version: str, verdict: str) -> dict[str, Any]:
    """Record a probation verdict: pass keeps it, fail rolls back and marks it bad."""
    if verdict == "pass":
        state = store.read()
        state.pop("probation", None)
        store.event(state, "probation_passed", version)
        store.write(state)
        return state
    return store.mark_bad(version, verdict.removeprefix("fail: "), rollback=True)


def check_startup(store: VersionStore, backend: str = "auto") -> Optional[str]:
    """On start: if the active version is on probation and no longer loads, roll back."""
    state = store.read()
    cur = state["current"]
    if not cur:
        return None
    try:
        smoke_test(store.path_of(cur), backend)
    except Exception as exc:  # noqa: BLE001
        store.mark_bad(cur, f"crash on start: {type(exc).__name__}: {exc}", rollback=True)
    return store.read()["current"]


def parse_interval(text: str | float) -> float:
    """'90', '30s', '15m', '1h', '1d' -> seconds."""
    s = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    mult = units.get(s[-1:], None)
    value = float(s[:-1] if mult else s) * (mult or 1)
    if value <= 0:
        raise ValueError(f"interval must be positive, got {text!r}")
    return value


def daemon(cfg: SyncConfig, interval: float, *, max_backoff: float = 3600.0,
           retry_base: float = 30.0,
           iterations: Optional[int] = None) -> None:
    """Sync forever (or ``iterations`` times); after a failure retry in 30 s, 60 s, ...

    (capped at ``interval``), each delay jittered to 50-100% so a fleet doesn't sync in step.
    """
    failures = 0
    n = 0
    while iterations is None or n < iterations:
        n += 1
        try:
            sync_once(cfg)
            failures = 0
            delay = interval
        except Exception as exc:  # noqa: BLE001 - keep the agent alive
            failures += 1
            delay = min(max_backoff, interval, retry_base * 2 ** min(failures - 1, 16))
            log.warning("sync failed (%s: %s); retry in ~%.0f s", type(exc).__name__, exc, delay)
        time.sleep(delay * random.uniform(0.5, 1.0) if failures else delay)
