"""scikit-learn -> TFLite, per model family, with builtin operators only.

- linear models and MLPs: scalers of a pipeline folded into the first layer's weights, a
  SimpleImputer as NOT_EQUAL + SELECT_V2 (NaN != NaN), then FULLY_CONNECTED layers;
- tree ensembles: the per-depth gather strategy (Hummingbird's "tree traversal"): every tree's
  nodes flattened into arrays (feature, threshold, left, right, leaf values), all trees walked
  together one depth level per step with GATHER and SELECT_V2. Memory grows with the node count
  (unlike the GEMM strategy, whose path matrices grow with its square, too big for 100 deep trees).

Thresholds are rounded *down* to float32, so a float32 input compares exactly as scikit-learn
compares it against the float64 threshold.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import UnsupportedEstimatorError
from .builder import Graph

LINEAR = ("LogisticRegression", "LinearRegression", "Ridge", "SGDClassifier", "LinearSVC", "SGDRegressor",
          "Lasso", "ElasticNet")
MLP = ("MLPClassifier", "MLPRegressor")
TREES = ("DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier", "RandomForestRegressor",
         "ExtraTreesClassifier", "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
         "HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
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


def _scale_explicitly(g: Graph, h: int, a: np.ndarray, c: np.ndarray, d: int) -> tuple[int, np.ndarray, np.ndarray]:
    """For int8 weights the scaler stays a float MUL + ADD: folded into the weights it would
    spread their range over orders of magnitude and per-tensor int8 would erase the small ones."""
    if g.weight_precision != "int8" or (np.all(a == 1) and np.all(c == 0)):
        return h, a, c
    h = g.binary("ADD", g.binary("MUL", h, g.const(a.astype(np.float32)), (-1, d)), g.const(c.astype(np.float32)),
                 (-1, d))
    return h, np.ones(d), np.zeros(d)


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
    h, a, c = _scale_explicitly(g, h, a, c, d)
    w = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    b = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64)) * np.ones(w.shape[0])
    w, b = w * a, b + w @ c  # fold the scalers: w·(x·a + c) + b
    name = type(est).__name__
    if hasattr(est, "classes_"):
        kind = "ovr" if name == "SGDClassifier" and w.shape[0] > 1 else "softmax"
        if w.shape[0] == 1:
            w, b = _two_class(w[0], b)
        z = g.fully_connected(h, w, b)
        return x, _head(g, z, w.shape[0], kind, has_proba)
    return x, _head(g, g.fully_connected(h, w, b), w.shape[0], "regression", False)


def compile_mlp(g: Graph, est: Any, pre: list[Any], d: int, has_proba: bool) -> tuple[int, dict[str, int]]:
    fill, a, c = _affine(pre, d)
    x, h = _input(g, d, fill)
    h, a, c = _scale_explicitly(g, h, a, c, d)
    acts = {"relu": "RELU", "tanh": "TANH", "logistic": "LOGISTIC", "identity": None}
    if est.activation not in acts:
        raise unsupported(f"MLP activation {est.activation!r}")
    layers = list(zip(est.coefs_, est.intercepts_))
    for i, (W, B) in enumerate(layers):
        w, b = np.asarray(W, np.float64).T, np.asarray(B, np.float64)
        if i == 0:
            w, b = w * a, b + w @ c
        last = i == len(layers) - 1
        if last and hasattr(est, "classes_") and w.shape[0] == 1:
            w, b = _two_class(w[0], b)
        act = acts[est.activation] if not last else None
        if act == "RELU":
            h = g.fully_connected(h, w, b, activation="RELU")
        else:
            h = g.fully_connected(h, w, b)
            if act:
                h = g.unary(act, h, (-1, w.shape[0]))
    k = w.shape[0]
    return x, _head(g, h, k, "softmax" if hasattr(est, "classes_") else "regression", has_proba)


# --- trees ------------------------------------------------------------------------------------
def _down32(thr: np.ndarray) -> np.ndarray:
    """Largest float32 ≤ each float64 threshold: float32 x ≤ t  ⇔  x ≤ down32(t)."""
    t32 = thr.astype(np.float32)
    up = t32.astype(np.float64) > thr
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


class _Forest:
    """All trees' nodes in flat arrays; leaves loop to themselves."""

    def __init__(self, k: int):
        self.k = k
        self.feature: list[np.ndarray] = []
        self.threshold: list[np.ndarray] = []
        self.left: list[np.ndarray] = []
        self.right: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.missing_left: list[np.ndarray] = []
        self.roots: list[int] = []
        self.depth = 0
        self.offset = 0

    def add(self, feature, threshold, left, right, leaf, value, depth: int, missing_left: Any = None) -> None:
        n = len(feature)
        self.missing_left.append(np.zeros(n, bool) if missing_left is None else
                                 np.where(leaf, False, np.asarray(missing_left).astype(bool)))
        idx = np.arange(n) + self.offset
        self.feature.append(np.where(leaf, 0, feature).astype(np.int32))
        self.threshold.append(np.where(leaf, 0.0, threshold))
        self.left.append(np.where(leaf, idx, np.asarray(left) + self.offset).astype(np.int32))
        self.right.append(np.where(leaf, idx, np.asarray(right) + self.offset).astype(np.int32))
        self.value.append(np.where(leaf[:, None], value, 0.0))
        self.roots.append(self.offset)
        self.depth = max(self.depth, depth)
        self.offset += n

    def add_sklearn_tree(self, tree: Any, value: np.ndarray) -> None:
        t = tree.tree_
        leaf = t.children_left == -1
        self.add(t.feature, t.threshold, t.children_left, t.children_right, leaf, value, int(t.max_depth),
                 getattr(t, "missing_go_to_left", None))

    def emit(self, g: Graph, x: int) -> int:
        """Sum over trees of the leaf values reached: [N, k]."""
        T = len(self.roots)
        L, R, F = (np.concatenate(a) for a in (self.left, self.right, self.feature))
        at = np.arange(L.size)
        inner = L != at
        compact = (g.weight_precision == "int8" and np.all(L[inner] == at[inner] + 1) and F.max(initial=0) < 128
                   and L.size < 32_767)
        if compact:
            # int8 trees: left child = next node (depth-first order), so no left array; feature ids int8,
            # right ids int16, thresholds fp16 (leaves -inf: always "right", which loops to themselves);
            # widened by CAST at run time. Labels are checked against the 99% agreement bar as usual.
            thr16 = np.where(inner, _down32(np.concatenate(self.threshold)), -np.inf).astype(np.float16)
            feat = g.op("CAST", [g.const(F.astype(np.int8), np.int8, "node_feature_i8")], (L.size,), np.int32)
            right = g.op("CAST", [g.const(R.astype(np.int16), np.int16, "node_right_i16")], (L.size,), np.int32)
            thr = g.op("DEQUANTIZE", [g.const(thr16, np.float16, "node_threshold_fp16")], (L.size,), np.float32)
            one = g.const(np.array([1], np.int32), np.int32, "one")
        else:
            feat = g.const(F, np.int32, "node_feature")
            thr = g.const(_down32(np.concatenate(self.threshold)), np.float32, "node_threshold")
            left = g.const(L, np.int32, "node_left")
            right = g.const(R, np.int32, "node_right")
        vals = g.const(np.concatenate(self.value).astype(np.float32), np.float32, "leaf_value", weight=True)
        ml = np.concatenate(self.missing_left)
        mleft = g.const(ml, np.bool_, "node_missing_left") if ml.any() else None
        # idx [N, T] starts at the roots: 0 * x[:, :1] broadcasts the batch dimension
        first = g.gather(x, g.const(np.array([0], np.int32), np.int32), (-1, 1), np.float32, axis=1)
        zero_col = g.op("CAST", [g.op("ZEROS_LIKE", [first], (-1, 1))], (-1, 1), np.int32)  # NaN-proof
        idx = g.binary("ADD", zero_col, g.const(np.array(self.roots, np.int32), np.int32), (-1, T), np.int32)
        for _ in range(self.depth):
            f = g.gather(feat, idx, (-1, T), np.int32)
            xv = g.gather(x, f, (-1, T), np.float32, axis=1, batch_dims=1)
            go_left = g.binary("LESS_EQUAL", xv, g.gather(thr, idx, (-1, T), np.float32), (-1, T), np.bool_)
            if mleft is not None:  # NaN fails every comparison: route it as the model learned
                isnan = g.binary("NOT_EQUAL", xv, xv, (-1, T), np.bool_)
                nan_left = g.op("LOGICAL_AND", [isnan, g.gather(mleft, idx, (-1, T), np.bool_)], (-1, T), np.bool_)
                go_left = g.op("LOGICAL_OR", [go_left, nan_left], (-1, T), np.bool_)
            nxt = g.binary("ADD", idx, one, (-1, T), np.int32) if compact else g.gather(left, idx, (-1, T), np.int32)
            idx = g.select(go_left, nxt, g.gather(right, idx, (-1, T), np.int32), (-1, T), np.int32)
        leaf_vals = g.gather(vals, idx, (-1, T, self.k), np.float32)
        return g.reduce_sum(leaf_vals, 1, (-1, self.k))


def compile_trees(g: Graph, est: Any, pre: list[Any], d: int, has_proba: bool) -> tuple[int, dict[str, int]]:
    fill, a, c = _affine(pre, d)
    x, h = _input(g, d, fill)
    if not (np.all(a == 1) and np.all(c == 0)):
        h = g.binary("ADD", g.binary("MUL", h, g.const(a.astype(np.float32)), (-1, d)),
                     g.const(c.astype(np.float32)), (-1, d))
    name = type(est).__name__
    classifier = hasattr(est, "classes_")
    n_classes = len(est.classes_) if classifier else 1
    if name.startswith("HistGradientBoosting"):
        return x, _hgb(g, h, est, n_classes, classifier, has_proba)
    if name.startswith("GradientBoosting"):
        return x, _gb(g, h, est, n_classes, classifier, has_proba)
    trees = est.estimators_ if hasattr(est, "estimators_") else [est]
    k = n_classes if classifier else 1
    forest = _Forest(k)
    for tree in trees:
        v = tree.tree_.value[:, 0, :] if not classifier else tree.tree_.value[:, 0, :k]
        if classifier:
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
        forest.add_sklearn_tree(tree, v / len(trees))
    out = forest.emit(g, h)
    if classifier:
        res = {"label": g.argmax(out)}
        if has_proba:
            res["probabilities"] = out
        return x, res
    return x, {"prediction": out}


def _boosted_head(g: Graph, raw: int, k: int, classifier: bool, has_proba: bool) -> dict[str, int]:
    if not classifier:
        return {"prediction": raw}
    if k == 2:  # raw is [N, 1]: logits [0, raw]
        logits = g.op("CONCATENATION", [g.op("ZEROS_LIKE", [raw], (-1, 1)), raw],
                      (-1, 2), options=("ConcatenationOptions", _concat(g)))
        return _head(g, logits, 2, "softmax", has_proba)
    return _head(g, raw, k, "softmax", has_proba)


def _concat(g: Graph) -> Any:
    o = g.s.ConcatenationOptionsT()
    o.axis = 1
    return o


def _gb(g: Graph, h: int, est: Any, n_classes: int, classifier: bool, has_proba: bool) -> dict[str, int]:
    k = 1 if (not classifier or n_classes == 2) else n_classes
    forest = _Forest(k)
    for stage in est.estimators_:
        for j, tree in enumerate(stage):
            v = np.zeros((tree.tree_.node_count, k))
            v[:, j] = tree.tree_.value[:, 0, 0] * est.learning_rate
            forest.add_sklearn_tree(tree, v)
    raw = forest.emit(g, h)
    init = np.asarray(est._raw_predict_init(np.zeros((1, est.n_features_in_))), np.float64).reshape(-1)
    raw = g.binary("ADD", raw, g.const(init.astype(np.float32)), (-1, k))
    return _boosted_head(g, raw, n_classes if classifier else 1, classifier, has_proba)


def _hgb(g: Graph, h: int, est: Any, n_classes: int, classifier: bool, has_proba: bool) -> dict[str, int]:
    k = 1 if (not classifier or n_classes == 2) else n_classes
    forest = _Forest(k)
    for stage in est._predictors:
        for j, pred in enumerate(stage):
            nodes = pred.nodes
            leaf = nodes["is_leaf"].astype(bool)
            v = np.zeros((len(nodes), k))
            v[:, j] = nodes["value"]
            depth = int(nodes["depth"].max()) if "depth" in nodes.dtype.names else len(nodes)
            if np.any(nodes["is_categorical"]) if "is_categorical" in nodes.dtype.names else False:
                raise unsupported("HistGradientBoosting with categorical features")
            forest.add(nodes["feature_idx"], nodes["num_threshold"], nodes["left"], nodes["right"], leaf, v, depth,
                       nodes["missing_go_to_left"])
    raw = forest.emit(g, h)
    base = np.asarray(est._baseline_prediction, np.float64).reshape(-1)
    raw = g.binary("ADD", raw, g.const(base.astype(np.float32)), (-1, k))
    return _boosted_head(g, raw, n_classes if classifier else 1, classifier, has_proba)
