"""Fixtures for the telemetry tests: bundles, a 100k-prediction outbox, collectors, Mosquitto."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from telemetry_helpers import N_PREDICTIONS, free_port, wait_port
from telemetry_net import mosquitto_binary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))



@pytest.fixture(scope="session")
def tel_env() -> dict:
    """Environment for the checkout's real CLI (`python -m edge_runtime`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def cancer_bundles(tmp_path_factory) -> dict:
    import telemetry_bundles as bundles

    return bundles.build(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="session")
def cancer_data():
    import telemetry_bundles as bundles

    return bundles.data()


@pytest.fixture(scope="session")
def outbox_100k(tmp_path_factory, cancer_bundles, cancer_data):
    """A state dir whose outbox holds exactly 100k recorded single-row predictions, spread
    over many small windows (so a flush has many batches to be interrupted in), plus the
    expected figures computed directly from the returned predictions."""
    from edge_runtime import load
    from edge_runtime.telemetry import MonitoredModel, Recorder

    state = tmp_path_factory.mktemp("state100k")
    model = load(cancer_bundles["1.0.0"])
    rec = Recorder(state, window_s=0.01)
    mm = MonitoredModel(model, rec)
    X = np.ascontiguousarray(cancer_data[2], dtype=np.float32)
    rows = [X[i:i + 1] for i in range(len(X))]
    labels = []
    for i in range(N_PREDICTIONS):
        labels.append(mm.predict(rows[i % len(rows)])[0])
    rec.close()
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {"state": state, "classes": {str(v): int(c) for v, c in zip(values, counts)}}


@pytest.fixture
def state_100k(outbox_100k, tmp_path) -> Path:
    """A private copy of the 100k outbox (each delivery scenario consumes its own)."""
    dst = tmp_path / "state"
    shutil.copytree(outbox_100k["state"], dst)
    return dst


@pytest.fixture
def mosquitto(tmp_path):
    """A private Mosquitto broker on 127.0.0.1:<ephemeral>, stopped after the test."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (scripts/setup.d/20-mosquitto.sh installs it)")
    pytest.importorskip("paho.mqtt.client")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
