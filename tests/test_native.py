"""Native (compiled C) artifacts: codegen parity per model family on this machine (trees
bit-identical to scikit-learn, linear/MLP within 1e-6) at 1, 7, 1000 and 10000 rows, the
device backend's checks (shape, dtype, architecture, ELF header, private extraction) and the
rule that native code runs only from a signed or TUF-installed bundle."""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import ensemble as E  # noqa: E402
from sklearn import linear_model as L  # noqa: E402
from sklearn import neural_network as N  # noqa: E402
from sklearn import svm, tree  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402

import edge_runtime  # noqa: E402
from edge_runtime.backends.base import BackendOptions  # noqa: E402
from edge_runtime.bundle import Artifact, sha256_hex  # noqa: E402
from edge_runtime.errors import (  # noqa: E402
    InputError,
    IntegrityError,
    UnsignedNativeError,
    UnsupportedModelError,
)
from edge_runtime.native_abi import elf_arch, host_arch  # noqa: E402

pytestmark = pytest.mark.skipif(host_arch() is None or shutil.which("gcc") is None,
                                reason="needs a known architecture and gcc")

TRAIN = 1500
ROWS = (1, 7, 1000, 10_000)


def _data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    n = TRAIN + 10_000
    if kind == "multi":
        X, y = make_classification(n, 10, n_informative=6, n_classes=3, random_state=0)
    elif kind in ("binary", "nan"):
        X, y = make_classification(n, 10, random_state=1)
    else:
        X, y = make_regression(n, 10, noise=5.0, random_state=0)
    X = X.astype(np.float32).astype(np.float64)  # what the device feeds, as convert compares
    if kind == "nan":
        X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    return X, y


#: name -> (estimator factory, data, exact: bit-identical to sklearn, else the tolerance)
FAMILIES = {
    "decision_tree": (lambda: tree.DecisionTreeClassifier(max_depth=7, random_state=0), "multi", 0.0),
    "decision_tree_regressor": (lambda: tree.DecisionTreeRegressor(max_depth=7, random_state=0), "reg", 0.0),
    "random_forest": (lambda: E.RandomForestClassifier(12, max_depth=6, random_state=0), "multi", 0.0),
    "random_forest_nan": (lambda: E.RandomForestClassifier(8, max_depth=6, random_state=0), "nan", 0.0),
    "extra_trees_regressor": (lambda: E.ExtraTreesRegressor(10, max_depth=6, random_state=0), "reg", 0.0),
    "gradient_boosting_binary": (lambda: E.GradientBoostingClassifier(n_estimators=25, random_state=0),
                                 "binary", 0.0),
    # softmax: sklearn's numpy exp (SIMD) and libm's exp may differ in the last bit
    "gradient_boosting_multiclass": (lambda: E.GradientBoostingClassifier(n_estimators=10, random_state=0),
                                     "multi", 1e-15),
    "gradient_boosting_regressor": (lambda: E.GradientBoostingRegressor(n_estimators=25, random_state=0), "reg", 0.0),
    "hist_gradient_boosting_nan": (lambda: E.HistGradientBoostingClassifier(max_iter=20, random_state=0),
                                   "nan", 0.0),
    "hist_gradient_boosting_multiclass": (lambda: E.HistGradientBoostingClassifier(max_iter=10, random_state=0),
                                          "multi", 1e-15),
    "hist_gradient_boosting_regressor": (lambda: E.HistGradientBoostingRegressor(max_iter=20, random_state=0),
                                         "reg", 0.0),
    "logistic_scaled": (lambda: make_pipeline(StandardScaler(), L.LogisticRegression()), "binary", 1e-6),
    "logistic_multiclass_minmax": (lambda: make_pipeline(MinMaxScaler(), L.LogisticRegression()), "multi", 1e-6),
    "ridge": (lambda: make_pipeline(StandardScaler(), L.Ridge()), "reg", 1e-6),
    "linear_regression": (lambda: L.LinearRegression(), "reg", 1e-6),
    "lasso": (lambda: L.Lasso(alpha=0.1), "reg", 1e-6),
    "sgd_regressor": (lambda: make_pipeline(StandardScaler(), L.SGDRegressor(random_state=0)), "reg", 1e-6),
    "sgd_log_loss": (lambda: make_pipeline(StandardScaler(), L.SGDClassifier(loss="log_loss", random_state=0)),
                     "multi", 1e-6),
    "linear_svc": (lambda: make_pipeline(StandardScaler(), svm.LinearSVC()), "multi", 1e-6),
    "mlp_imputed": (lambda: make_pipeline(SimpleImputer(), StandardScaler(),
                                          N.MLPClassifier((16,), max_iter=60, random_state=0)), "nan", 1e-6),
    "mlp_tanh_multiclass": (lambda: make_pipeline(StandardScaler(), N.MLPClassifier(
        (16, 8), activation="tanh", max_iter=60, random_state=0)), "multi", 1e-6),
    "mlp_regressor": (lambda: make_pipeline(StandardScaler(), N.MLPRegressor(
        hidden_layer_sizes=(16,), max_iter=60, random_state=0)), "reg", 1e-6),
}


def _engine(est, d: int, *, threads: int = 1, arch: str | None = None, lib: bytes | None = None):
    from converters.native import generate_c, outputs_for
    from converters.native.toolchain import compile_library, find
    from edge_runtime.backends.native_backend import NativeBackend

    proba = hasattr(est, "predict_proba")
    clf = hasattr(est, "classes_")
    if lib is None:
        prog = generate_c(est, d, proba)
        lib = compile_library(prog.source, dataclasses.replace(find(host_arch()), opt=prog.opt))
    outs = outputs_for("classification" if clf else "regression", proba)
    art = Artifact("model.so", "native", "fp32", sha256_hex(lib), len(lib), "input", "float32", outs,
                   extra={"arch": arch or host_arch()})
    return NativeBackend(lib, art, BackendOptions(threads=threads, extra={"native_trust": "test"})), outs, lib


def _sk(est, method: str, X: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(getattr(est, method)(X))


def _check(est, engine, outs, X: np.ndarray, tol: float) -> None:
    got = dict(zip(outs, engine.run(np.ascontiguousarray(X, np.float32), list(outs.values()))))
    if "label" in got:
        assert np.array_equal(est.classes_[got["label"]], _sk(est, "predict", X))
    for role, method in (("probabilities", "predict_proba"), ("prediction", "predict")):
        if role in got:
            want = _sk(est, method, X).reshape(got[role].shape)
            if tol == 0.0:
                assert np.array_equal(got[role], want), float(np.max(np.abs(got[role] - want)))
            else:
                scale = 1.0 + np.max(np.abs(want)) if role == "prediction" else 1.0
                assert np.max(np.abs(got[role] - want)) <= tol * scale


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """HistGradientBoosting's OpenMP threads spin against the other processes on a shared
    2-core machine (fit 5 s instead of 0.3 s); one thread gives the same model."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_codegen_parity_per_family(family: str) -> None:
    make, kind, tol = FAMILIES[family]
    X, y = _data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLPs stopped early: convergence is not what is tested
        est = make().fit(X[:TRAIN], y[:TRAIN])
    engine, outs, _ = _engine(est, X.shape[1])
    held = X[TRAIN:]
    for n in ROWS:
        _check(est, engine, outs, held[:n], tol)
    for i in range(7):  # the single-row path, row by row
        _check(est, engine, outs, held[i:i + 1], tol)


@pytest.mark.parametrize("family", ["mlp_tanh_multiclass", "mlp_imputed", "logistic_multiclass_minmax"])
def test_vectorised_dense_code_computes_the_same_numbers(family: str) -> None:
    """-O3 and the AVX2 clone (picked on this CPU where it has AVX2) against the plain -O2
    baseline with no clones: the loops are vectorised across outputs, never a sum reordered, so
    every output is bit for bit the same, on every row count."""
    from converters.native import dense, generate_c
    from converters.native.toolchain import compile_library, find

    make, kind, _ = FAMILIES[family]
    X, y = _data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X[:TRAIN], y[:TRAIN])
    prog = generate_c(est, X.shape[1], True)
    assert prog.opt == "-O3" and dense.ROW_CLONES in prog.source
    tc = find(host_arch())
    fast, outs, _ = _engine(est, X.shape[1])
    plain, _, _ = _engine(est, X.shape[1], lib=compile_library(prog.source.replace(dense.ROW_CLONES, ""), tc))
    names = list(outs.values())
    for n in ROWS:
        x = np.ascontiguousarray(X[TRAIN:TRAIN + n], np.float32)
        for a, b in zip(fast.run(x, names), plain.run(x, names)):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def test_threads_split_a_batch_without_changing_it() -> None:
    X, y = _data("multi")
    est = E.RandomForestClassifier(8, max_depth=6, random_state=0).fit(X[:TRAIN], y[:TRAIN])
    one, outs, lib = _engine(est, X.shape[1], threads=1)
    two, _, _ = _engine(est, X.shape[1], threads=2, lib=lib)
    x = np.ascontiguousarray(X[TRAIN:], np.float32)
    names = list(outs.values())
    for a, b in zip(one.run(x, names), two.run(x, names)):
        assert np.array_equal(a, b)
    two.close()


@pytest.fixture(scope="module")
def forest():
    X, y = _data("binary")
    est = E.RandomForestClassifier(6, max_depth=5, random_state=0).fit(X[:TRAIN], y[:TRAIN])
    return est, X


def test_shape_and_dtype_are_checked_before_every_call(forest) -> None:
    est, X = forest
    engine, outs, _ = _engine(est, X.shape[1])
    names = list(outs.values())
    x = np.ascontiguousarray(X[TRAIN:TRAIN + 5], np.float32)
    with pytest.raises(InputError, match="float32"):
        engine.run(x.astype(np.float64), names)
    with pytest.raises(InputError, match="10 columns"):
        engine.run(x[:, :9].copy(), names)
    with pytest.raises(InputError, match="10 columns"):
        engine.run(x[0], names)
    with pytest.raises(InputError, match="C-contiguous"):
        engine.run(np.asfortranarray(x), names)
    assert engine.run(x, names)[0].shape == (5,)


def test_the_backend_refuses_without_the_loaders_trust(forest) -> None:
    from edge_runtime.backends.native_backend import NativeBackend

    est, X = forest
    engine, outs, lib = _engine(est, X.shape[1])
    with pytest.raises(IntegrityError, match="only from a bundle whose signature verifies"):
        NativeBackend(lib, engine.artifact, BackendOptions())


def test_elf_header_names_the_architecture() -> None:
    def header(cls: int, machine: int, etype: int = 3) -> bytes:
        h = bytearray(64)
        h[:4], h[4], h[5] = b"\x7fELF", cls, 1
        h[16:18], h[18:20] = etype.to_bytes(2, "little"), machine.to_bytes(2, "little")
        return bytes(h)

    assert elf_arch(header(2, 62)) == "x86_64"
    assert elf_arch(header(2, 183)) == "aarch64"
    assert elf_arch(header(1, 40)) == "armv7"
    with pytest.raises(IntegrityError, match="not a shared object"):
        elf_arch(header(2, 62, etype=2))
    with pytest.raises(IntegrityError, match="not a supported"):
        elf_arch(header(2, 8))
    with pytest.raises(IntegrityError, match="not an ELF"):
        elf_arch(b"MZ" + bytes(100))
    assert host_arch("armv7l") == "armv7" and host_arch("arm64") == "aarch64" and host_arch("riscv64") is None


def test_a_library_whose_header_is_another_machine_is_never_dlopened(forest, tmp_path, monkeypatch) -> None:
    est, X = forest
    _, _, lib = _engine(est, X.shape[1])
    foreign = bytearray(lib)
    foreign[18:20] = (183 if host_arch() != "aarch64" else 62).to_bytes(2, "little")
    monkeypatch.setenv("EDGERT_NATIVE_DIR", str(tmp_path / "libs"))
    with pytest.raises(IntegrityError, match="manifest says .* but the library is"):
        _engine(est, X.shape[1], lib=bytes(foreign))
    assert not list((tmp_path / "libs").glob("*.so"))  # refused before anything was written or mapped


def test_extraction_is_private_and_verified(forest, tmp_path, monkeypatch) -> None:
    est, X = forest
    libs = tmp_path / "libs"
    monkeypatch.setenv("EDGERT_NATIVE_DIR", str(libs))
    engine, outs, lib = _engine(est, X.shape[1])
    so = libs / f"{sha256_hex(lib)}.so"
    assert so.is_file() and (libs.stat().st_mode & 0o077) == 0
    torn = libs / "torn"
    torn.write_bytes(b"\x7fELF tampered")
    os.replace(torn, so)  # a torn or altered copy (a new file: the mapped one must stay intact)
    # is written again, then verified
    again, _, _ = _engine(est, X.shape[1], lib=lib)
    assert so.read_bytes() == lib
    os.chmod(libs, 0o777)
    with pytest.raises(IntegrityError, match="writable by others"):
        _engine(est, X.shape[1], lib=lib)


# --- bundles: signed-only, wrong architecture, TUF-installed -------------------------------------

@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    import converters
    from converters.signing import init_signing_key

    X, y = _data("multi")
    est = E.GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X[:TRAIN], y[:TRAIN])
    d = tmp_path_factory.mktemp("native-bundles")
    priv, pub = init_signing_key(d / "owner")
    only = converters.convert(est, X[:TRAIN], d / "native", formats=["native"], holdout=X[TRAIN:TRAIN + 400])
    both = converters.convert(est, X[:TRAIN], d / "both", formats=["onnx", "native"], holdout=X[TRAIN:TRAIN + 400])
    signed = converters.convert(est, X[:TRAIN], d / "signed", formats=["native"], holdout=X[TRAIN:TRAIN + 400],
                                sign_with=priv)
    return {"est": est, "X": X[TRAIN:], "native": only, "both": both, "signed": signed, "pub": pub}


def test_manifest_records_arch_and_build(bundles) -> None:
    art = edge_runtime.open_bundle(bundles["native"]).manifest.artifacts[0]
    assert art.format == "native" and art.path == f"model.{host_arch()}.so"
    assert art.extra["arch"] == host_arch()
    build = art.extra["build"]
    assert build["compiler"].endswith("gcc") and build["compiler_version"] and build["triple"]
    assert "-ffp-contract=off" in build["flags"]
    assert art.parity["passed"] and art.parity["probabilities_max_abs_diff"] <= 1e-15


def test_an_unsigned_native_artifact_is_refused(bundles) -> None:
    with pytest.raises(UnsignedNativeError, match="neither signed .* nor installed through TUF"):
        edge_runtime.load(bundles["native"], backend="native")
    with pytest.raises(UnsignedNativeError):  # auto: nothing else can run it
        edge_runtime.load(bundles["native"])
    model = edge_runtime.load(bundles["both"])  # auto passes native over for the ONNX artifact
    assert model.backend.name != "native"
    model = edge_runtime.load(bundles["native"], backend="native", allow_unsigned_native=True)
    x = bundles["X"][:50]
    assert np.array_equal(model.predict(x), bundles["est"].predict(x))


def test_a_signed_bundle_with_native_loads_and_predicts(bundles) -> None:
    model = edge_runtime.load(bundles["signed"], backend="native", trust=bundles["pub"])
    assert model.backend.name == "native"
    x = bundles["X"][:1000]
    assert np.array_equal(model.predict(x), bundles["est"].predict(x))
    assert np.max(np.abs(model.predict_proba(x) - bundles["est"].predict_proba(x))) <= 1e-15
    with pytest.raises(UnsignedNativeError):  # signed, but this device trusts no key: not vouched for
        edge_runtime.load(bundles["signed"], backend="native")


def test_onnxruntime_competes_with_native_under_index_labels(tmp_path) -> None:
    """A signed bundle with ONNX and native artifacts: ``auto``'s primary is the native one, whose
    labels are class indices; onnxruntime answers class values, which the route maps back to
    indices, so it can still be routed to, proven on the golden rows, with the same labels."""
    import converters
    from converters.signing import init_signing_key
    from edge_runtime import routing
    from edge_runtime.loader import open_trusted
    from edge_runtime.model import Model

    X, y = _data("multi")
    names = np.array(["low", "mid", "high"], dtype=object)[y]  # string classes: not their own index
    est = E.GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X[:TRAIN], names[:TRAIN])
    priv, pub = init_signing_key(tmp_path / "owner")
    path = converters.convert(est, X[:TRAIN], tmp_path / "b", formats=["onnx", "native"],
                              holdout=X[TRAIN:TRAIN + 400], sign_with=priv)
    bundle = open_trusted(path, pub)
    native = bundle.artifact_for(("native",))
    onnx = bundle.artifact_for(("onnx",))
    assert native.extra.get("label_encoding") == "index" and onnx.extra.get("label_encoding") != "index"
    assert ("onnxruntime", onnx.path) in {(cls.name, own.path) for cls, own in routing.route_candidates(bundle, native)}
    engine = routing.proven_engine(bundle, "onnxruntime", 1, native, onnx)
    assert isinstance(engine, routing.ViaArtifact)
    via_ort = Model(bundle, engine, native)
    direct = edge_runtime.load(path, backend="native", trust=pub)
    for n in ROWS:
        x = X[TRAIN:TRAIN + n] if n <= len(X) - TRAIN else np.resize(X[TRAIN:], (n, X.shape[1]))
        assert via_ort.predict(x).tolist() == direct.predict(x).tolist() == est.predict(x).tolist()
    via_ort.close()
    direct.close()


def test_an_artifact_for_another_architecture_is_never_picked(bundles, tmp_path) -> None:
    import json

    b = tmp_path / "relabelled"
    shutil.copytree(bundles["native"], b)
    m = json.loads((b / "manifest.json").read_text())
    other = "aarch64" if host_arch() != "aarch64" else "x86_64"
    m["artifacts"][0]["arch"] = other
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UnsupportedModelError, match="for this machine"):
        edge_runtime.load(b, backend="native", allow_unsigned_native=True)
    m["artifacts"][0]["arch"] = host_arch()  # the manifest is right again, the library is swapped
    lib = bytearray((b / m["artifacts"][0]["path"]).read_bytes())
    lib[18:20] = (183 if other == "aarch64" else 62).to_bytes(2, "little")
    (b / m["artifacts"][0]["path"]).write_bytes(bytes(lib))
    m["artifacts"][0]["sha256"] = sha256_hex(bytes(lib))
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="but the library is"):
        edge_runtime.load(b, backend="native", allow_unsigned_native=True)


def test_a_version_installed_through_tuf_may_run_native(bundles, tmp_path) -> None:
    import json

    from edge_runtime.bundle import pack_bundle
    from edge_runtime.sync.store import VersionStore

    archive = pack_bundle(bundles["native"], tmp_path / "b.tar.gz")
    store = VersionStore(tmp_path / "state")
    path = store.install("1.0.0", archive, via_tuf=True)
    model = edge_runtime.load(path, backend="native")
    x = bundles["X"][:20]
    assert np.array_equal(model.predict(x), bundles["est"].predict(x))
    store.install("1.0.1", archive)  # copied in by hand, not through TUF
    with pytest.raises(UnsignedNativeError):
        edge_runtime.load(store.path("1.0.1"), backend="native")
    rec = json.loads((tmp_path / "state" / "active.json").read_text())
    rec["via_tuf"]["1.0.0"] = {k: "0" * 64 for k in rec["via_tuf"]["1.0.0"]}
    (tmp_path / "state" / "active.json").write_text(json.dumps(rec))
    with pytest.raises(UnsignedNativeError):  # the record does not vouch for these bytes
        edge_runtime.load(path, backend="native")


def test_cli_convert_native_with_target_architectures(tmp_path: Path) -> None:
    import joblib
    from click.testing import CliRunner

    from edge_runtime.cli import cli

    X, y = _data("binary")
    est = tree.DecisionTreeClassifier(max_depth=4, random_state=0).fit(X[:300], y[:300])
    joblib.dump(est, tmp_path / "m.joblib")
    header = ",".join(f"x{i}" for i in range(X.shape[1]))
    np.savetxt(tmp_path / "s.csv", X[:300], delimiter=",", header=header, comments="")
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.joblib"), "--sample", str(tmp_path / "s.csv"),
                                  "-o", str(tmp_path / "b"), "--format", "native", "--target", host_arch()])
    assert r.exit_code == 0, r.output
    assert f"model.{host_arch()}.so native/fp32 [{host_arch()}, native]" in r.output


def _mixed() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = TRAIN + 10_000
    X = np.c_[rng.normal(size=(n, 3)), rng.integers(0, 4, n), rng.integers(0, 3, n), rng.normal(size=n)]
    X = X.astype(np.float32).astype(np.float64)
    X[rng.random(n) < 0.05, 5] = np.nan
    y = ((X[:, 0] + (X[:, 3] == 2) - (X[:, 4] == 1)) > 0).astype(int)
    return X, y


@pytest.mark.parametrize("drop,unknown", [(None, "ignore"), (None, "error"), ("first", "error"),
                                          ("if_binary", "error")])
def test_column_transformer_with_one_hot_before_a_linear_model(drop, unknown) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    X, y = _mixed()
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1, 5]),
                            ("cat", OneHotEncoder(drop=drop, handle_unknown=unknown), [3, 4])],
                           remainder="passthrough")
    est = make_pipeline(ct, L.LogisticRegression()).fit(X[:TRAIN], y[:TRAIN])
    engine, outs, _ = _engine(est, X.shape[1])
    for n in ROWS:
        _check(est, engine, outs, X[TRAIN:TRAIN + n], 1e-12)
    bad = np.ascontiguousarray(X[TRAIN:TRAIN + 5], np.float32)
    bad[3, 3] = 9.0  # a category never seen in training
    if unknown == "error":  # sklearn raises for that row: so does the device, naming it
        with pytest.raises(InputError, match="row 4: a category the model never saw"):
            engine.run(bad, list(outs.values()))
    else:
        _check(est, engine, outs, bad.astype(np.float64), 1e-12)


def test_a_refused_row_in_a_threaded_batch_is_the_first_one() -> None:
    """A batch shared out in chunks over threads: the error names the first refused row, whichever
    thread met it first (rows in the first and last chunks, and two in between)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    from edge_runtime.backends.native_backend import PARALLEL_MIN_ROWS

    X, y = _mixed()
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1, 5]),
                            ("cat", OneHotEncoder(handle_unknown="error"), [3, 4])], remainder="passthrough")
    est = make_pipeline(ct, L.LogisticRegression()).fit(X[:TRAIN], y[:TRAIN])
    two, outs, lib = _engine(est, X.shape[1], threads=2)
    one, _, _ = _engine(est, X.shape[1], threads=1, lib=lib)
    n = 3 * PARALLEL_MIN_ROWS
    x = np.ascontiguousarray(np.resize(X[TRAIN:], (n, X.shape[1])), np.float32)
    names = list(outs.values())
    for a, b in zip(one.run(x, names), two.run(x, names)):
        assert np.array_equal(a, b)
    for rows in ([n - 1], [5000, 2500], [4100, 6000, n - 1], [0, n - 1]):
        bad = x.copy()
        bad[rows, 3] = 9.0
        with pytest.raises(InputError, match=f"row {min(rows) + 1}: a category the model never saw"):
            two.run(bad, names)
    two.close()


def test_convert_a_one_hot_pipeline_to_native_end_to_end(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    import converters

    X, y = _mixed()
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1, 2, 5]),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), [3, 4])])
    est = make_pipeline(ct, L.LogisticRegression()).fit(X[:TRAIN], y[:TRAIN])
    path = converters.convert(est, X[:TRAIN], tmp_path / "b", formats=["native"], holdout=X[TRAIN:TRAIN + 500])
    model = edge_runtime.load(path, backend="native", allow_unsigned_native=True)
    x = X[TRAIN:]
    assert np.array_equal(model.predict(x), est.predict(x))
    assert np.max(np.abs(model.predict_proba(x) - est.predict_proba(x))) <= 1e-12
    allow = [f.allow_nan for f in model.bundle.manifest.features]
    assert allow == [True, True, True, True, True, True]  # imputed, and unknown categories are ignored
