"""systemd integration: the sd_notify protocol on a datagram socket bound by the test, through
the real ``edgert serve`` process (READY=1 once serving, STATUS=, WATCHDOG=1 at half of
WATCHDOG_USEC, STOPPING=1 on SIGTERM), and the example units checked by ``systemd-analyze verify``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from device_support import NotifySocket, edgert_popen, iris_bundle, status_of

from edge_runtime.sdnotify import Notifier, Watchdog

pytestmark = pytest.mark.device

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "examples" / "systemd").glob("*.service"))


@pytest.fixture()
def clean_env(cli_env) -> dict:
    return {k: v for k, v in cli_env.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_each_message_is_one_datagram_on_the_socket(abstract):
    sock = NotifySocket(abstract=abstract)
    try:
        n = Notifier({"NOTIFY_SOCKET": sock.address})
        assert n.enabled and n.ready("serving x") and n.status("busy") and n.stopping()
        sock.wait_for(lambda lines: "STOPPING=1" in lines, timeout=5)
        assert sock.messages == ["READY=1\nSTATUS=serving x", "STATUS=busy", "STOPPING=1\nSTATUS=stopping"]
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails():
    n = Notifier({})
    assert not n.enabled and not n.ready("x") and not Watchdog(n, lambda: True).start()
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    assert gone.enabled and not gone.notify("READY=1")  # best effort, never raises


def test_watchdog_interval_is_only_for_this_process():
    assert Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_s == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_s is None


def test_watchdog_pings_only_while_healthy():
    sock = NotifySocket()
    healthy = {"ok": True}
    try:
        dog = Watchdog(Notifier({"NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": "100000"}),
                       lambda: healthy["ok"])
        assert dog.start()
        sock.wait_for(lambda lines: lines.count("WATCHDOG=1") >= 3, timeout=10)
        healthy["ok"] = False
        lines = sock.wait_for(lambda lines: "STATUS=unhealthy: watchdog pings withheld" in lines, timeout=10)
        pings = lines.count("WATCHDOG=1")
        time.sleep(0.3)  # six periods of 50 ms: would be six more pings if it still pinged
        assert sock.lines().count("WATCHDOG=1") <= pings + 1  # at most one already on its way
        healthy["ok"] = True
        sock.wait_for(lambda lines: lines.count("WATCHDOG=1") >= pings + 2, timeout=10)
        dog.stop()
    finally:
        sock.close()


def test_without_a_watchdog_interval_the_check_runs_but_never_pings():
    sock = NotifySocket()
    calls: list[int] = []
    try:
        dog = Watchdog(Notifier({"NOTIFY_SOCKET": sock.address}), lambda: calls.append(1) is None,
                       check_every_s=0.02)
        assert dog.start()
        wait = time.monotonic() + 10
        while len(calls) < 5 and time.monotonic() < wait:
            time.sleep(0.02)
        dog.stop()
        assert len(calls) >= 5 and "WATCHDOG=1" not in sock.lines()
    finally:
        sock.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return iris_bundle(tmp_path_factory.mktemp("b") / "iris")


def test_serve_speaks_sd_notify(bundle, clean_env):
    sock = NotifySocket()
    proc = edgert_popen(["serve", str(bundle), "--port", "0"], clean_env, NOTIFY_SOCKET=sock.address,
                        WATCHDOG_USEC="400000")
    try:
        lines = sock.wait_for(lambda lines: "READY=1" in lines, proc=proc)
        status = status_of(lines, "serving iris 1.0.0 on http://127.0.0.1:")
        assert status, lines
        url = status.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:  # READY means it answers
            assert json.load(r) == {"status": "ok"}
        lines = sock.wait_for(lambda lines: lines.count("WATCHDOG=1") >= 3, proc=proc)  # every 0.2 s
        assert f"STATUS=serving iris 1.0.0 on {url}" in lines  # what /readyz says is served
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    lines = sock.lines()
    assert "STOPPING=1" in lines and "STATUS=stopping on SIGTERM" in lines
    assert lines.index("READY=1") < lines.index("STOPPING=1")
    assert lines[lines.index("STOPPING=1"):].count("WATCHDOG=1") <= 1


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze missing: scripts/setup.d/50-systemd.sh installs it")
    return exe


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_example_unit_passes_systemd_analyze_verify(unit, tmp_path):
    exe = _systemd_analyze()
    # verify checks that ExecStart's binary exists: point it at this environment's edgert
    edgert = Path(sys.executable).with_name("edgert")
    assert edgert.exists(), "edgert is not installed in this environment"
    for u in UNITS:  # side by side, as in /etc/systemd/system (the units name each other)
        (tmp_path / u.name).write_text(u.read_text().replace("/usr/local/bin/edgert", str(edgert)))
    r = subprocess.run([exe, "verify", "--man=no", str(tmp_path / unit.name)], capture_output=True,
                       text=True, timeout=120)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]  # warnings too
    assert r.returncode == 0 and not problems, "\n".join(problems)


def test_the_agent_and_serve_units_are_supervised():
    assert {u.name for u in UNITS} >= {"edgert-agent.service", "edgert-serve.service"}
    for name in ("edgert-agent.service", "edgert-serve.service"):
        text = (ROOT / "examples" / "systemd" / name).read_text()
        for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=edgert",
                     "ProtectSystem=strict", "StateDirectory=edgert", "NoNewPrivileges=yes"):
            assert f"\n{line}" in text, (name, line)
