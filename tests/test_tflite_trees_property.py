"""Property test: whatever the tree shape, depth, feature count, missing values and strategy
(GEMM for small models, unrolled traversal for larger ones, the compact WHILE traversal at
int8), the TFLite program reaches the leaf scikit-learn reaches. Checked exactly in fp32 on
the leaf values themselves (a regression tree's prediction is its leaf's value)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("ai_edge_litert")


def _run(data: bytes, X: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    inp = it.get_input_details()[0]["index"]
    it.resize_tensor_input(inp, list(X.shape))
    it.allocate_tensors()
    it.set_tensor(inp, X.astype(np.float32))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_features=st.integers(1, 12), depth=st.integers(1, 9),
       n_trees=st.sampled_from([1, 1, 3, 12]), nan_share=st.sampled_from([0.0, 0.0, 0.2]),
       precision=st.sampled_from(["fp32", "fp32", "int8"]))
def test_tflite_trees_reach_sklearns_leaf(seed, n_features, depth, n_trees, nan_share, precision):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    from converters.core import ExportContext
    from converters.tflite import export_tflite

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, n_features)) * rng.uniform(0.01, 100, n_features)
    y = np.sin(X[:, 0]) + rng.normal(scale=0.1, size=300) + np.arange(300) % 7  # many distinct leaves
    X[rng.random(X.shape) < nan_share] = np.nan
    est = (DecisionTreeRegressor(max_depth=depth, random_state=seed) if n_trees == 1 else
           RandomForestRegressor(n_estimators=n_trees, max_depth=depth, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    X32 = X.astype(np.float32).astype(np.float64)
    exported = export_tflite(ExportContext(est, n_features, "regression", False, None, X32, []), precision)
    got, want = _run(exported.data, X32), est.predict(X32)
    if precision == "fp32":  # the same leaves, summed in float32
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max()), exported.extra["strategy"]
    else:  # fp16 thresholds and int8 values: close, and the same leaves almost everywhere
        span = np.ptp(want) or 1.0
        assert np.mean(np.abs(got - want) <= 0.02 * span) >= 0.95, exported.extra["strategy"]
