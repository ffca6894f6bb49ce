"""Row-count routing for backend="auto": tuned once, cached per bundle and profile, same outputs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import edge_runtime
from edge_runtime import routing

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A breast_cancer forest (20 trees, depth 6; committed) and the zoo's binary test rows."""
    from committed import copy_bundle, dataset

    return copy_bundle("routing-forest", tmp_path_factory.mktemp("r") / "forest"), dataset("binary")[2]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path / "cache"))


def test_untuned_auto_routes_after_a_short_first_load_measurement(bundle):
    m = edge_runtime.load(bundle[0])
    assert isinstance(m.backend, routing.RoutedBackend)
    assert m.backend.table["method"] == "measured" and set(m.backend.table["best"]) == {"1", "32", "1024", "10000"}


def test_tune_caches_and_routes_with_identical_outputs(bundle):
    path, X_te = bundle
    tuned = edge_runtime.load(path, tune=True)
    assert isinstance(tuned.backend, routing.RoutedBackend)
    table = tuned.backend.table
    assert set(table["best"]) == {"1", "32", "1024", "10000"}
    assert all(k in table["timings_s"] for k in table["best"].values())
    again = edge_runtime.load(path)  # from the cache, no tuning
    assert isinstance(again.backend, routing.RoutedBackend) and again.backend.table == table
    plain = edge_runtime.load(path, threads=1)
    assert not isinstance(plain.backend, routing.RoutedBackend)
    for n in (1, 7, 300, 5000):
        X = np.resize(X_te, (n, X_te.shape[1]))
        assert np.array_equal(again.predict(X), plain.predict(X))
        assert np.allclose(again.predict_proba(X), plain.predict_proba(X), atol=1e-6)


def test_routes_by_row_count(bundle):
    path, _ = bundle
    m = edge_runtime.load(path, tune=True)
    limits = [limit for limit, _ in m.backend._routes]
    assert limits == sorted(limits) and limits[0] < 32 < limits[1] < 1024 < limits[2] < 10_000 < limits[3]


def test_model_calls_the_engine_its_route_names_without_the_routers_dispatch(bundle, monkeypatch):
    """predict / predict_proba pick a router's engine for the row count themselves (no dispatch
    frame: ~0.3 µs, 6 % of a 32-row call) and answer as the router would."""
    path, X_te = bundle
    m = edge_runtime.load(path, tune=True)
    router = m.backend
    routes = router._routes
    assert router.engine_for(1) is routes[0][1] and router.engine_for(10**9) is routes[-1][1]
    assert router.engine_for(routes[0][0]) is routes[0][1] and router.engine_for(routes[0][0] + 1) is routes[1][1]
    plain = edge_runtime.load(path, threads=1)
    dispatched: list[int] = []
    real = routing.RoutedBackend.run
    monkeypatch.setattr(routing.RoutedBackend, "run",
                        lambda self, x, outs: dispatched.append(x.shape[0]) or real(self, x, outs))
    looked_up: list[int] = []  # the route per call is the Model's own table: no engine_for per call
    real_for = routing.RoutedBackend.engine_for
    monkeypatch.setattr(routing.RoutedBackend, "engine_for",
                        lambda self, rows, outs=(): looked_up.append(rows) or real_for(self, rows, outs))
    for n in (1, routes[0][0], routes[0][0] + 1, 300, routes[-2][0] + 1, 10**5):
        X = np.resize(X_te, (n, X_te.shape[1]))
        assert np.array_equal(m.predict(X), plain.predict(X))
        assert np.allclose(m.predict_proba(X), plain.predict_proba(X), atol=1e-6)
        want = real_for(router, n, m._proba_out)
        assert next(e for limit, e in m._proba_routes if n <= limit) is want
    assert dispatched == [] and looked_up == []
    assert plain.backend.engine_for(1) is plain.backend
    assert plain._proba_routes == plain._predict_routes == ((sys.maxsize, plain.backend),)


def test_stale_or_foreign_cache_is_ignored(bundle, tmp_path):
    path, _ = bundle
    from edge_runtime.bundle import open_bundle

    cache_file = routing.cache_path(open_bundle(path), None)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    foreign = {"schema": routing.SCHEMA, "artifact": "0" * 64, "best": {"1": "x:1"}}
    cache_file.write_text(json.dumps(foreign))
    m = edge_runtime.load(path)  # measured afresh, the foreign table replaced
    assert m.backend.table["best"] != foreign["best"] and json.loads(cache_file.read_text())["artifact"] != "0" * 64
    cache_file.write_text("{not json")
    assert edge_runtime.load(path).backend.table["method"] == "measured"


def test_profile_has_its_own_table(bundle):
    path, _ = bundle
    edge_runtime.load(path, tune=True)
    m = edge_runtime.load(path, profile="rpi4-aarch64")
    assert m.backend.table["profile"] == "rpi4-aarch64" and m.backend.table["method"] == "measured"
    m = edge_runtime.load(path, profile="rpi4-aarch64", tune=True)
    assert m.backend.table["profile"] == "rpi4-aarch64"
    assert all(int(k.rsplit(":", 1)[1]) <= 4 for k in m.backend.table["timings_s"])


def test_pick_prefers_fewer_threads_on_a_near_tie_and_the_fastest_otherwise():
    assert routing.pick({"onnxruntime:1": 1.15, "onnxruntime:2": 1.0}) == "onnxruntime:1"
    assert routing.pick({"onnxruntime:1": 1.5, "onnxruntime:2": 1.0}) == "onnxruntime:2"
    assert routing.pick({"onnxruntime:2": 1.0, "numpy:1": 1.08, "onnxruntime:1": 1.09}) == "numpy:1"


def test_thread_candidates_never_exceed_this_machine(monkeypatch):
    monkeypatch.setattr(routing.os, "cpu_count", lambda: 2)
    assert routing.thread_options(4) == [1, 2]
    assert routing.thread_options(1) == [1]
    assert routing.thread_options() == [1, 2]


def test_tuning_rows_follow_the_training_histograms_not_tiled_golden_rows(bundle):
    from edge_runtime import sampling
    from edge_runtime.bundle import open_bundle
    from edge_runtime.sampling import timing_rows

    b = open_bundle(bundle[0])
    x = timing_rows(b, 2000, "float32")
    feats = b.manifest.reference["features"]
    assert x.shape == (2000, len(feats)) and x.dtype == np.float32
    assert len({tuple(r) for r in x.tolist()}) > 1900  # not a few golden rows repeated
    for j, f in enumerate(feats):
        assert f["min"] - 1e-3 <= x[:, j].min() and x[:, j].max() <= f["max"] + 1e-3
    assert np.array_equal(x, timing_rows(b, 2000, "float32"))  # seeded: same rows every tuning
    # a larger batch tiles DISTINCT_ROWS draws (drawing all 10k cost 18 ms of a 200 ms first load)
    big = timing_rows(b, 5000, "float32")
    d = sampling.DISTINCT_ROWS
    assert big.shape == (5000, len(feats)) and big.flags.c_contiguous and d < 5000
    assert len({tuple(r) for r in big[:d].tolist()}) > d - 50 and np.array_equal(big[d:2 * d], big[:d])


@pytest.fixture(scope="module")
def two_format_bundle(tmp_path_factory):
    """iris as ONNX and TFLite with class values 10/20/30, not indices (the label must be mapped;
    committed), and all 150 iris rows."""
    from committed import copy_bundle, dataset

    from edge_runtime.backends import get_backend

    if not get_backend("litert").is_available():
        pytest.skip("needs the litert backend (ai-edge-litert)")
    X_tr, _, X_te, _ = dataset("iris")
    return copy_bundle("iris-two-formats", tmp_path_factory.mktemp("two") / "iris"), np.vstack([X_tr, X_te])


def test_routes_may_cross_formats_and_answer_like_the_onnx_artifact(two_format_bundle):
    path, X = two_format_bundle
    plain = edge_runtime.load(path, backend="onnxruntime", threads=1)
    onnx_art, tfl = plain.artifact, next(a for a in plain.manifest.artifacts if a.format == "tflite")
    # a table that sends large calls to LiteRT on the .tflite twin, whatever this machine measures
    table = {"schema": routing.SCHEMA, "artifact": onnx_art.sha256, "profile": None,
             "bundle": routing.bundle_digest(plain.bundle),
             "row_counts": [1, 32], "timings_s": {}, "best": {"1": "onnxruntime:1", "32": "litert:1"},
             "artifacts": {"onnxruntime:1": onnx_art.path, "litert:1": tfl.path}}
    routing.cache_path(plain.bundle, None).parent.mkdir(parents=True, exist_ok=True)
    routing.cache_path(plain.bundle, None).write_text(json.dumps(table))
    auto = edge_runtime.load(path)
    assert isinstance(auto.backend, routing.RoutedBackend)
    big = auto.backend._routes[-1][1]
    assert isinstance(big, routing.ViaArtifact) and big.name == "litert"
    Xb = np.resize(X, (200, X.shape[1]))
    assert np.array_equal(auto.predict(Xb), plain.predict(Xb))  # 10/20/30, not 0/1/2
    assert set(auto.predict(Xb).tolist()) <= {10, 20, 30}
    assert np.allclose(auto.predict_proba(Xb), plain.predict_proba(Xb), atol=1e-5)


def test_tuning_lets_other_formats_compete(two_format_bundle):
    path, _ = two_format_bundle
    table = edge_runtime.load(path, tune=True).backend.table
    assert "litert:1" in table["timings_s"] and table["artifacts"]["litert:1"].endswith(".tflite")


def test_routing_forest_labels_do_not_depend_on_the_engine() -> None:
    """The committed forest the finding came from: numpy and onnxruntime answer alike."""
    from committed import bundle, dataset

    path = bundle("routing-forest")
    X_te = dataset("binary")[2]
    a = edge_runtime.load(path, backend="numpy")
    b = edge_runtime.load(path, backend="onnxruntime", threads=1)
    for n in (1, 7, 300, 5000):
        X = np.resize(X_te, (n, X_te.shape[1]))
        assert np.array_equal(a.predict(X), b.predict(X)), n
        assert np.abs(a.predict_proba(X) - b.predict_proba(X)).max() <= 1e-6, n
