"""Bundles the telemetry tests share: a good breast_cancer model and one made worse on purpose.
The tests read the committed copies (tests/data, written by scripts/make_test_bundles.py with
:func:`build_one`), so they run on a device install without scikit-learn."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

#: version -> what it is: v1.0.0 good logistic, v2.0.0 the same trained on shuffled labels
#: (worse), v1.1.0 a forest (a different but good candidate for shadow / A/B / ensembles).
VERSIONS = ("1.0.0", "2.0.0", "1.1.0")


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(X_train, y_train, X_test, y_test, names): breast_cancer split 75/25, stratified, seed 0."""
    from committed import breast_cancer_split

    X_tr, X_te, y_tr, y_te, names = breast_cancer_split()
    return X_tr, y_tr, X_te, y_te, names


def build(out: Path) -> dict[str, Path]:
    """version -> a copy under ``out`` of the committed bundle."""
    from committed import copy_bundle

    return {version: copy_bundle(f"cancer-{version}", out / version) for version in VERSIONS}


def build_one(version: str, out: Path) -> Path:
    """Train and convert one version into ``out`` (the generator's half: needs scikit-learn)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters import convert

    d = load_breast_cancer()
    names = [n.replace(" ", "_") for n in d.feature_names]
    X_tr, X_te, y_tr, _ = train_test_split(d.data, d.target, test_size=0.25, random_state=0,
                                           stratify=d.target)
    if version == "1.0.0":
        est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    elif version == "2.0.0":
        shuffled = np.random.default_rng(0).permutation(y_tr)
        est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, shuffled)
    else:
        est = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X_tr, y_tr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert(est, X_tr, out, name="cancer", version=version, holdout=X_te, feature_names=names)
