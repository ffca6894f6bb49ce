"""TFLite compiled without TensorFlow: fp32 parity with scikit-learn for every supported family
through LiteRT, int8/fp16 label agreement, clear errors, and a build with TensorFlow blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from blocking import blocker
from zoo import CASES, dataset, fitted

import converters
import converters.training_stats
import edge_runtime
from converters import UnsupportedEstimatorError
from converters.tflite.compile import LINEAR, MLP, TREES

pytest.importorskip("ai_edge_litert")


def supported(case) -> bool:
    est = fitted(case.id)
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    pre_ok = all(type(s).__name__ in ("StandardScaler", "MinMaxScaler", "SimpleImputer")
                 for _, s in getattr(est, "steps", [])[:-1])
    return pre_ok and type(last).__name__ in LINEAR + MLP + TREES


TFL = [c for c in CASES if supported(c)]
OTHER = [c for c in CASES if not supported(c)]


@pytest.mark.parametrize("case", TFL, ids=[c.id for c in TFL])
def test_fp32_tflite_matches_sklearn(case, tmp_path):
    X, _, X_te, _ = dataset(case.data)
    est = fitted(case.id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = converters.convert(est, X, tmp_path / "b", holdout=X_te, formats=("tflite",))
        want = est.predict(X_te)
    model = edge_runtime.load(bundle, backend="litert")  # golden rows checked on LiteRT
    assert model.artifact.format == "tflite" and model.artifact.parity["passed"]
    got = model.predict(X_te if all(f.allow_nan for f in model.manifest.features) else np.nan_to_num(X_te))
    if case.data == "mixed":
        return  # NaN rows: parity figures above were measured on them by the converter
    if case.task == "classification":
        assert np.array_equal(got.astype(str), want.astype(str))
        if "probabilities" in model.artifact.outputs:
            assert np.max(np.abs(model.predict_proba(X_te) - est.predict_proba(X_te))) <= 1e-4
    else:
        assert np.allclose(got, want, atol=1e-4 * (1 + np.abs(want).max()), rtol=0)


@pytest.mark.parametrize("case", OTHER[:4], ids=[c.id for c in OTHER[:4]])
def test_unsupported_families_get_a_clear_error(case, tmp_path):
    X, _, _, _ = dataset(case.data)
    with pytest.raises(UnsupportedEstimatorError, match="cannot be compiled to TFLite. Supported"):
        converters.convert(fitted(case.id), X, tmp_path / "b", formats=("tflite",))


@pytest.mark.parametrize("kind", ["logistic", "forest", "mlp"])
def test_quantized_keep_labels_and_shrink(kind, tmp_path):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters.demo import train_demo_model

    est, X_tr, X_te, _ = train_demo_model("forest" if kind == "forest" else "logistic")
    if kind == "mlp":
        est = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=500,
                                                            random_state=0)).fit(X_tr, est.predict(X_tr))
    b = converters.convert(est, X_tr, tmp_path / "b", holdout=X_te, formats=("tflite",),
                           precisions=("fp32", "fp16", "int8"))
    sizes = {}
    for prec in ("fp32", "fp16", "int8"):
        m = edge_runtime.load(b, backend="litert", precision=prec)
        assert m.artifact.precision == prec and m.artifact.parity["label_agreement"] >= 0.99
        assert np.mean(m.predict(X_te) == est.predict(X_te)) >= 0.99
        sizes[prec] = m.artifact.size
    if kind == "forest":  # compact int8 trees: 6 bytes a node against 25, the steps in one WHILE body
        assert sizes["int8"] <= 0.30 * sizes["fp32"], sizes
    elif kind == "mlp":
        assert sizes["int8"] < 0.35 * sizes["fp32"], sizes
    else:  # 30 weights: int8 would cost more in quantization parameters than it saves; kept float
        assert sizes["int8"] == sizes["fp32"]


@pytest.mark.parametrize("case", TFL, ids=[c.id for c in TFL])
def test_int8_keeps_labels_or_variance_for_every_family(case, tmp_path):
    """The compact int8 tree layout (reordered depth-first, relative right offsets, sign-coded NaN
    direction, WHILE loop) and hybrid int8 layers, on every family, through LiteRT."""
    X, _, X_te, _ = dataset(case.data)
    est = fitted(case.id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = converters.convert(est, X, tmp_path / "b", holdout=X_te, formats=("tflite",),
                                    precisions=("fp32", "int8"))
    m8 = edge_runtime.load(bundle, backend="litert", precision="int8")
    rows = X_te if all(f.allow_nan for f in m8.manifest.features) else np.nan_to_num(X_te)
    got, want = m8.predict(rows), est.predict(rows)
    if case.task == "classification":
        assert np.mean(got.astype(str) == want.astype(str)) >= 0.99
        assert m8.artifact.parity["label_agreement"] >= 0.99
    else:
        assert converters.training_stats.r2_score(want.astype(np.float64), got.astype(np.float64)) >= 0.99
        assert m8.artifact.parity["prediction_r2"] >= 0.99


def test_int8_below_the_bar_is_refused_with_the_figure(tmp_path):
    X, _, X_te, _ = dataset("regression")
    est = fitted("tree-regression")
    with pytest.raises(converters.ParityError, match=r"tflite/int8: R² against the original predictions 0\.9"):
        converters.convert(est, X, tmp_path / "b", holdout=X_te, formats=("tflite",), precisions=("int8",),
                           quantized_agreement=0.999999)
    assert not (tmp_path / "b").exists()


def test_trees_route_nan_as_learned_in_every_layout(tmp_path):
    """HistGradientBoosting learns where NaN goes and grows best-first (nodes reordered
    depth-first for the compact layout): fp32 must agree exactly, int8 within the bar."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(3)
    X = rng.normal(size=(1200, 6))
    y = (X[:, 0] + np.where(np.isnan(X[:, 1]), 2.0, X[:, 1]) > 0.5).astype(int)
    X[rng.random(X.shape) < 0.2] = np.nan
    est = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X[:900], y[:900])
    bundle = converters.convert(est, X[:900], tmp_path / "b", holdout=X[900:], formats=("tflite",),
                                precisions=("fp32", "int8"))
    want = est.predict(X[900:])
    assert np.array_equal(edge_runtime.load(bundle, backend="litert", precision="fp32").predict(X[900:]), want)
    assert np.mean(edge_runtime.load(bundle, backend="litert", precision="int8").predict(X[900:]) == want) >= 0.99


def test_builds_every_model_with_tensorflow_blocked(cli_env):
    script = blocker(["tensorflow", "keras", "tf_keras", "tensorflow_lite"]) + textwrap.dedent("""
        import sys, warnings
        sys.path.insert(0, "tests")
        warnings.simplefilter("ignore")
        from zoo import dataset, fitted
        from test_tflite import TFL
        from converters.core import ExportContext
        from converters.tflite import export_tflite
        n = 0
        for case in TFL:
            X = dataset(case.data)[0]
            est = fitted(case.id)
            for prec in ("fp32", "int8"):
                data = export_tflite(ExportContext(est, X.shape[1], case.task, hasattr(est, "predict_proba"),
                                                   None, X, []), prec).data
                assert data[4:8] == b"TFL3"
                n += 1
        assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
        print(n)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env, timeout=300,
                       cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.strip()) == 2 * len(TFL)


def test_cli_convert_onnx_and_tflite(tmp_path, cli_env):
    import joblib
    from test_cli import write_csv

    est, X_tr, X_te, names = __import__("converters.demo", fromlist=["x"]).train_demo_model("logistic")
    joblib.dump(est, tmp_path / "m.joblib")
    write_csv(tmp_path / "s.csv", X_tr, names)
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(tmp_path / "m.joblib"), "--sample",
                        str(tmp_path / "s.csv"), "-o", str(tmp_path / "b"), "--format", "onnx,tflite",
                        "--precision", "fp32"], capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "model.onnx onnx/fp32" in r.stdout and "model.tflite tflite/fp32" in r.stdout
    a = edge_runtime.load(tmp_path / "b", backend="litert").predict(X_te)
    b = edge_runtime.load(tmp_path / "b", backend="onnxruntime").predict(X_te)
    assert np.array_equal(a, b)
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(tmp_path / "m.joblib"), "--sample",
                        str(tmp_path / "s.csv"), "-o", str(tmp_path / "q"), "--format", "tflite", "--precision",
                        "fp32,int8", "--quantization", "static", "--min-quantized-agreement", "0.98"],
                       capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "tflite/int8" in r.stdout and "labels" in r.stdout
    assert edge_runtime.load(tmp_path / "q", precision="int8").artifact.extra["quantization"].startswith("static")


def _fc_input_types(data: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
    names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    sg = m.subgraphs[0]
    return [names[sg.tensors[op.inputs[0]].type] for op in sg.operators
            if m.operatorCodes[op.opcodeIndex].builtinCode == s.BuiltinOperator.FULLY_CONNECTED]


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_static_int8_runs_integer_layers_and_keeps_labels(activation, tmp_path):
    """--quantization static: every FULLY_CONNECTED reads int8 activations (ranges calibrated on
    the sample), TANH/LOGISTIC at their fixed int8 scales; labels kept at the 99% bar."""
    lr, mlp, X_tr, X_te = _demo_mlp(activation)
    for est in (lr, mlp):
        b = converters.convert(est, X_tr, tmp_path / type(est[-1]).__name__, holdout=X_te, formats=("tflite",),
                               precisions=("int8",), quantization="static")
        m = edge_runtime.load(b, backend="litert", precision="int8")
        assert m.artifact.extra["quantization"].startswith("static int8")
        assert set(_fc_input_types(open_artifact(b, m.artifact))) == {"INT8"}
        assert np.mean(m.predict(X_te) == est.predict(X_te)) >= 0.99


def open_artifact(bundle, artifact) -> bytes:
    from edge_runtime.bundle import open_bundle

    return open_bundle(bundle).read_artifact(artifact)


def test_dynamic_int8_layers_read_float_inputs(tmp_path):
    mlp = fitted("mlp-binary")
    X, _, X_te, _ = dataset("binary")
    b = converters.convert(mlp, X, tmp_path / "b", holdout=X_te, formats=("tflite",), precisions=("int8",))
    m = edge_runtime.load(b, backend="litert", precision="int8")
    assert m.artifact.extra["quantization"].startswith("dynamic int8")
    assert "FLOAT32" in _fc_input_types(open_artifact(b, m.artifact))


def _demo_mlp(activation: str = "relu"):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters.demo import train_demo_model

    lr, X_tr, X_te, _ = train_demo_model("logistic")
    mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32, 16), activation=activation,
                                                        max_iter=800, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(X_tr, lr.predict(X_tr))
    return lr, mlp, X_tr, X_te


def test_onnx_static_int8_is_calibrated_qdq(tmp_path):
    _, est, X, X_te = _demo_mlp()
    b = converters.convert(est, X, tmp_path / "b", holdout=X_te, formats=("onnx",), precisions=("int8",),
                           quantization="static")
    m = edge_runtime.load(b, backend="onnxruntime", precision="int8")
    assert "static" in m.artifact.extra["quantization"]
    assert b"QuantizeLinear" in open_artifact(b, m.artifact)
    assert np.mean(m.predict(X_te) == est.predict(X_te)) >= 0.99


def test_small_trees_compile_to_gemm_and_route_nan(tmp_path):
    """A small tree takes the GEMM strategy (about 8 operators whatever the depth): the same
    leaves as scikit-learn on rows with NaN the tree learned to route, in fp32 and fp16 (whose
    path matrix of ±1 is exact); larger ensembles keep the traversal."""
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(5)
    X = rng.normal(size=(1500, 5))
    y = (X[:, 0] - np.where(np.isnan(X[:, 2]), -1.5, X[:, 2]) > 0.2).astype(int)
    X[rng.random(X.shape) < 0.15] = np.nan
    est = DecisionTreeClassifier(max_depth=5, random_state=0).fit(X[:1000], y[:1000])
    bundle = converters.convert(est, X[:1000], tmp_path / "b", holdout=X[1000:], formats=("tflite",),
                                precisions=("fp32", "fp16"))
    for prec in ("fp32", "fp16"):
        m = edge_runtime.load(bundle, backend="litert", precision=prec)
        assert m.artifact.extra["strategy"] == "gemm"
        assert np.array_equal(m.predict(X[1000:]), est.predict(X[1000:]))  # exact routing, NaN included
        tol = 1e-4 if prec == "fp32" else 1e-3  # fp16 leaf values
        assert np.max(np.abs(m.predict_proba(X[1000:]) - est.predict_proba(X[1000:]))) <= tol
    forest = fitted("forest-binary")
    Xf = dataset("binary")[0]
    from converters.core import ExportContext
    from converters.tflite import export_tflite

    ctx = ExportContext(forest, Xf.shape[1], "classification", True, None, Xf, [])
    assert export_tflite(ctx, "fp32").extra["strategy"] == "tree-traversal"
    assert export_tflite(ctx, "int8").extra["strategy"] == "tree-traversal (compact)"


def test_single_rows_between_batches_keep_their_own_interpreter(tmp_path):
    """One-row calls run on an interpreter that stays at one row; batches of changing sizes on a
    second one: the answers are those of each row alone, whatever ran before."""
    _, mlp, X_tr, X_te = _demo_mlp()
    bundle = converters.convert(mlp, X_tr, tmp_path / "b", holdout=X_te, formats=("tflite",))
    model = edge_runtime.load(bundle, backend="litert")
    X = np.ascontiguousarray(X_te[:40], np.float32)
    alone = np.vstack([model.predict_proba(X[i:i + 1]) for i in range(len(X))])
    for n in (1, 32, 1, 7, 40, 1, 2, 1):
        got = model.predict_proba(X[:n])
        assert np.array_equal(got, alone[:n]) or np.max(np.abs(got - alone[:n])) <= 1e-6
        assert model.backend._it.get_input_details()[0]["shape"][0] == 1
    assert model.backend._batch_it.get_input_details()[0]["shape"][0] == model.backend._batch_rows == 2
