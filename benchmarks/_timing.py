"""Shared timing helpers for the benchmark scripts: interleaved rounds, so machine noise hits
every contender alike, and medians rather than means."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any, Callable


def per_call_us(fn: Callable[[], Any], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number * 1e6


def compare(contenders: dict[str, Callable[[], Any]], *, rounds: int = 15, number: int = 2000,
            warmup: int = 200, rotate: bool = False,
            statistic: Callable[[list[float]], float] = statistics.median) -> dict[str, float]:
    """µs per call of each contender over ``rounds`` interleaved rounds, reduced by ``statistic``
    (the median by default; ``min``, the fastest round, where other processes' load must not
    decide a ratio: it only ever adds time). ``rotate``: each round runs the contenders in a new
    order (a seeded shuffle), so no contender always runs right after the same one (a
    multi-threaded engine's or BLAS's spinning threads slow whatever runs next on a small box;
    a plain rotation keeps the cyclic order, so one contender would always follow it)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        order = list(names)
        if rotate:
            random.Random(r).shuffle(order)
        for name in order:
            samples[name].append(per_call_us(contenders[name], number))
    return {k: statistic(v) for k, v in samples.items()}


def median_call_s(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of one call (after one warm-up call): for slow, batch-sized calls."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
