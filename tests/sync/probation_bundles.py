"""The probation tests' bundles: breast_cancer logistic versions that judge differently and
diabetes ridge versions. Tests read the committed copies (tests/data); scripts/make_test_bundles.py
trains them with :func:`train`. The row orders replay the seeded generator the training used."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: cancer 1.0.0 trained on half the data; 1.1.0 on shuffled labels; 1.2.0 retrained on all of it;
#: 1.3.0 so regularised it answers one class always. diabetes 1.0.0 on half, 1.1.0 on all, 1.2.0 shuffled.
VERSIONS = {"cancer": ("1.0.0", "1.1.0", "1.2.0", "1.3.0"), "diabetes": ("1.0.0", "1.1.0", "1.2.0")}
DATA = {"cancer": "binary", "diabetes": "regression"}


def lr_pipeline(C: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def train(model: str, version: str, out: Path) -> Path:
    """Fit and convert ``model`` ``version`` into ``out`` (needs scikit-learn)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from zoo import dataset

    from converters import convert

    X, y, X_te, _ = dataset(DATA[model])
    rng = np.random.default_rng(0)
    half = rng.permutation(len(X))[: len(X) // 2]
    shuffled = rng.permutation(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model == "cancer":
            fit = {"1.0.0": (1.0, X[half], y[half]), "1.1.0": (1.0, X, shuffled), "1.2.0": (1.0, X, y),
                   "1.3.0": (1e-6, X, y)}[version]
            est = lr_pipeline(C=fit[0]).fit(fit[1], fit[2])
            return convert(est, X, out, name="cancer", version=version, holdout=X_te, sample_y=y)
        xy = {"1.0.0": (X[half], y[half]), "1.1.0": (X, y), "1.2.0": (X, shuffled)}[version]
        return convert(make_pipeline(StandardScaler(), Ridge()).fit(*xy), X, out, name="diabetes",
                       version=version, holdout=X_te)


def committed(model: str, out: Path) -> dict[str, Path]:
    """version -> a copy under ``out`` of the committed ``probation-<model>-<version>`` bundle."""
    from committed import copy_bundle

    return {v: copy_bundle(f"probation-{model}-{v}", out / v) for v in VERSIONS[model]}


def live_rows(model: str) -> tuple[np.ndarray, np.ndarray]:
    """Every training and test row once, shuffled as live traffic, and their true targets: the
    generator's third draw after the two training used (the half and the shuffled labels)."""
    from committed import dataset

    X, y, X_te, y_te = dataset(DATA[model])
    rng = np.random.default_rng(0)
    rng.permutation(len(X))
    rng.permutation(len(y))
    order = rng.permutation(len(X) + len(X_te))
    return np.vstack([X, X_te])[order], np.concatenate([y, y_te])[order]
