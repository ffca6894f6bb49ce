"""On-device alerts: call the app back when a model version's live window breaches a rule.

Judged in the recorder's drain thread (never on the prediction path) with the same rules
probation uses (:meth:`edge_runtime.health.LiveMetrics.breach_list` for error rate and p99
latency over the last ``live_n`` calls; :func:`~edge_runtime.telemetry.histograms.feature_drift`
for PSI per feature over tumbling windows of ``drift_rows`` input rows). A breach fires once; it can fire
again only after a verdict says it cleared. Too little data (fewer than ``min_predictions``
calls, fewer than ``min_rows`` rows in the window) is no verdict: the state is kept.

Callbacks run on their own thread, one at a time, behind a bounded queue: a slow or failing
callback neither slows telemetry nor raises into ``predict`` (failures are logged; alerts
beyond the queue are dropped and counted).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Optional

from ..health import Breach, LiveMetrics
from .aggregate import WindowAccumulator
from .histograms import PSI_MIN_ROWS, PSI_THRESHOLD

log = logging.getLogger("edge_runtime.telemetry")

AlertCallback = Callable[[Breach], Any]
#: Rules used when ``monitor(..., on_alert=cb)`` is given none (keys as a device profile's
#: ``probation`` table, plus ``max_psi`` and ``min_rows`` for drift).
DEFAULT_ALERT_RULES: dict[str, Any] = {
    "max_error_rate": 0.05, "max_p99_ms": None, "min_predictions": 100,
    "max_psi": PSI_THRESHOLD, "min_rows": PSI_MIN_ROWS, "drift_rows": 5 * PSI_MIN_ROWS}
QUEUE_MAX = 1000


class AlertDispatcher:
    """The thread that runs alert callbacks, so the drain thread never waits on them."""

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=QUEUE_MAX)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="edgert-alerts", daemon=True)
        self._thread.start()

    def put(self, callback: AlertCallback, breach: Breach) -> None:
        try:
            self._q.put_nowait((callback, breach))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            callback, breach = item
            try:
                callback(breach)
            except Exception:  # noqa: BLE001 - the app's callback must not stop alerting
                log.warning("on_alert callback failed for %s", breach.message, exc_info=True)
            finally:
                self._q.task_done()

    def join(self) -> None:
        """Wait until every queued callback has run (tests, shutdown)."""
        self._q.join()

    def stop(self) -> None:
        try:
            self._q.put(None, timeout=1)
        except queue.Full:  # a stuck callback: the daemon thread goes with the process
            return
        self._thread.join(timeout=5)


class LiveAlerts:
    """The firing state of one model version's live rules, and whom to tell."""

    def __init__(self, model: str, version: str, callback: AlertCallback,
                 rules: Optional[dict[str, Any]] = None, *,
                 reference: Optional[dict[str, Any]] = None):
        if not callable(callback):
            raise TypeError(f"on_alert must be callable, got {type(callback).__name__}")
        self.key = (model, version)
        self.callback = callback
        self.rules = {**DEFAULT_ALERT_RULES, **(rules or {})}
        if int(self.rules["drift_rows"]) < int(self.rules["min_rows"]):
            raise ValueError("alert rule drift_rows must be at least min_rows")
        self.active: set[tuple[str, Optional[str]]] = set()
        self._reference = reference
        self._drift: Optional[WindowAccumulator] = None
        self._new_drift_window()

    def _new_drift_window(self) -> None:
        """Drift is judged over tumbling windows of ``drift_rows`` rows (their own bins: the
        telemetry windows restart at every persist, too often for a quiet device)."""
        if self._reference:
            self._drift = WindowAccumulator(*self.key, 0.0, 0.0, self._reference)

    def add_inputs(self, x: Any) -> None:
        """Bin a block of validated inputs into the drift window (drain thread)."""
        if self._drift is not None:
            self._drift.add_inputs(x)

    def drift_window(self) -> Optional[dict[str, dict[str, Any]]]:
        """PSI per feature of the drift window; once it holds ``drift_rows`` rows, the
        verdict is taken and the next window starts empty."""
        if self._drift is None:
            return None
        drift = self._drift.drift(float(self.rules["max_psi"]), int(self.rules["min_rows"]))
        if max((d["rows"] for d in drift.values()), default=0) >= int(self.rules["drift_rows"]):
            self._new_drift_window()
        return drift

    def evaluate(self, metrics: LiveMetrics, drift: Optional[dict[str, dict[str, Any]]]
                 ) -> list[Breach]:
        """Update the state from one verdict; returns the breaches that fire now.

        ``drift`` is :meth:`drift_window` (PSI per feature, judged with this object's
        ``max_psi`` and ``min_rows``; None: the version has no reference)."""
        judged: set[tuple[str, Optional[str]]] = set()
        found: list[Breach] = []
        live = metrics.breach_list(self.rules)
        if live is not None:
            judged |= {("error_rate", None), ("latency", None)}
            found += live
        limit = float(self.rules["max_psi"])
        for name, d in (drift or {}).items():
            if d["psi"] is None or d["rows"] < int(self.rules["min_rows"]):
                continue
            judged.add(("drift", name))
            if d["drift"]:
                found.append(Breach(
                    "drift", metrics.model, metrics.version, d["psi"], limit,
                    f"{metrics.model}@{metrics.version}: drift in feature '{name}': PSI "
                    f"{d['psi']:.3f} > {limit:g} over {d['rows']} rows", feature=name))
        now = {(b.kind, b.feature) for b in found}
        fire = [b for b in found if (b.kind, b.feature) not in self.active]
        self.active = (self.active - judged) | now
        return fire
