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

def _knn_model(points: np.ndarray, k: int, body: str = "sq") -> bytes:
    """skl2onnx's k-NN graph: Scan(state=X, scan=points) -> Transpose -> Sqrt -> TopK."""
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
    g = helper.make_graph(
        [helper.make_node("Scan", ["x", "pts"], ["st", "dist"], body=body_g, num_scan_inputs=1),
         helper.make_node("Transpose", ["dist"], ["dt"], perm=[1, 0]),
         helper.make_node("Sqrt", ["dt"], ["ds"]),
         helper.make_node("TopK", ["ds", "k"], ["vals", "idx"], largest=0, sorted=1)],
        "knn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])],
        [helper.make_tensor_value_info("dt", TensorProto.FLOAT, [None, None]),
         helper.make_tensor_value_info("vals", TensorProto.FLOAT, [None, k]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, [None, k])],
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
