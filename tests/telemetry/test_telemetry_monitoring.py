"""Acceptance: drift flags exactly the shifted features; feedback shows a worse version's
accuracy drop and `edgert collector report --check` fails on it; live metrics for probation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from telemetry_helpers import deliver, version

from edge_runtime import load
from edge_runtime.telemetry import MonitoredModel, Recorder, read_live_metrics

pytestmark = pytest.mark.device

SHIFTED = [0, 7, 21]


def _bootstrap(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return X[rng.integers(0, len(X), n)].astype(np.float64)


def test_drift_flag_exactly_for_shifted_features(cancer_bundles, cancer_data, tmp_path):
    X_tr, _, _, _, names = cancer_data
    model = load(cancer_bundles["1.0.0"])
    rec = Recorder(tmp_path / "state")
    mm = MonitoredModel(model, rec)
    same = _bootstrap(X_tr, 4000, 1)
    for chunk in np.array_split(same, 40):  # unshifted: nothing drifts
        mm.predict(chunk)
    rec.close()
    rep = deliver(tmp_path / "state", tmp_path / "c1.db")
    drift = version(rep, "1.0.0")["drift"]
    assert len(drift) == 30
    assert not [k for k, d in drift.items() if d["drift"]]

    rec = Recorder(tmp_path / "state2")
    mm = MonitoredModel(model, rec)
    shifted = _bootstrap(X_tr, 4000, 2)
    shifted[:, SHIFTED] += 1.5 * X_tr[:, SHIFTED].std(axis=0)
    for i in range(0, len(shifted), 100):
        mm.predict(shifted[i:i + 100])
    rec.close()
    from edge_runtime.telemetry import Outbox

    ob = Outbox(tmp_path / "state2")
    seg = ob.next_batch().body["segments"][0]  # the window's own flags, computed on the device
    ob.close()
    assert sorted(seg["drifted"]) == sorted(names[j] for j in SHIFTED)
    rep = deliver(tmp_path / "state2", tmp_path / "c2.db")
    drift = version(rep, "1.0.0")["drift"]
    assert sorted(k for k, d in drift.items() if d["drift"]) == sorted(names[j] for j in SHIFTED)
    assert min(drift[names[j]]["psi"] for j in SHIFTED) > 0.5
    assert drift[names[1]]["rows"] == 4000


def test_feedback_shows_accuracy_drop_and_check_fails(cancer_bundles, cancer_data, tmp_path,
                                                       tel_env):
    X_tr, y_tr, _, _, _ = cancer_data
    rec = Recorder(tmp_path / "state")
    good = MonitoredModel(load(cancer_bundles["1.0.0"]), rec)
    worse = MonitoredModel(load(cancer_bundles["2.0.0"]), rec)
    idx = np.random.default_rng(3).integers(0, len(X_tr), 600)
    X, y = X_tr[idx], y_tr[idx]
    direct = {}
    for m in (good, worse):
        preds = []
        for i in range(len(X)):
            pid = f"{m.version}-{i}"
            preds.append(m.predict(X[i:i + 1], ids=[pid])[0])
        for i in range(len(X)):  # ground truth arrives later
            m.feedback(f"{m.version}-{i}", int(y[i]))
        direct[m.version] = float(np.mean(np.asarray(preds).astype(int) == y))
    good.feedback("never-predicted", 1)  # unknown ids are counted, not guessed
    rec.close()
    db = tmp_path / "c.db"
    rep = deliver(tmp_path / "state", db)
    fb1, fb2 = version(rep, "1.0.0")["feedback"], version(rep, "2.0.0")["feedback"]
    assert fb1["n"] == fb2["n"] == 600
    assert fb1["accuracy"] == direct["1.0.0"] and fb2["accuracy"] == direct["2.0.0"]
    assert direct["1.0.0"] - direct["2.0.0"] > 0.2  # the worse model really is worse
    assert fb1["unmatched"] + fb2["unmatched"] == 1

    cmd = [sys.executable, "-m", "edge_runtime", "collector", "report", "--db", str(db)]
    ok = subprocess.run(cmd, env=tel_env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "cancer@2.0.0" in ok.stdout and "accuracy" in ok.stdout
    bad = subprocess.run(cmd + ["--check"], env=tel_env, capture_output=True, text=True)
    assert bad.returncode == 1
    breaches = [ln for ln in bad.stderr.splitlines() if ln.startswith("BREACH")]
    assert len(breaches) == 1 and "cancer@2.0.0: accuracy" in breaches[0], bad.stderr

    # the good version alone passes the same check
    rec = Recorder(tmp_path / "state-good")
    good = MonitoredModel(load(cancer_bundles["1.0.0"]), rec)
    for i in range(300):
        good.predict(X[i:i + 1], ids=[i])
        good.feedback(i, int(y[i]))
    rec.close()
    deliver(tmp_path / "state-good", tmp_path / "good.db")
    res = subprocess.run([sys.executable, "-m", "edge_runtime", "collector", "report", "--db",
                          str(tmp_path / "good.db"), "--check", "--min-rows", "100"],
                         env=tel_env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_live_metrics_and_error_kinds(cancer_bundles, cancer_data, tmp_path, tel_env):
    X_tr = cancer_data[0]
    rec = Recorder(tmp_path / "state", live_n=100)
    mm = MonitoredModel(load(cancer_bundles["1.0.0"]), rec)
    for i in range(90):
        mm.predict(X_tr[i:i + 1])
    for _ in range(10):
        with pytest.raises(ValueError):
            mm.predict(X_tr[:1, :5])  # wrong width: the model refuses it
    live = mm.live_metrics()
    assert (live.n, live.errors, live.error_rate) == (100, 10, 0.1)
    assert live.breaches({"max_error_rate": 0.2, "max_p99_ms": 10_000}) == []
    assert "error rate" in live.breaches({"max_error_rate": 0.05})[0]
    assert live.breaches({"max_error_rate": 0.05, "min_predictions": 500}) is None
    assert 0 < live.p50_s <= live.p99_s
    last = rec.live_metrics("cancer", "1.0.0", last_n=10)
    assert (last.n, last.errors) == (10, 10)
    rec.write_live()  # what the drain thread does every second, for other processes
    other = read_live_metrics("cancer", "1.0.0", tmp_path / "state")
    assert other == live
    assert read_live_metrics("cancer", "9.9.9", tmp_path / "state") is None
    rec.close()
    v = version(deliver(tmp_path / "state", tmp_path / "c.db"), "1.0.0")
    assert v["calls"] == 90 and v["errors_by_kind"] == {"InputError": 10}
    assert v["error_rate"] == 0.1
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "collector", "report", "--db",
                        str(tmp_path / "c.db"), "--check"], env=tel_env, capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "errors 10 (10.00%, InputError 10)" in r.stdout  # the human report names the kind
    assert "error rate 10.00% > 5.00% (10 of 100: InputError 10)" in r.stderr
