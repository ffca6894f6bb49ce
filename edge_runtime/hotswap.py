"""A model that follows the sync store without a restart (blue-green): the old version keeps
serving until the newly activated one has loaded and passed its golden rows, then one
reference is swapped. While a version is on probation, every prediction is observed; a failed
probation rolls the store back and this holder swaps back to the previous version.

    model = HotSwapModel(state_dir)        # loads the store's current version
    model.predict(rows)                    # picks up new versions as the agent activates them
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Optional

from .errors import EdgeRuntimeError
from .sync.agent import finish_probation, rollback_store, store_lock
from .sync.errors import SyncError
from .sync.probation import ProbationMonitor
from .sync.store import ACTIVE, VersionStore

MAX_STARTS_ON_PROBATION = 3


class HotSwapModel:
    """Thread-safe holder of the store's current model."""

    def __init__(self, state_dir: Any = None, *, backend: str = "auto", profile: Any = None,
                 check_every_s: float = 1.0):
        from .profiles import load_profile

        self.store = VersionStore(state_dir)
        self.backend = backend
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._judging = threading.Lock()
        self._next_check = 0.0
        self._stamp: Optional[tuple] = None
        self._model: Any = None
        self._version: Optional[str] = None
        self._monitor: Optional[ProbationMonitor] = None
        self._in_use: dict[int, int] = {}  # id(model) -> calls running on it right now
        self._retired: list[Any] = []  # swapped-out models, closed once no call uses them
        self._count_start()
        self.refresh(force=True)
        if self._model is None:
            raise EdgeRuntimeError(f"{self.store.root}: no loadable model version in the store")

    @property
    def version(self) -> Optional[str]:
        return self._version

    @property
    def model(self) -> Any:
        return self._model

    def _count_start(self) -> None:
        """A version that keeps crashing its process on start never commits: roll it back."""
        with store_lock(self.store):
            rec = self.store.read_active()
            prob = rec.get("probation")
            if not prob or prob.get("version") != rec["current"]:
                return
            prob["starts"] = int(prob.get("starts", 0)) + 1
            if prob["starts"] > MAX_STARTS_ON_PROBATION:
                rollback_store(self.store, reason=f"failed probation: {prob['starts'] - 1} starts "
                                                   "without reaching commit (crash on start)")
            else:
                self.store.write_active(rec)

    def refresh(self, force: bool = False) -> bool:
        """Swap to the store's current version if it changed. Returns True on a swap."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self.check_every_s
        try:
            st = (self.store.root / ACTIVE).stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if not force and stamp == self._stamp:
            return False
        self._stamp = stamp
        rec = self.store.read_active()
        target = rec["current"]
        if target is None or target == self._version:
            self._sync_probation(rec)
            return False
        from .loader import load

        try:
            new = load(self.store.path(target), backend=self.backend, profile=self.profile)
        except EdgeRuntimeError as exc:
            if self._model is None and rec["previous"]:  # nothing serving yet: fall back now
                with store_lock(self.store):
                    rollback_store(self.store, reason=f"does not load on this device: {exc}")
                return self.refresh(force=True)
            return False
        with self._lock:
            old, self._model, self._version = self._model, new, target
            if old is not None:
                self._retired.append(old)
            idle = self._take_idle()
        for m in idle:  # a call still running on the old model keeps it open until it returns
            m.close()
        self._sync_probation(rec)
        return True

    def _take_idle(self) -> list[Any]:
        """Retired models no call uses any more (caller holds ``self._lock``)."""
        idle = [m for m in self._retired if not self._in_use.get(id(m))]
        self._retired = [m for m in self._retired if self._in_use.get(id(m))]
        return idle

    def _sync_probation(self, rec: dict) -> None:
        prob = rec.get("probation")
        if prob and prob.get("version") == self._version:
            if self._monitor is None:
                cfg = self.profile.probation if self.profile else None
                prev = rec.get("previous")
                self._monitor = ProbationMonitor.from_profile(
                    cfg, started=prob.get("started"), expect=prob.get("expect"), candidate=self._model,
                    previous=self.store.path(prev) if prev else None, backend=self.backend,
                    profile=self.profile)
        else:
            self._drop_monitor()

    def _drop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.close()

    def _call(self, method: str, X: Any, ids: Any = None) -> Any:
        self.refresh()
        with self._lock:
            model, monitor, version = self._model, self._monitor, self._version
            self._in_use[id(model)] = self._in_use.get(id(model), 0) + 1
        t0 = time.perf_counter()
        try:
            out = getattr(model, method)(X)
        except Exception:
            if monitor is not None:
                monitor.observe(time.perf_counter() - t0, error=True)
                self._judge(monitor, version)
            raise
        finally:
            with self._lock:
                self._in_use[id(model)] -= 1
                if not self._in_use[id(model)]:
                    del self._in_use[id(model)]
                idle = self._take_idle()
            for m in idle:
                m.close()
        if monitor is not None and monitor.served(time.perf_counter() - t0, method, X, out, ids):
            self._judge(monitor, version)  # served: latency counted, a sample for the shadow
        return out

    def _judge(self, monitor: ProbationMonitor, version: Optional[str]) -> None:
        if version is None or monitor.verdict()[0] == "pending":
            return
        if not self._judging.acquire(blocking=False):
            return  # another thread is recording this verdict
        try:
            verdict = finish_probation(self.store, monitor, version)
        except SyncError:
            return  # the agent holds the store lock: record the verdict on a later call
        finally:
            self._judging.release()
        if self._monitor is monitor:
            self._drop_monitor()
        if verdict == "fail":
            self.refresh(force=True)

    def predict(self, X: Any, *, ids: Any = None) -> Any:
        """Labels or values of the current version; ``ids`` (one per row) let the app report
        the true labels later with :meth:`feedback`."""
        return self._call("predict", X, ids)

    def predict_proba(self, X: Any, *, ids: Any = None) -> Any:
        """Class probabilities of the current version; ``ids`` as for :meth:`predict`."""
        return self._call("predict_proba", X, ids)

    def report_error(self, kind: str = "app") -> None:
        """Count an error the app saw downstream of a prediction (an implausible output, a
        user's correction) against a version on probation: errors above the probation's
        ``max_error_rate`` roll it back. Does nothing outside probation; ``kind`` is for logs."""
        monitor, version = self._monitor, self._version
        if monitor is not None:
            monitor.observe(0.0, error=True)
            self._judge(monitor, version)

    def feedback(self, prediction_id: Any, truth: Any) -> None:
        """The true label of a row predicted with ``ids=[…, prediction_id, …]`` (a delayed
        label). During probation, the new version's accuracy on labelled calls is compared
        with the previous version's on the same calls; outside probation it is ignored."""
        monitor, version = self._monitor, self._version
        if monitor is not None:
            monitor.feedback(prediction_id, truth)
            self._judge(monitor, version)

    def close(self) -> None:
        self._drop_monitor()
        if self._model is not None:
            self._model.close()


def store_versions(state_dir: Any = None) -> list[dict]:
    """Installed versions with their state, for ``edgert versions``."""
    store = VersionStore(state_dir)
    rec = store.read_active()
    out = []
    for v in store.installed():
        state = ("current" if v == rec["current"] else "previous" if v == rec["previous"] else
                 "bad" if v in rec["known_bad"] else "installed")
        if v == rec["current"] and rec.get("probation"):
            state += " (probation)"
        out.append({"version": v, "state": state, "reason": rec["known_bad"].get(v, ""),
                    "path": str(Path(store.path(v)))})
    for v, why in rec["known_bad"].items():
        if v not in {o["version"] for o in out}:
            out.append({"version": v, "state": "bad (removed)", "reason": why, "path": ""})
    return out
