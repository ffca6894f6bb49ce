"""Rows to time engines with, and the one percentile of timing samples.

Routing (``auto``'s first-load measurement, ``--tune``) and ``edgert bench`` time engines on the
same rows: drawn from the manifest's training-data histograms when it has them, because a few
golden rows tiled would replay the same tree paths, which the CPU's branch predictor and caches
learn, so tree ensembles would look several times faster than on real data and the router would
pick wrongly. numpy is imported inside the functions: this module must import without it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from .bundle import Artifact, Bundle


def upper_rank(n: int, q: float) -> int:
    """Index of the sorted sample at or just above the ``q``-th percentile (q in 0..100) of
    ``n`` samples: the upper of the two ranks :func:`percentile` interpolates between, for
    estimators that must never report below the exact figure (binned histograms)."""
    return min(n - 1, max(0, math.ceil((n - 1) * q / 100.0)))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted sequence (q in 0..100; NaN when
    empty). The same definition as numpy's default, without numpy."""
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), upper_rank(len(sorted_values), q)
    if lo == hi:
        return float(sorted_values[lo])
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo))


def sample_reference(feats: Sequence[dict[str, Any]], n: int, seed: int = 0) -> Any:
    """``n`` rows (float64), each feature independently: a bin by its training count, then
    uniform inside the bin. Seeded: the same rows every time.

    Raises:
        ValueError, KeyError, TypeError: the statistics are malformed.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, len(feats)), dtype=np.float64)
    for j, f in enumerate(feats):
        lo, hi = float(f["min"]), float(f["max"])
        bounds = np.concatenate([[lo], np.asarray(f.get("edges") or [], dtype=np.float64), [hi]])
        counts = np.asarray(f.get("counts") or [1], dtype=np.float64)
        if len(counts) != len(bounds) - 1 or counts.sum() <= 0 or not np.all(np.isfinite(bounds)):
            raise ValueError("inconsistent reference statistics")
        b = rng.choice(len(counts), size=n, p=counts / counts.sum())
        out[:, j] = bounds[b] + rng.random(n) * (bounds[b + 1] - bounds[b])
    return out


def golden_rows(bundle: Bundle) -> Any:
    """The manifest's golden input rows as a float32 array (``None`` → NaN), an object array
    when some features are categories or text; 0 rows if none."""
    import numpy as np

    golden = (bundle.manifest.golden or {}).get("inputs") or []
    typed = any(isinstance(v, str) for r in golden for v in r)
    rows = np.array([[np.nan if v is None else v for v in r] for r in golden],
                    dtype=object if typed else np.float32)
    return rows.reshape(len(golden), len(bundle.manifest.features)) if rows.size == 0 else rows


def reference_rows(bundle: Bundle, n: int) -> Any:
    """``n`` rows drawn from the training histograms, or None when the manifest has none (or
    malformed ones)."""
    feats = (bundle.manifest.reference or {}).get("features") or []
    if n <= 0 or not feats or len(feats) != len(bundle.manifest.features):
        return None
    try:
        return sample_reference(feats, n)
    except (KeyError, TypeError, ValueError):
        return None


#: at most this many distinct rows are drawn, then tiled: drawing costs ~2 µs a row on a slow
#: host (10k rows took 18 ms of the first load's 200 ms), and a tree ensemble's paths over 2,048
#: distinct rows are far more than a branch predictor or a cache holds
DISTINCT_ROWS = 2048


def timing_rows(bundle: Bundle, n: int, dtype: str, artifact: Optional[Artifact] = None) -> Any:
    """``n`` C-contiguous rows of ``dtype`` to time engines with: from the training histograms
    (:data:`DISTINCT_ROWS` at most, tiled), else the golden rows tiled, else zeros. An
    ``artifact`` with named (string) inputs gets its golden rows tiled, fed as the runtime feeds
    them."""
    import numpy as np

    if artifact is not None and artifact.inputs:
        from .inputs.arrays import FeedAdapter

        golden = (bundle.manifest.golden or {}).get("inputs") or []
        return FeedAdapter(bundle.manifest.features, artifact.inputs)(
            [golden[i % len(golden)] for i in range(n)])

    base = reference_rows(bundle, min(n, DISTINCT_ROWS))
    if base is None:
        base = golden_rows(bundle)
    if base.size == 0:
        base = np.zeros((1, len(bundle.manifest.features)), dtype=np.float32)
    if base.shape[0] >= n:
        return np.ascontiguousarray(base[:n], dtype=dtype)
    return np.ascontiguousarray(np.tile(base, (-(-n // base.shape[0]), 1))[:n], dtype=dtype)
