"""``GET /metrics``: valid Prometheus text (``promtool check metrics``) whose values are the
report's, per model and version."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import urllib.request
import uuid

import pytest
from fleet_data import reference, window

from collector import Collector


def _fill(coll: Collector) -> None:
    """Two versions from three devices; v2 with drift in feature 'a'."""
    ref = reference()
    rng = random.Random(7)
    for dev in range(3):
        for version, shift in (("1.0.0", 0.0), ("1.1.0", 3.0)):
            if version == "1.1.0" and dev == 2:
                continue  # device 2 still on 1.0.0
            segs = [dict(window("iris", version, rng, ref, start=1000.0 + 20 * k + (version == "1.1.0") * 500,
                                shift=shift), segment_id=uuid.uuid4().hex) for k in range(6)]
            coll.store.ingest({"batch_id": uuid.uuid4().hex, "device_id": f"dev-{dev}", "segments": segs,
                               "refs": [{"model": "iris", "version": version, "reference": ref}]})


def _scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def _value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    assert m, f"{name}{{{want}}} missing"
    return float(m.group(1))


@pytest.fixture
def filled(db_url):
    coll = Collector(db_url).start()
    try:
        _fill(coll)
        yield coll
    finally:
        coll.stop()


def test_metrics_equal_the_report(filled):
    ctype, text = _scrape(filled.port)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    rep = filled.store.report()
    assert len(rep["versions"]) == 2
    for v in rep["versions"]:
        mv = {"model": v["model"], "version": v["version"]}
        assert _value(text, "edgert_predict_calls_total", **mv) == v["calls"]
        assert _value(text, "edgert_devices", **mv) == v["devices"]
        assert _value(text, "edgert_devices_current", **mv) == v["devices_current"]
        for kind, n in v["errors_by_kind"].items():
            assert _value(text, "edgert_predict_errors_total", **mv, kind=kind) == n
        assert _value(text, "edgert_predict_latency_seconds_count", **mv) == v["calls"] + v["errors"]
        assert _value(text, "edgert_predict_latency_seconds_bucket", **mv, le="+Inf") == v["calls"] + v["errors"]
        assert _value(text, "edgert_predict_latency_quantile_seconds", **mv, quantile="0.99") == \
            pytest.approx(v["latency_s"]["p99"], rel=1e-12)
        assert _value(text, "edgert_feedback_accuracy_ratio", **mv) == pytest.approx(v["feedback"]["accuracy"])
        for feat, d in v["drift"].items():
            assert _value(text, "edgert_feature_psi", **mv, feature=feat) == pytest.approx(d["psi"])
            assert _value(text, "edgert_feature_drifted", **mv, feature=feat) == float(d["drift"])
    assert [v["devices"] for v in rep["versions"]] == [3, 2]
    assert [v["devices_current"] for v in rep["versions"]] == [1, 2]  # dev-2 is the one left on 1.0.0
    assert _value(text, "edgert_feature_drifted", model="iris", version="1.1.0", feature="a") == 1.0
    assert _value(text, "edgert_feature_drifted", model="iris", version="1.0.0", feature="a") == 0.0
    buckets = [float(x) for x in re.findall(
        r'^edgert_predict_latency_seconds_bucket\{model="iris",version="1.0.0",le="[^"]+"\} (\S+)$', text, re.M)]
    assert buckets == sorted(buckets) and buckets[-1] == rep["versions"][0]["calls"] + rep["versions"][0]["errors"]


def test_promtool_accepts_the_exposition(filled):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/setup.d/70-prometheus.sh installs it)")
    _, text = _scrape(filled.port)
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                         timeout=60)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), \
        (res.stdout + res.stderr).decode()


def test_untrusted_names_are_escaped(tmp_path):
    """Model names, versions, error kinds and features come from devices: quotes, backslashes
    and newlines in them must not break (or inject into) the exposition."""
    ref = reference()
    ref["features"][0]["name"] = 'a"\\\nb'
    seg = dict(window('m"1\n# TYPE x counter', 'v\\2', random.Random(2), ref, shift=0.0),
               segment_id=uuid.uuid4().hex)
    seg["errors"] = {'Bad"Kind\n': 2}
    seg["features"]["names"][0] = ref["features"][0]["name"]
    coll = Collector(tmp_path / "c.db").start()
    try:
        coll.store.ingest({"batch_id": "b", "device_id": "d", "segments": [seg],
                           "refs": [{"model": seg["model"], "version": seg["version"], "reference": ref}]})
        _, text = _scrape(coll.port)
    finally:
        coll.stop()
    assert not any(line.startswith("# TYPE x") for line in text.splitlines())
    assert 'kind="Bad\\"Kind\\n"' in text and 'feature="a\\"\\\\\\nb"' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/setup.d/70-prometheus.sh installs it)")
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()
