"""Row reductions of tall, narrow matrices (many rows, a few columns: class scores).

numpy reduces a short inner axis one row at a time (~30 ns per row, 0.3 ms for 10k rows of 3
scores); a loop over the few columns does the same work in whole-column operations (~10 µs).
Callers use these only when :func:`narrow` says the shape fits; results are the same values
(maximum is exact in any order; sums of a few terms may round differently by an ulp).
"""

from __future__ import annotations

import numpy as np

from ..switches import COLUMN_LOOP_MAX_COLUMNS, COLUMN_LOOP_MIN_ROWS


def narrow(x: np.ndarray, axis: int) -> bool:
    """True when reducing ``x`` along ``axis`` is a row reduction the column loop does better."""
    return x.ndim == 2 and axis in (1, -1) and 1 <= x.shape[1] <= COLUMN_LOOP_MAX_COLUMNS and \
        x.shape[0] >= COLUMN_LOOP_MIN_ROWS and x.dtype.kind == "f"


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


def row_arg(x: np.ndarray, largest: bool) -> np.ndarray:
    """The first column holding each row's maximum (``largest``) or minimum; a row with NaN
    gives its first NaN's column (np.argmax's and np.argmin's rule)."""
    beats, keep, whole = (np.greater, np.maximum, np.argmax) if largest else \
        (np.less, np.minimum, np.argmin)
    best = np.zeros(x.shape[0], dtype=np.intp)
    top = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        col = x[:, j]
        # best = j where the column beats the running top: arithmetic beats a masked store
        best += beats(col, top).view(np.int8) * (j - best)
        keep(top, col, out=top)  # NaN propagates: such rows are redone below
    nan = np.isnan(top)
    if nan.any():
        best[nan] = whole(x[nan], axis=1)
    return best
