"""`edgert collector alerts`: a drift breach reaches a real webhook receiver on 127.0.0.1 as an
Alertmanager firing notification, is not fired again (not even by a restarted evaluator), and
is resolved once the version reports healthy data; a failed delivery is retried, not lost."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from telemetry_helpers import deliver

from collector import Thresholds
from collector.alerts import ZERO_TIME, Alerter, fingerprint
from edge_runtime import load
from edge_runtime.errors import AlertDeliveryError
from edge_runtime.telemetry import MonitoredModel, Recorder

SHIFTED = [0, 7, 21]


class Receiver:
    """A webhook receiver: records every JSON body POSTed; answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.gets = 0
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.status == 200:
                    outer.bodies.append(body)
                self.send_response(outer.status)
                if 300 <= outer.status < 400:
                    self.send_header("Location", outer.url)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - where a followed redirect would land
                outer.gets += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _feed(model, state, X: np.ndarray) -> None:
    rec = Recorder(state)
    mm = MonitoredModel(model, rec)
    for i in range(0, len(X), 100):
        mm.predict(X[i:i + 100])
    rec.close()


def test_drift_fires_once_then_resolves(cancer_bundles, cancer_data, tmp_path, receiver, tel_env):
    X_tr, _, _, _, names = cancer_data
    model = load(cancer_bundles["1.0.0"])
    rng = np.random.default_rng(5)
    drifted = X_tr[rng.integers(0, len(X_tr), 2000)].astype(np.float64)
    drifted[:, SHIFTED] += 1.5 * X_tr[:, SHIFTED].std(axis=0)
    healthy = X_tr[rng.integers(0, len(X_tr), 2000)].astype(np.float64)
    db = tmp_path / "collector.db"
    _feed(model, tmp_path / "s1", drifted)
    deliver(tmp_path / "s1", db)

    # the real CLI, once: the drift fires (one notification, one alert per drifted feature)
    cmd = [sys.executable, "-m", "edge_runtime", "collector", "alerts", "--db", str(db),
           "--webhook", receiver.url, "--once", "--window", "600"]
    r = subprocess.run(cmd, env=tel_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(receiver.bodies) == 1
    fired = receiver.bodies[0]
    assert fired["version"] == "4" and fired["status"] == "firing"
    assert fired["commonLabels"] == {"alertname": "EdgertFeatureDrift", "severity": "warning",
                                     "model": "cancer", "version": "1.0.0"}
    assert sorted(a["labels"]["feature"] for a in fired["alerts"]) == sorted(names[j] for j in SHIFTED)
    for a in fired["alerts"]:
        assert a["status"] == "firing" and a["endsAt"] == ZERO_TIME
        assert a["fingerprint"] == fingerprint(a["labels"])
        assert float(a["annotations"]["value"]) > float(a["annotations"]["threshold"]) == 0.2
        assert a["startsAt"].endswith("Z")
    assert json.loads(r.stdout.splitlines()[-1])["active"] == 3

    # still drifted: neither the same process nor a restarted one fires again
    r = subprocess.run(cmd, env=tel_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and len(receiver.bodies) == 1, r.stderr
    t_mid = time.time()
    time.sleep(0.01)
    _feed(model, tmp_path / "s2", healthy)
    deliver(tmp_path / "s2", db)
    alerter = Alerter(db, receiver.url, thresholds=Thresholds(), window_s=600)
    try:
        # the window still holds the drifted batches: no verdict change
        assert alerter.evaluate(now=t_mid + 1).fired == [] and len(receiver.bodies) == 1
        # a webhook failure is raised and the resolution is kept for the next round
        receiver.status = 500
        with pytest.raises(AlertDeliveryError, match="HTTP 500"):
            alerter.evaluate(now=t_mid + 600)  # window = only the healthy batches
        receiver.status = 200
        res = alerter.evaluate(now=t_mid + 600)
        assert len(res.resolved) == 3 and res.active == 0
        assert len(receiver.bodies) == 2
        resolved = receiver.bodies[1]
        assert resolved["status"] == "resolved"
        by_fp = {a["fingerprint"]: a for a in fired["alerts"]}
        for a in resolved["alerts"]:
            assert a["status"] == "resolved" and a["endsAt"] != ZERO_TIME
            assert a["startsAt"] == by_fp[a["fingerprint"]]["startsAt"]  # the same alert
        assert alerter.evaluate(now=t_mid + 601).resolved == []
        assert len(receiver.bodies) == 2
    finally:
        alerter.close()


def test_webhook_url_and_window_are_checked(tmp_path):
    db = tmp_path / "c.db"
    with pytest.raises(ValueError, match="webhook URL must be http"):
        Alerter(db, "file:///etc/passwd")
    with pytest.raises(ValueError, match="window_s must be positive"):
        Alerter(db, "http://127.0.0.1:1/x", window_s=0)


def test_unreachable_webhook_fails_once_with_its_name(tmp_path, tel_env):
    db = _dropped_db(tmp_path)
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "collector", "alerts", "--db", str(db),
                        "--webhook", "http://127.0.0.1:9/hook", "--once", "--timeout", "2"],
                       env=tel_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "webhook http://127.0.0.1:9/hook unreachable" in r.stderr


def _dropped_db(tmp_path):
    from collector import CollectorStore

    db = tmp_path / "c.db"
    store = CollectorStore(db)
    store.ingest({"batch_id": "b1", "device_id": "d1", "segments": [],
                  "dropped": {"segments": 2, "calls": 50}})  # a fleet-wide breach
    store.close()
    return db


def test_a_redirect_is_not_a_delivery(tmp_path, receiver):
    alerter = Alerter(_dropped_db(tmp_path), receiver.url)
    try:
        receiver.status = 302
        with pytest.raises(AlertDeliveryError, match="HTTP 302"):
            alerter.evaluate()
        assert receiver.gets == 0 and alerter.state.firing() == {}
        receiver.status = 200
        r = alerter.evaluate()
        assert [a.labels for a in r.fired] == [{"alertname": "EdgertTelemetryDropped",
                                                "severity": "warning"}]
        assert "dropped 2 telemetry windows (50 calls)" in receiver.bodies[0]["alerts"][0][
            "annotations"]["summary"]
    finally:
        alerter.close()
