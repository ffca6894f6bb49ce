"""The collector's dashboard in headless Chromium: the page served by a real collector on
127.0.0.1 renders every version with the report's own figures (devices, calls, error rate,
p50/p99 and accuracy over time, PSI bars, rollout state), loads nothing from elsewhere, and a
screenshot is kept in tests/artifacts/ (or $EDGERT_TEST_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from js_harness import ARTIFACTS, CHROMIUM, SETUP_HINT
from telemetry_helpers import deliver

from collector import Collector, CollectorStore
from collector.dashboard import page
from edge_runtime import load
from edge_runtime.telemetry import MonitoredModel, Recorder

SHIFTED = [0, 7, 21]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


class Page(HTMLParser):
    """What the rendered DOM shows, per version card (``data-key``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = None
        self.cards: dict[str, dict] = {}
        self.fleet: dict[str, object] = {}
        self._key = None
        self._chart = None
        self._fig = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.ready = a.get("data-ready")
        if tag == "section" and "data-key" in a:
            self._key = a["data-key"]
            self.cards[self._key] = {"figs": {}, "text": {}, "states": {}, "drift": {}, "points": {}}
        card = self.cards.get(self._key) if self._key else None
        if "data-fig" in a:
            value = json.loads(a["data-value"])
            self._fig = a["data-fig"]
            if card is None:
                self.fleet[self._fig] = value
            else:
                card["figs"][self._fig] = value
                card["text"][self._fig] = ""
        if card is None:
            return
        if tag == "svg":
            self._chart = a.get("data-chart")
        if "data-state" in a and a["data-state"]:
            card["states"][a["data-state"]] = int(a["data-devices"])
        if tag == "rect" and "data-feature" in a:
            card["drift"][a["data-feature"]] = json.loads(a["data-psi"])
        if tag == "circle" and "data-series" in a:
            card["points"].setdefault((self._chart, a["data-series"]), []).append(
                json.loads(a["data-value"]))

    def handle_endtag(self, tag):
        self._fig = None if tag in ("b", "div", "span") else self._fig

    def handle_data(self, data):
        if self._fig and self._key and self._fig in self.cards[self._key]["text"]:
            self.cards[self._key]["text"][self._fig] += data


def _record(state: Path, models: dict, X: np.ndarray, y: np.ndarray, *, drift: bool = False,
            errors: int = 0, chunks: int = 6) -> None:
    rec = Recorder(state, window_s=0.05)
    for version, (model, rollout) in models.items():
        mm = MonitoredModel(model, rec)
        mm.set_rollout_state(rollout)
        rng = np.random.default_rng(len(version))
        for c in range(chunks):
            idx = rng.integers(0, len(X), 60)
            xs = X[idx].astype(np.float64)
            if drift and version == "2.0.0":
                xs[:, SHIFTED] += 1.5 * X[:, SHIFTED].std(axis=0)
            for i in range(0, 60, 20):
                ids = [f"{state.name}-{version}-{c}-{i + k}" for k in range(20)]
                mm.predict(xs[i:i + 20], ids=ids)
                for pid, truth in zip(ids, y[idx[i:i + 20]]):
                    mm.feedback(pid, int(truth))
            if version == "2.0.0" and c < errors:
                with contextlib.suppress(ValueError):
                    mm.predict(xs[:1, :5])
            time.sleep(0.06)  # the next chunk lands in a later window: a series over time
    rec.close()


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_page_is_self_contained():
    html = page().decode()
    assert not re.search(r"\b(src|href)\s*=", html), "the page must load nothing"
    assert set(re.findall(r"https?://[^\s\"'`]+", html)) == {"http://www.w3.org/2000/svg"}


def test_report_endpoint_refuses_a_bad_window(tmp_path):
    coll = Collector(tmp_path / "c.db").start()
    try:
        url = f"http://127.0.0.1:{coll.port}/v1/report?window=-5"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 400 and b"window" in err.value.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{coll.port}/dashboard", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/html") and r.read() == page()
    finally:
        coll.stop()


@pytest.mark.slow
def test_dashboard_in_chromium_shows_the_report(cancer_bundles, cancer_data, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed: {SETUP_HINT}")
    X_tr, y_tr = cancer_data[0], cancer_data[1]
    good, worse = load(cancer_bundles["1.0.0"]), load(cancer_bundles["2.0.0"])
    db = tmp_path / "collector.db"
    _record(tmp_path / "dev-a", {"1.0.0": (good, "good"), "2.0.0": (worse, "probation")},
            X_tr, y_tr, drift=True, errors=3)
    _record(tmp_path / "dev-b", {"1.0.0": (good, "good"), "2.0.0": (worse, "bad")}, X_tr, y_tr,
            drift=True, chunks=2)
    deliver(tmp_path / "dev-a", db)
    deliver(tmp_path / "dev-b", db)
    store = CollectorStore(db)
    rep = store.report(series=True)
    store.close()

    coll = Collector(db).start()
    try:
        url = f"http://127.0.0.1:{coll.port}/"
        dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path)
        assert dom.returncode == 0, dom.stderr[-2000:]
        out = Path(os.environ.get("EDGERT_TEST_ARTIFACTS", ARTIFACTS))
        out.mkdir(parents=True, exist_ok=True)
        shot = out / "collector-dashboard.png"
        shot.unlink(missing_ok=True)
        r = _chromium(["--window-size=1280,2200", "--virtual-time-budget=10000",
                       f"--screenshot={shot}", url], tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        coll.stop()
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    seen = Page()
    seen.feed(dom.stdout)
    assert seen.ready == "1", dom.stdout[-3000:]
    assert seen.fleet == {"fleet_devices": 2, "dropped_segments": 0}
    assert sorted(seen.cards) == ["cancer@1.0.0", "cancer@2.0.0"]
    for v in rep["versions"]:
        card = seen.cards[f"{v['model']}@{v['version']}"]
        assert card["figs"] == {
            "devices": v["devices"], "calls": v["calls"], "errors": v["errors"],
            "error_rate": v["error_rate"], "p50_s": v["latency_s"]["p50"],
            "p99_s": v["latency_s"]["p99"], "accuracy": v["feedback"]["accuracy"],
            "errors_by_kind": v["errors_by_kind"]}
        assert card["text"]["calls"] == str(v["calls"])
        assert card["text"]["error_rate"] == f"{v['error_rate'] * 100:.2f}%"
        assert card["states"] == v["states"]
        assert card["drift"] == {k: d["psi"] for k, d in v["drift"].items()}
        series = v["series"]
        assert len(series) >= 3  # windows over time, not one total
        for chart, key in (("latency", "p50_s"), ("latency", "p99_s"), ("accuracy", "accuracy"),
                           ("error_rate", "error_rate")):
            assert card["points"][(chart, key)] == [p[key] for p in series if p[key] is not None]
    v1, v2 = rep["versions"]
    assert v1["states"] == {"good": 2} and v2["states"] == {"probation": 1, "bad": 1}
    from collector.metrics import render

    text = render(rep)  # what /metrics serves: the rollout states, for EdgertVersionRolledBack
    assert 'edgert_version_state{model="cancer",version="2.0.0",state="bad"} 1' in text
    assert 'edgert_version_state{model="cancer",version="1.0.0",state="good"} 2' in text
    assert (v1["devices"], v2["devices"]) == (2, 2)
    assert v2["errors_by_kind"] == {"InputError": 3}
    names = cancer_data[4]
    assert {k for k, d in v2["drift"].items() if d["drift"]} == {names[j] for j in SHIFTED}
    assert not [k for k, d in v1["drift"].items() if d["drift"]]


def test_rollout_state_is_checked_on_both_sides(cancer_bundles, tmp_path):
    from edge_runtime.telemetry.aggregate import validate_segment

    rec = Recorder(tmp_path / "state", start=False)
    mm = MonitoredModel(load(cancer_bundles["1.0.0"]), rec)
    with pytest.raises(ValueError, match="rollout state must be one of installed, probation"):
        mm.set_rollout_state("committed")
    rec.close()
    seg = {"segment_id": "s", "model": "m", "version": "1.0.0", "window_start": 0,
           "window_end": 1, "calls": 1, "rows": 1, "errors": {}, "latency": {}, "classes": {},
           "outputs": {}, "feedback": {}, "shadow": {}, "state": "probation"}
    assert validate_segment(seg) is seg
    with pytest.raises(ValueError, match="segment field 'state'"):
        validate_segment({**seg, "state": "<script>"})
