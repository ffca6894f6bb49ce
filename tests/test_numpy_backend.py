"""The numpy backend: parity with onnxruntime on the whole zoo, a run with onnxruntime blocked,
and a fuzzed decoder (ONNX's node tests: ``test_numpy_node_tests.py``)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy_diff import TOL
from numpy_diff import assert_same as _assert_same
from numpy_diff import random_trees as _random_trees
from zoo import CASES, dataset

import edge_runtime
from edge_runtime.errors import UnsupportedModelError
from edge_runtime.onnx_numpy import ModelDecodeError, decode_model
from edge_runtime.onnx_numpy.plan import Plan, load_plan


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_numpy_matches_onnxruntime(case, bundles):
    _, _, X_te, _ = dataset(case.data)
    ort = edge_runtime.load(bundles(case), backend="onnxruntime")
    npy = edge_runtime.load(bundles(case), backend="numpy")  # golden rows checked at load
    assert npy.backend.name == "numpy"
    npy.check_golden()
    names = list(npy.artifact.outputs.values())
    x = np.ascontiguousarray(X_te, dtype=npy.artifact.input_dtype)
    for want, got, name in zip(ort.backend.run(x, names), npy.backend.run(x, names), names):
        _assert_same(want, got, f"{case.id}:{name}")
    if case.task == "classification":  # labels identical; values are checked above
        assert np.array_equal(np.asarray(ort.predict(X_te)).astype(str),
                              np.asarray(npy.predict(X_te)).astype(str))
    one = npy.predict(X_te[:1])  # single rows go through the same kernels
    assert np.asarray(one).shape[0] == 1


_BLOCKED = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "onnxruntime" or name.startswith("onnxruntime."):
                raise ImportError("onnxruntime is blocked in this test")
            return None
    sys.meta_path.insert(0, Block())
    import importlib.util
    importlib.util.find_spec = (lambda f: (lambda n, *a: None if n.split('.')[0] == 'onnxruntime'
                                           else f(n, *a)))(importlib.util.find_spec)
    import numpy as np
    import edge_runtime
    out = {}
    for job in json.load(open(sys.argv[1])):
        rows = np.array(job["rows"])
        for backend in ("numpy", "auto"):
            m = edge_runtime.load(job["bundle"], backend=backend)  # golden rows checked here
            out[job["id"] + ":" + backend] = [m.backend.name, np.asarray(m.predict(rows)).tolist()]
    assert "onnxruntime" not in sys.modules
    print(json.dumps(out))
""")


def test_every_zoo_bundle_without_onnxruntime(bundles, cli_env, tmp_path):
    """The acceptance check: with onnxruntime blocked, every zoo bundle loads with
    backend='numpy' and 'auto' (both resolve to numpy), passes its golden rows and predicts
    what onnxruntime predicts in this process."""
    jobs, want = [], {}
    for case in CASES:
        rows = dataset(case.data)[2][:25]
        jobs.append({"id": case.id, "bundle": str(bundles(case)), "rows": rows.tolist()})
        want[case.id] = np.asarray(edge_runtime.load(bundles(case), backend="onnxruntime")
                                   .predict(rows))
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    proc = subprocess.run([sys.executable, "-c", _BLOCKED, str(job_file)], env=cli_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in CASES:
        for backend in ("numpy", "auto"):
            name, pred = got[f"{case.id}:{backend}"]
            assert name == "numpy", (case.id, backend, name)
            if case.task == "classification":
                assert np.array_equal(np.asarray(pred).astype(str), want[case.id].astype(str)), case.id
            else:
                _assert_same(want[case.id], np.asarray(pred, dtype=float), case.id)


def test_unsupported_operator_named_at_load():
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["h"]),
                           helper.make_node("Hardmax", ["h"], ["y"]),
                           helper.make_node("Frobnicate", ["y"], ["z"], domain="com.example")],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("com.example", 3)])
    with pytest.raises(UnsupportedModelError) as err:
        load_plan(m.SerializeToString())
    assert "ai.onnx::Hardmax (opset 17)" in str(err.value)
    assert "com.example::Frobnicate (opset 3)" in str(err.value)
    assert onnx  # the onnx package is a test-only dependency


# (ONNX's own node tests, plain and tiled to many rows: tests/test_numpy_node_tests.py)


# --- the decoder under fuzzing ----------------------------------------------------------------

def _seed_models():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]),
                           helper.make_node("Softmax", ["h"], ["y"], axis=1)], "g", [x], [y], [w])
    small = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    tree = helper.make_node(
        "TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
        nodes_values=[0.5, 0.0, 0.0], nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
        target_treeids=[0, 0], target_nodeids=[1, 2], target_ids=[0, 0], target_weights=[1.0, 2.0])
    g2 = helper.make_graph([tree], "t", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                           [None, 1])])
    trees = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17),
                                                 helper.make_opsetid("ai.onnx.ml", 1)])
    lin = [helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml", offset=[0.5, 0.1, 0.2],
                            scale=[2.0, 1.0, 0.5]),
           helper.make_node("LinearClassifier", ["s"], ["label", "p"], domain="ai.onnx.ml",
                            classlabels_int64s=[0, 1, 2], coefficients=[0.1 * i for i in range(9)],
                            intercepts=[0.1, 0.2, 0.3], post_transform="SOFTMAX"),
           helper.make_node("Normalizer", ["p"], ["y"], domain="ai.onnx.ml", norm="L1")]
    g3 = helper.make_graph(lin, "lin", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                           [None, 3])])
    linear = helper.make_model(g3, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("ai.onnx.ml", 1)])
    assert onnx
    return [small, trees.SerializeToString(), linear.SerializeToString()]


SEEDS = _seed_models()
FUZZ = {"examples": 0, "decoded": 0, "rejected": 0}


def _try(data: bytes) -> None:
    FUZZ["examples"] += 1
    try:
        plan, _ = load_plan(data)
        x = np.ones((2, 3), dtype=np.float32)
        # a corrupt model may run wrong, but must have loaded safely
        with contextlib.suppress(ValueError, IndexError, TypeError, KeyError, UnsupportedModelError):
            plan.run({plan.inputs[0]: x} if plan.inputs else {})
        FUZZ["decoded"] += 1
    except UnsupportedModelError:
        FUZZ["rejected"] += 1


_fuzz = settings(max_examples=300, deadline=2000, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 10_000))
def test_fuzz_truncation(seed, cut):
    _try(seed[: cut % (len(seed) + 1)])


@_fuzz
@given(seed=st.sampled_from(SEEDS), flips=st.lists(st.integers(0, 1 << 20), min_size=1, max_size=4))
def test_fuzz_bit_flips(seed, flips):
    data = bytearray(seed)
    for f in flips:
        data[(f // 8) % len(data)] ^= 1 << (f % 8)
    _try(bytes(data))


@_fuzz
@given(seed=st.sampled_from(SEEDS), at=st.integers(0, 10_000), junk=st.binary(min_size=1, max_size=12))
def test_fuzz_random_bytes_and_varints(seed, at, junk):
    i = at % (len(seed) + 1)
    _try(seed[:i] + junk + seed[i:])


@_fuzz
@given(field=st.integers(1, 30), length=st.integers(1 << 20, (1 << 64) - 1), tail=st.binary(max_size=16))
def test_fuzz_huge_lengths(field, length, tail):
    key = bytes([(field << 3 | 2) & 0x7F | (0x80 if field >= 16 else 0)]) + (
        bytes([field >> 4]) if field >= 16 else b"")
    varint = bytearray()
    v = length
    while True:
        b = v & 0x7F
        v >>= 7
        varint.append(b | (0x80 if v else 0))
        if not v:
            break
    with pytest.raises(ModelDecodeError):
        decode_model(key + bytes(varint) + tail)


def test_decoder_rejects_deep_nesting():
    # a graph attribute holding a graph attribute holding ... (Scan bodies within bodies)
    from edge_runtime.onnx_numpy.proto import MAX_DEPTH

    def ld(num: int, payload: bytes) -> bytes:
        n, out = len(payload), bytearray([num << 3 | 2])
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out) + payload

    graph = b""
    for _ in range(MAX_DEPTH + 3):
        attr = ld(1, b"body") + ld(6, graph)
        node = ld(4, b"Scan") + ld(5, attr)
        graph = ld(1, node)
    with pytest.raises(ModelDecodeError, match="nested deeper"):
        decode_model(ld(7, graph))


def test_fuzz_counts_reported():
    """Not a check of its own: prints how many fuzzed models loaded or were refused."""
    print(f"\nfuzz: {FUZZ}")
    assert FUZZ["examples"] == 0 or FUZZ["decoded"] + FUZZ["rejected"] == FUZZ["examples"]


def test_zoo_artifacts_plan_directly(bundles):
    """Every zoo artifact plans at load without onnx and names its single input."""
    for case in CASES[:3]:
        for path in glob.glob(os.path.join(str(bundles(case)), "*.onnx")):
            plan = Plan(decode_model(Path(path).read_bytes()).graph, decode_model(
                Path(path).read_bytes()).opset)
            assert plan.inputs


def _extra_estimators():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    return [
        ("svc-noproba-binary", "binary", lambda: make_pipeline(StandardScaler(), SVC())),
        ("svc-noproba-multiclass", "multiclass", lambda: make_pipeline(StandardScaler(), SVC())),
        ("svc-poly-iris", "iris", lambda: make_pipeline(StandardScaler(), SVC(kernel="poly",
                                                                              probability=True))),
        ("svc-sigmoid-multiclass", "multiclass",
         lambda: make_pipeline(StandardScaler(), SVC(kernel="sigmoid"))),
        ("svr-rbf", "regression", lambda: make_pipeline(StandardScaler(), SVR())),
    ]


@pytest.mark.parametrize("name,data,make", _extra_estimators(), ids=[e[0] for e in _extra_estimators()])
def test_svm_variants_outside_the_zoo(name, data, make):
    """SVM paths the zoo does not reach (no probabilities, other kernels, regression)."""
    import warnings

    import onnxruntime as ort
    from skl2onnx import to_onnx

    X, y, X_te, _ = dataset(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X, y)
        opts = {id(est.steps[-1][1]): {"zipmap": False}} if data != "regression" else None
        model = to_onnx(est, X[:1].astype(np.float32), options=opts, target_opset=17)
    blob = model.SerializeToString()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    plan, _ = load_plan(blob)
    x = X_te.astype(np.float32)
    for want, got in zip(sess.run(None, {sess.get_inputs()[0].name: x}), plan.run({plan.inputs[0]: x})):
        _assert_same(want, got, name)


@pytest.mark.parametrize("modes", [["BRANCH_LEQ"], ["BRANCH_LT", "BRANCH_GTE"],
                                   ["BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_LEQ"]])
@pytest.mark.parametrize("variant", ["reg-sum", "reg-average", "reg-min", "reg-max",
                                     "clf3-softmax", "clf3-logistic", "clf3-probit", "clf2-one-col"])
def test_tree_ensembles_match_onnxruntime(modes, variant):
    """Node modes, missing values, aggregates and post-transforms the zoo never emits, on the
    small-batch and the large-batch path."""
    import zlib

    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(zlib.crc32(f"{modes}{variant}".encode()))  # same model every run
    n_features = 4
    kind = "regressor" if variant.startswith("reg") else "classifier"
    n_out = 2 if kind == "regressor" else (3 if variant.startswith("clf3") else 1)
    attrs = _random_trees(rng, 7, 4, n_features, modes, n_out, kind)
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_features])
    if kind == "regressor":
        agg = variant.split("-")[1].upper()
        node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml",
                                n_targets=n_out, aggregate_function=agg, base_values=[0.5, -1.0],
                                **attrs)
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])]
    else:
        post = variant.split("-")[1].upper() if variant.startswith("clf3") else "LOGISTIC"
        labels = [0, 1, 2] if n_out == 3 else [0, 1]
        base = [0.1, -0.2, 0.3] if n_out == 3 else [0.25]
        node = helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "proba"],
                                domain="ai.onnx.ml", classlabels_int64s=labels,
                                post_transform=post, base_values=base, **attrs)
        outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("proba", TensorProto.FLOAT, [None, len(labels)])]
    g = helper.make_graph([node], "trees", [x_info], outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    blob = m.SerializeToString()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    plan, _ = load_plan(blob)
    x = rng.normal(size=(3000, n_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:50, 0] = np.float32(attrs["nodes_values"][0])  # exact threshold hits (EQ, LEQ vs LT)
    # PROBIT's erf^-1 is steep near 0 and 1: one float32 ulp of summation order in the score
    # moves it in the 5th digit (the converters never emit PROBIT)
    tol = 1e-4 if "probit" in variant else TOL
    # the large batch once more without NaN (the walk then skips the missing-value passes)
    for rows in (x[:1], x[:7], x, np.where(np.isnan(x), np.float32(0.25), x)):
        for want, got in zip(sess.run(None, {"x": rows}), plan.run({"x": rows})):
            _assert_same(want, got, f"{variant} {modes} rows={rows.shape[0]}", tol)


def test_topk_partition_keeps_stable_tie_order():
    """TopK's partition shortcut returns exactly what a stable full sort would (lower index
    first among equal values, NaN rows included), which is onnxruntime's order."""
    from edge_runtime.onnx_numpy.ops.reduce import _topk_indices

    rng = np.random.default_rng(0)
    for trial in range(100):
        n = int(rng.integers(65, 400))
        k = int(rng.integers(1, n // 4))
        x = rng.integers(0, 20, size=(20, n)).astype(np.float32)  # many ties
        if trial % 3 == 0:
            x[rng.random(x.shape) < 0.01] = np.nan
        want = np.argsort(x, axis=-1, kind="stable")[:, :k]
        assert np.array_equal(_topk_indices(x, k), want), trial


@pytest.mark.parametrize("scheme", ["dynamic", "static"])
def test_int8_onnx_runs_on_the_numpy_backend(scheme, tmp_path):
    """onnxruntime.quantization's graphs (DynamicQuantizeLinear → MatMulInteger, or QDQ) run
    where onnxruntime does not: same outputs as onnxruntime, golden rows checked at load."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import converters
    from converters.demo import train_demo_model

    lr, X, X_te, _ = train_demo_model("logistic")
    mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=800, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(X, lr.predict(X))
    b = converters.convert(mlp, X, tmp_path / "b", holdout=X_te, formats=("onnx",), precisions=("int8",),
                           quantization=scheme)
    ort = edge_runtime.load(b, backend="onnxruntime", precision="int8")
    npy = edge_runtime.load(b, backend="numpy", precision="int8")  # verify=True: its golden rows
    np.testing.assert_allclose(npy.predict_proba(X_te), ort.predict_proba(X_te), atol=1e-5)
    assert np.array_equal(npy.predict(X_te), ort.predict(X_te))
