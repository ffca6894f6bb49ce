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

    def __call__(self, X: Any) -> Rows:
        rows = self._rows(X)
        if not rows:
            raise InputError("no rows to predict (got an empty input)")
        flat = array(self._typecode)
        for r, row in enumerate(rows):
            if len(row) != self.width:
                raise InputError(f"{'row ' + str(r) + ': ' if len(rows) > 1 else ''}wrong number of "
                                 f"features: expected {self.width} ({self._names_hint()}), got {len(row)}")
            flat.extend(self._number(v, self.names[c], r) for c, v in enumerate(row))
        # Checked after the cast, as on the numpy path (a float32 range edge rounds the same way).
        for i, value in enumerate(flat):
            r, c = divmod(i, self.width)
            f = self.features[c]
            if value != value:
                if not f.allow_nan:
                    raise InputError(f"row {r}, feature '{f.name}': NaN/missing value, and this "
                                     "model has no imputer for it")
            elif f.range is not None and not (f.range[0] <= value <= f.range[1]):
                raise InputError(f"row {r}, feature '{f.name}': {value} is outside the allowed "
                                 f"range [{f.range[0]}, {f.range[1]}]")
        return Rows(flat, (len(rows), self.width))

    def _rows(self, X: Any) -> list[Sequence[Any]]:
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
            for r, row in enumerate(X):
                for value in row:
                    if isinstance(value, (list, tuple, Mapping)):
                        raise InputError(f"row {r}: input must be 2-D (rows × {self.width} "
                                         "features); got a nested sequence")
            return list(X)
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
            unknown = [k for k in rec if k not in self.index]
            if unknown:
                raise InputError(f"row {r}: unknown feature name(s) {unknown[:5]}; expected "
                                 f"{self._names_hint()}")
            missing = [n for n in self.names if n not in rec]
            if missing:
                raise InputError(f"row {r}: missing feature(s) {missing[:5]}")
            out.append([rec[n] for n in self.names])
        return out

    def _names_hint(self) -> str:
        shown = ", ".join(self.names[:6])
        return f"{shown}{', …' if self.width > 6 else ''}"
