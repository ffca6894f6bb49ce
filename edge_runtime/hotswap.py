"""The one hot-swap implementation over a version store, used by the library and by
``edgert serve STORE`` (blue-green): the old version keeps serving until the newly activated one
has been re-verified at rest, loaded and has passed its golden rows, then one reference is
swapped. Calls in flight finish on the model they started on (it is closed once idle). While a
version is on probation every call is observed and the verdict is recorded through the store
(commit, or roll back and mark bad); a version that cannot be served is marked bad and the
record rolled back to the version still serving, so ``active.json`` never names a version that
is not served.

    model = HotSwapModel(state_dir)        # the store's current version, else the newest good one
    model.predict(rows)                    # picks up new versions as the agent activates them

The server uses :meth:`HotSwapModel.lease` + :meth:`HotSwapModel.run` (one model for a whole
request) and :meth:`HotSwapModel.follow` (a watcher thread, so no request waits for a load).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import EdgeRuntimeError, InputError, NoProbabilitiesError, NoServableModelError
from .sync.errors import StoreBusy, StoreError, TransitionError
from .sync.probation import ProbationMonitor
from .sync.store import ACTIVE, VersionStore

MAX_STARTS_ON_PROBATION = 3
MAX_FALLBACKS = 32
log = logging.getLogger("edge_runtime.hotswap")


@dataclass(frozen=True)
class LoadedModel:
    """A model that passed its golden check, with where it came from."""

    model: Any  # edge_runtime.model.Model (typed loosely: importable without numpy)
    version: str
    source: str
    loaded_at: float = field(default_factory=time.time)


class HotSwapModel:
    """Thread-safe holder of the store's current model.

    Raises (from the constructor):
        NoServableModelError: no version in the store can be verified, loaded and golden-checked.
    """

    def __init__(self, state_dir: Any = None, *, backend: str = "auto", profile: Any = None,
                 threads: Optional[int] = None, check_every_s: float = 1.0,
                 on_swap: Optional[Callable[[bool], None]] = None, trust: Any = None):
        from .profiles import load_profile
        from .signing import profile_trust

        self.backend = backend
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.store = VersionStore(state_dir, trust=trust if trust is not None  # see edge_runtime.signing
                                  else profile_trust(self.profile))
        self.threads = threads
        self.check_every_s = check_every_s
        self.on_swap = on_swap
        self.swaps = 0
        self.last_swap_error: Optional[str] = None
        self._lock = threading.Lock()  # guards _current, _in_use, _retired
        self._refreshing = threading.Lock()
        self._judging = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watcher: Optional[threading.Thread] = None
        self._next_check = 0.0
        self._stamp: Optional[tuple[int, int, int]] = None
        self._current: Optional[LoadedModel] = None
        self._monitor: Optional[tuple[str, ProbationMonitor]] = None
        self._in_use: dict[int, int] = {}  # id(model) -> calls running on it right now
        self._retired: list[Any] = []  # swapped-out models, closed once no call uses them
        try:
            self.store.count_start(MAX_STARTS_ON_PROBATION)
        except (StoreError, OSError) as exc:  # busy or read-only store: serve anyway
            log.warning("start not counted: %s", exc)
        self.refresh(force=True)
        if self._current is None:
            raise NoServableModelError(f"{self.store.root}: no loadable model version in the store"
                                       + (f" ({self.last_swap_error})" if self.last_swap_error else ""))

    # --- what is served ---------------------------------------------------------------------
    @property
    def current(self) -> Optional[LoadedModel]:
        return self._current

    @property
    def version(self) -> Optional[str]:
        cur = self._current
        return cur.version if cur else None

    @property
    def model(self) -> Any:
        cur = self._current
        return cur.model if cur else None

    @property
    def store_root(self) -> Path:
        return self.store.root

    # --- following the store ----------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Swap to the store's current version if it changed (checked at most every
        ``check_every_s`` unless ``force``). Returns True on a swap."""
        if not force and time.monotonic() < self._next_check:
            return False
        return self.poll(force=force)

    def poll(self, force: bool = False) -> bool:
        """Check ``active.json`` now; a version refused once is not retried until the record
        changes (or ``force``). Returns True on a swap."""
        if not self._refreshing.acquire(blocking=force):
            return False  # another thread is loading: keep serving meanwhile
        try:
            self._next_check = time.monotonic() + self.check_every_s
            stamp = self._record_stamp()
            if not force and stamp == self._stamp and self._current is not None:
                return False
            self._stamp = stamp
            return self._reconcile()
        finally:
            self._refreshing.release()

    def _record_stamp(self) -> Optional[tuple[int, int, int]]:
        try:
            st = (self.store.root / ACTIVE).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reconcile(self) -> bool:
        """Make what is served and what the record calls current the same version."""
        for _ in range(MAX_FALLBACKS):
            rec = self.store.read_active()
            target, serving = rec["current"], self.version
            if target is None or target == serving:
                self._sync_probation(rec)
                return False
            try:
                loaded = self._open(target)
            except EdgeRuntimeError as exc:
                self.last_swap_error = f"version {target}: {exc}"
                log.error("not serving %s: %s", target, exc)
                if serving is not None and self.on_swap:
                    self.on_swap(False)
                if not self._refuse(target, exc, serving) or serving is not None:
                    return False
                continue  # nothing serving yet: try the version the store returned to
            self._swap(loaded)
            return True
        return False

    def _open(self, version: str) -> LoadedModel:
        """Verify ``version`` at rest, load it and check its golden rows.

        Raises:
            EdgeRuntimeError: tampered at rest, a required signature missing or not matching,
                wrong manifest version, no backend, golden mismatch.
        """
        from .loader import load

        path = self.store.verify_at_rest(version)
        model = load(path, backend=self.backend, profile=self.profile, threads=self.threads,
                     trust=self.store.trust)
        return LoadedModel(model, version, str(path))

    def _refuse(self, version: str, exc: Exception, serving: Optional[str]) -> bool:
        """``version`` cannot be served: mark it bad and roll the record back to the version
        still serving (else, or at start, to the newest good one). Returns True if the record
        moved (at start: look again at what it names now)."""
        text = str(exc)
        reason = text if text.startswith("tampered at rest") else f"does not load on this device: {text}"
        for to in dict.fromkeys([serving, None]):
            try:
                self.store.rollback(reason, to=to, expect_current=version)
                return True
            except TransitionError:
                continue  # that version is gone or bad, or the record moved on
            except StoreBusy as why:  # retry on the next poll
                log.warning("could not record that %s is bad: %s", version, why)
                self._stamp = None
                return False
            except (StoreError, OSError) as why:  # e.g. a read-only store: serve, do not retry
                log.warning("could not record that %s is bad: %s", version, why)
                return False
        if serving is None and self.store.read_active()["current"] == version:
            log.error("%s cannot be served and there is no good version to return to", version)
            return False
        try:
            self.store.mark_bad(version, reason)  # never retried
        except (StoreError, OSError) as why:
            log.warning("could not record that %s is bad: %s", version, why)
        return True

    def _swap(self, loaded: LoadedModel) -> None:
        with self._lock:
            old, self._current = self._current, loaded
            if old is not None:
                self._retired.append(old.model)
            idle = self._take_idle()
        for m in idle:  # a call still running on the old model keeps it open until it returns
            m.close()
        if old is not None:
            self.swaps += 1
            self.last_swap_error = None
            log.info("swapped %s -> %s", old.version, loaded.version)
            if self.on_swap:
                self.on_swap(True)
        self._sync_probation(self.store.read_active())

    def _take_idle(self) -> list[Any]:
        """Retired models no call uses any more (caller holds ``self._lock``)."""
        idle = [m for m in self._retired if not self._in_use.get(id(m))]
        self._retired = [m for m in self._retired if self._in_use.get(id(m))]
        return idle

    def follow(self, interval_s: Optional[float] = None) -> None:
        """Poll the store on a daemon thread every ``interval_s`` (default ``check_every_s``),
        so loads and swaps happen off the callers' path."""
        interval = self.check_every_s if interval_s is None else interval_s

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - the watcher must outlive any one bad version
                    log.exception("store watcher")

        self._watcher = threading.Thread(target=run, name="edgert-store-watcher", daemon=True)
        self._watcher.start()

    # --- probation --------------------------------------------------------------------------
    def _sync_probation(self, rec: dict[str, Any]) -> None:
        prob = rec.get("probation")
        version = self.version
        if prob and version is not None and prob.get("version") == version == rec["current"]:
            if self._monitor is None or self._monitor[0] != version:
                self._monitor = (version, self._new_monitor(rec, prob))
        else:
            self._drop_monitor()

    def _new_monitor(self, rec: dict[str, Any], prob: dict[str, Any]) -> ProbationMonitor:
        """The judge of the version on probation (``prob``: the store's probation record, with
        the publisher's signed ``expect`` when the offer carried it; ``rec["previous"]`` is the
        good version it would roll back to)."""
        cfg = self.profile.probation if self.profile else None
        prev = rec.get("previous")
        cur = self._current
        return ProbationMonitor.from_profile(
            cfg, started=prob.get("started"), expect=prob.get("expect"),
            candidate=cur.model if cur else None, previous=self.store.path(prev) if prev else None,
            backend=self.backend, profile=self.profile)

    def _drop_monitor(self, monitor: Optional[ProbationMonitor] = None) -> None:
        """Forget (and close: its shadow thread and the previous version's model) the monitor,
        or only ``monitor`` if it is still the current one."""
        held = self._monitor
        if held is None or (monitor is not None and held[1] is not monitor):
            return
        self._monitor = None
        held[1].close()

    def _monitor_for(self, version: str) -> Optional[ProbationMonitor]:
        mon = self._monitor
        return mon[1] if mon is not None and mon[0] == version else None

    def _judge(self, monitor: ProbationMonitor, version: str) -> None:
        verdict, reason = monitor.verdict()
        if verdict == "pending" or not self._judging.acquire(blocking=False):
            return  # no verdict yet, or another thread is recording it
        try:
            if verdict == "pass":
                self.store.commit(version, reason)
            else:
                self._record_failure(version, f"failed probation: {reason}")
        except TransitionError as exc:  # the record moved on: this verdict is void
            log.info("probation verdict on %s not recorded: %s", version, exc)
        except (StoreError, OSError) as exc:  # busy: judged again on a later call
            log.warning("probation verdict on %s deferred: %s", version, exc)
            return
        finally:
            self._judging.release()
        self._drop_monitor(monitor)
        if verdict == "fail":
            if self._watcher is not None:
                self._wake.set()  # the watcher swaps back, off this caller's path
            else:
                self.refresh(force=True)

    def _record_failure(self, version: str, reason: str) -> None:
        """Roll back from a version that failed probation; with no good version to return to it
        is still marked bad (it serves until a replacement installs: never no model).

        Raises:
            TransitionError: ``version`` is no longer current (the verdict is void).
        """
        try:
            self.store.rollback(reason, expect_current=version)
        except TransitionError:
            if self.store.read_active()["current"] != version or self.store.rollback_target():
                raise
            self.store.mark_bad(version, reason)

    # --- calls ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lease(self) -> Iterator[Optional[LoadedModel]]:
        """The model serving now, kept open until the block ends even if a swap happens."""
        with self._lock:
            cur = self._current
            if cur is not None:
                self._in_use[id(cur.model)] = self._in_use.get(id(cur.model), 0) + 1
        try:
            yield cur
        finally:
            if cur is not None:
                with self._lock:
                    self._in_use[id(cur.model)] -= 1
                    if not self._in_use[id(cur.model)]:
                        del self._in_use[id(cur.model)]
                    idle = self._take_idle()
                for m in idle:
                    m.close()

    def run(self, served: LoadedModel, method: str, X: Any, ids: Any = None, **kw: Any) -> Any:
        """Call ``method`` of a leased model; the one place where calls are observed for
        probation (an :class:`InputError` or a :class:`NoProbabilitiesError` is the caller's
        fault and is not counted). ``ids`` (one per row) let :meth:`feedback` report delayed
        labels."""
        monitor = self._monitor_for(served.version)
        t0 = time.perf_counter()
        try:
            out = getattr(served.model, method)(X, **kw)
        except (InputError, NoProbabilitiesError):
            raise
        except Exception:
            if monitor is not None:
                monitor.observe(time.perf_counter() - t0, error=True)
                self._judge(monitor, served.version)
            raise
        if monitor is not None and monitor.served(time.perf_counter() - t0, method, X, out, ids):
            self._judge(monitor, served.version)  # served: latency counted, a sample for the shadow
        return out

    def _call(self, method: str, X: Any, ids: Any = None, **kw: Any) -> Any:
        self.refresh()
        with self.lease() as served:
            if served is None:
                raise NoServableModelError(f"{self.store.root}: no model is being served")
            return self.run(served, method, X, ids=ids, **kw)

    # The Predictor (edge_runtime.predictor): ``strict`` and ``key`` go to the served model (a
    # bare Model, which ignores ``key``); ``ids`` are this holder's, for probation feedback.
    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> Any:
        """Labels or values of the current version; ``ids`` (one per row) let the app report
        the true labels later with :meth:`feedback`."""
        return self._call("predict", X, ids, strict=strict, key=key)

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> Any:
        """Class probabilities of the current version; ``ids`` as for :meth:`predict`."""
        return self._call("predict_proba", X, ids, strict=strict, key=key)

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> Any:
        """:meth:`predict` on a worker thread (swaps and probation are synchronous), so an event
        loop is not blocked."""
        return await asyncio.to_thread(self.predict, X, strict=strict, key=key, ids=ids)

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> Any:
        """:meth:`predict_proba` on a worker thread, as :meth:`predict_async`."""
        return await asyncio.to_thread(self.predict_proba, X, strict=strict, key=key, ids=ids)

    @property
    def task(self) -> str:
        return self._served().task

    @property
    def classes(self) -> Any:
        return self._served().classes

    @property
    def feature_names(self) -> Any:
        return self._served().feature_names

    @property
    def input_schema(self) -> Any:
        return self._served().input_schema

    def _served(self) -> Any:
        model = self.model
        if model is None:
            raise NoServableModelError(f"{self.store.root}: no model is being served")
        return model

    def report_error(self, kind: str = "app") -> None:
        """Count an error the app saw downstream of a prediction (an implausible output, a
        user's correction) against a version on probation: errors above the probation's
        ``max_error_rate`` roll it back. Does nothing outside probation; ``kind`` is for logs."""
        version = self.version
        monitor = self._monitor_for(version) if version else None
        if monitor is not None and version is not None:
            monitor.observe(0.0, error=True)
            self._judge(monitor, version)

    def feedback(self, prediction_id: Any, truth: Any) -> None:
        """The true label of a row predicted with ``ids=[…, prediction_id, …]`` (a delayed
        label). During probation, the new version's accuracy on labelled calls is compared
        with the previous version's on the same calls; outside probation it is ignored."""
        version = self.version
        monitor = self._monitor_for(version) if version else None
        if monitor is not None and version is not None:
            monitor.feedback(prediction_id, truth)
            self._judge(monitor, version)

    def close(self) -> None:
        """Stop the watcher and close every model this holder opened."""
        self._drop_monitor()
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._lock:
            models = [*self._retired, *([self._current.model] if self._current else [])]
            self._retired = []
        for m in models:
            m.close()
