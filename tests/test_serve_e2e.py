"""``edgert serve`` through the real CLI on 127.0.0.1: a bounded load from this (second) process
with a version swap halfway through must show zero failed requests, and schema-driven tests
generated from our OpenAPI document must never get a 5xx. No timing thresholds."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from serve_support import serve_bench, two_bundles  # noqa: F401

httpx = pytest.importorskip("httpx")
pytest.importorskip("waitress")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402


@pytest.fixture(scope="module")
def store_server(tmp_path_factory: pytest.TempPathFactory, two_bundles: tuple[Path, Path],  # noqa: F811
                 serve_bench: Any) -> Iterator[tuple[str, Path]]:  # noqa: F811
    b1, b2 = two_bundles
    store = serve_bench.make_store(tmp_path_factory.mktemp("store") / "store",
                                   {"1.0.0": b1, "1.1.0": b2}, "1.0.0")
    # the default limits: the row limit is what the 1 MiB body always holds for this model, so
    # every request the served OpenAPI document allows is one the server accepts
    with serve_bench.server_process(store, threads=4, poll_interval=0.05) as url:
        yield url, store


def test_load_with_a_version_swap_mid_load_has_zero_failed_requests(
        store_server: tuple[str, Path], serve_bench: Any) -> None:  # noqa: F811
    url, store = store_server
    steady = serve_bench.run_load(url, 400, concurrency=8)
    assert steady.failures == [] and steady.ok == 400
    assert steady.versions == {"1.0.0": 400}
    swap = serve_bench.run_load(url, 800, concurrency=8,
                                at_half=lambda: serve_bench.activate(store, "1.1.0", "1.0.0"))
    assert swap.failures == [], swap.failures[:5]
    assert swap.ok == 800 and sum(swap.versions.values()) == 800
    # the swap happened during the load: both versions answered
    serve_bench.wait_for_version(url, "1.1.0")
    after = serve_bench.run_load(url, 50, concurrency=4)
    assert after.failures == [] and after.versions == {"1.1.0": 50}
    text = httpx.get(url + "/metrics").text
    assert "edgert_model_swaps_total 1" in text
    assert 'edgert_predict_requests_total{version="1.1.0",code="200"}' in text
    model = httpx.get(url + "/model").json()
    assert model["version"] == "1.1.0" and model["swaps"] == 1 and model["store"] == str(store)


def test_bad_requests_do_not_stop_the_real_server(store_server: tuple[str, Path]) -> None:
    url, _ = store_server
    r = httpx.post(url + "/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    big = b"[" + b"1," * 700_000 + b"1]"  # 1.4 MB: over the 1 MiB default
    r = httpx.post(url + "/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "the limit is 1048576 bytes" in r.json()["error"]
    huge = b"[" + b"1," * 2_500_000 + b"1]"  # past four times the limit: waitress refuses it unread
    r = httpx.post(url + "/predict", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "exceeds max_body" in r.text
    assert httpx.get(url + "/readyz").json()["ready"] is True


@pytest.fixture(scope="module")
def api_schema(store_server: tuple[str, Path]) -> Any:
    url, _ = store_server
    return schemathesis.openapi.from_url(url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_from_openapi_spec_never_gives_a_5xx(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, response.text
    case.validate_response(response)
    json.loads(response.text) if response.headers.get("content-type", [""])[0].startswith(
        "application/json") else None


def _schemathesis_all_checks(url: str, workdir: Path, *headers: str) -> None:
    """The schemathesis CLI, every check (negative data must be refused with a 4xx the document
    lists, positive data accepted, ignored auth detected...), over the served document."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert exe, "schemathesis CLI not found"
    extra = [a for h in headers for a in ("-H", h)]
    r = subprocess.run([exe, "run", url + "/openapi.json", "--checks", "all", "--max-examples", "30",
                        "--seed", "1", "--workers", "1", "--no-color", *extra],
                       capture_output=True, text=True, timeout=600, cwd=workdir)  # its .schemathesis/ cache
    assert r.returncode == 0, r.stdout[:6000]
    assert "No issues found" in r.stdout


@pytest.mark.slow
def test_schemathesis_all_checks_pass_with_the_default_limits(two_bundles: tuple[Path, Path],  # noqa: F811
                                                              serve_bench: Any, tmp_path: Path) -> None:  # noqa: F811
    with serve_bench.server_process(two_bundles[0]) as url:
        _schemathesis_all_checks(url, tmp_path)


@pytest.mark.slow
def test_schemathesis_all_checks_pass_for_a_regressor_behind_a_token(
        serve_bench: Any, tmp_path: Path) -> None:  # noqa: F811
    """A regression model's document offers no probabilities (schemathesis sends every value the
    document allows, proba=1 included) and, with --token-file, declares bearer security, so
    schemathesis also checks that requests without the token are refused (ignored_auth)."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from converters import convert

    X, y = load_diabetes(return_X_y=True)
    bundle = convert(Ridge().fit(X, y), X, tmp_path / "ridge", name="ridge", version="1.0.0")
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-tests-0123456789")
    token.chmod(0o600)
    with serve_bench.server_process(bundle, extra=("--token-file", str(token))) as url:
        _schemathesis_all_checks(url, tmp_path, "Authorization: Bearer s3cret-token-for-tests-0123456789")


def test_serve_store_starts_on_the_newest_good_version_and_judges_probation(
        tmp_path: Path, two_bundles: tuple[Path, Path], serve_bench: Any, cli_env: dict) -> None:  # noqa: F811
    """The real ``edgert serve STORE``: a current version changed at rest is marked bad and the
    previous good one serves (it used to exit 1); a version activated while serving is swapped
    in and judged by the server's own calls, and the verdict lands in the store."""
    import shutil
    import subprocess
    import sys

    from edge_runtime.bundle import pack_bundle
    from edge_runtime.sync.store import VersionStore

    b1, b2 = two_bundles
    store = VersionStore(tmp_path / "store")
    for version, bundle in (("1.0.0", b1), ("1.1.0", b2)):
        store.install(version, pack_bundle(bundle, tmp_path / f"{version}.tar.gz"))
        store.activate(version)
        store.commit(version, "judged good")
    art = next(p for p in store.path("1.1.0").iterdir() if p.name != "manifest.json")
    blob = bytearray(art.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    art.write_bytes(bytes(blob))
    third = shutil.copytree(b2, tmp_path / "src-1.2.0")
    man = json.loads((third / "manifest.json").read_text())
    man["version"] = "1.2.0"
    (third / "manifest.json").write_text(json.dumps(man))

    with serve_bench.server_process(store.root, poll_interval=0.05) as url:
        model = httpx.get(url + "/model").json()
        assert model["version"] == "1.0.0" and "tampered at rest" in model["last_swap_error"]
        rec = store.read_active()
        assert rec["current"] == "1.0.0"
        assert rec["known_bad"]["1.1.0"].startswith(f"tampered at rest: {art.name} digest mismatch")
        r = subprocess.run([sys.executable, "-m", "edge_runtime", "versions", "--state", str(store.root)],
                           capture_output=True, text=True, env=cli_env, timeout=60)
        assert "tampered at rest" in next(line for line in r.stdout.splitlines() if line.startswith("1.1.0"))

        store.install("1.2.0", pack_bundle(third, tmp_path / "1.2.0.tar.gz"))
        store.activate("1.2.0")  # as the agent beside the server does
        serve_bench.wait_for_version(url, "1.2.0")
        assert store.read_active()["probation"]["version"] == "1.2.0"
        load = serve_bench.run_load(url, 220, concurrency=4)  # probation's default: 200 calls
        assert load.failures == [] and load.versions == {"1.2.0": 220}
        for _ in range(100):  # the verdict lands on a call once the shadow answered the window
            if store.read_active()["probation"] is None:
                break
            time.sleep(0.1)
            assert serve_bench.run_load(url, 2, concurrency=1).failures == []
        rec = store.read_active()
        assert rec["probation"] is None and store.state_of("1.2.0") == "good"
        assert rec["history"][-1]["event"] == "commit" and "predictions within limits" in rec["history"][-1]["reason"]
