"""Forests whose votes tie exactly: the numpy backend must pick onnxruntime's label.

Why: a random forest with an even number of trees and pure leaves gives a row that splits the
votes 50/50 probabilities a hair apart or exactly equal, depending on the precision the scores
are summed and stored in; argmax then picks a class by rounding, so an engine that rounds
differently flips the label with no error (found on the routing tests' forest: 3 of 171 rows,
numpy backend class 1, onnxruntime and scikit-learn class 0). Every row count below straddles
a tree switch of ``edge_runtime/onnx_numpy/switches.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy_diff import ort_session
from onnx import TensorProto, helper

from edge_runtime.onnx_numpy import switches
from edge_runtime.onnx_numpy.plan import load_plan

ML = "ai.onnx.ml"
#: the task's row counts plus both sides of every tree row switch
ROWS = sorted({1, 7, 300, 5000, switches.TREE_BATCH_MIN_ROWS - 1, switches.TREE_BATCH_MIN_ROWS,
               switches.TREE_ACCUMULATE_MAX_ROWS, switches.TREE_ACCUMULATE_MAX_ROWS + 1})
IN_TYPES = {"fp32": TensorProto.FLOAT, "fp64": TensorProto.DOUBLE}


def _stump_forest(n_trees: int, n_classes: int, ids: str, in_type: int,
                  post: str = "NONE") -> bytes:
    """``n_trees`` stumps, tree t on feature t (x <= 0.5 left): pure leaves that give all of
    the tree's 1 / n_trees weight to one class (left class 0, right class 1 + t % (n_classes - 1)).
    ``ids``: "one" writes a binary forest as skl2onnx does (class id 0 only, weight = P(class 1)),
    "all" a weight for every class (zeros included)."""
    nodes: dict[str, Any] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids")}
    votes: dict[str, Any] = {k: [] for k in ("class_treeids", "class_nodeids", "class_ids",
                                              "class_weights")}
    share = float(np.float32(1 / n_trees))
    for t in range(n_trees):
        for nid, mode, feat, true, false in ((0, "BRANCH_LEQ", t, 1, 2), (1, "LEAF", 0, 0, 0),
                                             (2, "LEAF", 0, 0, 0)):
            for key, val in zip(nodes, (t, nid, feat, 0.5 if nid == 0 else 0.0, mode, true, false)):
                nodes[key].append(val)
        for leaf, cls in ((1, 0), (2, 1 + t % (n_classes - 1))):
            classes = [0] if ids == "one" else range(n_classes)
            for c in classes:
                hit = (cls == 1) if ids == "one" else (cls == c)
                for key, val in zip(votes, (t, leaf, c, share if hit else 0.0)):
                    votes[key].append(val)
    node = helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "p"], domain=ML,
                            classlabels_int64s=list(range(n_classes)), post_transform=post,
                            **nodes, **votes)
    graph = helper.make_graph(
        [node], "ties", [helper.make_tensor_value_info("x", in_type, [None, n_trees])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, n_classes])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(ML, 1)])
    model.ir_version = 8
    return model.SerializeToString()


def _split_votes(n: int, n_trees: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of 0/1 cells, most with exactly half the trees going right (a 50/50 vote in a
    binary forest), the rest one vote either way."""
    right = rng.choice([n_trees // 2] * 6 + [n_trees // 2 - 1, n_trees // 2 + 1], size=n)
    x = (rng.random((n, n_trees)).argsort(axis=1) < right[:, None]).astype(np.float64)
    return x


#: (trees, classes, ids, post-transform); 400 stumps have more nodes than
#: TREE_SQUARING_MAX_NODES, so one row takes the level-by-level walk
FORESTS = [(20, 2, "one", "NONE"), (20, 2, "all", "NONE"), (6, 2, "one", "NONE"),
           (10, 3, "all", "NONE"), (400, 2, "one", "NONE"), (20, 2, "all", "LOGISTIC")]
assert 3 * 400 > switches.TREE_SQUARING_MAX_NODES >= 3 * 20


def _rows_for(n_trees: int) -> list[int]:
    lo, hi = switches.rows_where_switching(switches.TREE_SMALL_BATCH_CELLS, 3 * n_trees)
    return sorted(set(ROWS) | {r for r in (lo, hi) if r <= 5000})


@pytest.mark.parametrize("precision", list(IN_TYPES))
@pytest.mark.parametrize("forest", FORESTS, ids=["-".join(map(str, f)) for f in FORESTS])
def test_tied_votes_get_onnxruntimes_label_at_every_size(forest: Any, precision: str) -> None:
    n_trees, n_classes, ids, post = forest
    blob = _stump_forest(n_trees, n_classes, ids, IN_TYPES[precision], post)
    sess = ort_session(blob)
    plans = [load_plan(blob)[0], load_plan(blob, fuse=False)[0]]
    rng = np.random.default_rng(n_trees * 10 + n_classes)
    dtype = np.float32 if precision == "fp32" else np.float64
    for n in _rows_for(n_trees):
        x = _split_votes(n, n_trees, rng).astype(dtype)
        label, proba = sess.run(None, {"x": x})
        for plan in plans:
            got_label, got_proba = plan.run({"x": x})
            what = (forest, precision, n)
            assert np.array_equal(got_label, label), what
            # the label a bundle with label_from=probabilities reports
            assert np.array_equal(got_proba.argmax(axis=1), proba.argmax(axis=1)), what
            assert np.abs(got_proba - proba).max() <= 1e-6, what
            assert got_proba.dtype == proba.dtype, (what, got_proba.dtype)  # the graph's float


def test_tie_rows_exist() -> None:
    """The rows above do tie: onnxruntime's stored probabilities are exactly 0.5 / 0.5 on some
    (a test of ties that never met one could not fail)."""
    blob = _stump_forest(20, 2, "one", TensorProto.DOUBLE)
    _, proba = ort_session(blob).run(None, {"x": _split_votes(300, 20, np.random.default_rng(0))})
    assert (proba[:, 0] == proba[:, 1]).sum() > 100


@pytest.mark.parametrize("precision", list(IN_TYPES))
def test_regressor_values_are_float32_like_onnxruntimes(precision: str) -> None:
    """TreeEnsembleRegressor's Y is float32 for float64 inputs too (ONNX's type for Y): the
    float64 sums rounded once, so both engines return the same numbers."""
    from numpy_diff import random_trees

    rng = np.random.default_rng(3)
    attrs = random_trees(rng, 20, 3, 4, ["BRANCH_LEQ"], 2, "regressor")
    node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain=ML, n_targets=2, **attrs)
    graph = helper.make_graph(
        [node], "reg", [helper.make_tensor_value_info("x", IN_TYPES[precision], [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(ML, 1)])
    model.ir_version = 8
    blob = model.SerializeToString()
    sess, plan = ort_session(blob), load_plan(blob)[0]
    dtype = np.float32 if precision == "fp32" else np.float64
    for n in _rows_for(20):
        x = rng.normal(size=(n, 4)).astype(dtype)
        want, got = sess.run(None, {"x": x})[0], plan.run({"x": x})[0]
        assert got.dtype == want.dtype, (precision, n, got.dtype)
        assert np.abs(got - want).max() <= 1e-6 * (1 + np.abs(want).max()), (precision, n)
