"""Fixed, mergeable histograms: latency buckets, output buckets, PSI against reference bins.

Everything here is plain data that sums exactly: two windows merge by adding their counts,
so a window split over several outbox segments (or merged under the size cap) reports the
same figures as one window would have.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

import numpy as np

#: Latency bucket upper edges in seconds: 10 per decade from 1 µs to 100 s (log-spaced,
#: fixed, so histograms from every device and version add up). Bucket i holds
#: ``LATENCY_EDGES[i-1] <= t < LATENCY_EDGES[i]``; bucket 0 is below 1 µs, the last above 100 s.
LATENCY_EDGES: np.ndarray = 10.0 ** (np.arange(-60, 21) / 10.0)
N_LATENCY_BUCKETS = LATENCY_EDGES.size + 1

#: Default PSI above which a feature counts as drifted (the usual "significant shift" level).
PSI_THRESHOLD = 0.2
#: Fewer observed rows than this never raise a drift flag (PSI is noise on tiny samples).
PSI_MIN_ROWS = 200
_PSI_EPS = 1e-4


def latency_bucket_counts(latencies: np.ndarray) -> np.ndarray:
    """Counts per latency bucket for an array of seconds."""
    idx = np.searchsorted(LATENCY_EDGES, latencies, side="right")
    return np.bincount(idx, minlength=N_LATENCY_BUCKETS)


def quantile_from_buckets(counts: Sequence[int], q: float) -> Optional[float]:
    """Quantile ``q`` (0..1) of a latency histogram, as the geometric middle of its bucket.

    Resolution is one bucket (a factor of 10**0.1 ≈ 1.26); good enough for p50/p90/p99 alerts.
    """
    c = np.asarray(counts, dtype=np.int64)
    total = int(c.sum())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    i = int(np.searchsorted(np.cumsum(c), rank, side="left"))
    lo = LATENCY_EDGES[i - 1] if i > 0 else LATENCY_EDGES[0] / 10 ** 0.1
    hi = LATENCY_EDGES[i] if i < LATENCY_EDGES.size else LATENCY_EDGES[-1] * 10 ** 0.1
    return float(math.sqrt(lo * hi))


def output_bucket_keys(values: np.ndarray) -> list[str]:
    """Keys of a sign-and-power-of-two histogram for regression outputs (fixed and mergeable).

    A value v > 0 goes to ``"+e"`` with e = frexp exponent (so 2**(e-1) <= v < 2**e), v < 0 to
    ``"-e"``, zero to ``"0"`` and NaN to ``"nan"``.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    _, exp = np.frexp(v)
    keys = []
    for value, e in zip(v.tolist(), exp.tolist()):
        if value != value:
            keys.append("nan")
        elif value == 0:
            keys.append("0")
        else:
            keys.append(("+" if value > 0 else "-") + str(int(e)))
    return keys


def psi(reference: Sequence[float], observed: Sequence[float]) -> Optional[float]:
    """Population stability index between two count vectors over the same bins.

    ``sum((o - r) * ln(o / r))`` over bin proportions, with empty bins floored at 1e-4 so a
    bin that empties or appears gives a large finite value instead of infinity.
    """
    r = np.asarray(reference, dtype=np.float64)
    o = np.asarray(observed, dtype=np.float64)
    if r.shape != o.shape:
        raise ValueError(f"PSI needs the same bins on both sides ({r.size} vs {o.size})")
    if r.sum() <= 0 or o.sum() <= 0:
        return None
    rp = np.maximum(r / r.sum(), _PSI_EPS)
    op = np.maximum(o / o.sum(), _PSI_EPS)
    return float(np.sum((op - rp) * np.log(op / rp)))


def feature_drift(ref_feature: dict[str, Any], counts: Iterable[int], missing: int, *,
                  threshold: float = PSI_THRESHOLD, min_rows: int = PSI_MIN_ROWS
                  ) -> dict[str, Any]:
    """PSI of one feature's observed bins (plus missing as its own bin) against the reference."""
    ref = list(ref_feature.get("counts") or []) + [int(ref_feature.get("missing") or 0)]
    obs = list(counts) + [int(missing)]
    value = psi(ref, obs) if len(ref) == len(obs) else None
    rows = int(sum(obs))
    drift = bool(value is not None and rows >= min_rows and value > threshold)
    return {"psi": value, "rows": rows, "drift": drift}
