"""The input schema, without numpy: which values a model takes, and the one message for each
value it refuses.

Every input path (the API's arrays, rows, records and frames; CSV cells and JSON lines in
``edgert predict``; the JSON body of ``edgert serve``; the Pyodide bridge) goes through this
module, so they accept the same values and say the same thing about the others:

- a value is a number: int, float, bool (0/1, as scikit-learn reads it), a numpy number;
  ``None``/null is missing (NaN). A string is refused in every typed path (Python, JSON), even
  "14.0": one rule, so a client that sends text learns it at once, and serve's OpenAPI document
  can say exactly what it takes. Only CSV cells, where all is text, are read as numbers
  (:func:`text_value`): as ``float()`` reads them after stripping blanks, with "", "na", "nan",
  "null" (any case) missing.
- a categorical or text feature (manifest schema 1.1) takes a string, and only a string: a
  number there is refused as a string is refused in a numeric feature. A CSV cell of such a
  feature is its text as it stands (:meth:`InputSchema.cell`); an empty categorical cell is
  missing, which no encoder takes. A category outside the trained ones is refused, naming
  column, row and value, when the encoder refuses it (``unknown: error``); otherwise it goes
  to the model, which ignores it (all-zero one-hot) or gives it the encoder's unknown value.
- the checks, in this order, each reporting the first offending row (row-major): NaN where the
  model has no imputer; values that are infinite or beyond the artifact's float type
  (``Infinity``, ``1e39``, ``10**400`` for float32: |x| > 3.4028234663852886e38, judged before the
  cast); the manifest's allowed ``range``; and, with ``strict``, the training min/max.

:mod:`.lists` (pure Python) and :mod:`.arrays` (numpy) are the two back ends; they share the
parsing here and run the same checks, vectorised or not.
"""

from __future__ import annotations

import math
import struct
from array import array
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ..bundle import Feature
from ..errors import InputError
from ..manifest_checks import MAX_CATEGORY_CHARS, MAX_TEXT_CHARS

#: largest finite value of each artifact input type the runtime feeds
FLOAT_MAX = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}
#: texts that mean "missing" where text is read (CSV cells, form fields through text_value)
MISSING_TEXT = frozenset({"", "na", "nan", "null"})
_SHOWN_NAMES = 6
#: the bytes of ±FLT_MAX in an ``array("f")``, where a cast leaves values just beyond float32
_F32_EDGES = (struct.pack("f", FLOAT_MAX["float32"]), struct.pack("f", -FLOAT_MAX["float32"]))


def names_hint(names: Sequence[str]) -> str:
    """The first few feature names, for messages about unknown or missing names."""
    shown = ", ".join(names[:_SHOWN_NAMES])
    return f"{shown}{', …' if len(names) > _SHOWN_NAMES else ''}"


def name_mismatch(given: Iterable[str], names: Sequence[str], unknown_noun: str, missing_noun: str,
                  extra: Iterable[str] = ()) -> Optional[str]:
    """What is wrong with a set of names (a record's keys, a CSV header, a frame's columns), or
    None: the unknown ones first, then the missing ones. ``extra`` names are allowed (an id column)."""
    given = list(given)
    known = set(names) | set(extra)
    unknown = [g for g in given if g not in known]
    if unknown:
        return f"unknown {unknown_noun}(s) {unknown[:5]}; expected {names_hint(names)}"
    present = set(given)
    missing = [n for n in names if n not in present]
    if missing:
        return f"missing {missing_noun}(s) {missing[:5]}"
    return None


def check_columns(header: Sequence[str], names: Sequence[str], id_column: Optional[str], where: str) -> None:
    """A CSV header's or a Parquet file's columns against the features (and the id column).

    Raises:
        InputError: an unknown or a missing column, or no such id column.
    """
    problem = name_mismatch(header, names, "column", "column", [id_column] if id_column else [])
    if problem:
        raise InputError(f"{where}: {problem}")
    if id_column and id_column not in header:
        raise InputError(f"{where}: no id column {id_column!r}")


def text_value(text: str) -> Any:
    """A CSV cell as the value it stands for: a float, None (missing), or the text itself when
    it is no number (the model's schema then refuses it, naming row and feature)."""
    stripped = text.strip()
    if stripped.lower() in MISSING_TEXT:
        return None
    try:
        return float(stripped)
    except ValueError:
        return text


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def show(value: float, dtype: str) -> str:
    """The shortest text that reads back as ``value`` in ``dtype`` (0.1 rather than
    0.10000000149011612 for a float32), so messages show what the caller sent."""
    if dtype == "float32" and math.isfinite(value):
        for digits in range(1, 10):
            text = f"{value:.{digits}g}"
            if _float32(float(text)) == value:
                return repr(float(text))
    return repr(value)


class InputSchema:
    """One model's input schema: feature names and order, NaN, ranges, training bounds, dtype."""

    def __init__(self, features: Sequence[Feature], dtype: str = "float32"):
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.width = len(self.features)
        self.dtype = dtype
        self.limit = FLOAT_MAX.get(dtype, math.inf)
        self.kinds = [f.kind for f in self.features]
        #: columns holding strings (categorical and text features), in feature order
        self.string_columns = [c for c, k in enumerate(self.kinds) if k != "numeric"]
        self.nan_forbidden = [not f.allow_nan and f.kind == "numeric" for f in self.features]
        self.ranged = [(c, float(f.range[0]), float(f.range[1]))
                       for c, f in enumerate(self.features) if f.range is not None]
        self.untrained = [f.name for f in self.features if f.kind == "numeric"
                          and (f.train_min is None or f.train_max is None)]
        #: categorical columns whose encoder refuses unknown categories -> the known ones
        self.closed = {c: frozenset(f.categories or ()) for c, f in enumerate(self.features)
                       if f.kind == "categorical" and f.unknown == "error"}
        self.trained = [(c, float(f.train_min), float(f.train_max)) for c, f in enumerate(self.features)
                        if f.train_min is not None and f.train_max is not None]

    def hint(self) -> str:
        return names_hint(self.names)

    # --- structure ------------------------------------------------------------------------
    def rows(self, X: Any) -> list[Sequence[Any]]:
        """Python containers as a list of rows in feature order: a list of rows (each a
        sequence in feature order or a mapping by name, mixed freely), one flat row, or one
        mapping. JS proxies (Pyodide) and array-likes are converted first.

        Raises:
            InputError: an unsupported type, a mix of rows and scalars, unknown/missing names.
        """
        if type(X) is not list and type(X) is not tuple:
            if hasattr(X, "to_py"):  # a JS array or object handed over by Pyodide
                X = X.to_py()
            if isinstance(X, Mapping):
                return [self.ordered(X, 0)]
            if hasattr(X, "tolist") and not isinstance(X, (str, bytes)):  # array-likes
                X = X.tolist()
            if not isinstance(X, (list, tuple)):
                raise InputError(f"unsupported input type {type(X).__name__}: pass a 2-D array, a list "
                                 "of rows, a row, a dict or a list of dicts keyed by feature name")
        out: list[Sequence[Any]] = []
        scalars = 0
        for i, r in enumerate(X):
            kind = type(r)
            if kind is list or kind is tuple:  # the common case first: no ABC checks
                out.append(r)
            elif isinstance(r, Mapping):
                out.append(self.ordered(r, i))
            elif _is_1d(r):
                out.append(r.tolist())
            elif isinstance(r, (list, tuple)):
                out.append(r)
            else:
                scalars += 1
        if not scalars:
            return out
        if out:
            raise InputError("mix of rows and scalars: pass a list of rows or one row")
        return [X]  # one flat row

    def ordered(self, record: Mapping[Any, Any], row: int) -> list[Any]:
        """A record's values in feature order.

        Raises:
            InputError: a key is not a feature name, or a feature is missing.
        """
        problem = name_mismatch(record, self.names, "feature name", "feature")
        if problem:
            raise InputError.at(row, problem)
        return [record[n] for n in self.names]

    def check_width(self, row: Sequence[Any], r: int, n_rows: int) -> None:
        """Raises: InputError: the row does not have one value per feature."""
        if len(row) == self.width:
            return
        self.check_flat(row, r)
        reason = f"wrong number of features: expected {self.width} ({self.hint()}), got {len(row)}"
        raise InputError.at(r, reason) if n_rows > 1 else InputError(reason)

    def check_flat(self, row: Sequence[Any], r: int) -> None:
        """Raises: InputError: a value of the row is itself a sequence (a 3-D input)."""
        if any(isinstance(v, (list, tuple, Mapping)) or _is_1d(v) for v in row):
            raise InputError.at(r, f"input must be 2-D (rows × {self.width} features); got a "
                                   "nested sequence")

    # --- values ---------------------------------------------------------------------------
    def number(self, value: Any, row: int, col: int) -> float:
        """One value as a float (NaN for missing); the domain is checked after the cast.

        Raises:
            InputError: the value is neither a number nor a numeric text.
        """
        if value is None:
            return math.nan
        if isinstance(value, float):
            return value
        if isinstance(value, (str, bytes, bytearray)):  # text is read only from CSV cells
            raise self.not_a_number(row, col, value)
        try:
            return float(value)  # ints, bools, numpy scalars, Decimal
        except OverflowError:  # an int beyond any float: infinite once cast, refused as such
            return math.inf if value > 0 else -math.inf
        except (TypeError, ValueError):
            raise self.not_a_number(row, col, value) from None

    def values(self, row: Sequence[Any], r: int) -> list[float]:
        """A row's values as floats, value by value (the slow path that names the culprit)."""
        self.check_flat(row, r)
        return [self.number(v, r, c) for c, v in enumerate(row)]

    def string(self, value: Any, row: int, col: int) -> str:
        """One value of a categorical or text feature, as the string the model takes.

        Raises:
            InputError: the value is missing, not a string, too long, or (``unknown: error``)
                a category the encoder was not trained on.
        """
        if not isinstance(value, str):  # numpy's str_ is a str
            raise self.not_a_string(row, col, value)
        kind = self.kinds[col]
        if len(value) > (MAX_CATEGORY_CHARS if kind == "categorical" else MAX_TEXT_CHARS):
            raise InputError.at(row, f"feature '{self.names[col]}': a {kind} value of {len(value)} "
                                     "characters is too long")
        known = self.closed.get(col)
        if known is not None and value not in known:
            raise self.unknown_category(row, col, value)
        return str(value)

    def cell(self, text: str, col: int) -> Any:
        """A CSV cell of feature ``col`` as the value it stands for: :func:`text_value` for a
        numeric feature, the text itself for a text feature, and for a categorical one the text
        (None, missing, when blank)."""
        kind = self.kinds[col]
        if kind == "numeric":
            return text_value(text)
        if kind == "categorical" and not text.strip():
            return None
        return text

    def strings(self, column: Sequence[Any], col: int) -> list[str]:
        """A categorical or text column, value by value (rows numbered from 0)."""
        return [self.string(v, r, col) for r, v in enumerate(column)]

    def matrix(self, X: Any, typecode: str) -> tuple[array, int]:
        """Python containers as a flat row-major ``array.array`` of ``typecode`` ("f" or "d")
        and a row count: each row through ``array``'s C loop when it holds plain numbers, else
        value by value. In float32, values beyond its range are made ±inf for the domain check
        (a cast rounds the band just above the largest float32 down to it)."""
        rows = self.rows(X)
        flat = array(typecode)
        for r, row in enumerate(rows):
            self.check_width(row, r, len(rows))
            try:
                part = array(typecode, row)
            except (TypeError, ValueError, OverflowError):  # None, text, junk, huge ints
                part = array(typecode, self.values(row, r))
            flat.extend(part)
        if typecode == "f":
            raw = flat.tobytes()  # a byte search runs in C: is any value at the float32 edge?
            if _F32_EDGES[0] in raw or _F32_EDGES[1] in raw:
                self._widen(flat, rows)
        return flat, len(rows)

    def _widen(self, flat: array, rows: Sequence[Sequence[Any]]) -> None:
        for i, value in enumerate(flat):
            if value in (self.limit, -self.limit):
                r, c = divmod(i, self.width)
                source = self.number(rows[r][c], r, c)
                if abs(source) > self.limit:
                    flat[i] = math.copysign(math.inf, source)

    # --- the domain, in pure Python (the numpy back end runs the same checks vectorised) ---
    def check(self, flat: Sequence[float], strict: bool = False) -> None:
        """The domain checks on a flat row-major matrix already cast to the artifact's dtype.
        sum/min/max run in C; the value-by-value scans run only to name the culprit.

        Raises:
            InputError: NaN without an imputer, a non-finite value, a value outside the allowed
                range or (``strict``) outside the training range.
        """
        total = sum(flat)
        if not math.isfinite(total):  # NaN or ±inf somewhere (or a float64 sum overflowing)
            self._scan(flat, lambda c, v: v != v and self.nan_forbidden[c], self.nan_error)
            self._scan(flat, lambda c, v: v in (math.inf, -math.inf), self.infinite_error)
        self._check_bounds(flat, self.ranged, self.range_error)
        if strict:
            self.require_training()
            self._check_bounds(flat, self.trained, self.strict_error)

    def _check_bounds(self, flat: Sequence[float], bounds: list[tuple[int, float, float]],
                      error: Callable[[int, int, float], InputError]) -> None:
        width = self.width
        for c, lo, hi in bounds:
            col = flat[c::width]
            if not (lo <= min(col) and max(col) <= hi):  # also when NaN got in the way of min/max
                break
        else:
            return
        limits: dict[int, tuple[float, float]] = {k: (low, high) for k, low, high in bounds}
        self._scan(flat, lambda k, v: k in limits and v == v and not limits[k][0] <= v <= limits[k][1],
                   error)

    def _scan(self, flat: Sequence[float], bad: Callable[[int, float], bool],
              error: Callable[[int, int, float], InputError]) -> None:
        width = self.width
        for i, value in enumerate(flat):
            c = i % width
            if bad(c, value):
                raise error(i // width, c, value)

    def require_training(self) -> None:
        """Raises: InputError: strict checking asked of a bundle without training min/max."""
        if self.untrained:
            raise InputError(f"strict: feature '{self.untrained[0]}' has no training min/max in this "
                             "bundle (converted before edge-runtime recorded them, or never seen "
                             "in training); convert it again, or predict without strict")

    # --- the messages (one per refusal, whatever the path) --------------------------------
    def not_a_number(self, row: int, col: int, value: Any) -> InputError:
        text = _shown(value)
        why = "is not a number"
        if isinstance(value, str) and not isinstance(text_value(value), str):
            why = "is text, not a number: send numbers (only CSV cells are read as text)"
        return InputError.at(row, f"feature '{self.names[col]}': {text} {why}")

    def not_a_string(self, row: int, col: int, value: Any) -> InputError:
        if value is None or (isinstance(value, float) and value != value):
            return InputError.at(row, f"feature '{self.names[col]}': missing value; a "
                                      f"{self.kinds[col]} feature needs a string")
        return InputError.at(row, f"feature '{self.names[col]}': {_shown(value)} is not a string (a "
                                  f"{self.kinds[col]} feature takes text)")

    def unknown_category(self, row: int, col: int, value: str) -> InputError:
        known = sorted(self.closed.get(col, ()))
        return InputError.at(row, f"feature '{self.names[col]}': unknown category {_shown(value)}; the model's "
                                  f"encoder refuses unknown categories (known: {names_hint(known)})")

    def nan_error(self, row: int, col: int, value: float = math.nan) -> InputError:
        return InputError.at(row, f"feature '{self.names[col]}': NaN/missing value, and this model "
                                  "has no imputer for it")

    def infinite_error(self, row: int, col: int, value: float = math.inf) -> InputError:
        return InputError.at(row, f"feature '{self.names[col]}': infinite, or beyond the {self.dtype} "
                                  f"range (|x| ≤ {self.limit:.8g}); the model cannot take it")

    def range_error(self, row: int, col: int, value: float) -> InputError:
        lo, hi = self.features[col].range  # type: ignore[misc]
        return InputError.at(row, f"feature '{self.names[col]}': {show(value, self.dtype)} is outside "
                                  f"the allowed range {self._interval(lo, hi)}")

    def strict_error(self, row: int, col: int, value: float) -> InputError:
        f = self.features[col]
        return InputError.at(row, f"feature '{self.names[col]}': {show(value, self.dtype)} is outside "
                                  f"the training range {self._interval(f.train_min, f.train_max)} (strict)")

    def _interval(self, lo: Any, hi: Any) -> str:
        return f"[{show(float(lo), self.dtype)}, {show(float(hi), self.dtype)}]"


def _shown(value: Any) -> str:
    """A refused value as messages show it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _is_1d(value: Any) -> bool:
    """A 1-D array-like (a numpy row) rather than a scalar."""
    return getattr(value, "ndim", 0) == 1 and hasattr(value, "tolist")
