"""``edgert agent``, the one process of an IoT device, through the real CLI: it syncs from a real
signed repository on 127.0.0.1, serves the store once a first version arrives and swaps to each
newly activated one, uploads the app's telemetry outbox to a real collector, speaks sd_notify on
a socket bound by the test, and stops cleanly on SIGTERM / SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from device_support import DirectoryServer, NotifySocket, edgert_popen, http_json, iris_bundle, status_of, wait_until

from converters import publish as pub
from edge_runtime import load
from edge_runtime.sync.store import VersionStore
from edge_runtime.telemetry import MonitoredModel, Outbox, Recorder

pytestmark = pytest.mark.device

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {v: iris_bundle(d / v, v, C=c) for v, c in (("1.0.0", 1.0), ("1.1.0", 3.0))}


@pytest.fixture()
def device(tmp_path, cli_env):
    """Keys, a repository served over HTTP, and the environment of a device's CLI."""
    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    server = DirectoryServer(repo)
    env = {k: v for k, v in cli_env.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    yield keys, repo, server.url, env
    server.close()


def _collector(db: Path, env: dict) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", "collector", "--db", str(db), "--port", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, json.loads(proc.stderr.readline())["listening"]


def _outbox_calls(directory: Path) -> int:
    outbox = Outbox(directory)
    try:
        return int(outbox.stats()["calls"])
    finally:
        outbox.close()


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.slow
def test_agent_syncs_serves_swaps_uploads_and_stops(versions, device, tmp_path):
    keys, repo, url, env = device
    state, tele = tmp_path / "state", tmp_path / "telemetry"
    rec = Recorder(tele)  # what the app on the device records
    app_model = MonitoredModel(load(versions["1.0.0"]), rec)
    for _ in range(7):
        app_model.predict([ROW])
    rec.close()
    assert _outbox_calls(tele) == 7
    collector, sink = _collector(tmp_path / "c.db", env)
    sock = NotifySocket()
    agent = edgert_popen(["agent", "--repo", url, "--root", str(keys / "root.json"), "--state", str(state),
                          "--interval", "1s", "--port", "0", "--collector", sink, "--upload-interval", "1s",
                          "--telemetry-dir", str(tele)], env, NOTIFY_SOCKET=sock.address, WATCHDOG_USEC="1000000")
    try:
        sock.wait_for(lambda lines: status_of(lines, "waiting for a first version") is not None, proc=agent)
        pub.publish(versions["1.0.0"], repo, keys)
        lines = sock.wait_for(lambda lines: "READY=1" in lines, proc=agent)
        served = status_of(lines, "serving iris 1.0.0 on http://127.0.0.1:")
        assert served, lines
        base = served.split(" on ", 1)[1].split()[0]
        answer = http_json(f"{base}/predict", {"rows": [ROW]})
        assert answer["version"] == "1.0.0" and answer["labels"] == load(versions["1.0.0"]).predict([ROW]).tolist()

        pub.publish(versions["1.1.0"], repo, keys)  # the daemon installs it, the server swaps to it
        wait_until(lambda: http_json(f"{base}/model")["version"] == "1.1.0", 60, "swap to 1.1.0", agent)
        assert VersionStore(state).read_active()["current"] == "1.1.0"
        assert http_json(f"{base}/predict", {"rows": [ROW]})["version"] == "1.1.0"
        sock.wait_for(lambda lines: f"STATUS=serving iris 1.1.0 on {base}" in lines, proc=agent)  # honest

        wait_until(lambda: _outbox_calls(tele) == 0, 60, "telemetry upload", agent)
        sock.wait_for(lambda lines: lines.count("WATCHDOG=1") >= 2, proc=agent)
        code, err = _stop(agent)
    finally:
        _stop(agent, signal.SIGKILL)
        _stop(collector)
        sock.close()
    assert code == 0, err
    assert "agent stopped" in err and "Traceback" not in err
    assert "STOPPING=1" in sock.lines() and "STATUS=stopping on SIGTERM" in sock.lines()
    report = subprocess.run([sys.executable, "-m", "edge_runtime", "collector", "report", "--db",
                             str(tmp_path / "c.db"), "--json"], env=env, capture_output=True, text=True, timeout=60)
    (row,) = json.loads(report.stdout)["versions"]
    assert (row["version"], row["calls"]) == ("1.0.0", 7)  # the app's seven calls, delivered once


def test_agent_without_a_server_syncs_and_stops_on_ctrl_c(versions, device, tmp_path):
    keys, repo, url, env = device
    state = tmp_path / "state"
    pub.publish(versions["1.0.0"], repo, keys)
    sock = NotifySocket(abstract=True)
    agent = edgert_popen(["agent", "--repo", url, "--root", str(keys / "root.json"), "--state", str(state),
                          "--interval", "1s"], env, NOTIFY_SOCKET=sock.address)
    try:
        lines = sock.wait_for(lambda lines: "READY=1" in lines, proc=agent)
        assert status_of(lines, f"syncing {url} every 1s") is not None, lines
        wait_until(lambda: VersionStore(state).read_active()["current"] == "1.0.0", 60, "install", agent)
        pub.publish(versions["1.1.0"], repo, keys)
        wait_until(lambda: VersionStore(state).read_active()["current"] == "1.1.0", 60, "update", agent)
        code, err = _stop(agent, signal.SIGINT)
    finally:
        _stop(agent, signal.SIGKILL)
        sock.close()
    assert code == 0, err
    assert "sync: activated 1.1.0" in err and "agent stopped" in err
    assert "STOPPING=1" in sock.lines() and "STATUS=stopping on SIGINT" in sock.lines()


@pytest.mark.parametrize("args, says", [(["--interval", "soon"], "--interval 'soon'"),
                                        (["--collector", "ftp://x"], "scheme must be http, https or mqtt")])
def test_agent_refuses_bad_options_with_a_clear_error(device, tmp_path, args, says):
    keys, _, url, env = device
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "agent", "--repo", url, "--root",
                        str(keys / "root.json"), "--state", str(tmp_path / "s"), *args], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
