"""The update state machine (Mender's install → verify → commit / rollback, made explicit):

    refresh → choose → download → unpack → load → smoke → switch → probation → commit
                                   any failure before switch: mark bad, keep the current version
                                   probation failure: roll back to previous, mark bad

Only the ``switch`` step changes what is served, and it is one atomic replace of
``active.json``; every earlier step works on files no reader looks at. A crash anywhere leaves
the previous record, whose version passed its own smoke test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import EdgeRuntimeError
from .client import RepoClient, choose, device_id_default
from .errors import SyncError, UpdateRejected
from .probation import ProbationMonitor
from .store import VersionStore

STEPS = ("refresh", "choose", "download", "unpack", "load", "smoke", "switch", "probation")
log = logging.getLogger("edge_runtime.sync")


def _checkpoint(step: str) -> None:
    """Test hook: ``EDGERT_SYNC_KILL_AT=<step>`` kills this process (SIGKILL) right there, to
    prove that a power cut at any step leaves a loadable store."""
    if os.environ.get("EDGERT_SYNC_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def store_lock(store: VersionStore) -> Iterator[None]:
    """One writer per store; a second agent fails fast instead of interleaving an update."""
    path = store.root / "sync.lock"
    fh = open(path, "a+")  # noqa: SIM115
    try:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows: best effort
            pass
        except OSError:
            raise SyncError(f"{store.root}: another sync agent holds the lock") from None
        yield
    finally:
        fh.close()


@dataclass
class SyncResult:
    version: Optional[str]  # what is current after the sync
    changed: bool
    decisions: list[str] = field(default_factory=list)


class SyncAgent:
    """Keeps one device's store in step with a signed repository."""

    def __init__(self, repo: str, trusted_root: bytes, state_dir: Any = None, *,
                 model: Optional[str] = None, channel: str = "stable", device_id: Optional[str] = None,
                 profile: Any = None, keep: int = 3, max_target_bytes: int = 512 * 1024 * 1024,
                 download_timeout_s: float = 600.0, echo: Callable[[str], None] = log.info):
        self.store = VersionStore(state_dir, keep=keep)
        self.repo = repo
        self.trusted_root = trusted_root
        self.model = model
        self.channel = channel
        self.device_id = device_id or device_id_default(self.store.root)
        self.profile = profile
        self.max_target_bytes = max_target_bytes
        self.download_timeout_s = download_timeout_s
        self.echo = echo

    def _say(self, decisions: list[str], line: str) -> None:
        decisions.append(line)
        self.echo(line)

    def sync_once(self) -> SyncResult:
        """One pass of the state machine.

        Raises:
            SyncError: the repository could not be reached or its metadata was rejected (the
                device keeps serving its current version).
        """
        decisions: list[str] = []
        with store_lock(self.store):
            self.store.remove_leftovers()
            rec = self.store.read_active()
            client = RepoClient(self.repo, self.trusted_root, self.store.root / "tuf",
                                max_target_bytes=self.max_target_bytes,
                                download_timeout_s=self.download_timeout_s)
            _checkpoint("refresh")
            client.refresh()
            _checkpoint("choose")
            offers = client.offers(self.model)
            rec = self._apply_revocations(client, decisions)
            # a revoked current version with nothing to fall back on: any admitted offer replaces it
            current = None if rec["current"] in rec["known_bad"] else rec["current"]
            offer, lines = choose(offers, name=self.model, channel=self.channel,
                                  device_id=self.device_id, known_bad=rec["known_bad"],
                                  current=current, pinned=rec.get("pinned"))
            for line in lines:
                self._say(decisions, line)
            if offer is None:
                return SyncResult(rec["current"], False, decisions)
            _checkpoint("download")
            archive = client.download(offer)  # TUF: length and hashes from signed metadata; a
            # failed or tampered download is a SyncError and does not mark the version bad
            try:
                self._install(archive, offer, decisions)
            except (UpdateRejected, EdgeRuntimeError) as exc:
                reason = str(exc)
                self.mark_bad(offer.version, reason)
                self._say(decisions, f"reject {offer.version}: {reason}; staying on {rec['current']}")
                return SyncResult(rec["current"], False, decisions)
            self.store.prune()
            return SyncResult(offer.version, True, decisions)

    def _install(self, archive: Path, offer: Any, decisions: list[str]) -> None:
        from ..loader import load

        _checkpoint("unpack")
        path = self.store.install(offer.version, archive)  # safe members, manifest digests
        _checkpoint("load")
        model = load(path, profile=self.profile, verify=False)
        m = model.manifest
        if (m.name, m.version) != (offer.name, offer.version):
            raise UpdateRejected(f"bundle says {m.name} {m.version}, signed metadata says "
                                 f"{offer.name} {offer.version}")
        _checkpoint("smoke")
        try:
            figures = model.check_golden()
        finally:
            model.close()
        self._say(decisions, f"smoke test of {offer.version} passed on {model.backend.name}: "
                  + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()))
        _checkpoint("switch")
        rec = self.store.read_active()
        rec["previous"], rec["current"] = rec["current"], offer.version
        rec["probation"] = {"version": offer.version, "started": time.time(), "starts": 0}
        if getattr(offer, "probation", None):  # the publisher's signed expectations
            rec["probation"]["expect"] = dict(offer.probation)
        VersionStore.event(rec, "activate", offer.version, "smoke test passed")
        self.store.write_active(rec)
        self._say(decisions, f"activated {offer.version} (previous {rec['previous']}); probation begins")
        _checkpoint("probation")

    def _apply_revocations(self, client: RepoClient, decisions: list[str]) -> dict:
        """Versions on this device that the publisher revoked become known bad; a revoked current
        version is rolled back to the newest good one installed, or, with none, kept serving
        (never no model) until a replacement installs. Returns the store record after."""
        rec = self.store.read_active()
        for version in self.store.installed():
            name = _model_name(self.store.path(version))
            reason = client.revoked(name).get(version) if name else None
            if reason is None or version in rec["known_bad"]:
                continue
            why = f"revoked by the publisher: {reason}"
            fallback = None
            if version == rec["current"]:
                fallback = next((v for v in reversed(self.store.installed())
                                 if v != version and v not in rec["known_bad"]), None)
            if fallback:
                rollback_store(self.store, to=fallback, reason=why)
                self._say(decisions, f"revoked {name} {version}: {reason}; rolled back to {fallback}")
            else:  # mark_bad removes it, unless it is the one serving (nothing else installed)
                self.mark_bad(version, why)
                self._say(decisions, f"revoked {name} {version}: {reason}; " + (
                    "nothing else installed, serving it until a replacement installs"
                    if version == rec["current"] else "removed"))
            rec = self.store.read_active()
        return rec

    # --- local decisions --------------------------------------------------------------------
    def mark_bad(self, version: str, reason: str) -> None:
        rec = self.store.read_active()
        rec["known_bad"][version] = reason
        VersionStore.event(rec, "reject", version, reason)
        self.store.write_active(rec)
        if version not in (rec["current"], rec["previous"]):
            import shutil

            shutil.rmtree(self.store.path(version), ignore_errors=True)

    def rollback(self, to: Optional[str] = None, reason: str = "manual rollback") -> str:
        """Switch back (to ``to`` or the previous version) and mark the abandoned one bad so the
        agent does not install it again. Returns the version now current.

        Raises:
            SyncError: nothing to roll back to, or ``to`` is not installed / is known bad.
        """
        with store_lock(self.store):
            return rollback_store(self.store, to=to, reason=reason)

    def daemon(self, interval_s: float, *, max_backoff_s: Optional[float] = None,
               stop: Callable[[], bool] = lambda: False) -> None:
        """sync_once forever: ``interval_s`` (±10% jitter) between passes; after failures,
        exponential backoff with full jitter, capped at ``max_backoff_s`` (default: interval)."""
        failures = 0
        cap = max_backoff_s or interval_s
        while not stop():
            try:
                self.sync_once()
                failures = 0
                delay = interval_s * random.uniform(0.9, 1.1)
            except SyncError as exc:
                failures += 1
                delay = random.uniform(0, min(cap, 5.0 * 2 ** min(failures, 16)))
                self.echo(f"sync failed ({exc}); retry in {delay:.0f} s")
            time.sleep(delay)


def rollback_store(store: VersionStore, *, to: Optional[str] = None, reason: str) -> str:
    rec = store.read_active()
    target = to or rec["previous"]
    if not target:
        raise SyncError("no previous version to roll back to")
    if target == rec["current"]:
        raise SyncError(f"{target} is already current")
    if not (store.path(target) / "manifest.json").exists():
        raise SyncError(f"{target} is not installed here (installed: {', '.join(store.installed())})")
    if target in rec["known_bad"]:
        raise SyncError(f"{target} is marked bad: {rec['known_bad'][target]}")
    abandoned = rec["current"]
    if abandoned:
        rec["known_bad"][abandoned] = reason
    rec["current"] = target
    rec["previous"] = next((v for v in reversed(store.installed())
                            if v not in (target, abandoned) and v not in rec["known_bad"]), None)
    rec["probation"] = None
    VersionStore.event(rec, "rollback", target, f"from {abandoned}: {reason}")
    store.write_active(rec)
    return target


def finish_probation(store: VersionStore, monitor: ProbationMonitor, version: str) -> Optional[str]:
    """Apply a probation verdict for ``version``: commit it, or roll back and mark it bad.
    Returns the verdict acted on ("pass"/"fail") or None while pending."""
    verdict, reason = monitor.verdict()
    if verdict == "pending":
        return None
    with store_lock(store):
        rec = store.read_active()
        if (rec.get("probation") or {}).get("version") != version or rec["current"] != version:
            return None
        if verdict == "pass":
            rec["probation"] = None
            VersionStore.event(rec, "commit", version, reason)
            store.write_active(rec)
        elif not rec["previous"]:  # never no model: keep serving it, say so, stop judging it
            rec["probation"] = None
            VersionStore.event(rec, "probation-failed", version,
                               f"failed probation: {reason}; nothing to roll back to, still serving it")
            store.write_active(rec)
        else:
            rollback_store(store, reason=f"failed probation: {reason}")
    return verdict


def _model_name(bundle_dir: Path) -> Optional[str]:
    try:
        return str(json.loads((bundle_dir / "manifest.json").read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trusted_root_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SyncError(f"cannot read the trusted root {path}: {exc.strerror}") from None
