"""``edgert bench`` and device profiles, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

import edge_runtime
from edge_runtime.errors import ProfileError
from edge_runtime.profiles import list_profiles, load_profile, parse_profile

REQUIRED = ["laptop-x86_64", "rpi4-aarch64", "rpi5-aarch64", "rpi-zero2w-armv7", "jetson-nano-aarch64",
            "browser-pyodide", "android-arm64"]


def edgert(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cli_env):
    from converters.demo import train_demo_model

    d = tmp_path_factory.mktemp("bench")
    r = edgert(["demo", "-o", str(d / "bundle")], cli_env)
    assert r.returncode == 0, r.stderr
    joblib.dump(train_demo_model("logistic")[0], d / "model.joblib")
    return d


def test_bench_table_json_and_plot(demo, cli_env):
    pytest.importorskip("matplotlib")
    r = edgert(["bench", str(demo / "bundle"), "--baseline", str(demo / "model.joblib"), "--cold-runs", "2",
                "--seconds", "0.3", "--batch", "1,32", "--json", str(demo / "b.json"), "--plot",
                str(demo / "b.png")], {**cli_env, "COLUMNS": "220"})
    assert r.returncode == 0, r.stderr
    for col in ("import", "create", "1st pred", "peak RSS", "p50", "p99", "rows/s @32", "vs sklearn"):
        assert col in r.stdout
    report = json.loads((demo / "b.json").read_text())
    assert report["schema"] == "edgert-bench/1"
    by_backend = {e["backend"]: e for e in report["results"]}
    assert "onnxruntime" in by_backend  # and every other installed backend that runs the bundle
    entry = by_backend["onnxruntime"]
    assert entry["backend"] == "onnxruntime" and entry["size_bytes"] > 0
    assert entry["cold_start"]["runs"] == 2
    assert set(entry["cold_start"]) >= {"import_s", "load_s", "first_predict_s", "peak_rss_mb"}
    w = entry["warm"]
    assert w["n"] >= 200 and w["p50_ms"] <= w["p90_ms"] <= w["p99_ms"] <= w["max_ms"]
    assert [t["batch"] for t in entry["throughput"]] == [1, 32]
    assert entry["vs_baseline"]["warm_p50_speedup"] > 0 and report["baseline"]["warm"]["n"] >= 30
    assert (demo / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_sets_threads_and_reports_budgets(demo, cli_env):
    r = edgert(["bench", str(demo / "bundle"), "--profile", "rpi4-aarch64", "--cold-runs", "1", "--seconds",
                "0.2", "--batch", "1", "--json", str(demo / "p.json")], cli_env)
    assert r.returncode == 0, r.stderr
    assert "onnxruntime/fp32 on rpi4-aarch64: p99" in r.stdout and "(budget 20 ms)" in r.stdout
    report = json.loads((demo / "p.json").read_text())
    assert report["threads"] == 2 and report["budgets"][0]["latency_budget_ms"] == 20
    assert report["results"][0]["threads"] == 2  # read back from the engine the bench timed
    assert report["inputs"].startswith("golden rows")
    # one engine runs at the profile's thread count (auto routes per row count, up to its cores)
    model = edge_runtime.load(demo / "bundle", backend="onnxruntime", profile="rpi4-aarch64")
    assert model.backend.effective_threads() == 2


def test_over_budget_exits_3(demo, cli_env, tmp_path):
    (tmp_path / "tiny.toml").write_text(
        'arch = "x86_64"\ncores = 1\nmemory_mb = 64\nbackends = ["onnxruntime"]\nthreads = 1\n'
        'precision = "fp32"\nlatency_budget_ms = 0.0001\nmemory_budget_mb = 1\n')
    r = edgert(["bench", str(demo / "bundle"), "--profile", str(tmp_path / "tiny.toml"), "--cold-runs", "1",
                "--seconds", "0.1", "--batch", "1"], cli_env)
    assert r.returncode == 3 and "FAIL onnxruntime/fp32" in r.stdout and "OVER" in r.stdout


def test_all_required_profiles_ship_and_parse(cli_env):
    names = {p.name for p in list_profiles()}
    assert set(REQUIRED) <= names
    r = edgert(["profiles"], cli_env)
    assert r.returncode == 0 and all(n in r.stdout for n in REQUIRED)


@pytest.mark.parametrize("body,field", [
    ('arch = "x"\n', "missing field 'cores'"),
    ('arch = "x"\ncores = "four"\n', "field 'cores' must be int"),
    ('arch = "x"\ncores = 1\nmemory_mb = 1\nbackends = []\nthreads = 1\nprecision = "fp32"\n'
     'latency_budget_ms = 1\nmemory_budget_mb = 1\n', "field 'backends'"),
    ('arch = "x"\ncores = 1\nmemory_mb = 1\nbackends = ["numpy"]\nthreads = 1\nprecision = "fp8"\n'
     'latency_budget_ms = 1\nmemory_budget_mb = 1\n', "field 'precision'"),
    ('colour = 1\n', "unknown field 'colour'"),
    ('arch = \n', "not valid TOML"),
])
def test_invalid_profile_names_the_field(tmp_path, body, field):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ProfileError, match=field):
        parse_profile(f)


def test_user_profiles_dir(tmp_path, monkeypatch, cli_env):
    src = Path(load_profile("rpi4-aarch64").path).read_text().replace("threads = 2", "threads = 3")
    (tmp_path / "my-box.toml").write_text(src)
    monkeypatch.setenv("EDGERT_PROFILES_DIR", str(tmp_path))
    assert load_profile("my-box").threads == 3
    with pytest.raises(ProfileError, match="no device profile named 'nope'"):
        load_profile("nope")
    r = edgert(["profiles"], {**cli_env, "EDGERT_PROFILES_DIR": str(tmp_path)})
    assert "my-box" in r.stdout
