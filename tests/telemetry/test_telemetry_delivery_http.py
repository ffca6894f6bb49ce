"""Acceptance: 100k predictions recorded while the collector is down are delivered exactly
once over HTTP, also when answers are lost mid-upload and the uploader is killed -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from telemetry_helpers import N_PREDICTIONS, free_port, kill_flush_midway
from telemetry_net import CuttingProxy

from collector import Collector
from edge_runtime.telemetry import HttpSink, Outbox, Uploader

pytestmark = pytest.mark.device


def _totals(coll: Collector) -> dict:
    rep = coll.store.report()
    assert len(rep["versions"]) == 1
    v = rep["versions"][0]
    return {"calls": v["calls"], "rows": v["rows"], "classes": v["classes"], "lost": v["lost"],
            "errors": v["errors"]}


def test_collector_down_then_up_counts_exact(state_100k, outbox_100k, tmp_path, cancer_bundles):
    port = free_port()
    ob = Outbox(state_100k)
    before = ob.stats()
    assert before["calls"] == N_PREDICTIONS
    sink = HttpSink(f"http://127.0.0.1:{port}/v1/batches", timeout_s=2)
    up = Uploader(ob, sink, batch_segments=20, base_delay_s=0.01)
    res = up.flush()  # collector is down: nothing acked, nothing deleted, backoff armed
    assert res.batches == 0 and res.failures == 1 and res.retry_after_s is not None
    assert ob.stats()["calls"] == N_PREDICTIONS
    assert up.flush().batches == 0  # still inside the backoff window: not even tried
    coll = Collector(tmp_path / "c.db", port=port).start()
    try:
        res = up.flush(respect_backoff=False)
        assert res.complete and res.calls == N_PREDICTIONS
        assert ob.stats()["segments"] == 0
        want = {"calls": N_PREDICTIONS, "rows": N_PREDICTIONS, "lost": 0, "errors": 0,
                "classes": outbox_100k["classes"]}
        assert _totals(coll) == want
        assert up.flush().batches == 0  # nothing left, nothing resent
        assert _totals(coll) == want
    finally:
        coll.stop()
        ob.close()


def test_cut_connections_and_kill9_mid_flush(state_100k, outbox_100k, tmp_path, tel_env):
    coll = Collector(tmp_path / "c.db").start()
    coll.delay_s = 0.03  # the batch is stored, the ack is still on its way: the window to hit
    proxy = CuttingProxy(coll.port, cut=lambda n: n % 3 == 0)  # every 3rd answer is lost
    url = f"http://127.0.0.1:{proxy.port}/v1/batches"
    try:
        kill_flush_midway(state_100k, url, coll, tel_env)  # kill -9 in the middle of the flush
        stored_at_kill = coll.store.counts()["batches"]
        assert stored_at_kill >= 8
        ob = Outbox(state_100k)
        assert 0 < ob.stats()["calls"] < N_PREDICTIONS  # really mid-flush
        up = Uploader(ob, HttpSink(url, timeout_s=5), batch_segments=7, base_delay_s=0.001)
        res = up.flush(max_attempts=1000, respect_backoff=False)
        assert res.complete, res.errors[-3:]
        ob.close()
        assert proxy.cuts > 0
        assert coll.store.duplicates > 0  # retries of batches whose ack was lost were seen ...
        assert _totals(coll) == {"calls": N_PREDICTIONS, "rows": N_PREDICTIONS, "lost": 0,
                                 "errors": 0, "classes": outbox_100k["classes"]}  # ... once
    finally:
        proxy.close()
        coll.stop()


_RECORDING_CHILD = """
import sys, numpy as np
from edge_runtime.telemetry import Recorder, MonitoredModel

class Echo:
    def predict(self, X):
        return np.zeros(len(X), dtype=int)

rec = Recorder(sys.argv[1], window_s=0.005, drain_interval_s=0.002)
mm = MonitoredModel(Echo(), rec, name="m", version="1.0.0")
x = np.ones((1, 4))
print("ready", flush=True)
while True:
    mm.predict(x)
"""


def test_outbox_survives_kill9_while_recording(tmp_path, tel_env):
    """A process killed -9 while its drain thread commits windows leaves a consistent outbox:
    every committed window complete, nothing half-written, all of it deliverable."""
    import sqlite3

    from telemetry_helpers import deliver

    proc = subprocess.Popen([sys.executable, "-c", _RECORDING_CHILD, str(tmp_path / "s")],
                            env=tel_env, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    outbox = tmp_path / "s" / "telemetry" / "outbox.sqlite"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with sqlite3.connect(outbox) as db:
                if db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] >= 20:
                    break
        except sqlite3.Error:
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(outbox) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        calls = db.execute("SELECT SUM(calls) FROM segments").fetchone()[0]
    (v,) = deliver(tmp_path / "s", tmp_path / "c.db")["versions"]
    assert v["calls"] == v["rows"] == calls > 0
    assert v["outputs"] == {"0": calls}  # no classes: a regression-style output histogram
