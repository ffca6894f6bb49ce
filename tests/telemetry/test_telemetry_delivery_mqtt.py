"""Acceptance through a real Mosquitto broker (started by the fixture on 127.0.0.1):
collector down then up, the uploader killed -9 mid-flush, the collector cut off and back."""

from __future__ import annotations

import os
import time

import pytest
from telemetry_helpers import N_PREDICTIONS, kill_flush_midway

from collector import Collector
from edge_runtime.telemetry import MqttSink, Outbox, Uploader
from edge_runtime.telemetry.outbox import Batch
from edge_runtime.telemetry.sinks import BatchRejected

pytestmark = pytest.mark.device


def _totals(coll: Collector) -> dict:
    (v,) = coll.store.report()["versions"]
    return {"calls": v["calls"], "rows": v["rows"], "classes": v["classes"]}


def test_mqtt_delivery_exact(mosquitto, state_100k, outbox_100k, tmp_path, tel_env):
    want = {"calls": N_PREDICTIONS, "rows": N_PREDICTIONS, "classes": outbox_100k["classes"]}
    ob = Outbox(state_100k)
    up = Uploader(ob, MqttSink("127.0.0.1", mosquitto, timeout_s=0.5), batch_segments=1,
                  base_delay_s=0.001)
    res = up.flush(max_batches=3)  # broker up, collector down: no ack, nothing deleted
    assert res.batches == 0 and res.failures == 1
    assert ob.stats()["calls"] == N_PREDICTIONS
    ob.close()

    coll = Collector(tmp_path / "c.db", http=False, mqtt=("127.0.0.1", mosquitto)).start()
    coll.delay_s = 0.02
    url = f"mqtt://127.0.0.1:{mosquitto}/edgert/telemetry"
    kill_flush_midway(state_100k, url, coll, tel_env)  # kill -9 mid-flush
    coll.stop()  # and the collector drops off the broker (its session stays, QoS 1 queued)

    ob = Outbox(state_100k)
    assert 0 < ob.stats()["calls"] < N_PREDICTIONS
    up = Uploader(ob, MqttSink("127.0.0.1", mosquitto, timeout_s=0.5), batch_segments=1,
                  base_delay_s=0.001)
    res = up.flush(max_batches=2)  # collector away: unacknowledged, kept
    assert res.batches == 0

    coll = Collector(tmp_path / "c.db", http=False, mqtt=("127.0.0.1", mosquitto)).start()
    try:
        up = Uploader(ob, MqttSink("127.0.0.1", mosquitto, timeout_s=5), batch_segments=9,
                      base_delay_s=0.001)
        res = up.flush(max_attempts=100, respect_backoff=False)
        assert res.complete, res.errors[-3:]
        time.sleep(0.2)  # let queued duplicates from the broker arrive, to prove they are ignored
        assert coll.store.duplicates > 0
        assert _totals(coll) == want
        bad = Batch("bad-1", {"batch_id": "bad-1", "device_id": "dev", "segments": [{"x": 1}]})
        sink = MqttSink("127.0.0.1", mosquitto, timeout_s=5)
        with pytest.raises(BatchRejected, match="segments"):  # refused for good, said so
            sink.send(bad)
        sink.close()
    finally:
        coll.stop()
        ob.close()


def test_mqtt_refused_password_is_permanent(tmp_path):
    """A broker that requires a password refuses a wrong one in its CONNACK: one SinkAuthError,
    not a retried timeout."""
    import shutil
    import subprocess

    from telemetry_helpers import free_port, wait_port
    from telemetry_net import mosquitto_binary

    from edge_runtime.telemetry.sinks import SinkAuthError

    binary, passwd = mosquitto_binary(), shutil.which("mosquitto_passwd")
    if binary is None or passwd is None:
        pytest.skip("mosquitto is not installed (scripts/setup.d/20-mosquitto.sh installs it)")
    pytest.importorskip("paho.mqtt.client")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "device", "right"], check=True, timeout=30)
    pwfile.chmod(0o600)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
                    "persistence false\n"
                    # as root, mosquitto would switch to its own user, who cannot read tmp_path
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        sink = MqttSink("127.0.0.1", port, username="device", password="wrong", timeout_s=5)
        batch = Batch("b1", {"device_id": "d1", "segments": []})
        with pytest.raises(SinkAuthError, match="refused"):
            sink.send(batch)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
