"""Turn what a caller passes (arrays, rows, records, data frames) into the 2-D array a backend
takes, or one :class:`InputError` that names the offending field and row.

The common case (a C-contiguous array of the right dtype and width) is a few attribute checks
and one dot product for the NaN test, so a single-row predict stays close to the raw engine.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .bundle import Feature
from .errors import InputError
from .inputs_pure import record_values


class InputAdapter:
    """Validates and converts inputs for one model's feature schema."""

    def __init__(self, features: Sequence[Feature], dtype: str = "float32"):
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.width = len(self.features)
        self.dtype = np.dtype(dtype)
        self._nan_forbidden = np.array([not f.allow_nan for f in self.features])
        self._check_nan = bool(self._nan_forbidden.any())
        ranged = [(i, f.range) for i, f in enumerate(self.features) if f.range is not None]
        self._ranged_idx = np.array([i for i, _ in ranged], dtype=np.intp)
        self._lo = np.array([r[0] for _, r in ranged], dtype=np.float64)
        self._hi = np.array([r[1] for _, r in ranged], dtype=np.float64)

    def __call__(self, X: Any) -> np.ndarray:
        if type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2 \
                and X.shape[1] == self.width and X.flags.c_contiguous:
            arr = X
        else:
            arr = self._coerce(X)
        if arr.shape[0] == 0:
            raise InputError("no rows to predict (got an empty input)")
        if self._check_nan:
            flat = arr.reshape(-1)
            if math.isnan(flat.dot(flat)):  # NaN in x <=> NaN in x.x (squares are never -inf)
                self._raise_nan(arr)
        if self._ranged_idx.size:
            self._check_ranges(arr)
        return arr

    # --- slow paths -------------------------------------------------------------------------
    def _coerce(self, X: Any) -> np.ndarray:
        if isinstance(X, Mapping):
            return self._from_records([X])
        module = type(X).__module__
        if module.startswith("pandas"):
            return self._from_frame(X)
        if isinstance(X, np.ndarray):
            arr = X
            if arr.dtype.names:
                raise InputError("structured arrays are not supported; pass a 2-D array or records")
        elif isinstance(X, (list, tuple)):
            if X and all(isinstance(r, Mapping) for r in X):
                return self._from_records(X)
            arr = self._to_array(X)
        else:
            raise InputError(f"unsupported input type {type(X).__name__}: pass a 2-D array, a list "
                             "of rows, a dict or a list of dicts keyed by feature name")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise InputError(f"input must be 2-D (rows × {self.width} features); got shape {arr.shape}")
        if arr.shape[1] != self.width:
            raise InputError(f"wrong number of features: expected {self.width} ({self._names_hint()}), "
                             f"got {arr.shape[1]}")
        if arr.dtype.kind not in "fiub":
            arr = self._to_array(arr.tolist())
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _to_array(self, rows: Any) -> np.ndarray:
        try:
            return np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            pass
        try:
            rows = [list(r) if isinstance(r, (list, tuple, np.ndarray)) else r for r in rows]
        except TypeError:
            raise InputError("input is not a sequence of rows") from None
        if rows and not isinstance(rows[0], list):
            rows = [rows]
        for r, row in enumerate(rows):
            if len(row) != self.width:
                raise InputError(f"row {r}: wrong number of features: expected {self.width}, got {len(row)}")
            for c, value in enumerate(row):
                self._number(value, self.names[c], r)
        raise InputError("input could not be converted to numbers")  # pragma: no cover

    def _number(self, value: Any, name: str, row: int) -> float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            try:
                return float(value)  # numeric strings such as "3.5" from CSV are fine
            except (TypeError, ValueError):
                raise InputError(f"row {row}, feature '{name}': {value!r} is not a number") from None
        return float(value)

    def _from_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.empty((len(records), self.width), dtype=np.float64)
        for r, rec in enumerate(records):
            values = record_values(rec, r, self.names, self.index, self._names_hint)
            for c, name in enumerate(self.names):
                out[r, c] = self._number(values[c], name, r)
        return out.astype(self.dtype)

    def _from_frame(self, frame: Any) -> np.ndarray:
        cols = [str(c) for c in getattr(frame, "columns", [])]
        if not cols:  # a Series: one row
            return self._from_records([frame.to_dict()])
        unknown = [c for c in cols if c not in self.index]
        if unknown:
            raise InputError(f"unknown column(s) {unknown[:5]}; expected {self._names_hint()}")
        missing = [n for n in self.names if n not in cols]
        if missing:
            raise InputError(f"missing column(s) {missing[:5]}")
        frame = frame[self.names]
        for name, kind in zip(self.names, frame.dtypes):
            if getattr(kind, "kind", "O") not in "fiub":
                bad = frame[name]
                try:
                    bad.astype("float64")
                except (TypeError, ValueError):
                    raise InputError(f"column '{name}' is not numeric (dtype {kind})") from None
        return np.ascontiguousarray(frame.to_numpy(dtype=np.float64), dtype=self.dtype)

    def _raise_nan(self, arr: np.ndarray) -> None:
        bad = np.isnan(arr) & self._nan_forbidden
        rows, cols = np.nonzero(bad)
        if rows.size:
            raise InputError(f"row {int(rows[0])}, feature '{self.names[int(cols[0])]}': NaN/missing "
                             "value, and this model has no imputer for it")

    def _check_ranges(self, arr: np.ndarray) -> None:
        sub = arr[:, self._ranged_idx]
        bad = (sub < self._lo) | (sub > self._hi)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            f = self.features[int(self._ranged_idx[c])]
            raise InputError(f"row {r}, feature '{f.name}': {float(sub[r, c])} is outside the allowed "
                             f"range [{f.range[0]}, {f.range[1]}]")

    def _names_hint(self) -> str:
        shown = ", ".join(self.names[:6])
        return f"{shown}{', …' if self.width > 6 else ''}"
