"""Input validation without numpy, for devices that have none (Pyodide's core, tiny Pythons).

Same contract as :class:`edge_runtime.inputs.InputAdapter`: rows, one row, a dict or a list of
dicts keyed by feature name in; one :class:`InputError` naming the field and row out. What
comes out is a :class:`Rows` matrix: a flat ``array.array`` of the artifact's dtype (so float32
rounding happens here, as it does on the numpy path) plus its shape, which a backend can hand
to a JS typed array in one piece.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Mapping, Sequence

from .bundle import Feature
from .errors import InputError

_TYPECODES = {"float32": "f", "float64": "d"}



def record_values(rec: Mapping[str, Any], row: int, names: Sequence[str], index: Mapping[str, int],
                  hint: Any) -> list[Any]:
    """A record's values in feature order; unknown or missing names are an InputError naming them.
    Shared by the numpy and the pure-Python adapters so both say the same thing."""
    unknown = [k for k in rec if k not in index]
    if unknown:
        raise InputError(f"row {row}: unknown feature name(s) {unknown[:5]}; expected {hint()}")
    missing = [n for n in names if n not in rec]
    if missing:
        raise InputError(f"row {row}: missing feature(s) {missing[:5]}")
    return [rec[n] for n in names]

class Rows:
    """A 2-D float matrix without numpy: ``data`` (flat, row-major ``array.array``) and ``shape``."""

    __slots__ = ("data", "shape")

    def __init__(self, data: array, shape: tuple[int, int]):
        self.data = data
        self.shape = shape

    @property
    def dtype(self) -> str:
        return "float32" if self.data.typecode == "f" else "float64"

    def __len__(self) -> int:
        return self.shape[0]

    def tolist(self) -> list[list[float]]:
        n, d = self.shape
        flat = self.data.tolist()
        return [flat[i * d:(i + 1) * d] for i in range(n)]

    def __repr__(self) -> str:
        return f"Rows(shape={self.shape}, dtype={self.dtype})"


class ListInputAdapter:
    """Validates and converts inputs for one model's feature schema, in pure Python."""

    def __init__(self, features: Sequence[Feature], dtype: str = "float32"):
        if dtype not in _TYPECODES:
            raise InputError(f"input dtype {dtype!r} is not supported without numpy "
                             f"(supported: {', '.join(_TYPECODES)})")
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.width = len(self.features)
        self.dtype = dtype
        self._typecode = _TYPECODES[dtype]
        self._nan_forbidden = any(not f.allow_nan for f in self.features)
        self._ranges = [(c, float(f.range[0]), float(f.range[1]))
                        for c, f in enumerate(self.features) if f.range is not None]

    def __call__(self, X: Any) -> Rows:
        rows = self._rows(X)
        if not rows:
            raise InputError("no rows to predict (got an empty input)")
        code, width = self._typecode, self.width
        flat = array(code)
        for r, row in enumerate(rows):
            if len(row) != width:
                self._check_flat(row, r)
                raise InputError(f"{'row ' + str(r) + ': ' if len(rows) > 1 else ''}wrong number of "
                                 f"features: expected {width} ({self._names_hint()}), got {len(row)}")
            try:
                part = array(code, row)  # C loop for ints/floats; rounds to float32 like numpy
            except TypeError:  # None, numeric strings from a form, or junk: value by value
                self._check_flat(row, r)
                part = array(code, [self._number(v, self.names[c], r) for c, v in enumerate(row)])
            flat.extend(part)
        # Checked after the cast, as on the numpy path (a float32 range edge rounds the same way).
        # sum/min/max run in C; the value-by-value scan runs only to name the culprit.
        if self._nan_forbidden:
            total = sum(flat)
            if total != total:
                self._raise_nan(flat)
        for c, lo, hi in self._ranges:
            col = flat[c::width]
            low, high = min(col), max(col)
            if not (lo <= low and high <= hi):  # also when NaN got in the way of min/max
                self._raise_range(flat)
        return Rows(flat, (len(rows), width))

    def _check_flat(self, row: Sequence[Any], r: int) -> None:
        if any(isinstance(v, (list, tuple, Mapping)) for v in row):
            raise InputError(f"row {r}: input must be 2-D (rows × {self.width} features); got a "
                             "nested sequence")

    def _raise_nan(self, flat: array) -> None:
        for i, value in enumerate(flat):
            r, c = divmod(i, self.width)
            if value != value and not self.features[c].allow_nan:
                raise InputError(f"row {r}, feature '{self.names[c]}': NaN/missing value, and this "
                                 "model has no imputer for it")

    def _raise_range(self, flat: array) -> None:
        for i, value in enumerate(flat):
            r, c = divmod(i, self.width)
            rng = self.features[c].range
            if rng is not None and value == value and not (rng[0] <= value <= rng[1]):
                raise InputError(f"row {r}, feature '{self.names[c]}': {value} is outside the allowed "
                                 f"range [{rng[0]}, {rng[1]}]")

    def _rows(self, X: Any) -> Sequence[Sequence[Any]]:
        if isinstance(X, Rows):
            return X.tolist()
        if isinstance(X, Mapping):
            return self._from_records([X])
        if isinstance(X, (str, bytes)) or not isinstance(X, (list, tuple)):
            if hasattr(X, "tolist") and not isinstance(X, (str, bytes)):  # array-likes
                return self._rows(X.tolist())
            raise InputError(f"unsupported input type {type(X).__name__}: pass a list of rows, a "
                             "row, a dict or a list of dicts keyed by feature name")
        if not X:
            return []
        if all(isinstance(r, Mapping) for r in X):
            return self._from_records(X)
        if all(isinstance(r, (list, tuple)) for r in X):
            return X  # nested sequences inside rows are caught where values are converted
        if any(isinstance(r, (list, tuple, Mapping)) for r in X):
            raise InputError("mix of rows and scalars: pass a list of rows or one row")
        return [X]  # one flat row

    def _number(self, value: Any, name: str, row: int) -> float:
        if value is None:
            return math.nan
        if isinstance(value, float):
            return value
        try:
            return float(value)  # ints, bools and numeric strings such as "3.5" from a form
        except (TypeError, ValueError):
            raise InputError(f"row {row}, feature '{name}': {value!r} is not a number") from None

    def _from_records(self, records: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        out = []
        for r, rec in enumerate(records):
            out.append(record_values(rec, r, self.names, self.index, self._names_hint))
        return out

    def _names_hint(self) -> str:
        shown = ", ".join(self.names[:6])
        return f"{shown}{', …' if self.width > 6 else ''}"
