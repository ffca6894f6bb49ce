"""The few statistics probation decides with (pure Python: they run on counters)."""

from __future__ import annotations

import math
from typing import Mapping

#: One-sided 99.5% normal quantile: an early verdict is wrong about once in 200 probations.
Z = 2.576


def wilson(k: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (sound at small n and near 0 or 1)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def total_variation(counts: Mapping[str, int], reference: Mapping[str, float]) -> float:
    """Half the L1 distance between the shares of ``counts`` and the ``reference`` shares, in
    [0, 1]: the largest difference in probability the two give any set of classes."""
    n = sum(counts.values())
    if n == 0:
        return 0.0
    labels = set(counts) | set(reference)
    return 0.5 * sum(abs(counts.get(c, 0) / n - reference.get(c, 0.0)) for c in labels)


def mcnemar_z(worse: int, better: int) -> float:
    """McNemar's statistic (continuity-corrected) for paired right/wrong outcomes: ``worse`` =
    calls the new version got wrong and the previous right, ``better`` the reverse. Above
    :data:`Z`, the new version is significantly less accurate on the same calls."""
    if worse + better == 0:
        return 0.0
    return (worse - better - 1) / math.sqrt(worse + better)
