"""IsolationForest and KMeans bundles: the manifest's task says what the outputs mean, and the
runtime decodes them (predict = labels; decision_function / transform = scores), proven by the
golden rows; VotingClassifier converts through the flatten_transform=False copy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from zoo import dataset

import converters
import edge_runtime
from edge_runtime.errors import EdgeRuntimeError


def _fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


def test_isolation_forest_labels_and_scores(tmp_path):
    from sklearn.ensemble import IsolationForest

    X, _, X_te, _ = dataset("binary")
    est = _fit(IsolationForest(n_estimators=20, random_state=0), X)
    bundle = converters.convert(est, X, tmp_path / "b", holdout=X_te)
    model = edge_runtime.load(bundle, backend="onnxruntime")
    assert model.task == "anomaly" and model.manifest.classes == [-1, 1]
    assert np.array_equal(model.predict(X_te), est.predict(X_te))
    assert (est.predict(X_te) == -1).any()  # the held-out rows hold outliers: labels are tested
    assert np.max(np.abs(model.decision_function(X_te) - est.decision_function(X_te))) <= 1e-4
    assert model.artifact.parity["scores_max_abs_diff"] <= 1e-4
    with pytest.raises(EdgeRuntimeError, match="transform"):
        model.transform(X_te)
    # the numpy backend runs it too (its LabelEncoder maps the trees' votes to -1/1)
    on_numpy = edge_runtime.load(bundle, backend="numpy")
    assert np.array_equal(on_numpy.predict(X_te), est.predict(X_te))
    assert np.max(np.abs(on_numpy.decision_function(X_te) - est.decision_function(X_te))) <= 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
def test_kmeans_labels_and_distances(tmp_path, backend):
    from sklearn.cluster import KMeans

    X, _, X_te, _ = dataset("multiclass")
    est = _fit(KMeans(3, n_init=3, random_state=0), X)
    model = edge_runtime.load(converters.convert(est, X, tmp_path / "b", holdout=X_te), backend=backend)
    assert model.task == "clustering" and model.manifest.classes == [0, 1, 2]
    assert np.array_equal(model.predict(X_te), est.predict(X_te))
    want = est.transform(X_te)
    assert model.transform(X_te).shape == want.shape
    assert np.max(np.abs(model.transform(X_te) - want)) <= 1e-4 * (1 + np.abs(want).max())
    assert model.check_golden()
    with pytest.raises(EdgeRuntimeError, match="no probabilities"):
        model.predict_proba(X_te)


def test_soft_voting_converts(tmp_path):
    from sklearn.ensemble import RandomForestClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y, X_te, _ = dataset("binary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = VotingClassifier([("lr", LogisticRegression(max_iter=3000)),
                                ("rf", RandomForestClassifier(10, random_state=0))], voting="soft").fit(X, y)
    model = edge_runtime.load(converters.convert(est, X, tmp_path / "b", holdout=X_te))
    assert est.flatten_transform  # the user's estimator is left as it was
    assert np.max(np.abs(model.predict_proba(X_te) - est.predict_proba(X_te))) <= 1e-4


def test_edgert_predict_gives_anomaly_labels(tmp_path, cli_env):
    import subprocess
    import sys

    from sklearn.ensemble import IsolationForest
    from test_cli import write_csv

    X, _, X_te, _ = dataset("binary")
    est = _fit(IsolationForest(n_estimators=20, random_state=0), X)
    converters.convert(est, X, tmp_path / "b", holdout=X_te)
    rows = write_csv(tmp_path / "in.csv", X_te, [f"x{i}" for i in range(X.shape[1])])
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", str(tmp_path / "b"), str(rows),
                        "--backend", "onnxruntime"], capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 0, r.stderr
    got = [int(v) for v in r.stdout.split()[1:]]
    assert got == est.predict(X_te).tolist()
