"""Golden rows that prove the model: stratified rows from the converter, checked on the device all
at once and one row at a time, at tolerances the runtime caps whatever the manifest says."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge_runtime
from edge_runtime import golden as device_golden
from edge_runtime.bundle import Artifact
from edge_runtime.errors import BackendError, BundleError, GoldenMismatchError


def dataset(kind):
    from zoo import dataset

    return dataset(kind)


def _fit(est, kind):
    X, y, _, _ = dataset(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.fixture(scope="module")
def iris():
    """The iris logistic bundle, and a second model whose labels differ on most of iris (both
    committed, read only: scripts/make_test_bundles.py)."""
    from committed import bundle

    return bundle("iris"), bundle("iris-relabeled")


@pytest.fixture(scope="module")
def iris_estimators():
    """The two estimators of ``iris``, fitted again (deterministic: the same models)."""
    from sklearn.linear_model import LogisticRegression

    X, y, _, _ = dataset("iris")
    return (LogisticRegression(max_iter=1000).fit(X, y),
            LogisticRegression(max_iter=1000).fit(X, (y + 1) % 3))  # every class renamed


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(bundle: Path, change) -> Path:
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    (bundle / "manifest.json").write_text(json.dumps(m))
    return bundle


def _swap_artifact(bundle: Path, donor: Path) -> None:
    """Put ``donor``'s model file into ``bundle``, with a manifest digest that matches it (what a
    publishing mistake, not tampering, looks like)."""
    data = (donor / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data)

    def fix(m):
        m["artifacts"][0]["sha256"] = hashlib.sha256(data).hexdigest()
        m["artifacts"][0]["size"] = len(data)
    _edit(bundle, fix)


def test_golden_rows_cover_every_class_from_the_holdout(iris, iris_estimators):
    a, est = iris[0], iris_estimators[0]
    _, _, X_te, _ = dataset("iris")
    g = json.loads((a / "manifest.json").read_text())["golden"]
    rows = np.asarray(g["inputs"], dtype=float)
    assert len(rows) == device_golden.MIN_GOLDEN_ROWS
    assert set(g["label"]) == set(est.predict(X_te).tolist()) == {0, 1, 2}
    counts = np.bincount(np.asarray(g["label"]))
    assert counts.max() - counts.min() <= 1  # round robin over classes
    held = {r.tobytes() for r in X_te.astype(np.float32).astype(np.float64)}
    assert all(r.tobytes() in held for r in rows)
    assert g["selection"]["from_holdout"] == 32 and g["selection"]["classes_covered"] == 3
    assert g["label"] == est.predict(rows).tolist()


def test_regressor_golden_rows_hold_the_extremes_of_its_predictions(tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    import converters

    X, y, X_te, _ = dataset("regression")
    est = _fit(DecisionTreeRegressor(max_depth=5, random_state=0), "regression")
    b = converters.convert(est, X, tmp_path / "b", holdout=X_te)
    g = json.loads((b / "manifest.json").read_text())["golden"]
    pred = est.predict(X_te)
    assert len(g["prediction"]) == 32 and g["selection"]["stratified_by"] == "prediction quantiles"
    assert min(g["prediction"]) == pytest.approx(pred.min()) and max(g["prediction"]) == pytest.approx(pred.max())
    assert np.median(g["prediction"]) == pytest.approx(np.median(pred), rel=0.2)


def test_fewer_rows_than_32_are_all_used_and_the_manifest_says_so(tmp_path):
    from sklearn.linear_model import LogisticRegression

    import converters

    X, y, _, _ = dataset("iris")
    few = np.vstack([X[y == k][:7] for k in range(3)])  # 21 rows
    est = LogisticRegression(max_iter=1000).fit(X, y)
    b = converters.convert(est, few, tmp_path / "b")
    g = json.loads((b / "manifest.json").read_text())["golden"]
    assert len(g["inputs"]) == 21
    assert "only 21 golden rows" in g["selection"]["note"]
    edge_runtime.load(b)
    with pytest.raises(converters.ConversionError, match="at least 32"):
        converters.convert(est, X, tmp_path / "c", n_golden=8)


def test_a_swapped_model_with_atol_1e9_is_refused(iris, iris_estimators, tmp_path):
    (a, b), (est, other) = iris, iris_estimators
    X = dataset("iris")[0]
    changed = int(np.sum(est.predict(X) != other.predict(X)))
    assert changed >= 90  # the swap is a different model on most rows
    bad = _copy(a, tmp_path / "swapped")
    _swap_artifact(bad, b)

    def loosen(m):
        m["golden"].update(atol=1e9, rtol=1e9, min_label_agreement=0.0)
    _edit(bad, loosen)
    with pytest.raises(GoldenMismatchError, match="golden labels agree on"):
        edge_runtime.load(bad, backend="onnxruntime")
    with pytest.raises(BackendError, match="no backend can run this bundle"):
        edge_runtime.load(bad)
    unproven = edge_runtime.load(bad, verify=False)  # loads only unproven, and is the other model
    assert unproven.predict(X).tolist() == other.predict(X).tolist()


@pytest.mark.device
def test_probabilities_off_by_more_than_the_cap_are_refused_whatever_atol_says(iris, tmp_path):
    a = iris[0]

    def shift(m):  # every label kept, probabilities off by 0.01 (10x the cap)
        m["golden"]["probabilities"] = [[p + (0.01 if j == 0 else -0.01 if j == 1 else 0.0)
                                         for j, p in enumerate(r)] for r in m["golden"]["probabilities"]]
        m["golden"].update(atol=1e9, rtol=1e9)
    bad = _edit(_copy(a, tmp_path / "shifted"), shift)
    with pytest.raises(GoldenMismatchError, match=r"probabilities differ by 0\.01 \(tolerance 0\.00[12]"):
        edge_runtime.load(bad, backend="onnxruntime")


def test_regression_tolerance_is_capped_relative_to_the_outputs_scale(tmp_path):
    from sklearn.linear_model import Ridge

    import converters

    X, _, X_te, _ = dataset("regression")
    est = _fit(Ridge(), "regression")
    b = converters.convert(est, X, tmp_path / "b", holdout=X_te)
    scale = max(abs(v) for v in json.loads((b / "manifest.json").read_text())["golden"]["prediction"])

    def nudge(m, by):
        m["golden"]["prediction"] = [v + by for v in m["golden"]["prediction"]]
        m["golden"].update(atol=1e9, rtol=1e9)
    ok = _edit(_copy(b, tmp_path / "ok"), lambda m: nudge(m, 0.5e-3 * scale))
    edge_runtime.load(ok, backend="onnxruntime")
    bad = _edit(_copy(b, tmp_path / "bad"), lambda m: nudge(m, 3e-3 * scale))
    with pytest.raises(GoldenMismatchError, match="golden prediction differ"):
        edge_runtime.load(bad, backend="onnxruntime")


@pytest.mark.device
def test_a_bundle_without_golden_rows_loads_only_unverified(iris, tmp_path):
    bare = _edit(_copy(iris[0], tmp_path / "bare"), lambda m: m.update(golden=None))
    with pytest.raises(BundleError, match="no golden rows.*verify=False"):
        edge_runtime.load(bare)
    model = edge_runtime.load(bare, verify=False)
    with pytest.raises(BundleError, match="no golden rows"):
        model.check_golden()


@pytest.mark.device
def test_an_empty_golden_block_is_a_malformed_manifest(iris, tmp_path):
    empty = _edit(_copy(iris[0], tmp_path / "empty"), lambda m: m.update(golden={"inputs": []}))
    for verify in (True, False):
        with pytest.raises(BundleError, match="golden.inputs' is empty"):
            edge_runtime.load(empty, verify=verify)


@pytest.mark.device
def test_golden_rows_without_this_models_outputs_are_refused(iris, tmp_path):
    def strip(m):
        for k in ("label", "probabilities"):
            m["golden"].pop(k)
        m["golden"]["prediction"] = [0.0] * len(m["golden"]["inputs"])
    bad = _edit(_copy(iris[0], tmp_path / "no-outputs"), strip)
    with pytest.raises(BundleError, match="has no label or probabilities to check"):
        edge_runtime.load(bad)


def test_dynamic_int8_is_proven_one_row_at_a_time_on_its_own_per_row_outputs(tmp_path):
    """Dynamic int8 quantizes activations per call, so one row at a time answers differently from
    32 rows at once: the converter stores both runs, and the device checks both."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import converters

    X, _, X_te, _ = dataset("multiclass")
    est = _fit(make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=300, random_state=0)),
               "multiclass")
    b = converters.convert(est, X, tmp_path / "b", holdout=X_te, precisions=("fp32", "int8"))
    m = json.loads((b / "manifest.json").read_text())
    own = next(a for a in m["artifacts"] if a["precision"] == "int8")["golden"]
    by_row = np.asarray(own["by_row"]["probabilities"])
    assert np.abs(by_row - np.asarray(own["probabilities"])).max() > 1e-3  # really batch-dependent
    figures = edge_runtime.load(b, backend="onnxruntime", precision="int8").check_golden()
    assert figures["rows"] == 32 and figures["label_agreement"] == 1.0

    def int8(mm):
        return next(a for a in mm["artifacts"] if a["precision"] == "int8")["golden"]

    def skew(mm):  # the all-at-once outputs are right, the per-row ones off by 0.01
        int8(mm)["by_row"]["probabilities"] = [[p + 0.01 for p in r] for r in int8(mm)["by_row"]["probabilities"]]
    skewed = _edit(_copy(b, tmp_path / "skewed"), skew)
    with pytest.raises(GoldenMismatchError, match="one row at a time: golden probabilities differ"):
        edge_runtime.load(skewed, backend="onnxruntime", precision="int8")

    def older(mm):  # written before per-row outputs were stored: judged on its quantized bar
        int8(mm).pop("by_row")
    figures = edge_runtime.load(_edit(_copy(b, tmp_path / "older"), older), backend="onnxruntime",
                                precision="int8").check_golden()
    assert figures["label_agreement"] >= 0.99


def _artifact(precision: str, parity: dict) -> Artifact:
    return Artifact(path="m", format="onnx", precision=precision, sha256="0" * 64, size=1,
                    input_name="x", input_dtype="float32", outputs={"label": "l"}, parity=parity)


@pytest.mark.device
def test_label_floor_keeps_the_quantized_bar_and_never_goes_lower():
    assert device_golden.label_floor(_artifact("fp32", {"min_label_agreement": 0.0})) == 0.99
    assert device_golden.label_floor(_artifact("int8", {"min_label_agreement": 0.95})) == 0.95
    assert device_golden.label_floor(_artifact("fp16", {"min_label_agreement": 0.1})) == 0.9
    assert device_golden.label_floor(_artifact("int8", {"min_label_agreement": "x"})) == 0.99
    golden = {"label": [0] * 100, "min_label_agreement": 0.0}
    got = {"label": [0] * 94 + [1] * 6}
    device_golden.compare(golden, got, "w", _artifact("int8", {"min_label_agreement": 0.9}))
    with pytest.raises(GoldenMismatchError, match="6 of 100 differ"):
        device_golden.compare(golden, got, "w", _artifact("int8", {"min_label_agreement": 0.95}))


hostile = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=True),
                    st.integers(min_value=-10**400, max_value=10**400), st.lists(st.integers(), max_size=2))


@pytest.mark.device
@settings(max_examples=300, deadline=None)
@given(atol=hostile, rtol=hostile, want=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5))
def test_no_manifest_tolerance_loosens_the_cap(atol, rtol, want):
    g = {"atol": atol, "rtol": rtol}
    p = device_golden.tolerance("probabilities", g, want)
    assert 0.0 <= p <= device_golden.PROBA_ATOL_CAP + device_golden.PROBA_RTOL_CAP * max(map(abs, want))
    scale = max(map(abs, want)) or 1.0
    r = device_golden.tolerance("prediction", g, want)
    assert 0.0 <= r <= 2 * device_golden.PREDICTION_REL_CAP * scale + 1e-12 and not math.isnan(r)


def test_wrapped_kmeans_golden_rows_cover_every_cluster_and_catch_a_wrong_batch_path(tmp_path):
    """A KMeans bundle's 8 golden rows sat below the numpy backend's 32-row switch, where ArgMin
    took argmax: now the rows cover every cluster, and the all-at-once run crosses the switch, so
    a backend is either right on all of iris or refused at load, never silently wrong."""

    from skl2onnx import to_onnx
    from sklearn.cluster import KMeans

    from converters.wrap import wrap

    X = dataset("iris")[0]
    km = KMeans(n_clusters=3, n_init=4, random_state=0).fit(X)
    (tmp_path / "km.onnx").write_bytes(to_onnx(km, X[:1].astype(np.float32)).SerializeToString())
    b = wrap(tmp_path / "km.onnx", X, tmp_path / "b", classes=[0, 1, 2])
    g = json.loads((b / "manifest.json").read_text())["golden"]
    assert len(g["inputs"]) == 32 and set(g["label"]) == {0, 1, 2}
    for backend in ("onnxruntime", "numpy"):
        try:
            model = edge_runtime.load(b, backend=backend)
        except GoldenMismatchError:
            assert backend == "numpy"  # refused, not wrong
            continue
        assert model.predict(X).tolist() == km.predict(X).tolist()
