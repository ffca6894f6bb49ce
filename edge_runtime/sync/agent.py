"""The update pass (Mender's install → verify → commit / rollback, made explicit):

    refresh → choose → download → unpack → load → smoke → switch → probation … → prune
                                   any failure before switch: mark bad, keep the current version
                                   probation verdicts (commit / rollback): the hot-swap core

Every change of state goes through :class:`~edge_runtime.sync.store.VersionStore`, which owns
the transitions and their one record; this module decides *when* to ask for them. ``load`` and
``smoke`` run in a child process with a deadline and a memory limit (:mod:`.trial`), so no
candidate can crash, hang or exhaust the agent. Only the ``switch`` step changes what is served
(one atomic replace of ``active.json``); every earlier step works on files no reader looks at.
A crash anywhere leaves the previous record, whose version passed its own smoke test.
Downloaded archives are deleted once installed or refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import EdgeRuntimeError
from .client import RepoClient, choose, device_id_default
from .errors import SyncError, UpdateRejected
from .store import VersionStore, checkpoint
from .trial import TrialUnavailable, trial_limits, try_candidate

#: kill -9 test hooks of one pass (``prune`` fires inside ``VersionStore.prune``)
STEPS = ("refresh", "choose", "download", "unpack", "load", "smoke", "switch", "probation", "prune")
log = logging.getLogger("edge_runtime.sync")


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
    rejected: Optional[tuple[str, str]] = None  # (version, reason) when this pass marked one bad


class SyncAgent:
    """Keeps one device's store in step with a signed repository."""

    def __init__(self, repo: str, trusted_root: bytes, state_dir: Any = None, *,
                 model: Optional[str] = None, channel: str = "stable", device_id: Optional[str] = None,
                 profile: Any = None, keep: int = 3, max_target_bytes: int = 512 * 1024 * 1024,
                 download_timeout_s: float = 600.0, trial_timeout_s: Optional[float] = None,
                 trial_memory_mb: Optional[int] = None, echo: Callable[[str], None] = log.info,
                 trust: Any = None):
        """``trial_timeout_s`` / ``trial_memory_mb`` bound the candidate's load and smoke test
        (:mod:`.trial`); unset, the profile's ``[probation]`` values or 60 s / 2 GiB apply.
        ``trust``: the model owner's keys bundles must be signed by (:mod:`edge_runtime.signing`),
        apart from the TUF roles; checked at install and at every activation by the store."""
        from ..signing import profile_trust

        self.store = VersionStore(state_dir, keep=keep,
                                  trust=trust if trust is not None else profile_trust(profile))
        self.repo = repo
        self.trusted_root = trusted_root
        self.model = model
        self.channel = channel
        self.device_id = device_id or device_id_default(self.store.root)
        self.profile = profile
        self.max_target_bytes = max_target_bytes
        self.download_timeout_s = download_timeout_s
        self.trial_limits = trial_limits(profile, timeout_s=trial_timeout_s, memory_mb=trial_memory_mb)
        self.echo = echo

    def _say(self, decisions: list[str], line: str) -> None:
        decisions.append(line)
        self.echo(line)

    def sync_once(self) -> SyncResult:
        """One pass of the state machine, then retention (:meth:`VersionStore.prune`).

        Raises:
            SyncError: the repository could not be reached or its metadata was rejected (the
                device keeps serving its current version).
        """
        decisions: list[str] = []
        with store_lock(self.store):
            self.store.remove_leftovers()
            result = self._pass(decisions)
            gone = self.store.prune()
            if gone:
                self._say(decisions, f"pruned {', '.join(gone)} (keeping {self.store.keep} versions)")
            result.decisions = decisions
            return result

    def _pass(self, decisions: list[str]) -> SyncResult:
        rec = self.store.read_active()
        client = RepoClient(self.repo, self.trusted_root, self.store.root / "tuf",
                            max_target_bytes=self.max_target_bytes,
                            download_timeout_s=self.download_timeout_s)
        checkpoint("refresh")
        client.refresh()
        checkpoint("choose")
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
            return SyncResult(rec["current"], False)
        client.purge_archives()  # at most one download on disk at any time
        checkpoint("download")
        archive = client.download(offer)  # TUF: length and hashes from signed metadata; a
        # failed or tampered download is a SyncError and does not mark the version bad
        try:
            self._install(archive, offer, decisions)
        except TrialUnavailable:
            raise  # the device could not run a trial: not the version's fault, retry later
        except (UpdateRejected, EdgeRuntimeError) as exc:
            reason = str(exc)
            self.store.mark_bad(offer.version, reason)
            self._say(decisions, f"reject {offer.version}: {reason}; staying on {rec['current']}")
            return SyncResult(self.store.read_active()["current"], False,
                              rejected=(offer.version, reason))
        finally:
            archive.unlink(missing_ok=True)  # installed or refused: the archive is not needed
        return SyncResult(offer.version, True)

    def _install(self, archive: Path, offer: Any, decisions: list[str]) -> None:
        checkpoint("unpack")
        try:
            # safe members, manifest digests; TUF verified the archive (native code may run)
            path = self.store.install(offer.version, archive, via_tuf=True)
        except (EdgeRuntimeError, OSError):
            raise  # the bundle's own errors are rejections; the device's (disk full) are not
        except Exception as exc:  # noqa: BLE001 - a manifest the unpacker did not foresee
            raise UpdateRejected(f"unpack raised {type(exc).__name__}: {exc}") from None
        checkpoint("load")
        trial = self._trial(path, offer)
        checkpoint("smoke")
        self._say(decisions, f"smoke test of {offer.version} passed on {trial['backend']} "
                  f"({trial['seconds']:.2f} s in a trial process): "
                  + ", ".join(f"{k}={v:.3g}" for k, v in trial["figures"].items()))
        checkpoint("switch")
        rec = self.store.activate(offer.version, reason="smoke test passed",
                                  expect=dict(offer.probation) if getattr(offer, "probation", None) else None)
        prev = rec["previous"]
        self._say(decisions, f"activated {offer.version} (rollback target {prev}); probation begins")
        checkpoint("probation")

    def _trial(self, path: Path, offer: Any) -> dict:
        """Load, name check and smoke test of the unpacked candidate, in a child process with
        this agent's deadline and memory limit (:func:`.trial.try_candidate`).

        Raises:
            CandidateFailed: any failure there, with the reason (the caller marks it bad).
            TrialUnavailable: the trial process could not start (the version is not blamed).
        """
        return try_candidate(path, name=offer.name, version=offer.version, profile=self.profile,
                             timeout_s=self.trial_limits.timeout_s, memory_mb=self.trial_limits.memory_mb)

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
            fallback = self.store.rollback_target(rec) if version == rec["current"] else None
            if fallback:
                self.store.rollback(why, to=fallback)
                self._say(decisions, f"revoked {name} {version}: {reason}; rolled back to {fallback}")
            else:  # pruned at the end of the pass, unless it is the one serving (nothing else)
                self.store.mark_bad(version, why)
                self._say(decisions, f"revoked {name} {version}: {reason}; " + (
                    "nothing else installed, serving it until a replacement installs"
                    if version == rec["current"] else "removed"))
            rec = self.store.read_active()
        return rec

    # --- local decisions --------------------------------------------------------------------
    def rollback(self, to: Optional[str] = None, reason: str = "manual rollback") -> str:
        """Switch back (to ``to`` or the rollback target) and mark the abandoned one bad so the
        agent does not install it again. Returns the version now current.

        Raises:
            TransitionError: nothing to roll back to, or ``to`` is not installed / is known bad.
        """
        return self.store.rollback(reason, to=to)

    def daemon(self, interval_s: float, *, max_backoff_s: Optional[float] = None,
               stop: Callable[[], bool] = lambda: False,
               wait: Optional[Callable[[float], Any]] = None) -> None:
        """sync_once forever: ``interval_s`` (±10% jitter) between passes; after failures,
        exponential backoff with full jitter, capped at ``max_backoff_s`` (default: interval).
        ``wait`` sleeps between passes (e.g. ``threading.Event.wait``, which ends early on a stop;
        by default a sleep that wakes every 0.5 s to check ``stop``).

        No pass ends the daemon: a bad version is marked bad inside the pass, and any other
        exception (network, disk, a bug) is logged with its reason and retried after backoff,
        so a good version published later still installs."""
        failures = 0
        cap = max_backoff_s or interval_s
        while not stop():
            try:
                self.sync_once()
                failures = 0
                delay = interval_s * random.uniform(0.9, 1.1)
            except Exception as exc:  # noqa: BLE001 - the daemon outlives any one pass
                failures += 1
                delay = random.uniform(0, min(cap, 5.0 * 2 ** min(failures, 16)))
                what = str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
                self.echo(f"sync failed ({what}); retry in {delay:.0f} s")
                if not isinstance(exc, EdgeRuntimeError):
                    log.debug("sync pass failed", exc_info=True)
            if wait is None:
                _sleep_unless(stop, delay)
            else:
                wait(delay)


def _sleep_unless(stop: Callable[[], bool], seconds: float) -> None:
    """Sleep ``seconds``, waking every 0.5 s to honour ``stop``."""
    end = time.monotonic() + seconds
    while not stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def _model_name(bundle_dir: Path) -> Optional[str]:
    try:
        return str(json.loads((bundle_dir / "manifest.json").read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trusted_root_bytes(path: Path) -> bytes:
    """The trusted root.json's bytes, once they parse as a JSON object (TUF checks the rest).

    Raises:
        SyncError: unreadable, or not a JSON object.
    """
    import json

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SyncError(f"cannot read the trusted root {path}: {exc.strerror}") from None
    try:
        ok = isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        ok = False
    if not ok:
        raise SyncError(f"the trusted root {path} is not a JSON object (TUF root metadata, as "
                        "written by `edgert keys init`)")
    return data
