"""Plan-time shortcuts of the numpy backend: each fast path against the plain evaluation it
replaces (equal within 1e-6) and against onnxruntime, plus a model each shortcut must leave
alone."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.onnx_numpy.ops import control, reduce
from edge_runtime.onnx_numpy.plan import load_plan

FUSED_TOL = 1e-6


def _close(want, got, tol=FUSED_TOL, what=""):
    want, got = np.asarray(want), np.asarray(got)
    assert want.shape == got.shape, (what, want.shape, got.shape)
    if want.dtype.kind != "f":
        assert np.array_equal(want, got), what
        return
    err = np.abs(want.astype(np.float64) - got.astype(np.float64))
    scale = np.maximum(1.0, np.abs(want.astype(np.float64)))
    assert float(np.max(err / scale, initial=0.0)) <= tol, (what, float(np.max(err / scale)))


def _ort(blob: bytes, feeds: dict) -> list:
    import onnxruntime as ort

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _kernel_names(plan) -> list[str]:
    return [getattr(k, "__qualname__", "") for k, _, _ in plan.steps]


# --- k-NN: the squared-distance Scan -------------------------------------------------------------

def _knn_model(points: np.ndarray, k: int, body: str = "sq", expose: bool = True,
               transpose_state: bool = False) -> bytes:
    """skl2onnx's k-NN graph: Scan(state=X, scan=points) -> Transpose -> Sqrt -> TopK;
    ``expose``: the transposed distances are a graph output too; ``transpose_state``: the
    Transpose reads the Scan's passed-through state instead (not an array the Scan made)."""
    from onnx import TensorProto, helper, numpy_helper

    d = points.shape[1]
    nodes = [helper.make_node("Identity", ["next_in"], ["next_out"]),
             helper.make_node("Sub", ["next_in", "next"], ["diff"])]
    if body == "sq":
        nodes.append(helper.make_node("ReduceSumSquare", ["diff"], ["red"], axes=[1], keepdims=0))
    else:  # Manhattan distance: not the pattern, must run as a real Scan
        nodes += [helper.make_node("Abs", ["diff"], ["absd"]),
                  helper.make_node("ReduceSum", ["absd", "ax"], ["red"], keepdims=0)]
    nodes.append(helper.make_node("Identity", ["red"], ["scan_out"]))
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "ax")] if body != "sq" else []
    body_g = helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("next_in", TensorProto.FLOAT, [None, d]),
         helper.make_tensor_value_info("next", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("next_out", TensorProto.FLOAT, [None, d]),
         helper.make_tensor_value_info("scan_out", TensorProto.FLOAT, [None])], inits)
    nodes = [helper.make_node("Scan", ["x", "pts"], ["st", "dist"], body=body_g,
                              num_scan_inputs=1),
             helper.make_node("Transpose", ["dist"], ["dt"], perm=[1, 0]),
             helper.make_node("Sqrt", ["dt"], ["ds"]),
             helper.make_node("TopK", ["ds", "k"], ["vals", "idx"], largest=0, sorted=1)]
    outputs = [helper.make_tensor_value_info("vals", TensorProto.FLOAT, [None, k]),
               helper.make_tensor_value_info("idx", TensorProto.INT64, [None, k])]
    if expose:
        outputs.insert(0, helper.make_tensor_value_info("dt", TensorProto.FLOAT, [None, None]))
    if transpose_state:
        nodes += [helper.make_node("Transpose", ["st"], ["stt"]),
                  helper.make_node("Abs", ["stt"], ["sta"])]
        outputs.append(helper.make_tensor_value_info("sta", TensorProto.FLOAT, [d, None]))
    g = helper.make_graph(
        nodes, "knn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])], outputs,
        [numpy_helper.from_array(points.astype(np.float32), "pts"),
         numpy_helper.from_array(np.array([k], dtype=np.int64), "k")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _knn_data(rng):
    # an offset far from zero (the centring must cancel it), duplicate points (exact ties)
    pts = (rng.normal(size=(120, 6)) * 2 + 50).astype(np.float32)
    pts[10] = pts[3]
    pts[70] = pts[3]
    x = (rng.normal(size=(700, 6)) * 2 + 50).astype(np.float32)
    x[:5] = pts[[3, 4, 5, 6, 7]]  # queries sitting on training points: distance 0
    return pts, x


@pytest.mark.parametrize("k", [1, 5, 30])
def test_knn_distance_scan_matches_loop_and_onnxruntime(k, monkeypatch):
    rng = np.random.default_rng(k)
    pts, x = _knn_data(rng)
    blob = _knn_model(pts, k)
    plan, _ = load_plan(blob)
    assert any("_sq_distances" in n for n in _kernel_names(plan))
    fast = plan.run({"x": x})
    monkeypatch.setattr(control, "_is_sq_distance_body", lambda node: False)
    slow_plan, _ = load_plan(blob)
    assert not any("_sq_distances" in n for n in _kernel_names(slow_plan))
    slow = slow_plan.run({"x": x})
    # distances to within float32 rounding; the neighbours themselves identical
    _close(slow[0], fast[0], what="distances")
    _close(slow[1], fast[1], what="topk values")
    assert np.array_equal(slow[2], fast[2])
    want = _ort(blob, {"x": x})
    _close(want[1], fast[1], tol=1e-5, what="topk values vs onnxruntime")
    assert np.array_equal(want[2], fast[2])
    # a single row goes through the same path
    assert np.array_equal(plan.run({"x": x[:1]})[2], want[2][:1])


def test_knn_fast_path_leaves_other_scan_bodies_alone():
    rng = np.random.default_rng(7)
    pts, x = _knn_data(rng)
    blob = _knn_model(pts, 3, body="manhattan")
    plan, _ = load_plan(blob)
    assert not any("_sq_distances" in n for n in _kernel_names(plan))
    want = _ort(blob, {"x": x[:50]})
    got = plan.run({"x": x[:50]})
    _close(want[1], got[1], tol=1e-5)
    assert np.array_equal(want[2], got[2])


# --- TopK: selection by repeated argmin -------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_topk_argmin_selection_is_a_stable_sort(k):
    rng = np.random.default_rng(k)
    for trial in range(60):
        n = int(rng.integers(k, 300))
        x = rng.integers(0, 12, size=(int(rng.integers(1, 40)), n)).astype(np.float32)  # ties
        if trial % 4 == 1:
            x[rng.random(x.shape) < 0.05] = np.nan
        if trial % 4 == 2:
            x[rng.random(x.shape) < 0.3] = np.inf
        if trial % 4 == 3:
            x[rng.random(x.shape) < 0.1] = -np.inf
            x[rng.random(x.shape) < 0.1] = -0.0
        want = np.argsort(x, axis=-1, kind="stable")[:, :k]
        assert np.array_equal(reduce._topk_indices(x, k), want), (k, trial)
    # more rows than one chunk
    x = rng.integers(0, 50, size=(3000, 200)).astype(np.float64)
    want = np.argsort(x, axis=-1, kind="stable")[:, :k]
    assert np.array_equal(reduce._topk_indices(x, k), want)


# --- Scaler folded into the linear step, MatMul + Add + activation as one Dense step ----------

def _model(nodes, inits, n_in, outputs, ml: bool = True, double: bool = False) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    x_type = TensorProto.DOUBLE if double else TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", x_type, [None, n_in])],
        [helper.make_tensor_value_info(name, TensorProto.INT64 if name == "label"
                                       else TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 1)] if ml else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m.SerializeToString()


def _scaler(rng, d, centred: bool):
    """Scaler attributes and matching data: features near their offsets (the fold of the offset
    applies) or far from zero with a small spread (a year-like feature: it must not)."""
    from onnx import helper

    mean = rng.normal(size=d) * (0.3 if centred else 1) + (0 if centred else 2000)
    std = np.abs(rng.normal(size=d)) + 0.5
    x = (rng.normal(size=(400, d)) * std + mean).astype(np.float32)
    node = helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml",
                            offset=[float(v) for v in mean.astype(np.float32)],
                            scale=[float(v) for v in (1 / std).astype(np.float32)])
    return node, x


def _compare_fused(blob: bytes, x: np.ndarray, n_out: int):
    """Fused plan vs the node-by-node plan (1e-6) and vs onnxruntime (1e-5); the fused steps."""
    fused, _ = load_plan(blob)
    plain, _ = load_plan(blob, fuse=False)
    for rows in (x, x[:1]):
        got, want = fused.run({"x": rows}), plain.run({"x": rows})
        ort = _ort(blob, {"x": rows})
        for k in range(n_out):
            _close(want[k], got[k], what=f"fused vs plain, output {k}, {rows.shape[0]} rows")
            _close(ort[k], got[k], tol=1e-5, what=f"vs onnxruntime, output {k}")
    return fused.step_ops


def _linear_classifier(rng, d, classes, post):
    from onnx import helper

    rows = 1 if classes == 2 and post == "LOGISTIC-1" else classes
    return helper.make_node(
        "LinearClassifier", ["s"], ["label", "proba"], domain="ai.onnx.ml",
        classlabels_ints=list(range(classes)), post_transform=post.split("-")[0],
        coefficients=[float(v) for v in (rng.normal(size=rows * d) * 0.5).astype(np.float32)],
        intercepts=[float(v) for v in rng.normal(size=rows).astype(np.float32)])


@pytest.mark.parametrize("centred", [True, False], ids=["centred", "off-centre"])
@pytest.mark.parametrize("classes,post", [(2, "LOGISTIC"), (2, "LOGISTIC-1"), (3, "SOFTMAX"),
                                          (4, "NONE"), (2, "NONE")])
def test_scaler_folds_into_linear_classifier(centred, classes, post):
    rng = np.random.default_rng(classes + 10 * centred)
    scaler, x = _scaler(rng, 7, centred)
    blob = _model([scaler, _linear_classifier(rng, 7, classes, post)], {}, 7, ["label", "proba"])
    ops = _compare_fused(blob, x, 2)
    assert "ai.onnx.ml::Scaler" not in ops
    # the offset is folded into the intercepts only for roughly centred features
    assert ("Sub" in ops) == (not centred), ops


@pytest.mark.parametrize("centred", [True, False], ids=["centred", "off-centre"])
def test_scaler_folds_into_linear_regressor(centred):
    from onnx import helper

    rng = np.random.default_rng(3 + centred)
    scaler, x = _scaler(rng, 5, centred)
    reg = helper.make_node("LinearRegressor", ["s"], ["y"], domain="ai.onnx.ml", targets=2,
                           coefficients=[float(v) for v in rng.normal(size=10)],
                           intercepts=[0.5, -1.5])
    ops = _compare_fused(_model([scaler, reg], {}, 5, ["y"]), x, 1)
    assert ops == (["Cast", "ai.onnx.ml::LinearRegressor"] if centred else
                   ["Cast", "Sub", "ai.onnx.ml::LinearRegressor"])


@pytest.mark.parametrize("centred", [True, False], ids=["centred", "off-centre"])
def test_mlp_folds_scaler_and_fuses_dense_layers(centred):
    """scikit-learn's MLP export: Scaler -> Cast -> (MatMul -> Add -> Relu) x2 -> Sigmoid."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(5 + centred)
    scaler, x = _scaler(rng, 6, centred)
    w = {"w1": rng.normal(size=(6, 8)), "b1": rng.normal(size=(1, 8)),
         "w2": rng.normal(size=(8, 4)), "b2": rng.normal(size=(4,)),
         "w3": rng.normal(size=(4, 1)), "b3": rng.normal(size=(1, 1))}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [scaler, helper.make_node("Cast", ["s"], ["c"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["c", "w1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["h1"]),
             helper.make_node("MatMul", ["h1", "w2"], ["m2"]),
             helper.make_node("Add", ["b2", "m2"], ["a2"]),  # bias first: still fused
             helper.make_node("Tanh", ["a2"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w3"], ["m3"]),
             helper.make_node("Add", ["m3", "b3"], ["a3"]),
             helper.make_node("Sigmoid", ["a3"], ["y"])]
    ops = _compare_fused(_model(nodes, w, 6, ["y"]), x, 1)
    dense = "edge_runtime.fused::Dense"
    assert ops == (["Cast", dense, dense, dense] if centred else
                   ["Cast", "Sub", dense, dense, dense]), ops


@pytest.mark.parametrize("centred", [True, False], ids=["centred", "off-centre"])
@pytest.mark.parametrize("trans_b,with_c", [(0, True), (1, True), (1, False)])
def test_scaler_folds_into_gemm(centred, trans_b, with_c):
    from onnx import helper

    rng = np.random.default_rng(trans_b + 2 * with_c + 4 * centred)
    scaler, x = _scaler(rng, 5, centred)
    b = rng.normal(size=(3, 5) if trans_b else (5, 3)).astype(np.float32)
    inits = {"B": b}
    ins = ["s", "B"]
    if with_c:
        inits["C"] = rng.normal(size=(3,)).astype(np.float32)
        ins.append("C")
    gemm = helper.make_node("Gemm", ins, ["y"], alpha=0.5, beta=2.0, transB=trans_b)
    ops = _compare_fused(_model([scaler, gemm], inits, 5, ["y"]), x, 1)
    assert "ai.onnx.ml::Scaler" not in ops and ("Sub" in ops) == (not centred)


def test_fusions_leave_shared_and_visible_values_alone():
    """No fold where the scaled values are a graph output or read twice, no Dense where the
    weights are computed at run time or the bias would grow the product."""
    from onnx import helper

    rng = np.random.default_rng(11)
    scaler, x = _scaler(rng, 4, True)
    lin = _linear_classifier(rng, 4, 3, "SOFTMAX")
    # the Scaler's output is also a graph output
    ops = _compare_fused(_model([scaler, lin], {}, 4, ["label", "proba", "s"]), x, 3)
    assert "ai.onnx.ml::Scaler" in ops
    # a double input: the Scaler subtracts in float64 first, the fold would round x first
    blob = _model([scaler, lin], {}, 4, ["label", "proba"], double=True)
    ops = _compare_fused(blob, x.astype(np.float64) + 1e-4, 2)
    assert "ai.onnx.ml::Scaler" in ops
    # the Scaler's output has two readers
    w = rng.normal(size=(4, 2)).astype(np.float32)
    nodes = [scaler, lin, helper.make_node("MatMul", ["s", "w"], ["m"])]
    ops = _compare_fused(_model(nodes, {"w": w}, 4, ["label", "proba", "m"]), x, 3)
    assert "ai.onnx.ml::Scaler" in ops and "MatMul" in ops
    # weights from the graph (x @ x^T-like): no Dense; a bias with more rows than one: no Dense
    nodes = [helper.make_node("Transpose", ["x"], ["xt"]),
             helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "bias"], ["y"]),
             helper.make_node("MatMul", ["x", "xt"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["y2"])]
    inits = {"w": w, "bias": rng.normal(size=(400, 2)).astype(np.float32),
             "b2": rng.normal(size=(1,)).astype(np.float32)}
    blob = _model(nodes, inits, 4, ["y", "y2"], ml=False)
    fused, _ = load_plan(blob)
    assert "edge_runtime.fused::Dense" not in fused.step_ops
    for want, got in zip(_ort(blob, {"x": x}), fused.run({"x": x})):
        _close(want, got, tol=1e-5)


def test_dense_with_a_one_dimensional_input():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(1, 2)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                           helper.make_node("Add", ["m", "b"], ["a"]),
                           helper.make_node("Relu", ["a"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    blob = m.SerializeToString()
    plan, _ = load_plan(blob)
    assert plan.step_ops == ["edge_runtime.fused::Dense"]
    x = rng.normal(size=3).astype(np.float32)
    _close(_ort(blob, {"x": x})[0], plan.run({"x": x})[0])


def test_model_files_cannot_use_the_planner_domain():
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Dense", ["x", "x", "x"], ["y"],
                                            domain="edge_runtime.fused")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("edge_runtime.fused", 1)])
    from edge_runtime.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="planner"):
        load_plan(m.SerializeToString())


# --- row reductions of tall, narrow matrices ------------------------------------------------------

@pytest.mark.parametrize("cols", [1, 2, 3, 8])
def test_row_reductions_match_numpy(cols):
    from edge_runtime.onnx_numpy.ops import _rows

    rng = np.random.default_rng(cols)
    x = rng.integers(-3, 3, size=(500, cols)).astype(np.float32)  # ties
    x[::7] += rng.normal(size=(x[::7].shape)).astype(np.float32)
    x[5, -1] = np.nan
    x[9, 0] = np.nan
    x[11] = np.nan
    assert _rows.narrow(x, 1)
    assert np.array_equal(_rows.row_arg(x, largest=True), np.argmax(x, axis=1))
    assert np.array_equal(_rows.row_arg(x, largest=False), np.argmin(x, axis=1))
    np.testing.assert_array_equal(_rows.row_max(x), x.max(axis=1))
    np.testing.assert_allclose(_rows.row_sum(x), x.sum(axis=1), rtol=1e-6, atol=1e-6)  # an ulp


# --- per-call caches of constant operands ----------------------------------------------------------

def test_constant_reshape_and_feature_indices_repeat_correctly():
    """Reshape and ArrayFeatureExtractor convert a constant operand once; a run-time operand
    (indices from ArgMax) is checked every call, out-of-range ones with a clear error."""
    from onnx import TensorProto, helper, numpy_helper

    from edge_runtime.errors import UnsupportedModelError

    nodes = [helper.make_node("Reshape", ["x", "shape0"], ["r0"]),  # 0 keeps that dimension
             helper.make_node("Reshape", ["x", "shape1"], ["r1"]),
             helper.make_node("ArgMax", ["x"], ["am"], axis=1),
             helper.make_node("ArrayFeatureExtractor", ["classes", "am"], ["lab"],
                              domain="ai.onnx.ml"),
             helper.make_node("ArrayFeatureExtractor", ["x", "cols"], ["picked"],
                              domain="ai.onnx.ml")]
    inits = [numpy_helper.from_array(np.array([0, 2, 2], dtype=np.int64), "shape0"),
             numpy_helper.from_array(np.array([-1, 2], dtype=np.int64), "shape1"),
             numpy_helper.from_array(np.array([10, 20, 30], dtype=np.int64), "classes"),
             numpy_helper.from_array(np.array([3, 0, -1], dtype=np.int64), "cols")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [None, 4])],
                          [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                           for n in ("r0", "r1", "lab", "picked")], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("ai.onnx.ml", 1)])
    plan, _ = load_plan(m.SerializeToString())
    rng = np.random.default_rng(0)
    for n in (5, 1, 5):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        x[:, 3] = -9  # ArgMax never picks column 3 ...
        r0, r1, lab, picked = plan.run({"x": x})
        assert r0.shape == (n, 2, 2) and r1.shape == (2 * n, 2)
        assert np.array_equal(lab.ravel(), np.array([10, 20, 30])[np.argmax(x, axis=1)])
        assert np.array_equal(picked, x[:, [3, 0, -1]])
    x[0, 3] = 9  # ... until it does: index 3 of 3 classes
    with pytest.raises(UnsupportedModelError, match="out of range"):
        plan.run({"x": x})


# --- element-wise runs in place -------------------------------------------------------------------

def test_elementwise_runs_fuse_in_place_and_match():
    """GaussianNB's Sub -> Pow -> Div -> ReduceSum, plus runs whose later ops cannot write into
    the first result (a bias that grows it, another type) and integer division."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    theta = rng.normal(size=(1, 3, 5)).astype(np.float32)
    sigma = (rng.random((1, 3, 5)) + 0.5).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["x3"]),
             helper.make_node("Sub", ["x3", "theta"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["d2"]),
             helper.make_node("Div", ["d2", "sigma"], ["q"]),
             helper.make_node("ReduceSum", ["q", "axis"], ["ll"], keepdims=0),
             # the running value second (Sub, Pow), an activation, a bias that grows it
             helper.make_node("Sub", ["half", "ll"], ["n1"]),
             helper.make_node("Exp", ["n1"], ["n2"]),
             helper.make_node("Pow", ["onepointone", "n2"], ["n3"]),
             helper.make_node("Add", ["n3", "wide"], ["n4"]),
             helper.make_node("Sigmoid", ["n4"], ["y"]),
             # integers: Div truncates, never in place
             helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
             helper.make_node("Mul", ["xi", "seven"], ["i1"]),
             helper.make_node("Div", ["i1", "three"], ["i2"]),
             helper.make_node("Abs", ["i2"], ["yi"]),
             # a run whose second op reads a value made after its first op (the fused step
             # must sit where the run ends)
             helper.make_node("Add", ["x", "x"], ["p1"]),
             helper.make_node("Exp", ["x"], ["late"]),
             # a value read twice by one op ends the run before that op
             helper.make_node("Exp", ["late2"], ["e1"]),
             helper.make_node("Mul", ["e1", "e1"], ["e2"]),
             helper.make_node("Div", ["p1", "late"], ["r"]),
             helper.make_node("Abs", ["x"], ["late2"]),
             # a run cut where a value is also a graph output
             helper.make_node("Mul", ["x", "x"], ["sq"]),
             helper.make_node("Sqrt", ["sq"], ["ax"]),
             helper.make_node("Neg", ["ax"], ["nax"])]
    inits = {"shape": np.array([-1, 1, 5], dtype=np.int64), "theta": theta, "sigma": sigma,
             "two": np.array(2.0, dtype=np.float32), "axis": np.array([2], dtype=np.int64),
             "half": np.array([0.5], dtype=np.float32),
             "onepointone": np.array(1.1, dtype=np.float32),
             "wide": rng.normal(size=(2, 1, 3)).astype(np.float32),
             "seven": np.array(7, dtype=np.int64), "three": np.array([3], dtype=np.int64)}
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [None, 5])],
                          [helper.make_tensor_value_info(n, TensorProto.INT64 if n == "yi" else
                                                         TensorProto.FLOAT, None)
                           for n in ("y", "yi", "sq", "nax", "r", "e2")],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    blob = m.SerializeToString()
    fused, _ = load_plan(blob)
    plain, _ = load_plan(blob, fuse=False)
    chains = fused.step_ops.count("edge_runtime.fused::Chain")
    # Sub-Pow-Div, Sub..Sigmoid, Mul-Div-Abs, Add-Div, Abs-Exp, Sqrt-Neg
    assert chains == 6, fused.step_ops
    assert fused.step_ops.count("Mul") == 2  # x * x (a graph output) and e1 * e1
    assert "Mul" in fused.step_ops  # x * x stays: its result is a graph output
    x = (rng.normal(size=(300, 5)) * 3).astype(np.float32)
    for rows in (x, x[:1]):
        want, got = plain.run({"x": rows}), fused.run({"x": rows})
        for w, v in zip(want, got):
            _close(w, v)
            assert np.asarray(w).dtype == np.asarray(v).dtype
        for w, v in zip(_ort(blob, {"x": rows}), got):
            _close(w, v, tol=1e-5)


def test_knn_sqrt_runs_in_place_on_the_scan_output():
    """Transpose -> Sqrt on the Scan's distance matrix writes into that matrix (one step); not
    where the transposed matrix is a graph output, nor on the Scan's passed-through state."""
    rng = np.random.default_rng(9)
    pts, x = _knn_data(rng)
    x_before = x.copy()
    blob = _knn_model(pts, 5, expose=False, transpose_state=True)
    fused, _ = load_plan(blob)
    plain, _ = load_plan(blob, fuse=False)
    assert fused.step_ops.count("edge_runtime.fused::TransposeInPlace") == 1, fused.step_ops
    assert "Abs" in fused.step_ops  # the state is the caller's x: never written
    for rows in (x, x[:1]):
        got, want = fused.run({"x": rows}), plain.run({"x": rows})
        for w, v in zip(want, got):
            _close(w, v)
        for w, v in zip(_ort(blob, {"x": rows}), got):
            _close(w, v, tol=1e-5)
    assert np.array_equal(x, x_before)
    exposed, _ = load_plan(_knn_model(pts, 5))
    assert "edge_runtime.fused::TransposeInPlace" not in exposed.step_ops
