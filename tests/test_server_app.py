"""The WSGI app in-process (no sockets): routes, every client error is a 4xx naming the problem,
metrics text, and the sync-store swap (new version golden-checked off the request path; a
tampered or mismatched version is never served)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_support import serve_bench, two_bundles  # noqa: F401

from edge_runtime import load
from edge_runtime.hotswap import HotSwapModel
from edge_runtime.server import ModelSlot, make_app
from edge_runtime.server.app import single_model_slot
from edge_runtime.server.metrics import Metrics
from edge_runtime.sync.store import VersionStore

pytestmark = pytest.mark.device


def call(app: Any, method: str, path: str, body: Optional[bytes] = None, query: str = "",
         ctype: str = "application/json", length: Optional[str] = None,
         auth: Optional[str] = None) -> tuple[int, dict[str, str], bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_TYPE": ctype, "wsgi.input": io.BytesIO(body or b"")}
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    if body is not None:
        environ["CONTENT_LENGTH"] = length if length is not None else str(len(body))
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    out = b"".join(app(environ, start_response))
    return int(got["status"].split()[0]), got["headers"], out


@pytest.fixture(scope="module")
def model(two_bundles: tuple[Path, Path]) -> Any:  # noqa: F811
    return load(two_bundles[0])


@pytest.fixture()
def app(model: Any) -> Any:
    return make_app(single_model_slot(model), max_body=64 * 1024, max_rows=100)


def rows(model: Any, n: int = 3) -> list[list[float]]:
    return [[float(v) for v in r] for r in np.asarray(model.manifest.golden["inputs"][:n], dtype=float)]


def test_predict_arrays_records_and_proba_match_the_model(app: Any, model: Any) -> None:
    x = rows(model, 3)
    code, headers, body = call(app, "POST", "/predict", json.dumps({"rows": x}).encode(), "proba=1")
    assert code == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["labels"] == model.predict(x).tolist()
    assert doc["probabilities"] == model.predict_proba(x).tolist()
    assert doc["classes"] == model.manifest.classes and doc["version"] == "1.0.0"
    records = [dict(zip(model.feature_names, r)) for r in x]
    code, _, body = call(app, "POST", "/predict", json.dumps(records).encode())
    assert code == 200 and json.loads(body)["labels"] == doc["labels"]
    assert "probabilities" not in json.loads(body)
    mixed = [records[0], x[1], records[2]]
    code, _, body = call(app, "POST", "/predict", json.dumps({"rows": mixed}).encode(), "proba=true")
    assert code == 200 and json.loads(body)["probabilities"] == doc["probabilities"]


def test_served_openapi_is_the_repo_document_with_the_models_rows(app: Any, model: Any) -> None:
    from edge_runtime.server import OPENAPI_PATH

    repo = json.loads(OPENAPI_PATH.read_text())
    served = json.loads(call(app, "GET", "/openapi.json")[2])
    assert served["paths"] == repo["paths"]  # a classifier without a token: the paths as shipped
    assert "predictions" not in served["components"]["schemas"]["PredictResponse"]["properties"]
    row = served["components"]["schemas"]["Row"]["oneOf"]
    assert row[0]["minItems"] == row[0]["maxItems"] == 30
    assert row[1]["required"] == model.feature_names and row[1]["additionalProperties"] is False
    form = served["components"]["schemas"]["PredictRequest"]["oneOf"][0]
    assert form["properties"]["rows"]["maxItems"] == 100  # the app's max_rows


@pytest.mark.parametrize(("body", "query", "code", "words"), [
    (b"{", "", 400, "not valid JSON"),
    (b"", "", 400, "empty request body"),
    (b'{"rowz": []}', "", 400, "unknown field(s) ['rowz']"),
    (b'{"rows": 3}', "", 400, "'rows' must be an array"),
    (b'{"rows": []}', "", 400, "'rows' is empty"),
    (b'{"rows": [[1, 2]]}', "", 422, "wrong number of features"),
    (json.dumps({"rows": [["a"] + [0.0] * 29]}).encode(), "", 422,
     "row 1, feature 'mean_radius': 'a' is not a number"),
    (b'{"rows": [{"nope": 1}]}', "", 422, "unknown feature name"),
    (b'{"rows": [[1], {"a": 1}]}', "", 422, "row 2: unknown feature name(s) ['a']"),
    (b'{"rows": [{"mean_radius": 1}]}', "", 422, "row 1: missing feature(s)"),
    (b'{"rows": [7]}', "", 400, "row 1 is a int"),
    (b'[[1' + b'0' * 400 + b', 0' * 29 + b']]', "", 422,
     "row 1, feature 'mean_radius': infinite, or beyond the float32 range"),
    (b'{"rows": [[1]]}', "proba=yes", 400, "'proba' must be 0, 1, true or false"),
    (b'{"rows": [[1]]}', "debug=1", 400, "unknown query parameter"),
    (json.dumps({"rows": [[0.0] * 30] * 101}).encode(), "", 422, "limit is 100"),
    (b"x" * (64 * 1024 + 1), "", 413, "limit is 65536 bytes"),
])
def test_bad_requests_get_a_4xx_naming_the_problem(app: Any, body: bytes, query: str, code: int,
                                                   words: str) -> None:
    got, _, out = call(app, "POST", "/predict", body, query)
    assert got == code, out
    assert words in json.loads(out)["error"]
    # and the server still serves
    assert call(app, "GET", "/healthz")[0] == 200


def test_wrong_content_type_path_and_method(app: Any) -> None:
    code, _, out = call(app, "POST", "/predict", b"a,b", ctype="text/csv")
    assert code == 415 and "not JSON" in json.loads(out)["error"]
    assert call(app, "GET", "/nowhere")[0] == 404
    code, headers, _ = call(app, "GET", "/predict")
    assert code == 405 and headers["Allow"] == "POST"
    code, _, out = call(app, "POST", "/predict", b"{}", length="many")
    assert code == 400 and "Content-Length" in json.loads(out)["error"]


def test_nan_where_no_imputer_is_a_422_naming_the_feature(app: Any, model: Any) -> None:
    x = rows(model, 1)
    x[0][2] = None
    code, _, out = call(app, "POST", "/predict", json.dumps({"rows": x}).encode())
    assert code == 422 and model.feature_names[2] in json.loads(out)["error"]


def test_health_ready_model_and_openapi(app: Any, model: Any) -> None:
    assert json.loads(call(app, "GET", "/healthz")[2]) == {"status": "ok"}
    ready = json.loads(call(app, "GET", "/readyz")[2])
    assert ready["ready"] is True and ready["version"] == "1.0.0"
    info = json.loads(call(app, "GET", "/model")[2])
    assert [f["name"] for f in info["features"]] == model.feature_names and info["task"] == "classification"
    spec = json.loads(call(app, "GET", "/openapi.json")[2])
    assert set(spec["paths"]) == set(app.routes)
    for path, methods in app.routes.items():
        assert {m.lower() for m in methods} == set(spec["paths"][path])
    assert call(app, "HEAD", "/healthz")[2] == b""


def test_not_ready_without_a_model() -> None:
    app = make_app(ModelSlot())
    assert call(app, "GET", "/readyz")[0] == 503
    assert call(app, "POST", "/predict", b"[[1]]")[0] == 503
    assert call(app, "GET", "/healthz")[0] == 200


def test_metrics_are_prometheus_text_with_a_histogram_per_version(app: Any, model: Any) -> None:
    body = json.dumps({"rows": rows(model, 2)}).encode()
    for _ in range(3):
        call(app, "POST", "/predict", body)
    call(app, "POST", "/predict", b"{")
    code, headers, out = call(app, "GET", "/metrics")
    text = out.decode()
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'edgert_predict_requests_total{version="1.0.0",code="200"} 3' in text
    assert 'edgert_predict_requests_total{version="1.0.0",code="400"} 1' in text
    assert 'edgert_predict_errors_total{version="1.0.0",kind="input"} 1' in text
    assert 'edgert_predict_rows_total{version="1.0.0"} 6' in text
    assert 'edgert_predict_latency_seconds_bucket{version="1.0.0",le="+Inf"} 4' in text
    assert 'edgert_predict_latency_seconds_count{version="1.0.0"} 4' in text
    # the engine serving it: auto's first-load measurement decides, so not a fixed name here
    assert f'edgert_model_info{{name="breast-cancer",version="1.0.0",backend="{model.backend.name}"}} 1' in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_metrics_histogram_is_cumulative_and_labels_escaped() -> None:
    m = Metrics(buckets=(0.1, 1.0))
    m.predict('v"1\n', 200, 0.05, rows=1)
    m.predict('v"1\n', 200, 0.5, rows=1)
    m.predict('v"1\n', 200, 5.0, rows=1)
    text = m.render()
    assert 'edgert_predict_latency_seconds_bucket{version="v\\"1\\n",le="0.1"} 1' in text
    assert 'le="1.0"} 2' in text and 'le="+Inf"} 3' in text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                 lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids,
                                                                           max_size=5),
                 max_leaves=40).map(lambda v: json.dumps(v).encode())),
       query=st.sampled_from(["", "proba=1", "proba=0", "proba=x", "a=b", "proba=1&proba=0", "%zz"]))
def test_fuzzed_bodies_never_give_a_5xx(app: Any, body: bytes, query: str) -> None:
    code, _, out = call(app, "POST", "/predict", body, query)
    assert code < 500, out
    json.loads(out)


# --- swap -------------------------------------------------------------------------------------
def test_store_watcher_swaps_after_golden_check_and_refuses_bad_versions(
        tmp_path: Path, two_bundles: tuple[Path, Path], serve_bench: Any) -> None:  # noqa: F811
    b1, b2 = two_bundles
    store = serve_bench.make_store(tmp_path / "store", {"1.0.0": b1, "1.1.0": b2}, "1.0.0")
    # a tampered 1.2.0: its artifact no longer matches the manifest's sha256
    shutil.copytree(b2, store / "versions" / "1.2.0")
    man = json.loads((store / "versions" / "1.2.0" / "manifest.json").read_text())
    man["version"] = "1.2.0"
    (store / "versions" / "1.2.0" / "manifest.json").write_text(json.dumps(man))
    art = store / "versions" / "1.2.0" / man["artifacts"][0]["path"]
    blob = bytearray(art.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    art.write_bytes(bytes(blob))
    # 1.3.0: a directory whose manifest says another version
    shutil.copytree(b2, store / "versions" / "1.3.0")

    metrics = Metrics()
    slot = HotSwapModel(store, on_swap=metrics.swap)
    assert slot.version == "1.0.0"
    old = slot.current
    assert slot.poll() is False  # nothing changed

    serve_bench.activate(store, "1.2.0", "1.0.0")
    assert slot.poll() is False
    assert slot.current is old and "sha256" in (slot.last_swap_error or "")
    # honest state: the record names the version still serving, the refused one is bad
    rec = VersionStore(store).read_active()
    assert rec["current"] == "1.0.0" and rec["known_bad"]["1.2.0"].startswith("tampered at rest: ")
    assert slot.poll() is False  # not retried

    serve_bench.activate(store, "1.3.0", "1.0.0")
    assert slot.poll() is False and "does not match" in (slot.last_swap_error or "")
    assert "does not match" in VersionStore(store).read_active()["known_bad"]["1.3.0"]

    serve_bench.activate(store, "1.1.0", "1.0.0")
    with slot.lease() as in_flight:  # a request that started before the swap
        assert slot.poll() is True
        assert slot.current is not old and slot.current.version == "1.1.0"
        assert slot.last_swap_error is None
        # the old model stays open until that request ends
        assert in_flight is old and old.model.predict(np.zeros((1, 30))).shape == (1,)
    text = metrics.render()
    assert "edgert_model_swaps_total 1" in text and "edgert_model_swap_failures_total 2" in text


def test_store_start_falls_back_to_previous_when_current_is_broken(
        tmp_path: Path, two_bundles: tuple[Path, Path], serve_bench: Any) -> None:  # noqa: F811
    b1, _ = two_bundles
    store = serve_bench.make_store(tmp_path / "store", {"1.0.0": b1}, "1.0.0")
    (store / "versions" / "2.0.0").mkdir()
    serve_bench.activate(store, "2.0.0", "1.0.0")
    slot = HotSwapModel(store)
    assert slot.version == "1.0.0"
    assert "2.0.0" in (slot.last_swap_error or "")
    rec = VersionStore(store).read_active()
    assert rec["current"] == "1.0.0" and "does not load" in rec["known_bad"]["2.0.0"]


def test_unsafe_version_names_are_refused(tmp_path: Path, two_bundles: tuple[Path, Path],  # noqa: F811
                                          serve_bench: Any) -> None:  # noqa: F811
    from edge_runtime.errors import BundleError
    from edge_runtime.server import resolve_version_dir

    with pytest.raises(BundleError, match="unsafe version"):
        resolve_version_dir(tmp_path, "../../etc")


def test_an_internal_error_is_a_500_for_that_request_only(model: Any) -> None:
    from edge_runtime.server import LoadedModel

    class Broken:
        def __init__(self, real: Any) -> None:
            self.manifest, self.task, self.feature_names = real.manifest, real.task, real.feature_names
            self.backend, self.artifact, self.calls = real.backend, real.artifact, 0

        def predict(self, rows: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("engine fell over")
            return np.zeros(len(rows), dtype=np.int64)

    metrics = Metrics()
    app = make_app(ModelSlot(LoadedModel(Broken(model), "1.0.0", "test")), metrics=metrics)
    body = json.dumps({"rows": rows(model, 1)}).encode()
    code, _, out = call(app, "POST", "/predict", body)
    assert code == 500 and "engine fell over" not in out.decode()  # no internals leak
    assert call(app, "POST", "/predict", body)[0] == 200
    assert 'edgert_predict_errors_total{version="1.0.0",kind="internal"} 1' in metrics.render()


def test_default_row_limit_always_fits_the_body_limit(model: Any) -> None:
    """Without --max-rows, maxItems is what --max-body holds at the longest value each feature
    allows (a 40-digit integer for float32, names in the object form), so every request the
    document allows is accepted: the largest such request fits, one row more is a 422."""
    from edge_runtime.server.limits import worst_row_bytes

    app = make_app(single_model_slot(model), max_body=64 * 1024)
    doc = json.loads(call(app, "GET", "/openapi.json")[2])
    limit = doc["components"]["schemas"]["PredictRequest"]["oneOf"][0]["properties"]["rows"]["maxItems"]
    worst = worst_row_bytes(model.manifest.features, "float32")
    assert limit == (64 * 1024 - 10) // worst and limit > 1
    longest = -340282346638528859811704183484516925440  # the float32 bound's integer part, 40 chars
    record = {name: longest for name in model.feature_names}
    body = json.dumps({"rows": [record] * limit}).encode()
    assert len(body) <= 64 * 1024  # the worst case the document allows fits the body limit ...
    code, _, out = call(app, "POST", "/predict", body)
    assert code == 200, out  # ... and is served (the integer is within float32)
    code, _, out = call(app, "POST", "/predict", json.dumps([[0] * 30] * (limit + 1)).encode())
    assert code == 422 and f"the limit is {limit}" in json.loads(out)["error"]


def test_openapi_for_a_regressor_offers_no_probabilities(tmp_path: Path) -> None:
    from committed import bundle as committed_bundle
    from committed import dataset

    X = dataset("regression")[0]
    bundle = committed_bundle("ridge-regression")
    app = make_app(single_model_slot(load(bundle)), server_url="http://127.0.0.1:9999")
    doc = json.loads(call(app, "GET", "/openapi.json")[2])
    proba = next(p for p in doc["paths"]["/predict"]["post"]["parameters"] if p["name"] == "proba")
    assert proba["schema"]["enum"] == ["0", "false"]
    response = doc["components"]["schemas"]["PredictResponse"]
    assert "probabilities" not in response["properties"] and "predictions" in response["required"]
    assert doc["servers"] == [{"url": "http://127.0.0.1:9999"}]
    row = X[:1].tolist()
    assert call(app, "POST", "/predict", json.dumps(row).encode(), "proba=0")[0] == 200
    assert call(app, "POST", "/predict", json.dumps(row).encode(), "proba=1")[0] == 400


def test_token_guards_every_path_but_healthz_in_process(model: Any) -> None:
    app = make_app(single_model_slot(model), token=b"0123456789abcdef")
    assert call(app, "GET", "/healthz")[0] == 200
    code, headers, out = call(app, "GET", "/model")
    assert code == 401 and headers["WWW-Authenticate"] == 'Bearer realm="edgert"'
    body = json.dumps(rows(model, 1)).encode()
    assert call(app, "POST", "/predict", body)[0] == 401
    assert call(app, "POST", "/predict", body, auth="Bearer 0123456789abcdeX")[0] == 401
    assert call(app, "POST", "/predict", body, auth="bearer  0123456789abcdef ")[0] == 200
    assert call(app, "GET", "/nowhere", auth="Bearer 0123456789abcdef")[0] == 404  # routes after auth


def test_openapi_without_a_model_still_names_the_real_address_and_token() -> None:
    app = make_app(ModelSlot(None), server_url="http://127.0.0.1:4242", token=b"0123456789abcdef")
    code, _, out = call(app, "GET", "/openapi.json", auth="Bearer 0123456789abcdef")
    doc = json.loads(out)
    assert code == 200 and doc["servers"] == [{"url": "http://127.0.0.1:4242"}]
    assert doc["security"] == [{"bearer": []}] and "x-model" not in doc["info"]
    assert call(app, "GET", "/readyz", auth="Bearer 0123456789abcdef")[0] == 503
