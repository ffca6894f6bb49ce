"""Column identity: which column of the sample (or hold-out) table is which feature of the model.

Reading ``--sample`` by position turned a CSV with reversed columns into a bundle that called
proline's values ``alcohol``, without an error. Columns are matched by name wherever names
exist on both sides (the estimator's ``feature_names_in_``, a DataFrame's or CSV header's
columns, or ``feature_names`` for a bare array); position is used only where one side cannot
have names (an estimator fitted on a bare array), and the manifest records which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .errors import ConversionError


@dataclass
class Matched:
    """A table's values in the model's feature order, the feature names and how they were matched."""

    X: np.ndarray
    names: list[str]
    matched_by: str  # "name" | "position"


def table_names(data: Any) -> Optional[list[str]]:
    """The column names a table carries (pandas DataFrame, :class:`converters.tabular.Table`)."""
    cols = getattr(data, "columns", None)
    return None if cols is None else [str(c) for c in cols]


def _values(data: Any, role: str, strings: bool = False) -> np.ndarray:
    if strings:  # string columns (categories, text): an object table, numbers as floats
        from .kinds import as_table

        return as_table(data, role)[0]
    raw = data.to_numpy(dtype=np.float64) if hasattr(data, "to_numpy") else data
    try:
        X = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"{role} must be a numeric table: {exc}") from None
    if X.ndim != 2 or X.shape[0] == 0:
        raise ConversionError(f"{role} must be a non-empty 2-D table, got shape {X.shape}")
    return X


def _show(names: Sequence[str]) -> str:
    return "[" + ", ".join(repr(n) for n in names) + "]"


#: Column names that usually hold the label, not a feature.
_LABEL_NAMES = ("target", "label", "labels", "y", "class", "outcome", "response")


def _label_like(names: Sequence[str]) -> Optional[str]:
    """The one column whose name says it is the label (``target``, ``label``, ``y``…), if any."""
    found = [n for n in names if n.strip().lower() in _LABEL_NAMES]
    return found[0] if len(found) == 1 else None


def _by_name(X: np.ndarray, given: list[str], expected: list[str], role: str) -> np.ndarray:
    """Reorder ``X``'s columns (named ``given``) into ``expected`` order, or say what differs."""
    dupes = sorted({n for n in given if given.count(n) > 1})
    if dupes:
        raise ConversionError(f"{role} has duplicate column names {_show(dupes)}")
    have = set(given)
    missing = [n for n in expected if n not in have]
    extra = [n for n in given if n not in set(expected)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {_show(missing)}")
        if extra:
            parts.append(f"not features of the model {_show(extra)}")
        hint = ""
        if extra and not missing and len(extra) == 1:
            hint = (f" (a label column left in the {role}? drop it, or pass --target {extra[0]} "
                    "to edgert convert)")
        elif missing and extra and len(missing) == len(extra):
            hint = " (renamed columns? the model's names are " + _show(expected) + ")"
        raise ConversionError(f"{role} columns do not match the model's features by name: "
                              + "; ".join(parts) + hint)
    return X[:, [given.index(n) for n in expected]]


def match_columns(data: Any, *, fitted: Optional[Sequence[str]], expected: Optional[Sequence[str]],
                  feature_names: Optional[Sequence[str]], n_in: Optional[int], role: str,
                  strings: bool = False) -> Matched:
    """Put ``data``'s columns in the model's order.

    ``fitted`` are the estimator's ``feature_names_in_`` (None if it was fitted on a bare
    array); ``expected`` the names the columns must carry (``fitted``, or for a hold-out table
    the sample's names); ``feature_names`` name a bare array's columns; ``n_in`` is the
    estimator's ``n_features_in_``. With ``strings`` the values come back as an object table
    (numbers as floats, strings as str), for models with categorical or text features.

    Raises:
        ConversionError: a column is missing, unknown, duplicated or renamed, a named model got
            an unnamed table, or the column count differs; the message names the columns.
    """
    X = _values(data, role, strings)
    own = table_names(data)
    named = list(map(str, feature_names)) if feature_names is not None else None
    if own is not None and named is not None and own != named:
        raise ConversionError(f"feature_names {_show(named)} differ from {role}'s own column names "
                              f"{_show(own)}: pass one of them")
    given = own or named
    if given is not None and len(given) != X.shape[1]:
        raise ConversionError(f"{len(given)} feature names for the {X.shape[1]} columns of {role}")
    want = list(map(str, expected)) if expected is not None else None
    if want is not None and given is not None:
        return Matched(_by_name(X, given, want, role), want, "name" if fitted is not None else "position")
    if fitted is not None:
        raise ConversionError(f"{role} has no column names, but the estimator was fitted on named "
                              f"columns {_show(list(map(str, fitted)))}: pass a DataFrame (any column "
                              "order) or feature_names=, so columns are matched by name")
    if n_in is not None and n_in != X.shape[1]:
        hint = ""
        if X.shape[1] == n_in + 1:
            guess = _label_like(given) if given is not None else None
            hint = (f" (a label column left in the {role}? "
                    + (f"{guess!r} looks like one: pass --target {guess} to edgert convert"
                       if guess else "pass --target COLUMN to edgert convert")
                    + (f"; its columns are {_show(given)}" if given is not None and not guess else "")
                    + ")")
        raise ConversionError(f"the estimator was fitted on {n_in} features, {role} has "
                              f"{X.shape[1]}{hint}")
    if want is not None and len(want) != X.shape[1]:
        raise ConversionError(f"{role} has {X.shape[1]} columns, the sample has {len(want)}")
    names = want or given or [f"x{i}" for i in range(X.shape[1])]
    return Matched(X, names, "position")
