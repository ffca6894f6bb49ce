"""TreeEnsembleClassifier / TreeEnsembleRegressor, vectorised over rows and trees.

At load every tree is flattened into shared node arrays (feature, threshold, mode, true/false
child as global indices; leaves point at themselves). Prediction walks all rows through all
trees at once, one depth level per step: a handful of array gathers per level, never a Python
loop per node or per row. Scores are then the leaf weight rows summed over trees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..switches import (
    TREE_ACCUMULATE_MAX_ROWS,
    TREE_BATCH_MIN_ROWS,
    TREE_CHUNK_CELLS,
    TREE_SMALL_BATCH_CELLS,
    TREE_SQUARING_MAX_NODES,
)
from . import ML, op
from ._post import TRANSFORMS, class_labels, logistic_, probit

_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "LEAF": 6}
_LEAF = 6
# the size switches (``..switches``): rows x trees x outputs per MIN/MAX chunk (caps temporary
# memory); rows x nodes up to which all nodes are decided up front instead of per level; nodes
# up to which a gather over all of them costs about what one per level does (single row)


def _depth(node: Any, roots: np.ndarray, leaf: np.ndarray, tc: np.ndarray, fc: np.ndarray) -> int:
    """The deepest tree's depth: all trees walked level by level; a cycle never reaches the leaves.

    Raises:
        UnsupportedModelError: a tree has a cycle.
    """
    level, depth = roots, 0
    while True:
        level = level[~leaf[level]]
        if level.size == 0:
            return depth
        depth += 1
        if depth > leaf.size:
            raise node.fail("a tree has a cycle")
        level = np.unique(np.concatenate([tc[level], fc[level]]))


def _leaf_weights(node: Any, prefix: str, index: dict[tuple[int, int], int],
                  n_out: int) -> tuple[np.ndarray, list[int], bool]:
    """The dense leaf-weight table (node × output, summed where a leaf has several weights for
    one output), the outputs the weights name, and whether every weight is >= 0.

    Raises:
        UnsupportedModelError: the weight lists differ in length, or name an unknown output or node.
    """
    w_t = node.ints(f"{prefix}_treeids")
    w_n = node.ints(f"{prefix}_nodeids")
    w_i = node.ints(f"{prefix}_ids")
    if node.has(f"{prefix}_weights_as_tensor"):
        w_v = node.tensor(f"{prefix}_weights_as_tensor").ravel().astype(np.float64)
    else:
        w_v = np.array(node.floats(f"{prefix}_weights"), dtype=np.float64)
    if not (len(w_t) == len(w_n) == len(w_i) == w_v.size):
        raise node.fail("weight attribute lists differ in length")
    if w_i and (min(w_i) < 0 or max(w_i) >= n_out):
        raise node.fail(f"a weight names output {max(w_i)} of {n_out}")
    table = np.zeros((len(index), n_out), dtype=np.float64)
    try:
        rows = np.array([index[(t, i)] for t, i in zip(w_t, w_n)], dtype=np.int64)
    except KeyError as exc:
        raise node.fail(f"a weight points at a missing node {exc}") from None
    if rows.size:
        np.add.at(table, (rows, np.array(w_i, dtype=np.int64)), w_v)
    return table, sorted(set(w_i)), bool((w_v >= 0).all())


def _compare_mixed(modes: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Each node's own comparison, for forests whose nodes do not share one mode."""
    cond = np.zeros(modes.shape, dtype=bool)
    for code in range(6):
        sel = modes == code
        if sel.any():
            cond[sel] = _compare(code, v[sel], t[sel])
    return cond


class _Forest:
    """The flattened trees plus a dense leaf-weight table (one row per node, one column per
    class/target)."""

    def __init__(self, node, weights_prefix: str, n_out: int):
        tids = np.array(node.ints("nodes_treeids"), dtype=np.int64)
        nids = np.array(node.ints("nodes_nodeids"), dtype=np.int64)
        n = tids.size
        feats = np.array(node.ints("nodes_featureids"), dtype=np.int64)
        if node.has("nodes_values_as_tensor"):
            values = node.tensor("nodes_values_as_tensor").ravel()
        else:
            values = np.array(node.floats("nodes_values"), dtype=np.float32)
        modes_s = node.strings("nodes_modes")
        trues = np.array(node.ints("nodes_truenodeids"), dtype=np.int64)
        falses = np.array(node.ints("nodes_falsenodeids"), dtype=np.int64)
        mvtt = np.array(node.ints("nodes_missing_value_tracks_true", [0] * n), dtype=bool)
        if not all(a.size == n for a in (nids, feats, values, trues, falses, mvtt)) or \
                len(modes_s) != n or n == 0:
            raise node.fail("node attribute lists differ in length (or are empty)")
        try:
            modes = np.array([_MODES[m] for m in modes_s], dtype=np.int8)
        except KeyError as exc:
            raise node.fail(f"unknown node mode {exc}") from None
        index = {(int(t), int(i)): g for g, (t, i) in enumerate(zip(tids.tolist(), nids.tolist()))}
        if len(index) != n:
            raise node.fail("duplicate (tree, node) ids")
        leaf = modes == _LEAF
        own = np.arange(n, dtype=np.int64)
        try:
            tc = np.array([g if lf else index[(t, c)] for g, (t, c, lf) in
                           enumerate(zip(tids.tolist(), trues.tolist(), leaf.tolist()))],
                          dtype=np.int64)
            fc = np.array([g if lf else index[(t, c)] for g, (t, c, lf) in
                           enumerate(zip(tids.tolist(), falses.tolist(), leaf.tolist()))],
                          dtype=np.int64)
        except KeyError as exc:
            raise node.fail(f"a branch points at a missing node {exc}") from None
        feats = np.where(leaf, 0, feats)
        if feats.size and feats.min() < 0:
            raise node.fail("negative feature id")
        self.n_features_needed = int(feats.max()) + 1 if (~leaf).any() else 0
        # roots: the nodes of each tree that no branch points at
        is_child = np.zeros(n, dtype=bool)
        is_child[tc[~leaf]] = True
        is_child[fc[~leaf]] = True
        roots = own[~is_child]
        tree_of_root = tids[roots]
        if np.unique(tree_of_root).size != roots.size or roots.size != np.unique(tids).size:
            raise node.fail("every tree needs exactly one root")
        self.n_trees = roots.size
        self.depth = _depth(node, roots, leaf, tc, fc)
        self.values = values.astype(np.float32)
        self.modes = modes
        self.single_mode = int(modes[~leaf][0]) if (~leaf).any() and \
            np.unique(modes[~leaf]).size == 1 else None
        self.mvtt = mvtt & ~leaf if mvtt.any() else None
        self.n_nodes = n
        self.kids = np.stack([fc, tc], axis=1).astype(np.int32).ravel()
        self.fc32 = fc.astype(np.int32)
        self.delta32 = (tc - fc).astype(np.int32)
        self.feats = feats.astype(np.int32)
        self._values64 = values.astype(np.float64)
        self.roots = roots.astype(np.int32)
        table, self.used_ids, self.weights_all_positive = _leaf_weights(node, weights_prefix, index, n_out)
        self.table = table
        self._table32 = table.astype(np.float32)
        self.n_out = n_out

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Global index of the leaf each row reaches in each tree: (rows, trees)."""
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1) if x.ndim > 2 else x.reshape(1, -1)
        if x.shape[1] < self.n_features_needed:
            raise ValueError(f"tree ensemble reads feature {self.n_features_needed - 1}, "
                             f"input has {x.shape[1]}")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        thr = self.values if x.dtype == np.float32 else self._values64
        n_rows = x.shape[0]
        flat = np.ascontiguousarray(x).ravel()
        idx: np.ndarray = np.empty((n_rows, self.n_trees), dtype=np.int32)
        idx[:] = self.roots
        if n_rows * self.n_nodes <= TREE_SMALL_BATCH_CELLS:
            return self._walk_decided(x, flat, thr, idx)
        return self._walk_levels(x, flat, idx)

    def _walk_decided(self, x: np.ndarray, flat: np.ndarray, thr: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Few rows: decide every node once and turn the decisions into "next node" per node;
        each level is then a single gather (no per-level arithmetic)."""
        n_rows = x.shape[0]
        v = flat.take(self.feats)[None, :] if n_rows < TREE_BATCH_MIN_ROWS else \
            np.take(x, self.feats, axis=1)
        # next = false child + decision * (true - false): cheaper than np.where on ints
        nxt: np.ndarray = (self.fc32 + self._decide(v, thr) * self.delta32).ravel()
        if n_rows < TREE_BATCH_MIN_ROWS and self.n_nodes <= TREE_SQUARING_MAX_NODES:
            # depth steps of "next node" by repeated squaring of the step table: a few
            # gathers over the (few) nodes instead of one per level
            step, d = nxt, self.depth
            while d:
                if d & 1:
                    idx = step.take(idx)
                d >>= 1
                if d:
                    step = step.take(step)
        elif n_rows < TREE_BATCH_MIN_ROWS:
            for _ in range(self.depth):
                idx = nxt.take(idx)
        else:
            off = (np.arange(n_rows, dtype=np.int32) * np.int32(self.n_nodes))[:, None]
            for _ in range(self.depth):
                idx = nxt.take(idx + off)
        return idx

    def _walk_levels(self, x: np.ndarray, flat: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Many rows: one level of every tree per step, deciding only the nodes reached."""
        n_rows = x.shape[0]
        base = (np.arange(n_rows, dtype=np.intp) * x.shape[1])[:, None] \
            if n_rows >= TREE_BATCH_MIN_ROWS else None
        mode, mvtt = self.single_mode, self.mvtt
        if mvtt is not None and not np.isnan(flat).any():
            mvtt = None  # no missing values in this batch: two passes a level saved
        # the walk keeps 2 * node: the per-node tables are stored twice over (slots 2n and
        # 2n + 1 alike) and the child table holds 2 * child, so the branch is picked by
        # adding the decision, with no doubling pass per level
        d2 = self._doubled(x.dtype)
        feats2, thr2, kids2 = d2["feats"], d2["thr"], d2["kids"]
        idx = idx * 2
        for _ in range(self.depth):
            f = feats2.take(idx)
            v = flat.take(f if base is None else f + base)
            t = thr2.take(idx)
            if mode == 0:
                cond = v <= t
            elif mode is not None:
                cond = _compare(mode, v, t)
            else:
                cond = _compare_mixed(d2["modes"].take(idx), v, t)
            if mvtt is not None:
                cond |= np.isnan(v) & d2["mvtt"].take(idx)
            idx = kids2.take(idx + cond)
        return idx >> 1

    def _doubled(self, dtype: np.dtype) -> dict:
        """The per-node tables indexed by 2 * node (see ``leaves``), built on first use."""
        key = "_d64" if dtype == np.float64 else "_d32"
        tables = getattr(self, key, None)
        if tables is None:
            tables = {"feats": np.repeat(self.feats, 2),
                      "thr": np.repeat(self._values64 if key == "_d64" else self.values, 2),
                      "kids": self.kids * np.int32(2),  # (false, true) child per node, doubled
                      "modes": np.repeat(self.modes, 2),
                      "mvtt": None if self.mvtt is None else np.repeat(self.mvtt, 2)}
            setattr(self, key, tables)  # same content whichever thread builds it
        return tables

    def _decide(self, v: np.ndarray, thr: np.ndarray) -> np.ndarray:
        """Branch outcome of every node for the values ``v`` (rows, nodes)."""
        if self.single_mode is not None:
            cond = _compare(self.single_mode, v, thr)
        else:
            cond = np.zeros(v.shape, dtype=bool)
            for code in range(6):
                sel = self.modes == code
                if sel.any():
                    cond[:, sel] = _compare(code, v[:, sel], thr[sel])
        if self.mvtt is not None:
            cond |= np.isnan(v) & self.mvtt
        return cond

    def scores(self, x: np.ndarray, aggregate: str = "SUM", native: bool = False) -> np.ndarray:
        """Leaf weights aggregated over trees, (rows, outputs): float64, or with ``native`` the
        precision the sums ran in (SUM / AVERAGE: the input's).

        Sums run tree by tree in the input's precision, the order onnxruntime adds them in, so
        a probability that lands exactly on a decision threshold (0.5) ties the same way.
        """
        idx = self.leaves(x)
        n_rows = idx.shape[0]
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        table = self.table if dtype == np.float64 else self._table32
        if aggregate in ("SUM", "AVERAGE"):
            if n_rows <= TREE_ACCUMULATE_MAX_ROWS:
                # add.accumulate adds strictly left to right (np.sum would pair up terms)
                out = np.add.accumulate(table[idx], axis=1)[:, -1]
            else:  # many rows: one vector add per tree, in tree order
                out = np.zeros((n_rows, self.n_out), dtype=dtype)
                cols = [np.ascontiguousarray(table[:, k]) for k in range(self.n_out)]
                idx_t = np.ascontiguousarray(idx.T)
                for t in range(self.n_trees):
                    for k in range(self.n_out):
                        out[:, k] += cols[k].take(idx_t[t])
            if aggregate == "AVERAGE":
                out /= dtype(self.n_trees)
            return out if native else out.astype(np.float64)
        reduce = np.min if aggregate == "MIN" else np.max
        out64 = np.empty((n_rows, self.n_out), dtype=np.float64)
        step = max(1, TREE_CHUNK_CELLS // max(1, self.n_trees * self.n_out))
        for s in range(0, n_rows, step):
            out64[s:s + step] = reduce(table[idx[s:s + step]], axis=1)
        return out64


def _compare(code: int, v, t):
    if code == 0:
        return v <= t
    if code == 1:
        return v < t
    if code == 2:
        return v >= t
    if code == 3:
        return v > t
    if code == 4:
        return v == t
    return v != t


def _base_values(node):
    if node.has("base_values_as_tensor"):
        return node.tensor("base_values_as_tensor").ravel().astype(np.float64)
    b = node.floats("base_values", None)
    return np.array(b, dtype=np.float64) if b else None


@op("TreeEnsembleClassifier", ML)
def make_tree_classifier(node):
    labels, _ = class_labels(node)
    n_classes = len(labels)
    forest = _Forest(node, "class", max(n_classes, 2))
    base = _base_values(node)
    post_name = node.str("post_transform", "NONE")
    if post_name not in TRANSFORMS:
        raise node.fail(f"unknown post_transform '{post_name}'")
    post = TRANSFORMS[post_name]
    has1 = 1 in forest.used_ids
    binary_case = n_classes == 2 and len(forest.used_ids) == 1
    all_pos = forest.weights_all_positive

    # base values per precision, cast once
    bases = {dt: None if base is None else base.astype(dt) for dt in (np.float32, np.float64)}

    def kernel(x):
        # onnxruntime sums, adds base values and post-transforms in the input's precision
        # (float32 for float inputs; PROBIT near 0 or 1 would otherwise differ in the 5th digit)
        # and stores the probabilities as float32, the type ONNX gives Z for every input type.
        # Rounding a float64 result to float32 is what turns a 50/50 vote summed as
        # 0.50000001 into 0.5 / 0.5, so argmax(Z) picks the first class there, as it does in
        # onnxruntime (and scikit-learn); keeping float64 picked the other one
        acc = np.float64 if x.dtype == np.float64 else np.float32
        s = forest.scores(x, native=True).astype(acc, copy=False)
        base_ = bases[acc]
        if n_classes > 2:
            if base_ is not None:
                s[:, :base_.size] += base_
            # the label comes from the raw scores, before the post-transform (as in onnxruntime;
            # PROBIT is not monotonic outside (0, 1))
            return [labels.take(np.argmax(s, axis=1)), post(s).astype(np.float32, copy=False)]  # Z: float (below)
        # two classes: onnxruntime's rules (TreeAggregatorClassifier::FinalizeScores)
        s0, s1 = s[:, 0], s[:, 1]
        two = has1
        if base_ is not None and base_.size == 2:
            if has1:
                s1 = base_[1] + s0
                s0 = -s1
            else:
                s0, s1, two = s0 + base_[0], s1 + base_[1], True
        elif base_ is not None and base_.size == 1:
            s0 = s0 + base_[0]
        pos = s1 if has1 else s0
        positive = (pos > 0.5 if all_pos else pos > 0) if binary_case else pos > 0
        label = labels.take(positive.view(np.int8))
        if two:
            z = post(np.stack([s0, s1], axis=1))
        elif post_name == "PROBIT":
            z = probit(s0)[:, None]
        elif binary_case and all_pos:
            z = np.stack([1 - s0, s0], axis=1)
        elif post_name == "LOGISTIC":
            # [logistic(-s), logistic(s)] = [1 - p, p]: onnxruntime's logistic is 1 - v for
            # negative scores too, so one evaluation matches it as closely as two. s0 is this
            # call's own array (or a column of it): computed in place
            p = logistic_(s0)
            z = np.empty((p.shape[0], 2), dtype=p.dtype)
            z[:, 1] = p
            np.subtract(1, p, out=z[:, 0])
        else:
            z = np.stack([np.where(positive, -s0, s0), np.where(positive, s0, -s0)], axis=1)
        # Z is tensor(float) in ai.onnx.ml (onnxruntime computes a double input's scores in double
        # and writes them as float): a float64 Z kept 0.5 + 2**-27 where onnxruntime and
        # scikit-learn have an exact 0.5 tie, and argmax then gave the other class
        return [label, z.astype(np.float32, copy=False)]

    return kernel


@op("TreeEnsembleRegressor", ML)
def make_tree_regressor(node):
    n_targets = node.int("n_targets", 1)
    forest = _Forest(node, "target", n_targets)
    base = _base_values(node)
    aggregate = node.str("aggregate_function", "SUM")
    if aggregate not in ("SUM", "AVERAGE", "MIN", "MAX"):
        raise node.fail(f"unknown aggregate_function '{aggregate}'")
    post_name = node.str("post_transform", "NONE")
    if post_name not in TRANSFORMS:
        raise node.fail(f"unknown post_transform '{post_name}'")
    post = TRANSFORMS[post_name]

    def kernel(x):
        s = forest.scores(x, aggregate)
        if base is not None:
            s = s + base[:n_targets]
        if n_targets > 1 or post_name == "PROBIT":
            s = post(s)
        # float32 for every input type: the type ONNX gives Y, and onnxruntime's (it sums a
        # float64 input in float64 and rounds the result)
        return [s.astype(np.float32, copy=False)]

    return kernel
