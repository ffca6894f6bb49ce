"""Live health of one model version (error rate and latency over recent calls) and the one
place its limits are judged: telemetry reports it, probation decides with it. No numpy, so
the sync agent and the core can use it anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class LiveMetrics:
    """Error rate and latency over the last ``n`` calls of one model version."""

    model: str
    version: str
    n: int
    errors: int
    error_rate: float
    p50_s: Optional[float]
    p99_s: Optional[float]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def breaches(self, rules: dict[str, Any]) -> Optional[list[str]]:
        """Judge these metrics with probation rules (e.g. a device profile's ``probation``
        table): ``max_error_rate``, ``max_p99_ms``, ``min_predictions``. Other keys are left
        to their owner. Returns None while fewer than ``min_predictions`` calls were seen
        (no verdict yet), else one line per breach (empty: healthy)."""
        found = self.breach_list(rules)
        return None if found is None else [b.message for b in found]

    def breach_list(self, rules: dict[str, Any]) -> Optional[list[Breach]]:
        """The same verdict as :meth:`breaches`, structured (alert callbacks get the figure)."""
        if self.n < int(rules.get("min_predictions", 1)):
            return None
        out = []
        limit = rules.get("max_error_rate")
        if limit is not None and self.error_rate > float(limit):
            out.append(Breach(
                "error_rate", self.model, self.version, self.error_rate, float(limit),
                f"{self.model}@{self.version}: error rate {self.error_rate:.2%} > "
                f"{float(limit):.2%} over the last {self.n} calls"))
        limit = rules.get("max_p99_ms")
        if limit is not None and self.p99_s is not None and self.p99_s * 1000 > float(limit):
            out.append(Breach(
                "latency", self.model, self.version, self.p99_s * 1000, float(limit),
                f"{self.model}@{self.version}: p99 latency {self.p99_s * 1000:.3g} ms > "
                f"{float(limit):g} ms over the last {self.n} calls"))
        return out


@dataclass(frozen=True)
class Breach:
    """One breach of a rule, structured (alerts label it, callbacks get the figure) and as
    one line. ``kind``: ``error_rate``, ``latency`` (ms), ``drift`` (PSI, with ``feature``);
    the collector adds ``accuracy`` and ``dropped``. ``value`` is the measured figure and
    ``limit`` the threshold it crossed."""

    kind: str
    model: str
    version: str
    value: float
    limit: float
    message: str
    feature: Optional[str] = None
