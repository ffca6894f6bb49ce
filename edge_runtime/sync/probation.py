"""Probation after an activation: the new version must serve N predictions (or T minutes)
under the profile's error-rate and p99-latency limits, else it is rolled back and marked bad.
The limits are judged by :meth:`LiveMetrics.breaches`, as telemetry's live metrics are."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ..health import LiveMetrics

DEFAULTS = {"predictions": 200, "minutes": 60.0, "max_error_rate": 0.05, "max_p99_ms": 1000.0}


@dataclass
class ProbationMonitor:
    """Fed with (latency, error) observations; :meth:`verdict` says pass / fail / pending."""

    predictions: int = 200
    minutes: float = 60.0
    max_error_rate: float = 0.05
    max_p99_ms: float = 1000.0
    started: float = field(default_factory=time.time)
    _latencies: list = field(default_factory=list)
    errors: int = 0
    count: int = 0

    @classmethod
    def from_profile(cls, probation: Optional[dict[str, Any]] = None, started: Optional[float] = None
                     ) -> ProbationMonitor:
        cfg = {**DEFAULTS, **(probation or {})}
        return cls(predictions=int(cfg["predictions"]), minutes=float(cfg["minutes"]),
                   max_error_rate=float(cfg["max_error_rate"]), max_p99_ms=float(cfg["max_p99_ms"]),
                   started=started if started is not None else time.time())

    def observe(self, latency_s: float, error: bool = False) -> None:
        self.count += 1
        self.errors += bool(error)
        if not error:
            self._latencies.append(latency_s)

    def _percentiles(self) -> tuple[Optional[float], Optional[float]]:
        """(p50, p99) in seconds from one sort (this runs on every call during probation)."""
        if not self._latencies:
            return None, None
        s = sorted(self._latencies)
        return s[len(s) // 2], s[min(len(s) - 1, int(0.99 * (len(s) - 1) + 0.5))]

    def metrics(self, model: str = "model", version: str = "new") -> LiveMetrics:
        """These observations as live metrics; a p99 only once 50 latencies (or all the
        predictions probation asks for) make it meaningful."""
        p50, p99 = self._percentiles()
        enough = len(self._latencies) >= min(50, self.predictions)
        return LiveMetrics(model, version, self.count, self.errors, self.errors / self.count if self.count else 0.0,
                           p50, p99 if enough else None)

    def verdict(self) -> tuple[str, str]:
        """("pass" | "fail" | "pending", reason)."""
        breaches = self.metrics().breaches({"max_error_rate": self.max_error_rate, "max_p99_ms": self.max_p99_ms,
                                            "min_predictions": min(20, self.predictions)})
        if breaches:
            return "fail", "; ".join(b.split(": ", 1)[1] for b in breaches)
        if self.count >= self.predictions:
            return "pass", f"{self.count} predictions within limits"
        if time.time() - self.started >= self.minutes * 60 and self.count > 0:
            return "pass", f"{self.minutes:g} minutes within limits"
        return "pending", f"{self.count}/{self.predictions} predictions"
