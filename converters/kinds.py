"""Typed inputs on the workstation: which column of a table is numeric, categorical or text,
what the encoder does with an unseen category, and the ONNX inputs (one per column) that carry
them to the device.

A table with string columns cannot become one float32 matrix (``could not convert string to
float: 'green'``). Each column instead gets its own ONNX input of its own type: float32 for
numbers, string tensors for categories and text, which skl2onnx's ColumnTransformer and
encoder converters take by column name. The manifest records each feature's kind, and for a
categorical one its categories and the encoder's ``handle_unknown``, so the device can refuse
an unknown category when the encoder would (naming column, row and value) and count category
shares for drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from edge_runtime.bundle import Feature, InputSpec

from .errors import ConversionError
from .registry import steps_of

VECTORIZERS = ("TfidfVectorizer", "CountVectorizer")
ENCODERS = ("OneHotEncoder", "OrdinalEncoder")
#: StringNormalizer's locale (skl2onnx's default, en_US.UTF-8, is missing on most minimal
#: systems, and onnxruntime then refuses the whole model); C.UTF-8 is in every glibc.
TEXT_LOCALE = "C.UTF-8"


@dataclass
class Typed:
    """The kind of each feature and, for categorical ones, categories and unknown policy."""

    kinds: list[str]
    categories: dict[str, tuple[str, ...]]
    unknown: dict[str, str]

    @property
    def any_strings(self) -> bool:
        return any(k != "numeric" for k in self.kinds)

    def numeric(self) -> list[int]:
        return [j for j, k in enumerate(self.kinds) if k == "numeric"]


def takes_raw_text(estimator: Any) -> bool:
    """The estimator reads a 1-D sequence of texts (its first step is a text vectorizer), as
    ``make_pipeline(TfidfVectorizer(), LogisticRegression())`` fitted on a list of strings."""
    first = estimator
    while hasattr(first, "steps"):
        first = next((s for _, s in first.steps if s not in (None, "passthrough")), None)
    return type(first).__name__ in VECTORIZERS


def text_column(data: Any, name: str = "text") -> Any:
    """A 1-D sequence of texts (list, array, Series) as a one-column table named ``name``
    (a Series keeps its own name): the model's single text feature."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    own = getattr(data, "name", None)
    return pd.DataFrame({str(own) if own is not None else name: list(data)})


def is_string_table(data: Any) -> bool:
    """A DataFrame (or object array) with at least one column of strings."""
    dtypes = getattr(data, "dtypes", None)
    if dtypes is not None and not hasattr(dtypes, "__iter__"):  # a Series
        return getattr(dtypes, "kind", "O") not in "fiub"
    if dtypes is not None:
        return any(getattr(d, "kind", "O") not in "fiub" for d in dtypes)
    if isinstance(data, np.ndarray) and data.dtype.kind in "fiub":
        return False
    raw = data.to_numpy(dtype=object) if hasattr(data, "to_numpy") else data  # converters' Table
    try:
        arr = np.asarray(raw, dtype=object)
    except ValueError:  # ragged rows: the numeric path names the problem
        return False
    return any(isinstance(v, str) for v in arr.reshape(-1).tolist())


def _text_columns(estimator: Any) -> set[str]:
    """Columns a ColumnTransformer sends to a text vectorizer (given by name, as a scalar)."""
    out: set[str] = set()
    for step in steps_of(estimator):
        if type(step).__name__ != "ColumnTransformer":
            continue
        for _, trans, cols in getattr(step, "transformers_", []):
            if isinstance(cols, str) and not isinstance(trans, str) \
                    and any(type(s).__name__ in VECTORIZERS for s in steps_of(trans)):
                out.add(cols)
    return out


def _encoders(estimator: Any) -> dict[str, tuple[tuple[str, ...], str]]:
    """Column name -> (categories, unknown policy) of each fitted OneHot/Ordinal encoder: by
    the encoder's own ``feature_names_in_``, or, inside a ColumnTransformer branch that got an
    array (an imputer before it), by the branch's column names in order."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}

    def add(encoder: Any, names: Sequence[Any]) -> None:
        # what the ONNX graph does, which is what the device runs: skl2onnx's OneHotEncoder
        # gives zeros only for 'ignore' ('warn' and 'infrequent_if_exist' make the engine fail
        # on an unknown value), so those are refused by name at the input instead
        policy = encoder.handle_unknown
        unknown = ("encoded" if policy == "use_encoded_value" else
                   "ignore" if policy == "ignore" and type(encoder).__name__ == "OneHotEncoder" else "error")
        for name, cats in zip(names, encoder.categories_):
            out[str(name)] = (tuple(str(c) for c in cats.tolist()), unknown)

    for step in steps_of(estimator):
        kind = type(step).__name__
        if kind in ENCODERS and getattr(step, "feature_names_in_", None) is not None:
            add(step, list(step.feature_names_in_))
        elif kind == "ColumnTransformer":
            for _, trans, cols in getattr(step, "transformers_", []):
                if isinstance(trans, str) or isinstance(cols, str) or not all(isinstance(c, str) for c in cols):
                    continue
                inner = [s for s in steps_of(trans) if type(s).__name__ in ENCODERS]
                if len(inner) == 1 and getattr(inner[0], "feature_names_in_", None) is None \
                        and len(inner[0].categories_) == len(cols):
                    add(inner[0], cols)
    return out


def infer(estimator: Any, X: np.ndarray, names: Sequence[str]) -> Typed:
    """Each column's kind: numeric when every value is a number, text when a vectorizer reads
    it, categorical when an encoder does (categories and policy from that encoder).

    Raises:
        ConversionError: a column mixes strings and numbers, or holds strings no encoder or
            vectorizer reads.
    """
    text = _text_columns(estimator) | (set(names) if takes_raw_text(estimator) else set())
    encoders = _encoders(estimator)
    typed = Typed([], {}, {})
    for j, name in enumerate(names):
        col = X[:, j].tolist()
        strings = sum(isinstance(v, str) for v in col)
        if not strings:
            typed.kinds.append("numeric")
            continue
        odd = next((v for v in col if not isinstance(v, str) and not _missing(v)), None)
        if odd is not None:
            raise ConversionError(f"column '{name}' mixes strings and numbers ({odd!r}); a column is "
                                  "either numeric or categorical/text")
        if name in text:
            typed.kinds.append("text")
            continue
        if name not in encoders:
            example = next(v for v in col if isinstance(v, str))
            raise ConversionError(f"column '{name}' holds text ({example[:40]!r}), but no OneHotEncoder, "
                                  "OrdinalEncoder, TfidfVectorizer or CountVectorizer of the model reads "
                                  "it; the model takes numbers there (a typo in the sample?)")
        typed.kinds.append("categorical")
        typed.categories[name], typed.unknown[name] = encoders[name]
    return typed


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def as_table(data: Any, role: str) -> tuple[np.ndarray, Optional[list[str]]]:
    """A table with string columns as a 2-D object array (numbers as floats, strings as str)
    and its column names (None for an array)."""
    cols = getattr(data, "columns", None)
    names = None if cols is None else [str(c) for c in cols]
    raw = data.to_numpy(dtype=object) if hasattr(data, "to_numpy") else np.asarray(data, dtype=object)
    if raw.ndim != 2 or raw.shape[0] == 0:
        raise ConversionError(f"{role} must be a non-empty 2-D table, got shape {raw.shape}")
    out = np.empty(raw.shape, dtype=object)
    for idx, v in np.ndenumerate(raw):
        if isinstance(v, str) or _missing(v):
            out[idx] = v if isinstance(v, str) else math.nan
        else:
            try:
                out[idx] = float(v)
            except (TypeError, ValueError):
                raise ConversionError(f"{role} row {idx[0]}: {v!r} is neither a number nor a "
                                      "string") from None
    return out, names


def round_numeric(X: np.ndarray, typed: Typed) -> np.ndarray:
    """The numeric columns rounded to float32, as the device feeds them."""
    out = X.copy()
    for j in typed.numeric():
        out[:, j] = X[:, j].astype(np.float64).astype(np.float32).astype(np.float64)
    return out


def frame(X: np.ndarray, names: Sequence[str]) -> Any:
    """An object table as the DataFrame the estimator was fitted on: a column holding a string
    stays an object column, the others are float."""
    import pandas as pd

    data = {}
    for j, name in enumerate(names):
        col = X[:, j]
        data[name] = col if any(isinstance(v, str) for v in col.tolist()) else col.astype(np.float64)
    return pd.DataFrame(data, columns=list(names))


def input_specs(names: Sequence[str], typed: Typed, float_dtype: str = "float32") -> tuple[InputSpec, ...]:
    """One ONNX input per column, named as the column (skl2onnx maps ColumnTransformer columns
    to inputs by name)."""
    return tuple(InputSpec(name, float_dtype if k == "numeric" else "string", (name,))
                 for name, k in zip(names, typed.kinds))


def feeds(specs: Sequence[InputSpec], X: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays an engine takes for rows ``X``, whose columns are the specs' features in
    order (converter side: no validation, NaN kept)."""
    position = {n: j for j, n in enumerate(f for s in specs for f in s.features)}
    out = {}
    for spec in specs:
        cols = [position[f] for f in spec.features]
        block = X[:, cols]
        out[spec.name] = (np.ascontiguousarray(block.astype(np.float64), dtype=spec.dtype)
                          if spec.dtype != "string" else block.astype(str).astype(object))
    return out


def features(names: Sequence[str], typed: Typed, allow_nan: Sequence[bool], ranges: dict,
             bounds: Sequence[Optional[tuple[float, float]]]) -> list[Feature]:
    """The manifest's features: numeric ones as before, string ones with their kind."""
    out = []
    for j, name in enumerate(names):
        kind = typed.kinds[j]
        if kind == "numeric":
            b = bounds[j]
            out.append(Feature(name=name, allow_nan=allow_nan[j],
                               range=tuple(ranges[name]) if name in ranges else None,
                               train_min=b[0] if b else None, train_max=b[1] if b else None))
        else:
            if name in ranges:
                raise ConversionError(f"feature_ranges['{name}']: '{name}' is {kind}, not numeric")
            out.append(Feature(name=name, kind=kind, categories=typed.categories.get(name),
                               unknown=typed.unknown.get(name)))
    return out


def text_hint(X: np.ndarray, typed: Typed) -> str:
    """Why a text model may miss parity: non-ASCII text. skl2onnx's Tokenizer runs RE2, whose
    ``\\w`` is ASCII, so "café" becomes "caf" in ONNX but stays "café" in scikit-learn."""
    for j, kind in enumerate(typed.kinds):
        if kind == "text" and any(isinstance(v, str) and not v.isascii() for v in X[:, j].tolist()):
            return (f"; text feature column {j} holds non-ASCII characters, which the ONNX "
                    "tokenizer (RE2, [a-zA-Z0-9_]+) splits differently from scikit-learn's")
    return ""


def vectorizer_options(estimator: Any) -> dict[int, dict[str, Any]]:
    """skl2onnx options for each text vectorizer: a locale every device has."""
    return {id(s): {"locale": TEXT_LOCALE} for s in steps_of(estimator) if type(s).__name__ in VECTORIZERS}
