"""Tree ensembles -> TFLite by the per-depth gather strategy (Hummingbird's "tree traversal").

Every tree's nodes are flattened into arrays and all trees are walked together, one depth level
per step, with GATHER and SELECT_V2. Memory grows with the node count (the GEMM strategy's path
matrices grow with its square: too big for 100 trees of depth 10).

Two node layouts, chosen by precision:

- ``plain`` (fp32, fp16): int32 feature / left / right ids, float32 thresholds; the depth steps
  are unrolled, which is the fastest to run.
- ``compact`` (int8, the small-device artifact): left child = next node (depth-first order), so
  one int16 *relative* right offset per node; int8 feature ids whose sign carries the learned
  NaN direction; fp16 thresholds (leaves hold NaN, so no comparison moves off a leaf); int8 leaf
  values, one column for a binary classifier; the depth steps run in a WHILE loop, so the
  per-step operators are stored once whatever the depth.

Thresholds are rounded *down* to float32, so a float32 input compares exactly as scikit-learn
compares it against the float64 threshold (fp32); fp16 thresholds are lossy and are checked by
the label-agreement bar like every int8 artifact.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import ConversionError
from ..float32 import down32
from .boosted_trees import catboost_trees, lightgbm_trees, xgboost_trees
from .builder import Graph
from .compile import _affine, _head, _input, unsupported


class Forest:
    """All trees' nodes in flat arrays; leaves loop to themselves."""

    def __init__(self, k: int):
        self.k = k
        self.feature: list[np.ndarray] = []
        self.threshold: list[np.ndarray] = []
        self.left: list[np.ndarray] = []
        self.right: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.missing_left: list[np.ndarray] = []
        self.leaf: list[np.ndarray] = []
        self.roots: list[int] = []
        self.depth = 0
        self.offset = 0

    def add(self, feature, threshold, left, right, leaf, value, depth: int, missing_left: Any = None) -> None:
        order = _depth_first(np.asarray(left), np.asarray(right), np.asarray(leaf, bool))
        if not np.array_equal(order, np.arange(len(order))):  # e.g. HistGradientBoosting grows best-first
            new = np.empty_like(order)
            new[order] = np.arange(len(order))
            leaf = np.asarray(leaf, bool)[order]
            left = np.where(leaf, -1, new[np.where(leaf, 0, np.asarray(left)[order])])
            right = np.where(leaf, -1, new[np.where(leaf, 0, np.asarray(right)[order])])
            feature, threshold, value = (np.asarray(a)[order] for a in (feature, threshold, value))
            missing_left = None if missing_left is None else np.asarray(missing_left)[order]
        n = len(feature)
        self.missing_left.append(np.zeros(n, bool) if missing_left is None else
                                 np.where(leaf, False, np.asarray(missing_left).astype(bool)))
        idx = np.arange(n) + self.offset
        self.leaf.append(np.asarray(leaf, bool))
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

    def compact_fits(self) -> bool:
        """The compact layout needs depth-first order, < 128 features and int16 right offsets."""
        L, R, F, leaf = (np.concatenate(a) for a in (self.left, self.right, self.feature, self.leaf))
        at = np.arange(L.size)
        return bool(np.all(L[~leaf] == at[~leaf] + 1) and F.max(initial=0) < 127
                    and np.all(R - at < 32_768))

    def sizes(self) -> tuple[int, int]:
        """(internal nodes, leaves) over all trees."""
        leaves = int(sum(int(m.sum()) for m in self.leaf))
        return self.offset - leaves, leaves

    def emit_gemm(self, g: Graph, x: int) -> int:
        """Hummingbird's GEMM strategy, for small ensembles: every condition at once (GATHER +
        LESS_EQUAL), then one matrix product with the path matrix C (+1 where a leaf lies left
        of a node, -1 right) minus each leaf's count of left turns D; the leaf reached is where
        that is exactly 0, and a second product sums its values. ~8 operators whatever the
        depth, so single rows are fast; C has internal × leaves entries, so only small models."""
        leaf = np.concatenate(self.leaf)
        inner, leaves = np.flatnonzero(~leaf), np.flatnonzero(leaf)
        col = {int(n): j for j, n in enumerate(leaves)}
        row = {int(n): i for i, n in enumerate(inner)}
        L, R = np.concatenate(self.left), np.concatenate(self.right)
        C = np.zeros((len(leaves), len(inner)), np.float32)  # stored as FULLY_CONNECTED weights [L, I]
        D = np.zeros(len(leaves), np.float32)
        for root in self.roots:
            stack: list[tuple[int, list[tuple[int, bool]]]] = [(root, [])]
            while stack:
                node, path = stack.pop()
                if leaf[node]:
                    for anc, went_left in path:
                        C[col[node], row[anc]] = 1.0 if went_left else -1.0
                    D[col[node]] = sum(went_left for _, went_left in path)
                else:
                    stack += [(int(L[node]), path + [(node, True)]), (int(R[node]), path + [(node, False)])]
        F = np.concatenate(self.feature)[inner]
        n_in = len(inner)
        xs = g.gather(x, g.const(F.astype(np.int32), np.int32, "node_feature"), (-1, n_in), np.float32, axis=1)
        cond = g.binary("LESS_EQUAL", xs, g.const(down32(np.concatenate(self.threshold)[inner]), np.float32,
                                                  "node_threshold"), (-1, n_in), np.bool_)
        ml = np.concatenate(self.missing_left)[inner]
        if ml.any():
            cond = _nan_left(g, xs, cond, g.const(ml, np.bool_, "node_missing_left"), (-1, n_in))
        turns = g.op("CAST", [cond], (-1, n_in), np.float32)
        miss = g.fully_connected(turns, C, -D, exact=True)  # 0 exactly at the leaf each tree reaches
        hit = g.op("CAST", [g.binary("EQUAL", miss, g.const(np.zeros(1, np.float32)), (-1, len(leaves)),
                                     np.bool_)], (-1, len(leaves)), np.float32)
        values = np.concatenate(self.value)[leaves].astype(np.float32)
        return g.fully_connected(hit, values.T, np.zeros(self.k))

    def emit(self, g: Graph, x: int, compact: bool) -> int:
        """Sum over trees of the leaf values reached: [N, k]."""
        T = len(self.roots)
        layout: _Layout = _Compact(self) if compact else _Plain(self)
        # idx [N, T] starts at the roots: 0 * x[:, :1] broadcasts the batch dimension
        first = g.gather(x, g.const(np.array([0], np.int32), np.int32), (-1, 1), np.float32, axis=1)
        zero_col = g.op("CAST", [g.op("ZEROS_LIKE", [first], (-1, 1))], (-1, 1), np.int32)  # NaN-proof
        idx = g.binary("ADD", zero_col, g.const(np.array(self.roots, np.int32), np.int32), (-1, T), np.int32)
        if compact:
            idx = _loop(g, layout, idx, x, self.depth)
        else:
            for _ in range(self.depth):
                idx = layout.step(g, idx, x)
        leaf_vals = g.gather(layout.values(g), idx, (-1, T, layout.k), np.float32)
        return g.reduce_sum(leaf_vals, 1, (-1, layout.k))


def _nan_left(g: Graph, xv: int, go_left: int, missing_left: int, shape: tuple[int, int]) -> int:
    """NaN fails every comparison: where ``xv`` is NaN, go left where the model learned to
    (``missing_left``, bool per node reached), else as the comparison says."""
    nan_left = g.op("LOGICAL_AND", [g.binary("NOT_EQUAL", xv, xv, shape, np.bool_), missing_left], shape, np.bool_)
    return g.op("LOGICAL_OR", [go_left, nan_left], shape, np.bool_)


def _loop(g: Graph, layout: _Layout, idx: int, x: int, depth: int) -> int:
    """WHILE i < depth: idx = step(idx, x); i += 1."""
    i0 = g.const(np.array(0, np.int32), np.int32, "step0")
    body, cond = g.subgraph(), g.subgraph()
    bi, bidx, bx = body.like(g, i0), body.like(g, idx), body.like(g, x)
    body.inputs = [bi, bidx, bx]
    body.outputs = [body.binary("ADD", bi, body.const(np.array(1, np.int32), np.int32), (), np.int32),
                    layout.step(body, bidx, bx), bx]
    ci, cidx, cx = cond.like(g, i0), cond.like(g, idx), cond.like(g, x)
    cond.inputs = [ci, cidx, cx]
    cond.outputs = [cond.op("LESS", [ci, cond.const(np.array(depth, np.int32), np.int32)], (), np.bool_)]
    return g.while_loop(cond, body, [i0, idx, x])[1]


class _Layout:
    k: int

    def step(self, g: Graph, idx: int, x: int) -> int:
        raise NotImplementedError

    def values(self, g: Graph) -> int:
        raise NotImplementedError


class _Plain(_Layout):
    def __init__(self, f: Forest):
        self.f, self.k = f, f.k
        self._consts: dict[int, tuple[int, int, int, int, Optional[int]]] = {}

    def _nodes(self, g: Graph) -> tuple[int, int, int, int, Optional[int]]:
        if id(g) not in self._consts:  # one set of constants per subgraph, not per step
            f = self.f
            ml = np.concatenate(f.missing_left)
            self._consts[id(g)] = (
                g.const(np.concatenate(f.feature), np.int32, "node_feature"),
                g.const(down32(np.concatenate(f.threshold)), np.float32, "node_threshold"),
                g.const(np.concatenate(f.left), np.int32, "node_left"),
                g.const(np.concatenate(f.right), np.int32, "node_right"),
                g.const(ml, np.bool_, "node_missing_left") if ml.any() else None)
        return self._consts[id(g)]

    def step(self, g: Graph, idx: int, x: int) -> int:
        feat, thr, left, right, mleft = self._nodes(g)
        T = g._sig(idx)[1]
        xv = g.gather(x, g.gather(feat, idx, (-1, T), np.int32), (-1, T), np.float32, axis=1, batch_dims=1)
        go_left = g.binary("LESS_EQUAL", xv, g.gather(thr, idx, (-1, T), np.float32), (-1, T), np.bool_)
        if mleft is not None:
            go_left = _nan_left(g, xv, go_left, g.gather(mleft, idx, (-1, T), np.bool_), (-1, T))
        return g.select(go_left, g.gather(left, idx, (-1, T), np.int32), g.gather(right, idx, (-1, T), np.int32),
                        (-1, T), np.int32)

    def values(self, g: Graph) -> int:
        return g.const(np.concatenate(self.f.value).astype(np.float32), np.float32, "leaf_value", weight=True)


class _Compact(_Layout):
    def __init__(self, f: Forest):
        self.f = f
        leaf = np.concatenate(f.leaf)
        at = np.arange(leaf.size)
        ml = np.concatenate(f.missing_left)
        F = np.concatenate(f.feature)
        self.has_missing = bool(ml.any())
        self.feature = np.where(ml, -1 - F, F).astype(np.int8)  # sign bit: NaN goes left
        self.right = np.where(leaf, 0, np.concatenate(f.right) - at).astype(np.int16)
        self.threshold = np.where(leaf, np.nan, down32(np.concatenate(f.threshold))).astype(np.float16)
        self.value = np.concatenate(f.value)
        self.k = f.k

    def step(self, g: Graph, idx: int, x: int) -> int:
        T = g._sig(idx)[1]
        shape = (-1, T)
        feat = g.op("CAST", [g.gather(g.const(self.feature, np.int8, "node_feature_i8"), idx, shape, np.int8)],
                    shape, np.int32)
        if self.has_missing:  # stored as -1 - f where NaN goes left: f = max(v, -1 - v)
            minus_one = g.const(np.array(-1, np.int32), np.int32)
            col = g.op("MAXIMUM", [feat, g.binary("SUB", minus_one, feat, shape, np.int32)], shape, np.int32)
        else:
            col = feat
        xv = g.gather(x, col, shape, np.float32, axis=1, batch_dims=1)
        thr = g.op("DEQUANTIZE", [g.gather(g.const(self.threshold, np.float16, "node_threshold_fp16"), idx, shape,
                                           np.float16)], shape, np.float32)
        go_left = g.binary("LESS_EQUAL", xv, thr, shape, np.bool_)
        if self.has_missing:  # a negative feature code: NaN goes left
            learned = g.op("LESS", [feat, g.const(np.array(0, np.int32), np.int32)], shape, np.bool_)
            go_left = _nan_left(g, xv, go_left, learned, shape)
        right = g.op("CAST", [g.gather(g.const(self.right, np.int16, "node_right_i16"), idx, shape, np.int16)],
                     shape, np.int32)
        move = g.select(go_left, g.const(np.array(1, np.int32), np.int32), right, shape, np.int32)
        return g.binary("ADD", idx, move, shape, np.int32)

    def values(self, g: Graph) -> int:
        return g.const(self.value.astype(np.float32), np.float32, "leaf_value", weight=True)


def _depth_first(left: np.ndarray, right: np.ndarray, leaf: np.ndarray) -> np.ndarray:
    """Node ids in pre-order from the root (node 0), so every left child follows its parent."""
    order, stack = [], [0]
    while stack:
        i = stack.pop()
        order.append(i)
        if not leaf[i]:
            stack += [int(right[i]), int(left[i])]
    return np.asarray(order)


def compile_trees(g: Graph, est: Any, pre: list[Any], d: int, has_proba: bool) -> tuple[int, dict[str, int]]:
    fill, a, c = _affine(pre, d)
    x, h = _input(g, d, fill)
    if not (np.all(a == 1) and np.all(c == 0)):
        h = g.binary("ADD", g.binary("MUL", h, g.const(a.astype(np.float32)), (-1, d)),
                     g.const(c.astype(np.float32)), (-1, d))
    name = type(est).__name__
    classifier = hasattr(est, "classes_")
    n_classes = len(est.classes_) if classifier else 1
    if name.startswith(("LGBM", "LightGBMBooster", "XGB", "CatBoost")):
        return x, _boosting_library(g, h, est, has_proba)
    if name.startswith("HistGradientBoosting"):
        return x, _hgb(g, h, est, n_classes, classifier, has_proba)
    if name.startswith("GradientBoosting"):
        return x, _gb(g, h, est, n_classes, classifier, has_proba)
    trees = est.estimators_ if hasattr(est, "estimators_") else [est]
    # an int8 binary forest stores only p(class 1): p(class 0) = 1 - p(class 1)
    one_column = g.weight_precision == "int8" and classifier and n_classes == 2
    k = (1 if one_column else n_classes) if classifier else 1
    forest = Forest(k)
    for tree in trees:
        v = tree.tree_.value[:, 0, :]
        if classifier:
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
            v = v[:, 1:] if one_column else v
        forest.add_sklearn_tree(tree, v / len(trees))
    out = _emit(g, forest, h)
    if one_column:
        p0 = g.binary("SUB", g.const(np.ones((1, 1), np.float32)), out, (-1, 1))
        out = g.op("CONCATENATION", [p0, out], (-1, 2), options=("ConcatenationOptions", _concat(g)))
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


#: the GEMM strategy's path matrix (internal nodes × leaves) above this many entries costs
#: more file and more arithmetic than the traversal saves (one depth-7 tree: 127 × 128)
GEMM_MAX_ENTRIES = 16_384


def _emit(g: Graph, forest: Forest, h: int) -> int:
    """Strategy per model size and precision: int8 (the small-device artifact) the compact
    traversal whenever the trees fit it; small ensembles GEMM; the rest the plain traversal."""
    inner, leaves = forest.sizes()
    if g.weight_precision == "int8" and forest.compact_fits():
        g.strategy = "tree-traversal (compact)"
        return forest.emit(g, h, True)
    if 0 < inner * leaves <= GEMM_MAX_ENTRIES:
        g.strategy = "gemm"
        return forest.emit_gemm(g, h)
    g.strategy = "tree-traversal"
    return forest.emit(g, h, False)


def _gb(g: Graph, h: int, est: Any, n_classes: int, classifier: bool, has_proba: bool) -> dict[str, int]:
    k = 1 if (not classifier or n_classes == 2) else n_classes
    forest = Forest(k)
    for stage in est.estimators_:
        for j, tree in enumerate(stage):
            v = np.zeros((tree.tree_.node_count, k))
            v[:, j] = tree.tree_.value[:, 0, 0] * est.learning_rate
            forest.add_sklearn_tree(tree, v)
    raw = _emit(g, forest, h)
    init = np.asarray(est._raw_predict_init(np.zeros((1, est.n_features_in_))), np.float64).reshape(-1)
    raw = g.binary("ADD", raw, g.const(init.astype(np.float32)), (-1, k))
    return _boosted_head(g, raw, n_classes if classifier else 1, classifier, has_proba)


def _boosting_library(g: Graph, h: int, est: Any, has_proba: bool) -> dict[str, int]:
    """LightGBM / XGBoost: leaf values summed per raw score, plus the margin offset (XGBoost's
    base score; LightGBM's first trees carry it), then the link; thresholds floored to float32
    like every other tree here (XGBoost's strict ``<`` is turned into ``<=`` exactly)."""

    scale = 1.0
    try:
        if type(est).__name__.startswith("XGB"):
            trees, k, link, offset = xgboost_trees(est)
        elif type(est).__name__.startswith("CatBoost"):
            trees, k, link, offset, scale = catboost_trees(est)
        else:
            (trees, k, link), offset = lightgbm_trees(est), None
    except ConversionError as exc:
        raise unsupported(f"this {type(est).__name__} model ({exc})") from None
    forest = Forest(k)
    for t in trees:
        v = np.zeros((len(t.feature), k))
        v[:, t.output] = t.value * scale
        forest.add(t.feature, t.threshold, t.left, t.right, t.leaf, v, t.depth, t.missing_left)
    raw = _emit(g, forest, h)
    if offset is not None and np.any(offset != 0):
        raw = g.binary("ADD", raw, g.const(offset.astype(np.float32).reshape(1, k)), (-1, k))
    classifier = link != "identity"
    return _boosted_head(g, raw, 2 if link == "sigmoid" else k, classifier, has_proba)


def _hgb(g: Graph, h: int, est: Any, n_classes: int, classifier: bool, has_proba: bool) -> dict[str, int]:
    k = 1 if (not classifier or n_classes == 2) else n_classes
    forest = Forest(k)
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
    raw = _emit(g, forest, h)
    base = np.asarray(est._baseline_prediction, np.float64).reshape(-1)
    raw = g.binary("ADD", raw, g.const(base.astype(np.float32)), (-1, k))
    return _boosted_head(g, raw, n_classes if classifier else 1, classifier, has_proba)
