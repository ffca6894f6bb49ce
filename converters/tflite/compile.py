"""scikit-learn -> TFLite, per model family, with builtin operators only.

- linear models and MLPs: scalers of a pipeline folded into the first layer's weights, a
  SimpleImputer as NOT_EQUAL + SELECT_V2 (NaN != NaN), then FULLY_CONNECTED layers;
- tree ensembles: see ``trees.py``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import ConversionError, UnsupportedEstimatorError
from .builder import HYBRID_MIN, Graph
from .integer import Dense, integer_dense

LINEAR = ("LogisticRegression", "LinearRegression", "Ridge", "SGDClassifier", "LinearSVC", "SGDRegressor",
          "Lasso", "ElasticNet")
MLP = ("MLPClassifier", "MLPRegressor")
TREES = ("DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier", "RandomForestRegressor",
         "ExtraTreesClassifier", "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
         "HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "LGBMClassifier", "LGBMRegressor",
         "LightGBMBoosterClassifier", "LightGBMBoosterRegressor", "XGBClassifier", "XGBRegressor",
         "CatBoostClassifier", "CatBoostRegressor")
PRE = ("StandardScaler", "MinMaxScaler", "SimpleImputer")
SUPPORTED = LINEAR + MLP + TREES + PRE + ("Pipeline",)


def unsupported(what: str) -> UnsupportedEstimatorError:
    return UnsupportedEstimatorError(
        f"{what} cannot be compiled to TFLite. Supported: pipelines of {', '.join(PRE)} followed by one "
        f"of {', '.join(LINEAR + MLP + TREES)}. Use --format onnx for the others.")


def split(estimator: Any) -> tuple[list[Any], Any]:
    if hasattr(estimator, "steps"):
        steps = [s for _, s in estimator.steps if s not in (None, "passthrough")]
        pre, last = steps[:-1], steps[-1]
    else:
        pre, last = [], estimator
    for p in pre:
        if type(p).__name__ not in PRE:
            raise unsupported(type(p).__name__)
    if type(last).__name__ not in LINEAR + MLP + TREES:
        raise unsupported(type(last).__name__)
    return pre, last


def _affine(pre: list[Any], d: int) -> tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """(imputer fill values or None, a, c) so that the preprocessing is x -> fill(x) * a + c."""
    fill = None
    a, c = np.ones(d), np.zeros(d)
    for p in pre:
        name = type(p).__name__
        if name == "SimpleImputer":
            if fill is not None or not np.all(a == 1) or not np.all(c == 0):
                raise unsupported("a SimpleImputer after another step")
            fill = np.asarray(p.statistics_, dtype=np.float64)
        elif name == "StandardScaler":
            mean = p.mean_ if p.mean_ is not None else np.zeros(d)
            scale = p.scale_ if p.scale_ is not None else np.ones(d)
            a, c = a / scale, (c - mean) / scale
        elif name == "MinMaxScaler":
            a, c = a * p.scale_, c * p.scale_ + p.min_
    return fill, a, c


def _input(g: Graph, d: int, fill: Optional[np.ndarray]) -> tuple[int, int]:
    x = g.tensor((-1, d), np.float32, "input")
    if fill is None:
        return x, x
    isnan = g.binary("NOT_EQUAL", x, x, (-1, d), np.bool_)
    return x, g.select(isnan, g.const(fill.astype(np.float32), name="fill"), x, (-1, d))


def _first_layer(g: Graph, h: int, w: np.ndarray, b: np.ndarray, a: np.ndarray, c: np.ndarray,
                 d: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Fold the scalers into the first layer: w·(x·a + c) + b = (w·a)·x + (b + w·c).

    int8 weights then get one scale per input column, applied as a float MUL on the input:
    folded scalers spread the columns over orders of magnitude and one per-tensor int8 scale
    would erase the small ones; with ``w·a = q·s`` every column of q spans the full int8 range.
    Returns the (scaled) input, the weights, the bias and the column scales."""
    w, b = w * a, b + w @ c
    if g.weight_precision != "int8" or (w.size < HYBRID_MIN and not g.integer):
        return h, w, b, np.ones(d)
    s = np.max(np.abs(w), axis=0)
    s[s == 0] = 1.0
    return g.binary("MUL", h, g.const(s.astype(np.float32), name="column_scale"), (-1, d)), w / s, b, s


def _dense(g: Graph, h: int, layers: list[Dense], fill: Optional[np.ndarray], s: np.ndarray) -> int:
    """The layers as FULLY_CONNECTED operators: float or hybrid int8 weights, or integer
    arithmetic throughout (``g.integer``) with ranges calibrated on the sample rows as the first
    layer sees them (imputed with ``fill``, scaled by the column scales ``s``)."""
    if g.integer:
        return integer_dense(g, h, layers, _calibration(g, fill, s))
    for layer in layers:
        n = layer.w.shape[0]
        if layer.act == "RELU":
            h = g.fully_connected(h, layer.w, layer.b, activation="RELU")
        else:
            h = g.fully_connected(h, layer.w, layer.b)
            if layer.act:
                h = g.unary(layer.act, h, (-1, n))
    return h


def _calibration(g: Graph, fill: Optional[np.ndarray], s: np.ndarray) -> np.ndarray:
    if g.calibration is None:  # the same rule and message as the ONNX exporter's
        raise ConversionError("static int8 quantization needs calibration rows (the sample)")
    rows = np.array(g.calibration[:4096], dtype=np.float64)  # ranges settle long before this
    if fill is not None:
        rows = np.where(np.isnan(rows), fill, rows)
    return np.nan_to_num(rows) * s


def _two_class(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A binary score z as logits [0, z]: softmax gives [1-σ(z), σ(z)] and argmax the label."""
    return np.vstack([np.zeros_like(w), w]), np.concatenate([[0.0], b])


def _head(g: Graph, z: int, k: int, kind: str, has_proba: bool) -> dict[str, int]:
    """From logits z [N, k] to the outputs of a classifier (``kind`` softmax | ovr) or regressor."""
    if kind == "regression":
        return {"prediction": z}
    if kind == "ovr":
        s = g.unary("LOGISTIC", z, (-1, k))
        total = g.reduce_sum(s, 1, (-1, 1), keep_dims=True)
        proba = g.binary("DIV", s, total, (-1, k))
    else:
        proba = g.softmax(z, (-1, k))
    out = {"label": g.argmax(proba if has_proba else z)}
    if has_proba:
        out["probabilities"] = proba
    return out


def compile_linear(g: Graph, est: Any, pre: list[Any], d: int, has_proba: bool) -> tuple[int, dict[str, int]]:
    fill, a, c = _affine(pre, d)
    x, h = _input(g, d, fill)
    w = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    b = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64)) * np.ones(w.shape[0])
    h, w, b, s = _first_layer(g, h, w, b, a, c, d)
    kind = "regression"
    if hasattr(est, "classes_"):
        kind = "ovr" if type(est).__name__ == "SGDClassifier" and w.shape[0] > 1 else "softmax"
        if w.shape[0] == 1:
            w, b = _two_class(w[0], b)
    z = _dense(g, h, [Dense(w, b)], fill, s)
    return x, _head(g, z, w.shape[0], kind, has_proba)


def compile_mlp(g: Graph, est: Any, pre: list[Any], d: int, has_proba: bool) -> tuple[int, dict[str, int]]:
    fill, a, c = _affine(pre, d)
    x, h = _input(g, d, fill)
    acts = {"relu": "RELU", "tanh": "TANH", "logistic": "LOGISTIC", "identity": None}
    if est.activation not in acts:
        raise unsupported(f"MLP activation {est.activation!r}")
    pairs = list(zip(est.coefs_, est.intercepts_))
    layers, s = [], np.ones(d)
    for i, (W, B) in enumerate(pairs):
        w, b = np.asarray(W, np.float64).T, np.asarray(B, np.float64)
        if i == 0:
            h, w, b, s = _first_layer(g, h, w, b, a, c, d)
        last = i == len(pairs) - 1
        if last and hasattr(est, "classes_") and w.shape[0] == 1:
            w, b = _two_class(w[0], b)
        layers.append(Dense(w, b, None if last else acts[est.activation]))
    z = _dense(g, h, layers, fill, s)
    return x, _head(g, z, layers[-1].w.shape[0], "softmax" if hasattr(est, "classes_") else "regression", has_proba)
