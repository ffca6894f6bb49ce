"""Bundles the telemetry tests share: a good breast_cancer model and one made worse on purpose."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    names = [n.replace(" ", "_") for n in d.feature_names]
    X_tr, X_te, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.25, random_state=0,
                                              stratify=d.target)
    return X_tr, y_tr, X_te, y_te, names


def build(out: Path) -> dict[str, Path]:
    """v1.0.0 good logistic, v2.0.0 the same trained on shuffled labels (worse), and a
    v1.1.0 forest (a different but good candidate for shadow / A/B / ensembles)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters import convert

    X_tr, y_tr, X_te, _, names = data()
    rng = np.random.default_rng(0)
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    bad = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        X_tr, rng.permutation(y_tr))
    forest = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X_tr, y_tr)
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for version, est in (("1.0.0", good), ("2.0.0", bad), ("1.1.0", forest)):
            paths[version] = convert(est, X_tr, out / version, name="cancer", version=version,
                                     holdout=X_te, feature_names=names)
    return paths
