"""A model holder that follows the store's active version without a restart (blue-green).

The old model keeps serving until the new one has loaded and passed its golden-row smoke
test; then one reference swap makes it visible. A version that fails is marked bad in the
store (with rollback) and the old model stays.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Optional

from .sync.probation import ProbationMonitor, ProbationThresholds
from .sync.store import VersionStore


class HotSwapModel:
    """Thread-safe holder: ``predict``/``predict_proba`` always use one complete model."""

    def __init__(self, state_dir: Optional[Path] = None, *, backend: str = "auto",
                 probation: Optional[dict[str, Any]] = None, profile: Any = None):
        if probation is None and profile is not None:
            from .profiles import DeviceProfile, load_profile
            prof = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
            probation = dict(prof.probation or {})
        self.store = VersionStore(state_dir)
        self.updater_thread: Optional[threading.Thread] = None
        self.backend = backend
        self.thresholds = ProbationThresholds.from_profile(probation)
        self._lock = threading.Lock()
        self._model: Any = None
        self._in_use: dict[int, int] = {}  # id(model) -> calls running on it
        self._retired: list[Any] = []  # swapped-out models closed once idle
        self.version: Optional[str] = None
        self.monitor: Optional[ProbationMonitor] = None
        self.refresh()

    def _load(self, version: str) -> Any:
        from .loader import load
        model = load(self.store.path_of(version), backend=self.backend, verify=True)
        model.check_golden()
        return model

    def refresh(self) -> bool:
        """Load the store's current version if it changed; returns True when swapped."""
        state = self.store.read()
        want = state["current"]
        if want is None or want == self.version:
            return False
        try:
            new = self._load(want)
        except Exception as exc:  # noqa: BLE001 - a bad version never replaces a good one
            self.store.mark_bad(want, f"failed to load in server: {type(exc).__name__}: {exc}")
            return self.refresh() if self.store.read()["current"] not in (want, None) else False
        with self._lock:
            old, self._model, self.version = self._model, new, want
            on_probation = (state.get("probation") or {}).get("version") == want
            self.monitor = ProbationMonitor(self.thresholds) if on_probation else None
            if old is not None:
                self._retired.append(old)
            idle = self._collect_idle()
        for m in idle:
            m.close()
        return True

    def _collect_idle(self) -> list[Any]:
        """Retired models no call is using any more (call with the lock held)."""
        idle = [m for m in self._retired if not self._in_use.get(id(m))]
        self._retired = [m for m in self._retired if self._in_use.get(id(m))]
        return idle

    def _call(self, method: str, X: Any) -> Any:
        with self._lock:
            model, monitor, version = self._model, self.monitor, self.version
            if model is not None:
                self._in_use[id(model)] = self._in_use.get(id(model), 0) + 1
        if model is None:
            raise LookupError(f"no active model in {self.store.root}")
        t0 = time.perf_counter()
        try:
            out = getattr(model, method)(X)
        except Exception:
            if monitor:
                monitor.observe((time.perf_counter() - t0) * 1e3, error=True)
                self._judge(monitor, version)
            raise
        finally:
            with self._lock:
                self._in_use[id(model)] -= 1
                if not self._in_use[id(model)]:
                    del self._in_use[id(model)]
                idle = self._collect_idle()
            for m in idle:
                m.close()
        if monitor:
            monitor.observe((time.perf_counter() - t0) * 1e3)
            self._judge(monitor, version)
        return out

    def _judge(self, monitor: ProbationMonitor, version: Optional[str]) -> None:
        from .sync.agent import end_probation
        verdict = monitor.verdict()
        if verdict is None or version is None:
            return
        with self._lock:
            if self.monitor is not monitor:
                return
            self.monitor = None
        end_probation(self.store, version, verdict)
        if verdict != "pass":
            self.refresh()

    def predict(self, X: Any) -> Any:
        return self._call("predict", X)

    def predict_proba(self, X: Any) -> Any:
        return self._call("predict_proba", X)
