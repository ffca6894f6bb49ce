"""Row reductions of tall, narrow matrices (many rows, a few columns: class scores).

numpy reduces a short inner axis one row at a time (~30 ns per row, 0.3 ms for 10k rows of 3
scores); a loop over the few columns does the same work in whole-column operations (~10 µs).
Callers use these only when :func:`narrow` says the shape fits; results are the same values
(maximum is exact in any order; sums of a few terms may round differently by an ulp).
"""

from __future__ import annotations

import numpy as np

#: at most this many columns take the column loop
MAX_COLUMNS = 8
#: below this many rows the per-call overhead of the loop is not worth it
MIN_ROWS = 32


def narrow(x: np.ndarray, axis: int) -> bool:
    """True when reducing ``x`` along ``axis`` is a row reduction the column loop does better."""
    return x.ndim == 2 and axis in (1, -1) and 1 <= x.shape[1] <= MAX_COLUMNS and \
        x.shape[0] >= MIN_ROWS and x.dtype.kind == "f"


def row_max(x: np.ndarray) -> np.ndarray:
    out = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        np.maximum(out, x[:, j], out=out)  # NaN propagates, as in x.max(axis=1)
    return out


def row_sum(x: np.ndarray) -> np.ndarray:
    out = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        out += x[:, j]
    return out


def row_argmax(x: np.ndarray) -> np.ndarray:
    """The first column holding each row's maximum; a row with NaN gives its first NaN's column
    (np.argmax's rule)."""
    best = np.zeros(x.shape[0], dtype=np.intp)
    top = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        col = x[:, j]
        # best = j where the column beats the running top: arithmetic beats a masked store
        best += (col > top).view(np.int8) * (j - best)
        np.maximum(top, col, out=top)
    nan = np.isnan(top)
    if nan.any():
        best[nan] = np.argmax(x[nan], axis=1)
    return best
