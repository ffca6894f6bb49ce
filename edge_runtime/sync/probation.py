"""Probation of a freshly activated version: fed (latency, error) observations."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

DEFAULTS = {"predictions": 100, "minutes": 10.0, "max_error_rate": 0.05, "max_p99_ms": 0.0}


@dataclass
class ProbationThresholds:
    predictions: int = 100
    minutes: float = 10.0
    max_error_rate: float = 0.05
    max_p99_ms: float = 0.0  # 0 = no latency limit

    @classmethod
    def from_profile(cls, table: Optional[Mapping[str, Any]]) -> ProbationThresholds:
        d = dict(DEFAULTS)
        for k, v in (table or {}).items():
            if k not in d:
                raise ValueError(f"probation: unknown key '{k}' (known: {', '.join(d)})")
            d[k] = type(DEFAULTS[k])(v)
        return cls(**d)


class ProbationMonitor:
    """Decides pass/fail from observations; ``verdict()`` is None while undecided."""

    def __init__(self, thresholds: ProbationThresholds, clock: Any = time.monotonic):
        self.t = thresholds
        self._clock = clock
        self._start = clock()
        self._lat: list[float] = []
        self._errors = 0
        self._lock = threading.Lock()
        self.failure: Optional[str] = None

    def observe(self, latency_ms: float, error: bool = False) -> None:
        with self._lock:
            self._lat.append(float(latency_ms))
            self._errors += bool(error)

    def fail(self, reason: str) -> None:
        self.failure = reason

    def verdict(self) -> Optional[str]:
        """'pass', 'fail: <why>', or None (keep watching)."""
        with self._lock:
            if self.failure:
                return f"fail: {self.failure}"
            n = len(self._lat)
            enough = n >= self.t.predictions
            elapsed = (self._clock() - self._start) / 60.0 >= self.t.minutes
            if n:
                rate = self._errors / n
                if rate > self.t.max_error_rate and (enough or self._errors > self.t.predictions
                                                     * self.t.max_error_rate):
                    return f"fail: error rate {rate:.1%} > {self.t.max_error_rate:.1%}"
            if not (enough or elapsed):
                return None
            if n and self.t.max_p99_ms > 0:
                lat = sorted(self._lat)
                p99 = lat[min(n - 1, int(0.99 * n))]
                if p99 > self.t.max_p99_ms:
                    return f"fail: p99 latency {p99:.2f} ms > {self.t.max_p99_ms} ms"
            return "pass"
