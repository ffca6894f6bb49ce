"""Differential tests of the numpy backend at every size: every zoo bundle and every registered
kernel against onnxruntime (and LiteRT where a bundle has a TFLite artifact) at row counts that
straddle each size switch of the kernels (``edge_runtime/onnx_numpy/switches.py``), on random
finite rows drawn from the bundle's reference statistics and outside them.

Why: a kernel that changes its code path with the input's size can be right on the few rows a
bundle's golden rows or ONNX's node tests use and wrong above the switch (ArgMin returned the
argmax from 32 rows on). The switch tests below fail when a switch is added that these row
counts do not cross.
"""

from __future__ import annotations

import ast
import glob
import json
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy_diff import TOL, assert_same, assert_same_topk, ort_session, random_trees, reference_rows
from onnx import TensorProto, helper
from zoo import CASES, dataset, fitted

import edge_runtime
from edge_runtime.onnx_numpy import switches
from edge_runtime.onnx_numpy.ops import supported
from edge_runtime.onnx_numpy.plan import load_plan

#: row counts every differential test runs: each side of every row switch, plus 1,000 rows
ROW_COUNTS = (1, 2, 4, 5, 7, 31, 32, 33, 64, 65, 1000)
#: the large batch, run for a few examples per bundle only
BIG_ROWS = 10_000
#: model-dependent switch rows above this are not run (the model does not reach them)
MAX_ROWS = BIG_ROWS

_settings = settings(max_examples=3, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])


# --- the switches themselves -----------------------------------------------------------------

def test_row_counts_straddle_every_row_switch():
    """Each row switch is run just below and at its first row on the upper path."""
    for name, first_upper in switches.ROW_SWITCHES.items():
        assert first_upper - 1 in ROW_COUNTS and first_upper in ROW_COUNTS, name
    assert max(ROW_COUNTS) < BIG_ROWS and 1000 in ROW_COUNTS


def test_every_scaled_switch_has_a_dimension_reader():
    """Every rows x dimension switch is computed per model below (:func:`_model_switch_rows`)
    and crossed by at least one model of this file within MAX_ROWS rows."""
    assert set(switches.SCALED_SWITCHES) == set(_DIMENSIONS)
    crossed = {name for m in _kernel_models().values()
               for name in _model_switch_rows(m.SerializeToString())}
    assert crossed >= set(switches.SCALED_SWITCHES), set(switches.SCALED_SWITCHES) - crossed


def test_other_switches_are_crossed_by_the_kernel_models():
    """Bounds on columns, k, nodes and axis length: the kernel models use shapes on each side."""
    cols = set(KERNEL_COLUMNS)
    c = switches.COLUMN_LOOP_MAX_COLUMNS
    assert c in cols and c + 1 in cols
    k = switches.TOPK_ARGMIN_MAX_K
    assert {k, k + 1} <= set(TOPK_K)
    n = switches.TOPK_SORT_MAX_AXIS
    assert {n, n + 1} <= set(TOPK_AXIS)
    s = switches.TREE_SQUARING_MAX_NODES
    nodes = {_trees(n)[0] for m in KERNEL_MODELS.values() for n in m.graph.node
             if n.op_type.startswith("TreeEnsemble")}
    assert any(v <= s for v in nodes) and any(v > s for v in nodes), nodes
    assert set(switches.OTHER_SWITCHES) == {"COLUMN_LOOP_MAX_COLUMNS", "TOPK_ARGMIN_MAX_K",
                                            "TOPK_SORT_MAX_AXIS", "TREE_SQUARING_MAX_NODES"}


_KERNEL_DIRS = ("ops", "fuse")
#: module-level integer constants of the kernels that are not size switches: a leaf marker; the int64 key bound of TfIdf
#: n-gram counting (vocabulary ** n: a model dimension, both paths tested in test_numpy_strings.py)
_NOT_SWITCHES = {"_LEAF", "MAX_GRAM_KEY"}
_SIZE_WORDS = ("shape[0]", "rows", "n_batch", "len(x)")


def test_no_size_switch_outside_the_switches_module():
    """Kernels take size bounds from ``switches`` only: no module-level integer constants in
    ``ops/`` or ``fuse/`` and no comparison of a row count with an integer literal above 1."""
    root = Path(switches.__file__).parent
    found = []
    for d in _KERNEL_DIRS:
        for path in sorted((root / d).glob("*.py")):
            src = path.read_text()
            tree = ast.parse(src)
            for node in tree.body:  # module-level NAME = <int expression>
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                        isinstance(node.targets[0], ast.Name) and \
                        type(_literal(node.value)) is int and \
                        node.targets[0].id not in _NOT_SWITCHES:
                    found.append(f"{path.name}:{node.lineno} {node.targets[0].id}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Compare):
                    sides = [node.left, *node.comparators]
                    text = [ast.get_source_segment(src, s) or "" for s in sides]
                    lits = [_literal(s) for s in sides]
                    if any(isinstance(v, int) and not isinstance(v, bool) and v > 1
                           for v in lits) and any(w in t for t in text for w in _SIZE_WORDS):
                        found.append(f"{path.name}:{node.lineno} {ast.get_source_segment(src, node)}")
    assert not found, "size switches outside switches.py: " + "; ".join(found)


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node) if not isinstance(node, ast.BinOp) else \
            eval(compile(ast.Expression(node), "<const>", "eval"), {})  # 1 << 16
    except Exception:
        return None


# --- model dimensions behind the scaled switches ----------------------------------------------

def _attr(node: Any, name: str) -> Any:
    from onnx import helper as h

    for a in node.attribute:
        if a.name == name:
            return h.get_attribute_value(a)
    return None


def _trees(node: Any) -> tuple[int, int, int]:
    """(nodes, trees, outputs) of a TreeEnsemble node."""
    ids = _attr(node, "nodes_nodeids") or []
    trees = len(set(_attr(node, "nodes_treeids") or []))
    outs = _attr(node, "n_targets") or len(_attr(node, "classlabels_int64s") or
                                            _attr(node, "classlabels_strings") or [0, 1])
    return len(ids), trees, (outs if outs > 2 or node.op_type.endswith("Regressor") else 1)


def _scan_points(graph: Any, node: Any) -> int:
    inits = {t.name: t for t in graph.initializer}
    xs = inits.get(node.input[-1])
    return int(xs.dims[0]) if xs is not None and xs.dims else 0


_DIMENSIONS: dict[str, Callable[[Any, Any], int]] = {
    # switch name -> the model dimension for a node it applies to (0: the node does not use it)
    "TREE_SMALL_BATCH_CELLS": lambda g, n: _trees(n)[0] if n.op_type.startswith("TreeEnsemble") else 0,
    "TREE_CHUNK_CELLS": lambda g, n: _trees(n)[1] * _trees(n)[2] if n.op_type.startswith(
        "TreeEnsemble") and (_attr(n, "aggregate_function") or b"SUM") in (b"MIN", b"MAX") else 0,
    "SCAN_DISTANCE_CHUNK_CELLS": lambda g, n: _scan_points(g, n) if n.op_type == "Scan" else 0,
    # k-NN: TopK's axis is the scanned points; a lone TopK kernel model: its declared width
    "TOPK_ARGMIN_CHUNK_CELLS": lambda g, n: _topk_axis(g) if n.op_type == "TopK" else 0,
}


def _topk_axis(graph: Any) -> int:
    for n in graph.node:
        if n.op_type == "Scan":
            return _scan_points(graph, n)
    dims = graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims else 0


def _model_switch_rows(model: bytes) -> dict[str, tuple[int, int]]:
    """Scaled switch -> (last rows below, first rows above) for this model, where within
    MAX_ROWS."""
    import onnx

    m = onnx.load_from_string(model)
    out = {}
    for node in m.graph.node:
        for name, dim in _DIMENSIONS.items():
            d = dim(m.graph, node)
            if d:
                lo, hi = switches.rows_where_switching(switches.SCALED_SWITCHES[name][0], d)
                if hi <= MAX_ROWS:
                    out[name] = (lo, hi)
    return out


def _row_counts(model: bytes) -> list[int]:
    extra = {r for pair in _model_switch_rows(model).values() for r in pair}
    return sorted(set(ROW_COUNTS) | extra)


# --- every zoo bundle ------------------------------------------------------------------------

def _onnx_bytes(bundle: Path) -> bytes:
    return Path(glob.glob(str(bundle / "*.onnx"))[0]).read_bytes()


#: tolerance for rows with cells beyond the training range: there intermediate values (GaussianNB
#: log-likelihoods, logits, kernel sums) grow by 100-10,000x and float32 rounding of them, in
#: either engine's order, moves probabilities by up to ~1e-3 (measured worst: 6.3e-4, GaussianNB)
OUTSIDE_TOL = 2e-3


def _compare_bundle(case: Any, bundle: Path, x: np.ndarray, engines: dict, what: str,
                    outside: float) -> None:
    """numpy (and LiteRT) against onnxruntime on the rows ``x``: values within tolerance
    (regression values relative to the batch's largest: their float32 sums round at the size
    of their terms); labels identical except at near ties, which must be shown to be ties."""
    ort_m, npy_m = engines["onnxruntime"], engines["numpy"]
    names = list(npy_m.artifact.outputs.values())
    tol = TOL if outside == 0 else OUTSIDE_TOL
    want = ort_m.backend.run(x, names)
    got = npy_m.backend.run(x, names)
    proba = dict(zip(names, want)).get(npy_m.artifact.outputs.get("probabilities"))
    # a tree ensemble's votes are summed in onnxruntime's order and precision: its labels must
    # be identical even on exact ties (a 50/50 vote once flipped with the engine)
    exact = b"TreeEnsembleClassifier" in _onnx_bytes(bundle)
    for w, g, name in zip(want, got, names):
        w, g = np.asarray(w), np.asarray(g)
        if w.dtype.kind == "f":
            floor = float(np.abs(w).max(initial=1.0)) if case.task == "regression" else 1.0
            if case.id.startswith("knn"):
                rows = _knn_ties(case, x, w, g, tol, floor)
                w, g = np.delete(w, rows, axis=0), np.delete(g, rows, axis=0)
            assert_same(w, g, f"{what} numpy:{name}", tol, floor)
        else:
            diff = np.nonzero(w.ravel() != g.ravel())[0]
            if len(diff):
                assert not exact, (what, f"numpy:{name}", "a tree ensemble's labels differ", diff[:5])
                _assert_ties(case, x, diff, proba, tol, f"{what} numpy:{name}")
    if proba is not None and np.ndim(proba) == 2 and np.shape(proba)[1] > 1:
        # the label of a bundle with label_from=probabilities: argmax of the stored floats
        got_p = np.asarray(dict(zip(names, got))[npy_m.artifact.outputs["probabilities"]])
        diff = np.nonzero(np.argmax(proba, axis=1) != np.argmax(got_p, axis=1))[0]
        if len(diff):
            assert not exact, (what, "numpy: argmax(probabilities) of a tree ensemble differs",
                               diff[:5])
            _assert_ties(case, x, diff, proba, tol, f"{what} numpy:argmax(probabilities)")
    lite = engines.get("litert")
    if lite is not None:  # its own compiler: labels identical, values within LiteRT's 1e-4
        lnames = list(lite.artifact.outputs.values())
        for w, g, name in zip(lite.backend.run(x, lnames), want, names):
            w, g = np.asarray(w), np.asarray(g)
            if g.dtype.kind == "f":
                assert np.allclose(w, g, atol=1e-4 * (1 + np.abs(g).max()), rtol=0), \
                    (what, "litert", name)


def _knn_near_tie(case: Any, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each row: does its k-th nearest training point tie (within float32 resolution,
    2e-7 relative) with the next one? Then either may be taken: onnxruntime's float32 sums
    and the numpy backend's float64 distances rounded to float32 order them differently."""
    est = fitted(case.id)
    knn = est[-1]
    q = est[:-1].transform(x[rows].astype(np.float64))
    dist, _ = knn.kneighbors(q, n_neighbors=knn.n_neighbors + 1)
    d_k, d_next = dist[:, -2], dist[:, -1]
    return np.abs(d_next - d_k) <= 2e-7 * np.maximum(d_k, 1e-30)


def _knn_ties(case: Any, x: np.ndarray, w: np.ndarray, g: np.ndarray, tol: float,
              floor: float) -> np.ndarray:
    """Rows where k-NN's outputs differ beyond ``tol``; each must be a near tie."""
    err = np.abs(w.astype(np.float64) - g) / np.maximum(floor, np.abs(w))
    rows = np.nonzero((err.reshape(len(x), -1) > tol).any(axis=1))[0]
    if len(rows):
        ties = _knn_near_tie(case, x, rows)
        assert ties.all(), (case.id, "k-NN differs without a tie", rows[~ties][:5])
    return rows


def _assert_ties(case: Any, x: np.ndarray, rows: np.ndarray, proba: Any, tol: float,
                 what: str) -> None:
    """Labels that differ: allowed only where the two classes tie (within ``tol``) in
    onnxruntime's own probabilities, or, for k-NN, where the k-th neighbour ties."""
    if case.id.startswith("knn"):
        ties = _knn_near_tie(case, x, rows)
        assert ties.all(), (what, "labels differ without a tie", rows[~ties][:5])
        return
    assert proba is not None, (what, "labels differ", rows[:5])
    p = np.sort(np.asarray(proba)[rows].reshape(len(rows), -1), axis=1)
    # a single probability column: the tie is at 0.5
    gap = np.abs(p[:, 0] - 0.5) * 2 if p.shape[1] == 1 else p[:, -1] - p[:, -2]
    assert (gap <= max(tol, 1e-6)).all(), (what, "labels differ without a tie", rows[:5],
                                           gap.max())


def _engines(bundle: Path) -> dict:
    # onnxruntime on one thread, as every differential test runs it: with more, it sums a
    # forest's trees in per-thread parts (its labels on near ties then depend on its thread
    # count: 34 of 20,000 rows of the 30-tree 3-class forest at 1 vs 2 threads)
    engines = {"onnxruntime": edge_runtime.load(bundle, backend="onnxruntime", threads=1),
               "numpy": edge_runtime.load(bundle, backend="numpy")}
    manifest = json.loads((bundle / "manifest.json").read_text())
    if any(a["format"] == "tflite" for a in manifest["artifacts"]):
        engines["litert"] = edge_runtime.load(bundle, backend="litert")
    return engines


def _rows_for(bundle: Path, n: int, rng: np.random.Generator, outside: float) -> np.ndarray:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return reference_rows(manifest["reference"], n, rng, outside)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_zoo_bundle_at_every_size(case, bundles):
    bundle = Path(bundles(case))
    engines = _engines(bundle)
    counts = _row_counts(_onnx_bytes(bundle))

    @_settings
    @given(seed=st.integers(0, 2**32 - 1), outside=st.sampled_from([0.0, 0.05, 0.5]))
    def check(seed: int, outside: float) -> None:
        rng = np.random.default_rng(seed)
        for n in counts:
            x = _rows_for(bundle, n, rng, outside)
            _compare_bundle(case, bundle, x, engines, f"{case.id} rows={n} outside={outside}",
                            outside)

    check()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_zoo_bundle_at_ten_thousand_rows(case, bundles):
    bundle = Path(bundles(case))
    engines = _engines(bundle)
    for outside in (0.0, 0.2):
        rng = np.random.default_rng(zlib.crc32(f"{case.id}{outside}".encode()))
        x = _rows_for(bundle, BIG_ROWS, rng, outside)
        _compare_bundle(case, bundle, x, engines, f"{case.id} rows={BIG_ROWS} outside={outside}",
                        outside)


def _tflite_cases() -> list:
    """Zoo cases the TFLite compiler supports (test_tflite.py's rule), to convert with both
    formats."""
    from converters.tflite.compile import LINEAR, MLP, TREES

    out = []
    for case in CASES:
        est = case.make()  # the estimator's types, without fitting it
        last = est.steps[-1][1] if hasattr(est, "steps") else est
        pre = all(type(s).__name__ in ("StandardScaler", "MinMaxScaler", "SimpleImputer")
                  for _, s in getattr(est, "steps", [])[:-1])
        # (HistGradientBoosting compiles slowly to TFLite: the forests and boosted trees
        # cover the same tree layouts)
        if pre and type(last).__name__ in LINEAR + MLP + TREES and case.data != "mixed" and \
                not case.id.startswith("hgb"):
            out.append(case)
    return out


TFL = _tflite_cases()


@pytest.mark.parametrize("case", TFL, ids=[c.id for c in TFL])
def test_tflite_bundle_at_every_size(case, tmp_path):
    """The same rows on onnxruntime, numpy and LiteRT, for a bundle with both artifacts."""
    pytest.importorskip("ai_edge_litert")
    import converters

    X, _, X_te, _ = dataset(case.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = Path(converters.convert(fitted(case.id), X, tmp_path / "b", holdout=X_te,
                                         formats=("onnx", "tflite")))
    engines = _engines(bundle)
    assert "litert" in engines
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    for n in _row_counts(_onnx_bytes(bundle)):
        x = _rows_for(bundle, n, rng, 0.0)
        _compare_bundle(case, bundle, x, engines, f"{case.id} rows={n}", 0.0)


# --- every registered kernel -----------------------------------------------------------------

#: column counts of the kernel models: each side of the column-loop bound
KERNEL_COLUMNS = (3, switches.COLUMN_LOOP_MAX_COLUMNS, switches.COLUMN_LOOP_MAX_COLUMNS + 1)
TOPK_K = (1, switches.TOPK_ARGMIN_MAX_K, switches.TOPK_ARGMIN_MAX_K + 1, 20)
TOPK_AXIS = (switches.TOPK_SORT_MAX_AXIS, switches.TOPK_SORT_MAX_AXIS + 1)

F = TensorProto.FLOAT
ML = "ai.onnx.ml"


def _model(nodes: list, cols: int, outputs: list, inits: list = (), ml: bool = False,
           opset: int = 18) -> Any:
    x = helper.make_tensor_value_info("x", F, [None, cols])
    outs = [helper.make_tensor_value_info(name, t, None) for name, t in outputs]
    g = helper.make_graph(nodes, "k", [x], outs, list(inits))
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(ML, 3)] if ml else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m


def _const(name: str, values: Any, dtype: int = F) -> Any:
    arr = np.asarray(values)
    return helper.make_tensor(name, dtype, arr.shape, arr.ravel().tolist())


def _row_const(cols: int, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    return _const("c", rng.normal(size=(1, cols)).astype(np.float32))


def _one(op: str, cols: int, inputs=("x",), out_type: int = F, **attrs) -> Any:
    return _model([helper.make_node(op, list(inputs), ["y"], **attrs)], cols, [("y", out_type)],
                  [_row_const(cols)] if "c" in inputs else [])


UNARY = ("Abs", "Ceil", "Erf", "Exp", "Floor", "Identity", "Log", "Neg", "Reciprocal", "Relu",
         "Sigmoid", "Sign", "Softplus", "Sqrt", "Tanh")
BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum")
COMPARE = ("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual")
REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
          "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")


def _reduce(op: str, cols: int, axis: int, keepdims: int) -> Any:
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
    return _model([node], cols, [("y", F)], [_const("axes", [axis], TensorProto.INT64)])


def _tree_model(kind: str, n_trees: int, depth: int, cols: int, agg: str = "SUM") -> Any:
    rng = np.random.default_rng(n_trees * 100 + depth)
    n_out = 2 if kind == "regressor" else 3
    attrs = random_trees(rng, n_trees, depth, cols, ["BRANCH_LEQ", "BRANCH_LT"], n_out, kind)
    if kind == "regressor":
        node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain=ML, n_targets=n_out,
                                aggregate_function=agg, **attrs)
        return _model([node], cols, [("y", F)], ml=True, opset=17)
    node = helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "p"], domain=ML,
                            classlabels_int64s=[0, 1, 2], post_transform="SOFTMAX", **attrs)
    return _model([node], cols, [("label", TensorProto.INT64), ("p", F)], ml=True, opset=17)


def _svm(kind: str, cols: int) -> Any:
    rng = np.random.default_rng(cols)
    n_sv = 12
    sv = rng.normal(size=(n_sv, cols)).astype(np.float32).ravel().tolist()
    common = dict(kernel_type="RBF", kernel_params=[0.2, 0.0, 3.0], support_vectors=sv)
    if kind == "regressor":
        node = helper.make_node("SVMRegressor", ["x"], ["y"], domain=ML, n_supports=n_sv,
                                coefficients=rng.normal(size=n_sv).tolist(), rho=[0.1], **common)
        return _model([node], cols, [("y", F)], ml=True, opset=17)
    # three classes, 4 vectors each, with probabilities (pairwise coupling: the row switch)
    node = helper.make_node(
        "SVMClassifier", ["x"], ["label", "p"], domain=ML, classlabels_ints=[0, 1, 2],
        vectors_per_class=[4, 4, 4], coefficients=rng.normal(size=2 * n_sv).tolist(),
        rho=rng.normal(size=3).tolist(), prob_a=[-2.0, -1.5, -1.0], prob_b=[0.1, -0.1, 0.0],
        **common)
    return _model([node], cols, [("label", TensorProto.INT64), ("p", F)], ml=True, opset=17)


def _scan(cols: int, distance: bool) -> Any:
    """k-NN's distance Scan (the fast path) or a body the fast path must leave alone."""
    points = np.random.default_rng(cols).normal(size=(300, cols)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("Sub" if distance else "Add", ["s", "p"], ["d"]),
         helper.make_node("ReduceSumSquare", ["d"], ["r"], axes=[1], keepdims=0),
         helper.make_node("Identity", ["s"], ["s_out"])],
        "body", [helper.make_tensor_value_info("s", F, [None, cols]),
                 helper.make_tensor_value_info("p", F, [cols])],
        [helper.make_tensor_value_info("s_out", F, [None, cols]),
         helper.make_tensor_value_info("r", F, [None])])
    nodes = [helper.make_node("Scan", ["x", "pts"], ["state", "dist"], body=body,
                              num_scan_inputs=1),
             helper.make_node("Transpose", ["dist"], ["dt"], perm=[1, 0]),
             helper.make_node("TopK", ["dt", "k"], ["v", "i"], largest=0, axis=1)]
    return _model(nodes, cols, [("v", F), ("i", TensorProto.INT64)],
                  [_const("pts", points), _const("k", [5], TensorProto.INT64)], opset=17)


def _one_op_models(cols: int) -> dict[str, Any]:
    """The single-node models of the element-wise, reduction, arg and softmax kernels."""
    models: dict[str, Any] = {}
    for op in UNARY:
        models[f"{op}/{cols}"] = _one(op, cols)
    for op in BINARY:
        models[f"{op}/{cols}"] = _one(op, cols, ("x", "c"))
    for op in COMPARE:
        models[f"{op}/{cols}"] = _one(op, cols, ("x", "c"), TensorProto.BOOL)
    for op in REDUCE:
        for axis, keep in ((1, 1), (1, 0), (0, 1)):
            models[f"{op}/{cols}/axis{axis}/keep{keep}"] = _reduce(op, cols, axis, keep)
    for op in ("ArgMax", "ArgMin"):
        for axis, keep, last in ((1, 1, 0), (1, 0, 0), (1, 1, 1), (0, 1, 0)):
            models[f"{op}/{cols}/axis{axis}/keep{keep}/last{last}"] = _one(
                op, cols, out_type=TensorProto.INT64, axis=axis, keepdims=keep, select_last_index=last)
    for axis in (1, 0):
        models[f"Softmax/{cols}/axis{axis}"] = _one("Softmax", cols, axis=axis)
        models[f"LogSoftmax/{cols}/axis{axis}"] = _one("LogSoftmax", cols, axis=axis)
    return models


def _kernel_models() -> dict[str, Any]:
    """Model id -> a small model exercising one registered kernel (a few need a node before
    them for their input type); ids start with the op they are for."""
    models: dict[str, Any] = {}
    i64 = TensorProto.INT64
    for cols in KERNEL_COLUMNS:
        models.update(_one_op_models(cols))
        models[f"LeakyRelu/{cols}"] = _one("LeakyRelu", cols, alpha=0.1)
        models[f"IsNaN/{cols}"] = _model(
            [helper.make_node("Log", ["x"], ["l"]), helper.make_node("IsNaN", ["l"], ["y"])],
            cols, [("y", TensorProto.BOOL)])
        models[f"Cast/{cols}"] = _one("Cast", cols, out_type=TensorProto.DOUBLE,
                                      to=TensorProto.DOUBLE)
        models[f"CastLike/{cols}"] = _model(
            [helper.make_node("CastLike", ["x", "like"], ["y"])], cols, [("y", TensorProto.DOUBLE)],
            [_const("like", [0.0], TensorProto.DOUBLE)])
        models[f"Clip/{cols}"] = _model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], cols,
                                        [("y", F)], [_const("lo", -0.5), _const("hi", 0.7)])
        models[f"Bool ops/{cols}"] = _model(
            [helper.make_node("Greater", ["x", "c"], ["a"]),
             helper.make_node("Less", ["x", "c2"], ["b"]),
             helper.make_node("And", ["a", "b"], ["y_and"]),
             helper.make_node("Or", ["a", "b"], ["y_or"]),
             helper.make_node("Xor", ["a", "b"], ["y_xor"]),
             helper.make_node("Not", ["a"], ["y_not"]),
             helper.make_node("Where", ["a", "x", "c"], ["y_where"])],
            cols, [(n, TensorProto.BOOL) for n in ("y_and", "y_or", "y_xor", "y_not")]
            + [("y_where", F)], [_row_const(cols), _const("c2", np.full((1, cols), 0.5, np.float32))])
        w = np.random.default_rng(cols).normal(size=(cols, 4)).astype(np.float32)
        models[f"Gemm/{cols}"] = _model(
            [helper.make_node("Gemm", ["x", "w", "b"], ["y"], alpha=0.5, beta=2.0)], cols,
            [("y", F)], [_const("w", w), _const("b", np.arange(4, dtype=np.float32))])
        models[f"Gemm/{cols}/transB"] = _model(
            [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], cols,
            [("y", F)], [_const("w", w.T.copy()), _const("b", np.arange(4, dtype=np.float32))])
        models[f"MatMul/{cols}"] = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], cols,
                                          [("y", F)], [_const("w", w)])
        models[f"Shape ops/{cols}"] = _model(
            [helper.make_node("Concat", ["x", "x"], ["cat"], axis=1),
             helper.make_node("Transpose", ["cat"], ["t"], perm=[1, 0]),
             helper.make_node("Unsqueeze", ["t", "ax0"], ["u"]),
             helper.make_node("Squeeze", ["u", "ax0"], ["sq"]),
             helper.make_node("Flatten", ["sq"], ["fl"], axis=1),
             helper.make_node("Reshape", ["fl", "flat"], ["y_reshape"]),
             helper.make_node("Shape", ["x"], ["y_shape"]),
             helper.make_node("Size", ["x"], ["y_size"]),
             helper.make_node("ConstantOfShape", ["y_shape"], ["y_zeros"],
                              value=helper.make_tensor("v", F, [1], [1.5])),
             helper.make_node("Gather", ["x", "idx"], ["y_gather"], axis=1),
             helper.make_node("ArgMax", ["x"], ["am"], axis=1, keepdims=1),
             helper.make_node("GatherElements", ["x", "am"], ["y_gel"], axis=1),
             helper.make_node("Slice", ["x", "st", "en", "sax"], ["y_slice"]),
             helper.make_node("Tile", ["x", "reps"], ["y_tile"]),
             helper.make_node("Expand", ["x", "eshape"], ["y_expand"]),
             helper.make_node("Constant", [], ["k7"], value_float=7.0),
             helper.make_node("Add", ["x", "k7"], ["y_const"])],
            cols, [("y_reshape", F), ("y_shape", i64), ("y_size", i64), ("y_zeros", F),
                   ("y_gather", F), ("y_gel", F), ("y_slice", F), ("y_tile", F),
                   ("y_expand", F), ("y_const", F)],
            [_const("ax0", [0], i64), _const("flat", [-1], i64),
             _const("idx", [cols - 1, 0], i64), _const("st", [1], i64),
             _const("en", [cols], i64), _const("sax", [1], i64), _const("reps", [1, 2], i64),
             _const("eshape", [2, 1, 1], i64)])
        models[f"Quantize ops/{cols}"] = _model(
            [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y_dq"]),
             helper.make_node("DynamicQuantizeLinear", ["x"], ["dq", "ds", "dz"]),
             helper.make_node("MatMulInteger", ["dq", "wq", "dz", "wz"], ["y_mmi"])],
            cols, [("y_dq", F), ("y_mmi", TensorProto.INT32)],
            [_const("s", 0.02), _const("zp", 128, TensorProto.UINT8),
             _const("wq", np.random.default_rng(cols).integers(0, 255, (cols, 3)), TensorProto.UINT8),
             _const("wz", 120, TensorProto.UINT8)])
        # ai.onnx.ml
        rng = np.random.default_rng(cols)
        models[f"Scaler/{cols}"] = _model([helper.make_node(
            "Scaler", ["x"], ["y"], domain=ML, offset=rng.normal(size=cols).tolist(),
            scale=rng.uniform(0.5, 2, cols).tolist())], cols, [("y", F)], ml=True, opset=17)
        for norm in ("L1", "L2", "MAX"):
            models[f"Normalizer/{cols}/{norm}"] = _model([helper.make_node(
                "Normalizer", ["x"], ["y"], domain=ML, norm=norm)], cols, [("y", F)], ml=True,
                opset=17)
        models[f"Binarizer/{cols}"] = _model([helper.make_node(
            "Binarizer", ["x"], ["y"], domain=ML, threshold=0.1)], cols, [("y", F)], ml=True,
            opset=17)
        models[f"Imputer/{cols}"] = _model(
            [helper.make_node("Log", ["x"], ["l"]),  # NaN where x < 0
             helper.make_node("Imputer", ["l"], ["y"], domain=ML,
                              imputed_value_floats=rng.normal(size=cols).tolist(),
                              replaced_value_float=float("nan"))],
            cols, [("y", F)], ml=True, opset=17)
        models[f"ArrayFeatureExtractor/{cols}"] = _model([helper.make_node(
            "ArrayFeatureExtractor", ["x", "fidx"], ["y"], domain=ML)], cols, [("y", F)],
            [_const("fidx", [cols - 1, 0], i64)], ml=True, opset=17)
        models[f"OneHotEncoder/{cols}"] = _model(
            [helper.make_node("Floor", ["x"], ["f"]),
             helper.make_node("OneHotEncoder", ["f"], ["y"], domain=ML,
                              cats_int64s=[-1, 0, 1], zeros=1)],
            cols, [("y", F)], ml=True, opset=17)
        models[f"LinearRegressor/{cols}"] = _model([helper.make_node(
            "LinearRegressor", ["x"], ["y"], domain=ML, targets=2,
            coefficients=rng.normal(size=2 * cols).tolist(), intercepts=[0.5, -0.5])], cols,
            [("y", F)], ml=True, opset=17)
        for post in ("SOFTMAX", "LOGISTIC", "NONE"):
            models[f"LinearClassifier/{cols}/{post}"] = _model([helper.make_node(
                "LinearClassifier", ["x"], ["label", "p"], domain=ML,
                classlabels_ints=[0, 1, 2], coefficients=rng.normal(size=3 * cols).tolist(),
                intercepts=[0.1, 0.2, 0.3], post_transform=post)], cols,
                [("label", i64), ("p", F)], ml=True, opset=17)
        models[f"SVMRegressor/{cols}"] = _svm("regressor", cols)
        models[f"SVMClassifier/{cols}"] = _svm("classifier", cols)
        # 217 and 1,533 nodes: each side of the single-row squaring bound (1,024)
        models[f"TreeEnsembleRegressor/{cols}"] = _tree_model("regressor", 7, 4, cols)
        models[f"TreeEnsembleClassifier/{cols}"] = _tree_model("classifier", 3, 8, cols)
        models[f"Scan/{cols}/distance"] = _scan(cols, True)
        models[f"Scan/{cols}/other"] = _scan(cols, False)
    for agg in ("MIN", "MAX"):  # the MIN/MAX chunk: 600 trees x 2 targets = 3,495 rows a chunk
        models[f"TreeEnsembleRegressor/4/{agg}"] = _tree_model("regressor", 600, 1, 4, agg)
    for n in TOPK_AXIS:
        for k in TOPK_K:
            for largest in (0, 1):
                models[f"TopK/{n}/k{k}/largest{largest}"] = _model(
                    [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)],
                    n, [("v", F), ("i", i64)], [_const("k", [k], i64)])
    return models


KERNEL_MODELS = _kernel_models()


def _kernel_rows(n: int, rng: np.random.Generator, cols: int) -> np.ndarray:
    """Random finite rows: normal values at a random scale, with ties (TopK, ArgMin, trees)
    and values far outside the usual range in some cells."""
    x = rng.normal(size=(n, cols)) * rng.choice([0.5, 1.0, 3.0])
    x[rng.random(x.shape) < 0.05] = 0.0
    ties = rng.random(x.shape) < 0.2
    x[ties] = np.round(x[ties])
    far = rng.random(x.shape) < 0.02
    x[far] = rng.normal(size=far.sum()) * 1e3
    return x.astype(np.float32)


@pytest.mark.parametrize("model_id", list(KERNEL_MODELS))
def test_kernel_at_every_size(model_id):
    model = KERNEL_MODELS[model_id]
    blob = model.SerializeToString()
    sess = ort_session(blob)
    plan, _ = load_plan(blob)
    plain, _ = load_plan(blob, fuse=False)
    cols = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    rng = np.random.default_rng(zlib.crc32(model_id.encode()))
    # products, powers, RBF kernel sums and the log of a sum that may cancel: float32 rounding
    # in either engine's order is amplified beyond 1e-5 (measured up to 1.3e-5)
    tol = 1e-4 if model_id.startswith(("ReduceProd", "ReduceLogSum/", "Pow", "SVM")) else 1e-5
    topk = model.graph.node[-1].op_type == "TopK"
    with np.errstate(all="ignore"):
        for n in [*_row_counts(blob), BIG_ROWS]:
            x = _kernel_rows(n, rng, cols)
            want = sess.run(None, {"x": x})
            for p in (plan, plain):
                got = p.run({"x": x})
                if topk:  # (values, indices)
                    assert_same_topk(*want, *got, f"{model_id} rows={n}", tol)
                    continue
                for j, (w, g) in enumerate(zip(want, got)):
                    assert_same(w, g, f"{model_id} rows={n} output {j}", tol)


# --- coverage of the registered kernels -------------------------------------------------------

def _ops_of(model: Any) -> set:
    return {("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in model.graph.node}


def test_every_registered_kernel_is_covered(bundles, record_property):
    """Each registered kernel runs at every row count above: in a kernel model, in a zoo
    bundle's plan (the fused steps live only there), or, at least, in ONNX's node tests tiled
    to >= 65 rows. Reports which source covers which op."""
    from numpy_string_cases import models as string_models  # tests/test_numpy_strings.py runs them
    from onnx_node_cases import cases, run_tiled, tileable, tiling

    by_kernel = set().union(*(_ops_of(m) for m in [*KERNEL_MODELS.values(), *string_models().values()]))
    by_zoo: set = set()
    for case in CASES:
        plan, _ = load_plan(_onnx_bytes(Path(bundles(case))))
        by_zoo |= {tuple(s.split("::")) if "::" in s else ("", s) for s in plan.step_ops}
    by_nodes: set = set()
    for c in cases():
        if tileable(c) and tiling(c.name) is not None:
            r = run_tiled(c.name)
            if r.error is None and r.refused is None:
                by_nodes |= r.ops
    registered = set(supported())
    missing = registered - by_kernel - by_zoo - by_nodes
    report = {"kernel models": len(registered & by_kernel), "zoo bundles": len(registered & by_zoo),
              "tiled node tests only": sorted(f"{d or 'ai.onnx'}::{o}" for d, o in
                                              registered & by_nodes - by_kernel - by_zoo)}
    record_property("coverage", json.dumps(report))  # printed at the end (tests/conftest.py)
    assert not missing, f"registered kernels no differential test runs: {sorted(missing)}"
