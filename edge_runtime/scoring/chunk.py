"""Scoring one chunk: the whole chunk in one model call; only when that fails, row by row to
find the bad rows, which then fail the run (with the file's row number) or are set aside."""

from __future__ import annotations

import math
from typing import Any

from ..errors import InputError
from .records import Chunk, Reject, Scored


def score_chunk(model: Any, chunk: Chunk, *, proba: bool = False, on_error: str = "fail",
                strict: bool = False) -> Scored:
    """Predict a chunk. The whole chunk goes to the model in one call; only when that fails is it
    split row by row to find the bad rows, which then fail the run or are set aside. ``strict``
    also refuses values outside the training min/max (``Model.predict(strict=True)``).

    Raises:
        InputError: ``on_error="fail"`` and a row is bad: the model's message, with the file's
            row number (data records counted from 1) in place of the batch's.
    """
    rejects = list(chunk.rejects)
    rows, ids = chunk.rows, chunk.ids
    n = len(rows)
    kw = {"strict": True} if strict else {}  # any predictor works; strict only where asked
    whole = not rejects  # when the reader set rows aside, look for the model's bad rows too
    if whole:
        try:
            values = model.predict(rows, **kw)
            probs = model.predict_proba(rows, **kw) if proba else None
        except InputError:
            whole = False
    if not whole:
        keep: list[int] = []
        for i in range(n):
            try:
                model.predict(rows[i:i + 1], **kw)
            except InputError as exc:
                rejects.append(Reject(chunk.number(i), exc.reason, _raw(rows[i]),
                                      ids[i] if ids is not None else None))
            else:
                keep.append(i)
        rejects.sort(key=lambda r: r.row)
        if rejects and on_error == "fail":
            raise InputError.at(rejects[0].row - 1, rejects[0].reason) from None  # Reject.row counts from 1
        if not keep:
            return Scored(_empty(), None, [] if ids is not None else None, rejects, n + len(chunk.rejects))
        rows = _take(rows, keep)
        ids = [ids[i] for i in keep] if ids is not None else None
        values = model.predict(rows, **kw)
        probs = model.predict_proba(rows, **kw) if proba else None
    return Scored(values, probs, ids, rejects, n + len(chunk.rejects))


def _empty() -> Any:
    import numpy as np

    return np.empty(0)


def _take(rows: Any, keep: list[int]) -> Any:
    if hasattr(rows, "shape"):
        return rows[keep]
    return [rows[i] for i in keep]


def _raw(row: Any) -> Any:
    if hasattr(row, "tolist"):
        return [None if isinstance(v, float) and math.isnan(v) else v for v in row.tolist()]
    return row
