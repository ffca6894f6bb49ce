"""`edgert collector alerts`: a drift breach reaches a real webhook receiver on 127.0.0.1 as an
Alertmanager firing notification, is not fired again (not even by a restarted evaluator), and
is resolved once the version reports healthy data; a failed delivery is retried, not lost."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
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


def test_webhook_url_and_window_are_checked(tmp_path, tel_env):
    db = tmp_path / "c.db"
    with pytest.raises(ValueError, match="webhook URL must be http"):
        Alerter(db, "file:///etc/passwd")
    with pytest.raises(ValueError, match="window_s must be positive"):
        Alerter(db, "http://127.0.0.1:1/x", window_s=0)
    with pytest.raises(ValueError, match="'webhook' or 'alertmanager'"):
        Alerter(db, "http://127.0.0.1:1/x", to="pager")
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "collector", "alerts", "--db",
                        str(_dropped_db(tmp_path)), "--once"], env=tel_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "give one of --webhook URL or --alertmanager URL" in r.stderr


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


def _segment(sid: str, calls: int, errors: int) -> dict:
    now = time.time()
    return {"segment_id": sid, "model": "fraud", "version": "3.1.0", "window_start": now - 60,
            "window_end": now, "calls": calls, "rows": calls,
            "errors": {"TimeoutError": errors} if errors else {}, "latency": {"40": calls + errors},
            "classes": {"0": calls}, "outputs": {}, "feedback": {}, "shadow": {}}


def _wait(cond, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_alerts_through_a_real_alertmanager(tmp_path, receiver):
    """Pushed to a real Alertmanager (its API v2), the alert is routed to a webhook: its own
    notification has the same shape as ours, and the resolution follows."""
    import shutil

    from telemetry_helpers import free_port, wait_port

    from collector import CollectorStore

    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("alertmanager missing: run scripts/setup.d/72-alertmanager.sh")
    port = free_port()
    cfg = tmp_path / "am.yml"
    cfg.write_text(f"""route:
  receiver: hook
  group_by: [alertname, model, version]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver.url}
        send_resolved: true
""")
    am = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am'}",
                           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                           "--log.level=warn"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = tmp_path / "c.db"
    store = CollectorStore(db)
    # Alertmanager judges endsAt on its own clock: this test runs on real time, with a window
    # of a few seconds (the firing round comes right after the ingest, well inside it)
    window = 3.0
    alerter = Alerter(db, f"http://127.0.0.1:{port}", to="alertmanager", window_s=window,
                      resend_s=1)
    ours = Receiver()
    try:
        wait_port(port)
        _wait(lambda: _ready(port), "alertmanager ready")
        store.ingest({"batch_id": "b1", "device_id": "d1", "segments": [_segment("s1", 80, 20)]})
        r = alerter.evaluate()
        assert [a.labels["alertname"] for a in r.fired] == ["EdgertHighErrorRate"]
        listed = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v2/alerts", timeout=5).read())
        assert [a["labels"] for a in listed] == [{"alertname": "EdgertHighErrorRate",
                                                  "severity": "critical", "model": "fraud",
                                                  "version": "3.1.0"}]
        assert "TimeoutError 20" in listed[0]["annotations"]["summary"]
        theirs = _wait(lambda: [b for b in receiver.bodies if b["status"] == "firing"],
                       "Alertmanager's firing notification")[0]
        # the same alert, through our own webhook sender: the same keys at every level
        other = CollectorStore(tmp_path / "c2.db")
        other.ingest({"batch_id": "b1", "device_id": "d1", "segments": [_segment("s1", 80, 20)]})
        other.close()
        webhook = Alerter(tmp_path / "c2.db", ours.url)
        webhook.evaluate()
        webhook.close()
        mine = ours.bodies[0]
        assert set(mine) == set(theirs)
        assert set(mine["alerts"][0]) == set(theirs["alerts"][0])
        assert theirs["commonLabels"] == mine["commonLabels"]
        assert theirs["alerts"][0]["labels"] == mine["alerts"][0]["labels"]
        assert theirs["version"] == mine["version"] == "4"

        time.sleep(window)  # the unhealthy batch leaves the window
        store.ingest({"batch_id": "b2", "device_id": "d1", "segments": [_segment("s2", 100, 0)]})
        r = alerter.evaluate()  # the window holds only the healthy batch
        assert len(r.resolved) == 1 and r.active == 0
        resolved = _wait(lambda: [b for b in receiver.bodies if b["status"] == "resolved"],
                         "Alertmanager's resolved notification")[0]
        assert resolved["alerts"][0]["labels"]["alertname"] == "EdgertHighErrorRate"
    finally:
        ours.close()
        alerter.close()
        store.close()
        am.terminate()
        am.wait(timeout=10)


def _ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2).status == 200
    except OSError:
        return False
