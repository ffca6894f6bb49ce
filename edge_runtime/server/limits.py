"""How many rows one request may carry: the row limit is derived from the body limit and the
served model's features, so that every request the OpenAPI document allows also fits in
``--max-body`` whatever its values (a limit nobody can reach, or one the body limit silently
overrides, is a promise the server breaks)."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Optional

from ..inputs.schema import FLOAT_MAX
from ..manifest_checks import MAX_CATEGORY_CHARS, MAX_TEXT_CHARS

#: the longest JSON text of a finite float (``repr``), e.g. ``-2.2250738585072014e-308``
_FLOAT_TEXT = 24
#: ``{"rows": [`` ... ``]}`` around the rows
_ENVELOPE = len('{"rows": []}')
#: ``", "`` between items, as ``json.dumps`` writes it (clients and schemathesis do)
_SEP = 2


def feature_bounds(feature: Any, dtype: str = "float32", *, strict: bool = False) -> tuple[float, float]:
    """The values the input schema accepts for ``feature``: the float type's range, narrowed to
    the allowed range and, with ``strict``, to the training range."""
    limit = FLOAT_MAX.get(dtype, FLOAT_MAX["float64"])
    lo, hi = -limit, limit
    for bounds in (feature.range, (feature.train_min, feature.train_max) if strict else None):
        if bounds is not None and None not in bounds:
            lo, hi = max(lo, float(bounds[0])), min(hi, float(bounds[1]))
    return lo, hi


def _value_text(lo: float, hi: float, allow_nan: bool) -> int:
    """The longest JSON text of one value in [lo, hi]: a float, an integer (JSON numbers include
    integers, whose digits a float's repr does not bound), true/false or null."""
    ints = [len(str(math.ceil(lo))), len(str(math.floor(hi)))] if math.ceil(lo) <= math.floor(hi) else []
    return max([_FLOAT_TEXT, len("false"), len("null") if allow_nan else 0, *ints])


def _string_text(feature: Any) -> int:
    """The longest JSON text of a category or a text value: one of the categories when unknown
    ones are refused, else the input schema's length bound, every character escaped."""
    if feature.kind == "categorical" and feature.unknown == "error" and feature.categories:
        return max(len(json.dumps(c)) for c in feature.categories)
    limit = MAX_CATEGORY_CHARS if feature.kind == "categorical" else MAX_TEXT_CHARS
    return 2 + len("\\u0000") * limit


def worst_row_bytes(features: Iterable[Any], dtype: str = "float32", *, strict: bool = False) -> int:
    """Bytes of the longest row the schema allows, in either form (array in feature order or
    object keyed by name), plus the separator after it."""
    feats = list(features)
    values = [_string_text(f) if f.kind != "numeric" else
              _value_text(*feature_bounds(f, dtype, strict=strict), f.allow_nan) for f in feats]
    seps = _SEP * max(len(feats) - 1, 0)
    as_array = 2 + sum(values) + seps
    as_object = 2 + sum(len(json.dumps(f.name)) + len(": ") + v for f, v in zip(feats, values)) + seps
    return max(as_array, as_object) + _SEP


def rows_within(max_body: int, features: Iterable[Any], dtype: str = "float32", *,
                strict: bool = False) -> int:
    """The most rows that always fit in ``max_body`` bytes, whatever their values (at least 1:
    a body limit too small for one worst-case row still lets typical rows through)."""
    return max(1, (max_body - _ENVELOPE + _SEP) // worst_row_bytes(features, dtype, strict=strict))


def row_limit(max_rows: Optional[int], max_body: int, features: Iterable[Any], dtype: str = "float32",
              *, strict: bool = False) -> int:
    """``max_rows`` when given (the operator's choice: requests past the body limit still get
    413), else the rows that always fit in ``max_body``."""
    return max_rows if max_rows is not None else rows_within(max_body, features, dtype, strict=strict)
