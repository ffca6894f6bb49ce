"""Conversion failures say what failed: a parity miss is reported as the parity miss (figure,
estimator, artifact) even when the float64 fallback cannot be loaded by the engine."""

from __future__ import annotations

import warnings

import pytest
from zoo import dataset

import converters
import edge_runtime


@pytest.fixture(scope="module")
def categorical_hgb():
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, X_te, _ = dataset("mixed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = HistGradientBoostingClassifier(max_iter=30, random_state=0, categorical_features=[8, 9]).fit(X, y)
    return est, X, X_te


def test_parity_miss_is_the_finding_when_the_fp64_fallback_cannot_load(categorical_hgb, tmp_path):
    est, X, X_te = categorical_hgb
    with pytest.raises(converters.ParityError) as err:
        converters.convert(est, X, tmp_path / "b", holdout=X_te)
    msg = str(err.value)
    assert msg.startswith("cannot convert HistGradientBoostingClassifier: parity missed on ")
    assert "edgert wrap" in msg and "\n" not in msg
    assert "onnx/fp32: " in msg and "probabilities max abs diff" in msg
    assert "fp64 fallback skipped: onnxruntime cannot run it" in msg and "tensor(double)" in msg
    assert "'parity'" not in msg
    fig = err.value.figures["onnx/fp32"]
    assert fig["probabilities_max_abs_diff"] > 1e-4 and not fig["passed"]
    assert not (tmp_path / "b").exists()


def test_forced_bundle_records_the_skipped_fallback_and_is_proven_on_its_own_outputs(categorical_hgb, tmp_path):
    est, X, X_te = categorical_hgb
    b = converters.convert(est, X, tmp_path / "b", holdout=X_te, force=True)
    model = edge_runtime.load(b, backend="onnxruntime")  # golden rows checked, both batch sizes
    assert model.artifact.precision == "fp32" and model.artifact.parity["passed"] is False
    assert model.artifact.parity["fallback"].startswith("fp64 fallback skipped")
    assert "own outputs" in model.artifact.extra["golden"]["source"]
