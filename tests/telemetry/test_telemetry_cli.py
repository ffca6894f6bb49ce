"""End to end through the real CLI: `edgert collector` (with a bearer token) as a server
process, `edgert telemetry status|flush`, `edgert collector report --json`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from telemetry_helpers import free_port, wait_port

from edge_runtime import load
from edge_runtime.telemetry import MonitoredModel, Recorder


def _cli(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], env=env,
                          capture_output=True, text=True, timeout=60, **kw)


def test_collector_and_flush_through_cli(cancer_bundles, cancer_data, tmp_path, tel_env):
    rec = Recorder(tmp_path / "state")
    mm = MonitoredModel(load(cancer_bundles["1.0.0"]), rec)
    X = cancer_data[2]
    for i in range(len(X)):
        mm.predict(X[i:i + 1])
    mm.predict_proba(X)
    rec.close()
    env = dict(tel_env, EDGERT_STATE_DIR=str(tmp_path / "state"))
    status = json.loads(_cli(["telemetry", "status"], env).stdout)
    assert status["calls"] == len(X) + 1

    port, db = free_port(), tmp_path / "c.db"
    server = subprocess.Popen([sys.executable, "-m", "edge_runtime", "collector", "--port",
                               str(port), "--db", str(db)],
                              env=dict(tel_env, EDGERT_COLLECTOR_TOKEN="s3cret"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        sink = f"http://127.0.0.1:{port}/v1/batches"
        # A wrong token is permanent: with the default 5 attempts and 1 s backoff it still
        # stops after the first answer, with one error line naming the 401.
        denied = _cli(["telemetry", "flush", "--sink", sink], dict(env, EDGERT_TELEMETRY_TOKEN="wrong"))
        assert denied.returncode == 1
        summary = json.loads(denied.stdout)
        assert summary["failures"] == 1 and len(summary["errors"]) == 1 and summary["batches"] == 0
        errors = [line for line in denied.stderr.splitlines() if line.startswith("edgert: error:")]
        assert len(errors) == 1 and "SinkAuthError" in errors[0] and "HTTP 401" in errors[0], denied.stderr
        assert "Traceback" not in denied.stderr
        assert json.loads(_cli(["telemetry", "status"], env).stdout)["calls"] == len(X) + 1
        ok = _cli(["telemetry", "flush", "--sink", sink], dict(env, EDGERT_TELEMETRY_TOKEN="s3cret"))
        assert ok.returncode == 0, ok.stderr + ok.stdout
        assert json.loads(ok.stdout)["calls"] == len(X) + 1
    finally:
        server.terminate()
        server.wait(timeout=10)
    rep = json.loads(_cli(["collector", "report", "--db", str(db), "--json"], env).stdout)
    (v,) = rep["versions"]
    want = np.unique(np.concatenate([load(cancer_bundles["1.0.0"]).predict(X[i:i + 1])
                                     for i in range(len(X))] +
                                    [load(cancer_bundles["1.0.0"]).predict(X)]),
                     return_counts=True)
    assert v["calls"] == len(X) + 1 and v["rows"] == 2 * len(X)
    assert v["classes"] == {str(k): int(c) for k, c in zip(*want)}
    assert _cli(["telemetry", "flush", "--sink", "ftp://x"], env).returncode == 2
