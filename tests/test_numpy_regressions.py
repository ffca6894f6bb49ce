"""Regressions of the numpy backend found by running it as a new user would (issue 14): each
one gave a wrong answer or a load failure that the golden rows and ONNX's small node tests did
not show. Every check compares with onnxruntime on the same model bytes."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edge_runtime.errors import UnsupportedModelError
from edge_runtime.onnx_numpy.plan import load_plan
from edge_runtime.onnx_numpy.switches import COLUMN_LOOP_MIN_ROWS


def _ort(model_bytes: bytes, feeds: dict) -> list:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture(scope="module")
def kmeans_onnx():
    from skl2onnx import to_onnx
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_iris

    X = load_iris().data.astype(np.float32)
    km = KMeans(n_clusters=3, n_init=3, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_onnx(km, X[:1], target_opset=17).SerializeToString(), X


@pytest.mark.parametrize("rows", [1, COLUMN_LOOP_MIN_ROWS - 1, COLUMN_LOOP_MIN_ROWS,
                                  COLUMN_LOOP_MIN_ROWS + 1, 1000])
def test_kmeans_labels_match_onnxruntime_at_every_size(kmeans_onnx, rows):
    """ArgMin took the ArgMax column loop from 32 rows on: 0 % label agreement on KMeans."""
    model, X = kmeans_onnx
    rng = np.random.default_rng(rows)
    x = X[rng.integers(0, len(X), rows)] + rng.normal(0, 0.05, (rows, X.shape[1])).astype(np.float32)
    plan, _ = load_plan(model)
    assert "ArgMin" in plan.step_ops
    got = plan.run({plan.inputs[0]: x})
    want = _ort(model, {plan.inputs[0]: x})
    assert np.array_equal(got[0], want[0])  # labels
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)  # distances


def _outer_scope_scan() -> bytes:
    """A Scan whose body reads ``ScaleFactor``, a value a Mul node computes *after* the Scan in
    the node list (as ONNX's expanded LinearAttention functions are written)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["s_sum"]),
         helper.make_node("Mul", ["s_sum", "ScaleFactor"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y_row"])],
        "body",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("row", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("y_row", TensorProto.FLOAT, [3])])
    nodes = [
        helper.make_node("Scan", ["init", "x"], ["final", "ys"], body=body, num_scan_inputs=1),
        helper.make_node("Mul", ["scale", "half"], ["ScaleFactor"], name="Mul"),
    ]
    g = helper.make_graph(
        nodes, "outer",
        [helper.make_tensor_value_info("init", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("final", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("ys", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_scan_body_reading_a_value_computed_after_it_in_the_node_list():
    """The planner ordered nodes by their inputs only and refused the graph ('node 'Mul' reads
    'ScaleFactor', which nothing produces'); a body's outer-scope reads are dependencies."""
    model = _outer_scope_scan()
    plan, _ = load_plan(model)
    assert plan.step_ops.index("Mul") < plan.step_ops.index("Scan")
    rng = np.random.default_rng(0)
    feeds = {"init": rng.normal(size=3).astype(np.float32),
             "x": rng.normal(size=(5, 3)).astype(np.float32),
             "scale": np.array(1.5, dtype=np.float32)}
    for got, want in zip(plan.run(feeds), _ort(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


#: (ONNX type, ml_dtypes name): the four float 8 types Cast saturates into
FLOAT8 = [(TensorProto.FLOAT8E4M3FN, "float8_e4m3fn"), (TensorProto.FLOAT8E4M3FNUZ, "float8_e4m3fnuz"),
          (TensorProto.FLOAT8E5M2, "float8_e5m2"), (TensorProto.FLOAT8E5M2FNUZ, "float8_e5m2fnuz")]
#: beyond every float 8 range, at its edge, inside, and the special values
EDGE_VALUES = np.array([1e6, -1e6, 70000, -70000, 500, -500, 448, 449, 240, 57344, 60000, 3.3,
                        -0.0, 0.0, np.inf, -np.inf, np.nan], dtype=np.float32)


def _float8_model(op: str, to: int, saturate) -> bytes:
    extra = {} if saturate is None else {"saturate": saturate}
    if op == "Cast":
        node = helper.make_node("Cast", ["x"], ["y"], to=to, **extra)
        inits = []
    else:
        node = helper.make_node("CastLike", ["x", "like"], ["y"], **extra)
        inits = [helper.make_tensor("like", to, [1], [0.0])]
    g = helper.make_graph([node, helper.make_node("Cast", ["y"], ["z"], to=TensorProto.FLOAT)],
                          "f8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


@pytest.mark.parametrize("op", ["Cast", "CastLike"])
@pytest.mark.parametrize("to,name", FLOAT8, ids=[n for _, n in FLOAT8])
@pytest.mark.parametrize("saturate", [None, 1, 0])
def test_cast_to_float8_saturates_as_the_spec_says(op, to, name, saturate):
    """CastLike to float 8 gave NaN where ONNX saturates (to ±448 for E4M3FN): the default
    (saturate=1) clamps, saturate=0 keeps NaN/inf; both as onnxruntime computes them."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    model = _float8_model(op, to, saturate)
    plan, _ = load_plan(model)
    got = plan.run({"x": EDGE_VALUES})[0]
    want = _ort(model, {"x": EDGE_VALUES})[0]
    np.testing.assert_array_equal(got, want)
    if saturate != 0:  # every finite or infinite input lands on a finite value
        top = float(ml_dtypes.finfo(getattr(ml_dtypes, name)).max)
        finite = ~np.isnan(EDGE_VALUES)
        assert np.isfinite(got[finite]).all() and np.abs(got[finite]).max() == top


def test_cast_refusals_name_the_type():
    for to, name in [(TensorProto.FLOAT8E8M0, "FLOAT8E8M0"), (TensorProto.BFLOAT16, "BFLOAT16"),
                     (TensorProto.INT4, "INT4"), (TensorProto.COMPLEX64, "COMPLEX64")]:
        g = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=to)], "c",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", to, [None])])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 25)])
        with pytest.raises(UnsupportedModelError, match=f"cannot cast to {name}\\b"):
            load_plan(model.SerializeToString())


def test_cast_to_float8_without_ml_dtypes_is_refused_by_name(monkeypatch):
    """numpy has no float 8 type: without ml_dtypes (a device) the cast is refused at load,
    naming the type, instead of running wrong."""
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes -> ImportError
    for op in ("Cast", "CastLike"):
        model = _float8_model(op, TensorProto.FLOAT8E4M3FN, None)
        with pytest.raises(UnsupportedModelError, match="FLOAT8E4M3FN"):
            plan, _ = load_plan(model)
            plan.run({"x": EDGE_VALUES})
