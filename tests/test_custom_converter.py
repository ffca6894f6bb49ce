"""Estimators skl2onnx cannot convert get a one-line error that names them, gives skl2onnx's
reason and says how to get further (edgert wrap, register_converter); registering one (a small
custom transformer) makes conversion work."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from zoo import dataset

import converters
import edge_runtime
from converters import UnsupportedEstimatorError, register_converter


class LogScaler(BaseEstimator, TransformerMixin):
    """log1p of the absolute value times a learned per-feature scale: a typical custom step."""

    def fit(self, X, y=None):
        self.scale_ = 1.0 / (np.log1p(np.abs(X)).std(axis=0) + 1e-9)
        return self

    def transform(self, X):
        return np.log1p(np.abs(X)) * self.scale_


class Mystery(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def log_scaler_shape(operator):
    from skl2onnx.common.data_types import FloatTensorType

    n = operator.inputs[0].type.shape[1]
    operator.outputs[0].type = FloatTensorType([None, n])


def log_scaler_converter(scope, operator, container):
    from skl2onnx.algebra.onnx_ops import OnnxAbs, OnnxAdd, OnnxLog, OnnxMul

    op = operator.raw_operator
    opv = container.target_opset
    x = operator.inputs[0]
    one = np.array([1.0], dtype=np.float32)
    logged = OnnxLog(OnnxAdd(OnnxAbs(x, op_version=opv), one, op_version=opv), op_version=opv)
    out = OnnxMul(logged, op.scale_.astype(np.float32), op_version=opv,
                  output_names=operator.outputs[:1])
    out.add_to(scope, container)


def test_unsupported_estimator_error_says_how_to_fix(tmp_path):
    X, y, _, _ = dataset("iris")
    pipe = make_pipeline(Mystery(), LogisticRegression(max_iter=500)).fit(X, y)
    with pytest.raises(UnsupportedEstimatorError) as info:
        converters.convert(pipe, X, tmp_path / "b")
    msg = str(info.value)
    assert "\n" not in msg  # one line: the estimator, skl2onnx's reason, the two ways out
    assert msg.startswith("cannot convert Pipeline(Mystery → LogisticRegression): skl2onnx: ")
    assert "Mystery" in msg.split("skl2onnx: ", 1)[1]
    assert "edgert wrap" in msg and "register_converter(" in msg
    assert not (tmp_path / "b").exists()


def test_registered_custom_transformer_converts_with_parity(tmp_path):
    register_converter(LogScaler, log_scaler_shape, log_scaler_converter, alias="TestLogScaler")
    X, y, X_te, _ = dataset("binary")
    pipe = make_pipeline(LogScaler(), LogisticRegression(max_iter=3000)).fit(X, y)
    model = edge_runtime.load(converters.convert(pipe, X, tmp_path / "b", holdout=X_te))
    assert model.artifact.parity["passed"]
    assert np.array_equal(model.predict(X_te), pipe.predict(X_te))
    assert np.max(np.abs(model.predict_proba(X_te) - pipe.predict_proba(X_te))) < 1e-4
