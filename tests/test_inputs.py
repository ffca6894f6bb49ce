"""Every way a caller can pass rows works, and every bad input gets one InputError naming it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import edge_runtime
from edge_runtime.errors import EdgeRuntimeError, InputError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    strict = converters.convert(LogisticRegression(max_iter=1000).fit(X, y), X,
                                tmp_path_factory.mktemp("strict"), feature_names=names,
                                feature_ranges={"petal_width": [0.0, 10.0]})
    lenient = converters.convert(make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000)).fit(X, y),
                                 X, tmp_path_factory.mktemp("lenient"), feature_names=names)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    strings = converters.convert(LogisticRegression(max_iter=1000).fit(X, labels), X,
                                 tmp_path_factory.mktemp("strings"), feature_names=names)
    reg = converters.convert(LinearRegression().fit(X[:, :3], X[:, 3]), X[:, :3],
                             tmp_path_factory.mktemp("reg"))
    return {k: edge_runtime.load(v) for k, v in
            dict(strict=strict, lenient=lenient, strings=strings, reg=reg).items()}


ROW = [5.1, 3.5, 1.4, 0.2]
REC = dict(zip(["sepal_length", "sepal_width", "petal_length", "petal_width"], ROW))


@pytest.mark.parametrize("X", [
    np.array([ROW], dtype=np.float32), np.array([ROW]), np.array(ROW), [ROW], ROW, (tuple(ROW),), REC,
    [REC], pd.DataFrame([REC]), pd.DataFrame([REC])[["petal_width", "sepal_length", "sepal_width",
                                                     "petal_length"]],
    np.asfortranarray(np.array([ROW, ROW], dtype=np.float32))[:1],
    np.array([[5, 3, 1, 0]], dtype=np.int64),
])
def test_accepted_forms(models, X):
    m = models["strict"]
    out = m.predict(X)
    assert out.shape[0] == 1 and out[0] == 0
    assert m.predict_proba(X).shape == (1, 3)


@pytest.mark.parametrize("X,message", [
    ([[1.0, 2.0, 3.0]], "wrong number of features: expected 4"),
    (np.zeros((2, 5), dtype=np.float32), "wrong number of features: expected 4"),
    ([{**REC, "colour": 1}], "unknown feature name"),
    ([{k: v for k, v in REC.items() if k != "petal_length"}], "missing feature.*petal_length"),
    ([[5.1, "abc", 1.4, 0.2]], "feature 'sepal_width': 'abc' is not a number"),
    ([[str(v) for v in ROW]], "row 1, feature 'sepal_length': '5.1' is text, not a number"),
    (np.array([ROW]).astype(str), "row 1, feature 'sepal_length': '5.1' is text, not a number"),
    ([[5.1, 3.5, float("nan"), 0.2]], "feature 'petal_length': NaN"),
    ([ROW, [5.1, 3.5, 1.4, None]], "row 2, feature 'petal_width': NaN"),
    ([[5.1, 3.5, 1.4, 99.0]], "petal_width.*outside the allowed range"),
    (np.zeros((0, 4), dtype=np.float32), "no rows"),
    (np.zeros((1, 2, 4)), "must be 2-D"),
    (pd.DataFrame([{**REC, "extra": 1}]), "unknown column"),
    (pd.DataFrame([{**REC, "sepal_width": "wide"}]), "row 1, feature 'sepal_width': 'wide' is not a number"),
    ("5.1,3.5", "unsupported input type str"),
])
def test_rejected_with_named_field(models, X, message):
    with pytest.raises(InputError, match=message):
        models["strict"].predict(X)


def test_input_error_is_value_error_and_project_error(models):
    with pytest.raises(ValueError):
        models["strict"].predict([[1]])
    with pytest.raises(EdgeRuntimeError):
        models["strict"].predict([[1]])


def test_nan_allowed_where_model_imputes(models):
    m = models["lenient"]
    assert all(f.allow_nan for f in m.manifest.features)
    out = m.predict([[5.1, np.nan, 1.4, None]])
    assert out.shape == (1,)


def test_string_labels_and_regression(models):
    assert models["strings"].predict([ROW]).tolist() == ["setosa"]
    assert list(models["strings"].classes) == ["setosa", "versicolor", "virginica"]
    reg = models["reg"]
    y = reg.predict([[5.1, 3.5, 1.4]])
    assert y.shape == (1,) and y.dtype.kind == "f"
    with pytest.raises(EdgeRuntimeError, match="no probabilities"):
        reg.predict_proba([[5.1, 3.5, 1.4]])


def test_async_twins_match(models):
    import asyncio

    m = models["strict"]
    X = [ROW, [6.7, 3.0, 5.2, 2.3]]
    assert asyncio.run(m.predict_async(X)).tolist() == m.predict(X).tolist()
    assert np.array_equal(asyncio.run(m.predict_proba_async(X)), m.predict_proba(X))


def test_fast_path_does_not_copy(models):
    m = models["strict"]
    x = np.array([ROW], dtype=np.float32)
    assert m._adapt(x) is x


def test_info_describes_the_model(models):
    # the default load may route between engines (its measurement decides, machine by machine):
    # info names whatever serves; pinned, that is the engine asked for
    assert models["strict"].info["backend"] == models["strict"].backend.name
    info = edge_runtime.load(models["strict"].info["source"], backend="onnxruntime").info
    assert info["backend"] == "onnxruntime" and info["task"] == "classification"
    assert info["artifact"]["format"] == "onnx" and len(info["artifact"]["sha256"]) == 64
    assert info["parity"]["passed"] is True
