"""The numpy back end of the input schema: arrays, rows, records and data frames in, the 2-D
array a backend takes out, with the checks of :class:`.schema.InputSchema` run vectorised.

The common case (a C-contiguous array of the right dtype and width) is a few attribute checks
and one sum for the NaN/infinity test, so a single-row predict stays close to the raw engine.
Python containers numpy cannot read as numbers (text, None, records, huge ints) go through the
schema's value-by-value parsing, the same code as the numpy-free path.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Sequence

import numpy as np

from ..bundle import Feature, InputSpec
from ..errors import InputError
from .schema import InputSchema, name_mismatch


class InputAdapter:
    """Validates and converts inputs for one model's feature schema."""

    def __init__(self, features: Sequence[Feature], dtype: str = "float32"):
        self.schema = s = InputSchema(features, dtype)
        self.names, self.width = s.names, s.width
        self.dtype = np.dtype(dtype)
        #: every array this adapter returns has self.dtype: only a float one can hold NaN or inf
        self._floating = self.dtype.kind == "f"
        self._all_finite = _FiniteCheck(self.dtype).check
        self._nan_forbidden = np.array(s.nan_forbidden)
        self._ranged = _bounds(s.ranged)
        self._trained = _bounds(s.trained)

    def __call__(self, X: Any, strict: bool = False) -> np.ndarray:
        """``X`` as a C-contiguous 2-D array of the artifact's dtype.

        Raises:
            InputError: the input does not fit the schema (the message names row and feature).
        """
        if type(X) is np.ndarray and X.dtype == self.dtype and X.flags.c_contiguous \
                and X.ndim == 2 and X.shape[1] == self.width:
            arr = X
        else:
            arr = self._coerce(X)
        if arr.shape[0] == 0:
            raise InputError("no rows to predict (got an empty input)")
        if self._floating and not self._all_finite(arr):
            self._check_finite(arr)
        if self._ranged is not None:
            self._check_bounds(arr, self._ranged, self.schema.range_error)
        if strict:
            self.schema.require_training()
            self._check_bounds(arr, self._trained, self.schema.strict_error)
        return arr

    # --- conversion -------------------------------------------------------------------------
    def _coerce(self, X: Any) -> np.ndarray:
        if isinstance(X, np.ndarray):
            return self._from_array(X)
        if type(X).__module__.startswith("pandas"):
            return self._from_frame(X)
        if isinstance(X, (list, tuple)) and X:  # records become an object array: slow path
            try:  # numpy's C loop; without a dtype, so text stays text (numpy would parse it)
                arr = np.asarray(X)
            except (TypeError, ValueError, OverflowError):  # ragged rows
                pass
            else:
                if arr.dtype.kind in "fiub" and arr.ndim in (1, 2):
                    arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
                    if arr.shape[1] == self.width:
                        return self._cast(arr)
        return self._from_python(X)  # the schema's parsing names what is wrong

    def _from_python(self, X: Any) -> np.ndarray:
        flat, n = self.schema.matrix(X, "d")
        return self._cast(np.frombuffer(flat, dtype=np.float64).reshape(n, self.width))

    def _from_array(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype.names:
            raise InputError("structured arrays are not supported; pass a 2-D array or records")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise InputError(f"input must be 2-D (rows × {self.width} features); got shape {arr.shape}")
        if arr.shape[1] != self.width:
            raise InputError(f"wrong number of features: expected {self.width} ({self.schema.hint()}), "
                             f"got {arr.shape[1]}")
        if arr.dtype.kind not in "fiub":  # text or objects: value by value
            return self._from_python(arr.tolist())
        return self._cast(arr)

    def _from_frame(self, frame: Any) -> np.ndarray:
        cols = [str(c) for c in getattr(frame, "columns", [])]
        if not cols:  # a Series: one row
            return self._from_python(frame.to_dict())
        problem = name_mismatch(cols, self.names, "column", "column")
        if problem:
            raise InputError(problem)
        frame = frame[self.names]
        if all(getattr(kind, "kind", "O") in "fiub" for kind in frame.dtypes):
            return self._cast(frame.to_numpy(dtype=np.float64, na_value=np.nan))
        return self._from_python(frame.to_numpy(dtype=object, na_value=None).tolist())

    def _cast(self, arr: np.ndarray) -> np.ndarray:
        """``arr`` in the artifact's dtype; values beyond its range become ±inf first, so the
        domain check refuses them (a float32 cast would round 3.4028235e38 down to the max)."""
        with np.errstate(over="ignore", invalid="ignore"):  # the cast of 1e39 warns, then is refused
            out = np.ascontiguousarray(arr, dtype=self.dtype)
            if arr.dtype.kind == "f" and arr.dtype.itemsize > out.dtype.itemsize:
                flat = out.reshape(-1)
                if not math.isfinite(flat.dot(flat)):  # NaN, inf or |x| > 1.8e19 somewhere: look closer
                    big = np.abs(arr) > self.schema.limit
                    if big.any():
                        out[big] = np.copysign(np.inf, arr[big])
        return out

    # --- the domain (the same checks, in the same order, as InputSchema.check) --------------
    def _check_finite(self, arr: np.ndarray) -> None:
        _raise_first(np.isnan(arr) & self._nan_forbidden, arr, self.schema.nan_error)
        _raise_first(np.isinf(arr), arr, self.schema.infinite_error)

    def _check_bounds(self, arr: np.ndarray, bounds: Any, error: Callable[..., InputError]) -> None:
        idx, lo, hi = bounds
        sub = arr[:, idx]
        with np.errstate(invalid="ignore"):
            bad = (sub < lo) | (sub > hi)  # NaN compares False: NaN is judged by allow_nan
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise error(r, int(idx[c]), float(sub[r, c]))


_BYTE_ORDER = sys.byteorder


class _FiniteCheck:
    """No NaN and no ±inf in a C-contiguous float array of one dtype, without floating-point
    warnings.

    Up to :data:`BITS_MAX` values, on the bits: the buffer read as one Python integer, each value
    a lane of its width; a value is NaN or ±inf exactly when its exponent bits are all ones, and
    adding the exponent's lowest bit to the masked exponent then carries into that lane's sign
    bit (no lane carries into the next). Exact, and ~0.2 µs for a row of 30 float32 values,
    against ~0.5 µs for a Python sum and ~1.8 µs for ``isfinite(...).all()`` (a BLAS dot of the
    squares would warn on huge finite values, and ``np.errstate`` costs 2 µs). ``isfinite`` for
    more values, a Python sum for a float type that is not IEEE binary16/32/64."""

    BITS_MAX = 256
    _MANTISSA = {2: 10, 4: 23, 8: 52}

    def __init__(self, dtype: np.dtype):
        self.itemsize = dtype.itemsize
        self.mantissa = self._MANTISSA.get(dtype.itemsize) if dtype.kind == "f" else None
        #: value count -> (exponent mask, exponent's lowest bit, sign bit), repeated per value
        self.masks: dict[int, tuple[int, int, int]] = {}

    def check(self, arr: np.ndarray) -> bool:
        """True when ``arr`` holds no NaN and no ±inf."""
        n = arr.size
        if n > self.BITS_MAX:
            return bool(np.isfinite(arr.ravel()).all())
        masks = self.masks.get(n)
        if masks is None:
            if self.mantissa is None:
                return math.isfinite(sum(arr.ravel().tolist()))
            masks = self.masks[n] = self._lanes(n, self.mantissa)
        exponent, low, sign = masks
        return not ((int.from_bytes(arr.tobytes(), _BYTE_ORDER) & exponent) + low) & sign

    def _lanes(self, count: int, mantissa: int) -> tuple[int, int, int]:
        size, bits = self.itemsize, 8 * self.itemsize

        def repeat(lane: int) -> int:
            return int.from_bytes(lane.to_bytes(size, "little") * count, "little")

        exponent = (1 << (bits - 1)) - (1 << mantissa)  # the bits between mantissa and sign
        return repeat(exponent), repeat(1 << mantissa), repeat(1 << (bits - 1))


def _bounds(cols: list[tuple[int, float, float]]) -> Any:
    """(column indices, lows, highs) as arrays, or None when no column is bounded."""
    if not cols:
        return None
    return (np.array([c for c, _, _ in cols], dtype=np.intp),
            np.array([lo for _, lo, _ in cols], dtype=np.float64),
            np.array([hi for _, _, hi in cols], dtype=np.float64))


def _raise_first(bad: np.ndarray, arr: np.ndarray, error: Callable[..., InputError]) -> None:
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))  # row-major: the first bad row
        raise error(r, c, float(arr[r, c]))


class FeedAdapter(InputAdapter):
    """Inputs for an artifact with several named inputs (schema 1.1: categorical and text
    features beside numeric ones): records, rows, frames or object arrays in, one array per
    artifact input out (float columns in the artifact's float type, strings as object arrays
    of ``str``, each ``(rows, columns)``).

    The numeric columns get exactly the checks of :class:`InputAdapter` (the string columns sit
    in that matrix as zeros, which no check looks at); each string goes through
    :meth:`.schema.InputSchema.string`.
    """

    def __init__(self, features: Sequence[Feature], specs: Sequence[InputSpec]):
        floats = {s.dtype for s in specs if s.dtype != "string"}
        super().__init__(features, floats.pop() if len(floats) == 1 else "float32")
        position = {n: c for c, n in enumerate(self.names)}
        self.specs = [(s.name, s.dtype, [position[f] for f in s.features]) for s in specs]
        self._strings = set(self.schema.string_columns)
        #: categorical column -> {category: code}; any other value gets code len(categories)
        self._codes = {c: {v: i for i, v in enumerate(f.categories or ())}
                       for c, f in enumerate(self.schema.features) if f.kind == "categorical"}

    def codes(self, X: Any) -> np.ndarray:
        """The float matrix telemetry bins: numeric values as fed, a categorical value as its
        category's index (``len(categories)`` for any other: the "other" bin of the reference),
        text as 0 (only counted). Drift over category shares is then the numeric binning.

        Raises:
            InputError: as :meth:`__call__`.
        """
        numbers, strings = self._parse(self._columns(X))
        for c, values in strings.items():
            if c in self._codes:
                table = self._codes[c]
                numbers[:, c] = [table.get(v, len(table)) for v in values.tolist()]
        return numbers

    def __call__(self, X: Any, strict: bool = False) -> dict[str, np.ndarray]:  # type: ignore[override]
        """``X`` as ``{input name: array}``.

        Raises:
            InputError: the input does not fit the schema (the message names row and feature).
        """
        numbers, strings = self._parse(self._columns(X))
        if numbers.shape[0] == 0:
            raise InputError("no rows to predict (got an empty input)")
        arr = InputAdapter.__call__(self, numbers, strict)
        feeds = {}
        for name, dtype, cols in self.specs:
            if dtype == "string":
                feeds[name] = np.stack([strings[c] for c in cols], axis=1)
            else:
                feeds[name] = np.ascontiguousarray(arr[:, cols], dtype=dtype)
        return feeds

    def _parse(self, columns: list[Any]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The numeric columns as a float64 matrix (string columns left 0) and each string
        column as an object array, or the InputError of the first bad row (row-major)."""
        s = self.schema
        numbers = np.zeros((len(columns[0]) if columns else 0, self.width), dtype=np.float64)
        strings: dict[int, np.ndarray] = {}
        refused: list[tuple[int, int, InputError]] = []
        for c, col in enumerate(columns):
            try:
                if c in self._strings:
                    strings[c] = np.array(s.strings(col, c), dtype=object)
                elif isinstance(col, np.ndarray) and col.dtype.kind in "fiub":
                    numbers[:, c] = col
                else:
                    numbers[:, c] = [s.number(v, r, c) for r, v in enumerate(col)]
            except InputError as exc:  # parsed by column: report the first bad row (row-major)
                refused.append((exc.row if exc.row is not None else -1, c, exc))
        if refused:
            raise min(refused, key=lambda t: (t[0], t[1]))[2]
        return numbers, strings

    def _columns(self, X: Any) -> list[Any]:
        """One sequence of values per feature, in feature order (frames by column name)."""
        if type(X).__module__.startswith("pandas") and getattr(X, "columns", None) is not None:
            by_name = {str(c): c for c in X.columns}
            problem = name_mismatch(list(by_name), self.names, "column", "column")
            if problem:
                raise InputError(problem)
            out = []
            for c, name in enumerate(self.names):
                col = X[by_name[name]]
                if c not in self._strings and col.dtype.kind in "fiub":
                    out.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
                else:  # strings, or a numeric feature of mixed values: value by value
                    out.append(col.to_numpy(dtype=object, na_value=None))
            return out
        if isinstance(X, np.ndarray):
            if X.dtype.names:
                raise InputError("structured arrays are not supported; pass records or a 2-D array")
            X = X.tolist()
        elif type(X).__module__.startswith("pandas"):  # a Series: one row, or one text per row
            X = X.tolist() if self.width == 1 else X.to_dict()
        if self.width == 1 and isinstance(X, (list, tuple)) and X and \
                all(isinstance(v, str) for v in X):  # one string feature: a plain list, one per row
            return [list(X)]
        if self.width == 1 and isinstance(X, str):
            return [[X]]
        rows = self.schema.rows(X)
        for r, row in enumerate(rows):
            self.schema.check_width(row, r, len(rows))
            self.schema.check_flat(row, r)
        return [list(col) for col in zip(*rows)] if rows else []
