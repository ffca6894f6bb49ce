"""float32 thresholds that decide float32 inputs exactly as a float64 threshold does."""

from __future__ import annotations

import numpy as np


def down32(thr: np.ndarray) -> np.ndarray:
    """Largest float32 ≤ each float64 threshold: float32 x ≤ t  ⇔  x ≤ down32(t). Rounding to
    the *nearest* float32 instead moves every float32 input between t and the rounded value to
    the other branch (the TFLite tree compiler and the LightGBM converter both rely on this)."""
    t32 = np.asarray(thr, np.float64).astype(np.float32)
    up = t32.astype(np.float64) > thr
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32
