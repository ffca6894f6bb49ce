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

    if kind in ("strings", "text"):
        return _typed_dataset(kind)
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


COLORS, SIZES = ("red", "green", "blue", "teal"), ("S", "M", "L", "XL")
WORDS = ("good", "great", "nice", "bad", "awful", "terrible", "plot", "acting", "movie", "film")


def _typed_dataset(kind: str) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Tables with string columns, as pandas DataFrames: ``strings`` (two categories and a
    number) or ``text`` (a free-text review and a number); labels follow from the columns."""
    import pandas as pd

    def table(n: int, seed: int) -> tuple[Any, np.ndarray]:
        rng = np.random.default_rng(seed)
        if kind == "strings":
            df = pd.DataFrame({"color": rng.choice(COLORS, n), "size": rng.choice(SIZES, n),
                               "weight": np.float32(rng.normal(size=n) * 3 + 1).astype(np.float64)})
            y = (((df["color"] == "red") ^ (df["weight"] > 1)) | (df["size"] == "XL")).to_numpy().astype(int)
            return df, y
        df = pd.DataFrame({"review": [" ".join(rng.choice(WORDS, int(rng.integers(1, 8)))) for _ in range(n)],
                           "stars": rng.integers(1, 6, n).astype(float)})
        good = df["review"].str.count("good|great|nice")
        bad = df["review"].str.count("bad|awful|terrible")
        return df, np.where(good > bad, "pos", np.where(good < bad, "neg", "mixed"))

    X_tr, y_tr = table(600, 0)
    X_te, y_te = table(300, 1)
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


# --- the wide zoo (issue 16): every family people train, each measured on every backend ---------
class _TrainedBooster:
    """``fit`` returns a bare LightGBM / XGBoost Booster trained on the data: the object users of
    ``lightgbm.train`` / ``xgboost.train`` have in hand (converted through the Booster path)."""

    def __init__(self, library: str, objective: str):
        self.library, self.objective = library, objective

    def fit(self, X: np.ndarray, y: np.ndarray) -> Any:
        if self.library == "lightgbm":
            import lightgbm

            params = {"objective": self.objective, "num_leaves": 8, "verbose": -1, "seed": 0}
            return lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=20)
        import xgboost

        return xgboost.train({"objective": self.objective, "max_depth": 3, "seed": 0},
                             xgboost.DMatrix(X, y), num_boost_round=20)


def _wide_cases() -> list[Case]:
    import catboost
    import lightgbm
    import xgboost
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        AdaBoostClassifier,
        AdaBoostRegressor,
        BaggingClassifier,
        BaggingRegressor,
        IsolationForest,
        RandomForestClassifier,
        StackingClassifier,
        StackingRegressor,
        VotingClassifier,
        VotingRegressor,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.preprocessing import (
        MaxAbsScaler,
        Normalizer,
        OneHotEncoder,
        OrdinalEncoder,
        PolynomialFeatures,
        QuantileTransformer,
        RobustScaler,
        StandardScaler,
    )
    from sklearn.svm import SVC, SVR, LinearSVR
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    S = StandardScaler
    lr = lambda: LogisticRegression(max_iter=3000)  # noqa: E731
    tree = lambda: DecisionTreeClassifier(max_depth=4, random_state=0)  # noqa: E731
    lgbm_c = lambda: lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1, random_state=0)  # noqa: E731
    xgb_c = lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0)  # noqa: E731
    cat_c = lambda: catboost.CatBoostClassifier(iterations=20, depth=3, verbose=0, random_seed=0,  # noqa: E731
                                                allow_writing_files=False, thread_count=1)
    C, R = "classification", "regression"
    spec: list[tuple[str, str, str, Callable[[], Any]]] = [
        ("polynomial-ridge", R, "regression", lambda: _pipe(PolynomialFeatures(2), S(), Ridge(alpha=1.0))),
        ("pca-logistic", C, "binary", lambda: _pipe(S(), PCA(8, random_state=0), lr())),
        ("pca-logistic", C, "multiclass", lambda: _pipe(S(), PCA(5, random_state=0), lr())),
        # iris: skl2onnx's QuantileTransformer converter takes time superlinear in the features
        # (~80 s an export at 10 features on the 2-core machine, 0.5 s at 4)
        ("quantile-logistic", C, "iris", lambda: _pipe(QuantileTransformer(n_quantiles=50), lr())),
        ("calibrated-svc", C, "binary", lambda: _pipe(S(), CalibratedClassifierCV(SVC(), cv=3))),
        ("calibrated-svc", C, "multiclass", lambda: _pipe(S(), CalibratedClassifierCV(SVC(), cv=3))),
        ("stacking", C, "binary", lambda: StackingClassifier(
            [("lr", _pipe(S(), lr())), ("tree", tree())], final_estimator=lr(), cv=3)),
        ("stacking", R, "regression", lambda: StackingRegressor(
            [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))],
            final_estimator=Ridge(), cv=3)),
        ("bagging", C, "binary", lambda: BaggingClassifier(tree(), n_estimators=10, random_state=0)),
        ("bagging", R, "regression", lambda: BaggingRegressor(
            DecisionTreeRegressor(max_depth=4, random_state=0), n_estimators=10, random_state=0)),
        ("adaboost", C, "binary", lambda: AdaBoostClassifier(n_estimators=20, random_state=0)),
        ("adaboost", C, "multiclass", lambda: AdaBoostClassifier(n_estimators=20, random_state=0)),
        ("adaboost", R, "regression", lambda: AdaBoostRegressor(n_estimators=20, random_state=0)),
        ("voting-soft", C, "binary", lambda: VotingClassifier(
            [("lr", _pipe(S(), lr())), ("rf", RandomForestClassifier(10, max_depth=5, random_state=0))],
            voting="soft")),
        ("voting-hard", C, "multiclass", lambda: VotingClassifier(
            [("lr", _pipe(S(), lr())), ("tree", tree()), ("rf", RandomForestClassifier(10, random_state=0))],
            voting="hard")),
        ("voting", R, "regression", lambda: VotingRegressor(
            [("lin", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))])),
        ("svr", R, "regression", lambda: _pipe(S(), SVR(C=50.0))),
        ("linearsvr", R, "regression", lambda: _pipe(S(), LinearSVR(C=1.0, max_iter=20000, random_state=0))),
        ("robust-logistic", C, "binary", lambda: _pipe(RobustScaler(), lr())),
        ("maxabs-logistic", C, "multiclass", lambda: _pipe(MaxAbsScaler(), lr())),
        ("normalizer-logistic", C, "binary", lambda: _pipe(Normalizer(), S(), lr())),
        ("passthrough-columns", C, "binary", lambda: _pipe(
            ColumnTransformer([("s", S(), [0, 1, 2])], remainder="passthrough"), lr())),
        ("lightgbm", C, "binary", lgbm_c),
        ("lightgbm", C, "multiclass", lgbm_c),
        ("lightgbm", R, "regression", lambda: lightgbm.LGBMRegressor(
            n_estimators=20, num_leaves=8, verbose=-1, random_state=0)),
        ("lightgbm-booster", C, "binary", lambda: _TrainedBooster("lightgbm", "binary")),
        ("imputer-lightgbm", C, "mixed", lambda: _pipe(SimpleImputer(strategy="median"), lgbm_c())),
        ("xgboost", C, "binary", xgb_c),
        ("xgboost", C, "multiclass", xgb_c),
        ("xgboost", R, "regression", lambda: xgboost.XGBRegressor(n_estimators=20, max_depth=3, random_state=0)),
        ("xgboost-booster", R, "regression", lambda: _TrainedBooster("xgboost", "reg:squarederror")),
        ("imputer-xgboost", C, "mixed", lambda: _pipe(SimpleImputer(strategy="median"), xgb_c())),
        ("catboost", C, "binary", cat_c),
        ("catboost", C, "multiclass", cat_c),
        ("catboost", R, "regression", lambda: catboost.CatBoostRegressor(
            iterations=20, depth=3, verbose=0, random_seed=0, allow_writing_files=False, thread_count=1)),
        ("imputer-catboost", C, "mixed", lambda: _pipe(SimpleImputer(strategy="median"), cat_c())),
        ("onehot-scaler-logistic", C, "strings", lambda: _pipe(ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "size"]), ("num", S(), ["weight"])]), lr())),
        ("ordinal-forest", C, "strings", lambda: _pipe(ColumnTransformer(
            [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["color", "size"]),
             ("num", "passthrough", ["weight"])]), RandomForestClassifier(10, max_depth=6, random_state=0))),
        ("tfidf-logistic", C, "text", lambda: _pipe(ColumnTransformer(
            [("t", TfidfVectorizer(ngram_range=(1, 2)), "review"), ("n", S(), ["stars"])]), lr())),
        ("isolationforest", "anomaly", "binary", lambda: IsolationForest(n_estimators=20, random_state=0)),
        ("kmeans", "clustering", "multiclass", lambda: _pipe(S(), KMeans(3, n_init=3, random_state=0))),
        ("minibatchkmeans", "clustering", "binary", lambda: MiniBatchKMeans(4, n_init=3, random_state=0)),
    ]
    return [Case(f"{name}-{data}", task, data, make) for name, task, data, make in spec]


@cache
def zoo_cases() -> tuple[Case, ...]:
    """The issue-16 zoo: the wide families above plus the TFLite-compiled ones of :data:`CASES`
    (built on first use: it imports LightGBM, XGBoost and CatBoost, which other suites need not)."""
    return tuple(_wide_cases() + [c for c in CASES if c.id in (
        "logistic-binary", "forest-multiclass", "tree-multiclass", "gbdt-regression", "mlp-regression")])


@cache
def zoo_fitted(case_id: str) -> Any:
    case = next(c for c in zoo_cases() if c.id == case_id)
    if case in CASES:
        return fitted(case_id)
    X, y, _, _ = dataset(case.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return case.make().fit(X, y)


def reference(est: Any, task: str, X: np.ndarray) -> dict[str, np.ndarray]:
    """The framework's own outputs on ``X``: what every backend must reproduce."""
    from converters.boosting import as_estimator

    est = as_estimator(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"label" if task != "regression" else "prediction": np.asarray(est.predict(X)).reshape(X.shape[0], -1)}
        if task == "classification" and hasattr(est, "predict_proba"):
            out["probabilities"] = np.asarray(est.predict_proba(X))
        if task == "anomaly":
            out["scores"] = np.asarray(est.decision_function(X))
        if task == "clustering":
            out["scores"] = np.asarray(est.transform(X))
    if "label" in out:
        out["label"] = out["label"].reshape(-1)
    else:
        out["prediction"] = out["prediction"].reshape(-1)
    return out


def _tflite_note(est: Any) -> str | None:
    """None where the TFLite compiler takes ``est``, else why not (one line)."""
    from converters import UnsupportedEstimatorError
    from converters.boosting import as_estimator
    from converters.tflite.compile import split

    try:
        split(as_estimator(est))
    except UnsupportedEstimatorError as exc:
        return str(exc).split(". ")[0]
    return None


def measure(case: Case, workdir: Any) -> dict[str, Any]:
    """Convert ``case`` (ONNX, plus TFLite where the compiler takes it), load it on every backend
    and compare with the framework on the held-out rows. Returns the figures per backend; a
    backend that cannot run the artifact is recorded with its reason, never silently dropped."""
    from pathlib import Path

    import converters
    import edge_runtime
    from converters.registry import describe
    from edge_runtime.errors import UnsupportedModelError

    est = zoo_fitted(case.id)
    X, _, X_te, _ = dataset(case.data)
    note = _tflite_note(est)
    formats = ("onnx",) if note else ("onnx", "tflite")
    bundle = converters.convert(est, X, Path(workdir) / case.id, holdout=X_te, formats=formats)
    want = reference(est, case.task, X_te)
    row: dict[str, Any] = {"id": case.id, "task": case.task, "data": case.data,
                           "family": edge_runtime.load(bundle, verify=False, backend="onnxruntime").manifest
                           .provenance.get("estimator", describe(est)), "backends": {}}
    for backend in ("onnxruntime", "numpy", "litert"):
        if backend == "litert" and note:
            row["backends"][backend] = {"skipped": f"no TFLite artifact: {note}"}
            continue
        try:
            model = edge_runtime.load(bundle, backend=backend)
        except UnsupportedModelError as exc:
            row["backends"][backend] = {"skipped": str(exc).split(";")[0]}
            continue
        row["backends"][backend] = compare(model, case.task, X_te, want)
    return row


def compare(model: Any, task: str, X: np.ndarray, want: dict[str, np.ndarray]) -> dict[str, Any]:
    """Label agreement and the worst differences of one loaded model against ``want``."""
    fig: dict[str, Any] = {}
    if "label" in want:
        fig["label_agreement"] = float(np.mean(model.predict(X).astype(str) == want["label"].astype(str)))
    if "probabilities" in want:
        fig["max_abs_dp"] = float(np.max(np.abs(model.predict_proba(X) - want["probabilities"])))
    for key in ("prediction", "scores"):
        if key in want:
            got = model.predict(X) if key == "prediction" else model.scores(X)
            w = want[key].astype(np.float64)
            diff = np.abs(np.asarray(got, np.float64).reshape(w.shape) - w)
            fig[f"max_rel_{key}"] = float(np.max(diff) / (1.0 + float(np.max(np.abs(w)))))
    fig["passed"] = (fig.get("label_agreement", 1.0) == 1.0 and fig.get("max_abs_dp", 0.0) <= 1e-4
                     and fig.get("max_rel_prediction", 0.0) <= 1e-4 and fig.get("max_rel_scores", 0.0) <= 1e-4)
    return fig
