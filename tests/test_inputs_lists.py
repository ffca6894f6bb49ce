"""The numpy-free input path (Pyodide's core) accepts and rejects what the numpy path does,
with the same messages, and rounds to float32 the same way."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.bundle import Feature
from edge_runtime.errors import InputError
from edge_runtime.inputs import InputAdapter, ListInputAdapter, Rows

pytestmark = pytest.mark.device

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FEATURES = [Feature(n, allow_nan=False, range=(0.0, 10.0) if n == "petal_width" else None) for n in NAMES]
ROW = [5.1, 3.5, 1.4, 0.2]
REC = dict(zip(NAMES, ROW))


@pytest.fixture(scope="module")
def adapters():
    return InputAdapter(FEATURES, "float32"), ListInputAdapter(FEATURES, "float32")


@pytest.mark.parametrize("X", [[ROW], ROW, (tuple(ROW),), REC, [REC], [REC, ROW],
                               [[5, 3, 1, 0]], [ROW, [6.7, 3.0, 5.2, 2.3]], [[True, 3, 1, 0]]])
def test_accepted_forms_give_the_same_float32_matrix(adapters, X):
    with_numpy, pure = adapters
    got = pure(X)
    assert isinstance(got, Rows) and got.dtype == "float32"
    assert got.tolist() == with_numpy(X).tolist()
    assert got.shape == with_numpy(X).shape


@pytest.mark.parametrize("X,message", [
    ([[1.0, 2.0, 3.0]], "wrong number of features: expected 4"),
    ([ROW, [1.0, 2.0]], "row 2: wrong number of features: expected 4"),
    ([{**REC, "colour": 1}], "unknown feature name"),
    ([{k: v for k, v in REC.items() if k != "petal_length"}], "missing feature.*petal_length"),
    ([[5.1, "abc", 1.4, 0.2]], "row 1, feature 'sepal_width': 'abc' is not a number"),
    ([ROW, [5.1, "3.5", 1.4, 0.2]], "row 2, feature 'sepal_width': '3.5' is text, not a number"),
    ([[5.1, 3.5, float("nan"), 0.2]], "feature 'petal_length': NaN"),
    ([ROW, [5.1, 3.5, 1.4, None]], "row 2, feature 'petal_width': NaN"),
    ([[5.1, 3.5, 1.4, 99.0]], "petal_width.*outside the allowed range"),
    ([], "no rows"),
    ([[[1.0, 2.0, 3.0, 4.0]]], "must be 2-D"),
    ("5.1,3.5", "unsupported input type str"),
    (42, "unsupported input type int"),
    ([ROW, 1.0], "mix of rows and scalars"),
])
def test_rejected_with_named_field(adapters, X, message):
    _, pure = adapters
    with pytest.raises(InputError, match=message):
        pure(X)


def test_float64_artifacts_keep_doubles():
    pure = ListInputAdapter(FEATURES, "float64")
    assert pure([[0.1, 0.2, 0.3, 0.4]]).tolist() == [[0.1, 0.2, 0.3, 0.4]]
    with pytest.raises(InputError, match="not supported without numpy"):
        ListInputAdapter(FEATURES, "int8")


def test_nan_allowed_where_model_imputes():
    pure = ListInputAdapter([Feature(n, allow_nan=True) for n in NAMES])
    got = pure([[5.1, None, float("nan"), 0.2]]).tolist()[0]
    assert math.isnan(got[1]) and math.isnan(got[2])


@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32,
                                   min_value=0, max_value=10), min_size=4, max_size=4),
                min_size=1, max_size=6))
def test_same_values_as_numpy_path(rows):
    with_numpy, pure = InputAdapter(FEATURES), ListInputAdapter(FEATURES)
    assert pure(rows).tolist() == np.asarray(with_numpy(rows)).tolist()


_value = st.one_of(st.floats(width=32, min_value=-20, max_value=20), st.none(), st.just(float("nan")),
                   st.just(float("inf")), st.integers(-20, 20))


@given(st.lists(st.lists(_value, min_size=4, max_size=4), min_size=1, max_size=5),
       st.booleans())
def test_same_verdict_and_message_as_numpy_path(rows, allow_nan):
    features = [Feature(n, allow_nan=allow_nan, range=(0.0, 10.0) if n in ("sepal_width", "petal_width")
                        else None) for n in NAMES]
    with_numpy, pure = InputAdapter(features), ListInputAdapter(features)

    def verdict(adapter):
        try:
            got = np.asarray(adapter(rows).tolist()).tolist()
            return "ok", [[None if v != v else v for v in r] for r in got]
        except InputError as exc:
            return "error", str(exc)

    assert verdict(pure) == verdict(with_numpy)
