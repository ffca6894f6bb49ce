"""Percentiles and time-boxed sampling loops."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from ..sampling import percentile

__all__ = ["percentile", "summarize", "sample_latency", "throughput"]


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds, and the sample count."""
    s = sorted(samples_s)
    return {"n": len(s), "p50_ms": percentile(s, 50) * 1e3, "p90_ms": percentile(s, 90) * 1e3,
            "p99_ms": percentile(s, 99) * 1e3, "max_ms": s[-1] * 1e3 if s else math.nan,
            "mean_ms": (sum(s) / len(s)) * 1e3 if s else math.nan}


def sample_latency(fn: Callable[[], Any], *, seconds: float, warmup: int = 50,
                   min_samples: int = 200, max_samples: int = 200_000) -> list[float]:
    """Time single calls until ``seconds`` have passed (after warm-up); at least ``min_samples``
    so p99 rests on enough points, at most ``max_samples``."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    clock = time.perf_counter
    deadline = clock() + seconds
    while len(out) < max_samples and (len(out) < min_samples or clock() < deadline):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def throughput(fn: Callable[[], Any], rows: int, *, seconds: float) -> dict[str, float]:
    """Rows per second of repeated calls on a ``rows``-row batch, time-boxed."""
    fn()
    calls = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while calls < 3 or time.perf_counter() < deadline:
        fn()
        calls += 1
    elapsed = time.perf_counter() - t0
    return {"batch": rows, "calls": calls, "ms_per_call": elapsed / calls * 1e3,
            "rows_per_s": rows * calls / elapsed}
