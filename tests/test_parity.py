"""Every supported estimator converts, and the onnxruntime backend reproduces scikit-learn on
held-out rows (the figures stored in the manifest are re-measured here independently)."""

from __future__ import annotations

import numpy as np
import pytest
from zoo import CASES, dataset, fitted

import edge_runtime


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_onnxruntime_matches_sklearn(case, bundles):
    est = fitted(case.id)
    _, _, X_te, _ = dataset(case.data)
    model = edge_runtime.load(bundles(case), backend="onnxruntime")
    parity = model.artifact.parity
    assert parity["passed"], parity
    assert parity["rows"] == X_te.shape[0]
    got = model.predict(X_te)
    want = est.predict(X_te)
    if case.task == "classification":
        assert np.array_equal(got.astype(str), want.astype(str))
        if hasattr(est, "predict_proba") and "probabilities" in model.artifact.outputs:
            diff = np.max(np.abs(model.predict_proba(X_te) - est.predict_proba(X_te)))
            assert diff <= 1e-4
    else:
        assert np.allclose(got, want, atol=1e-4 * (1 + np.abs(want).max()), rtol=0)
