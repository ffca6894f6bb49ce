"""The estimator zoo every parity suite runs: each supported family, binary and multi-class,
classifier and regressor, plus pipelines with scalers, imputers and one-hot encoding.

Models are small (fast to train and convert) but real; data ships with scikit-learn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Case:
    id: str
    task: str  # classification | regression
    data: str  # binary | multiclass | regression | mixed
    make: Callable[[], Any]


@cache
def dataset(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test), float32-representable features."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
    from sklearn.model_selection import train_test_split

    if kind == "binary":
        X, y = load_breast_cancer(return_X_y=True)
    elif kind == "multiclass":
        X, y = load_wine(return_X_y=True)
    elif kind == "iris":
        X, y = load_iris(return_X_y=True)
    elif kind == "regression":
        X, y = load_diabetes(return_X_y=True)
    elif kind == "mixed":  # numeric columns with gaps + two integer-coded categoricals
        X, y = load_breast_cancer(return_X_y=True)
        rng = np.random.default_rng(0)
        X = X[:, :8].copy()
        X[rng.random(X.shape) < 0.05] = np.nan
        cat1 = rng.integers(0, 4, size=(X.shape[0], 1))
        cat2 = (y[:, None] + rng.integers(0, 2, size=(X.shape[0], 1))) % 3
        X = np.hstack([X, cat1, cat2])
    else:
        raise KeyError(kind)
    X = X.astype(np.float32).astype(np.float64)
    strat = y if kind != "regression" else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=strat)
    return X_tr, y_tr, X_te, y_te


def _pipe(*steps: Any) -> Any:
    from sklearn.pipeline import make_pipeline

    return make_pipeline(*steps)


def _cases() -> list[Case]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    S = StandardScaler
    clf: dict[str, Callable[[], Any]] = {
        "logistic": lambda: _pipe(S(), LogisticRegression(max_iter=2000)),
        "sgd": lambda: _pipe(S(), SGDClassifier(loss="log_loss", random_state=0)),
        "linearsvc": lambda: _pipe(S(), LinearSVC(random_state=0)),
        "svc": lambda: _pipe(S(), SVC(probability=True, random_state=0)),
        "tree": lambda: DecisionTreeClassifier(max_depth=6, random_state=0),
        "forest": lambda: RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
        "extratrees": lambda: ExtraTreesClassifier(n_estimators=30, max_depth=8, random_state=0),
        "gbdt": lambda: GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0),
        "hgb": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
        "mlp": lambda: _pipe(S(), MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0)),
        "knn": lambda: _pipe(S(), KNeighborsClassifier(5)),
        "gnb": lambda: GaussianNB(),
        "minmax-logistic": lambda: _pipe(MinMaxScaler(), LogisticRegression(max_iter=2000)),
    }
    reg: dict[str, Callable[[], Any]] = {
        "linear": lambda: LinearRegression(),
        "ridge": lambda: _pipe(S(), Ridge(alpha=1.0)),
        "tree": lambda: DecisionTreeRegressor(max_depth=6, random_state=0),
        "forest": lambda: RandomForestRegressor(n_estimators=30, max_depth=8, random_state=0),
        "extratrees": lambda: ExtraTreesRegressor(n_estimators=30, max_depth=8, random_state=0),
        "gbdt": lambda: GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0),
        "hgb": lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
        "mlp": lambda: _pipe(S(), MLPRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=0)),
        "knn": lambda: _pipe(S(), KNeighborsRegressor(5)),
    }
    cases = []
    for name, make in clf.items():
        for data in ("binary", "multiclass"):
            cases.append(Case(f"{name}-{data}", "classification", data, make))
    for name, make in reg.items():
        cases.append(Case(f"{name}-regression", "regression", "regression", make))

    def column_pipe() -> Any:
        num = _pipe(SimpleImputer(strategy="median"), S())
        cats = OneHotEncoder(handle_unknown="ignore")
        pre = ColumnTransformer([("num", num, list(range(8))), ("cat", cats, [8, 9])])
        return _pipe(pre, LogisticRegression(max_iter=2000))

    cases.append(Case("columntransformer-mixed", "classification", "mixed", column_pipe))
    cases.append(Case("imputer-hgb-mixed", "classification", "mixed",
                      lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0)))
    return cases


CASES = _cases()


@cache
def fitted(case_id: str) -> Any:
    case = next(c for c in CASES if c.id == case_id)
    X, y, _, _ = dataset(case.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return case.make().fit(X, y)
