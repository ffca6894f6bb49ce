"""``edgert collector`` / ``edgert collector report`` with a PostgreSQL URL, from the
environment, and the one-line errors for a database that cannot be used."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

from fleet_data import reference, window

from collector import CollectorStore

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], env=full,
                          capture_output=True, text=True, timeout=60)


def test_report_reads_postgresql_from_the_environment(pg_url):
    store = CollectorStore(pg_url)
    seg = dict(window("m", "2.0.0", random.Random(3), reference()), segment_id=uuid.uuid4().hex)
    store.ingest({"batch_id": "b1", "device_id": "d1", "segments": [seg]})
    store.close()
    res = _cli(["collector", "report", "--json"], EDGERT_COLLECTOR_DB=pg_url)
    assert res.returncode == 0, res.stderr
    (v,) = json.loads(res.stdout)["versions"]
    assert (v["model"], v["version"], v["calls"]) == ("m", "2.0.0", seg["calls"])
    human = _cli(["collector", "report", "--db", pg_url])
    assert human.returncode == 0 and f"m@2.0.0: calls {seg['calls']}" in human.stdout


def test_unusable_databases_are_one_clear_line(tmp_path):
    res = _cli(["collector", "report", "--db", str(tmp_path / "none.db")])
    assert res.returncode == 2 and "none.db is not a file" in res.stderr
    assert not (tmp_path / "none.db").exists()  # a report never creates an empty database
    res = _cli(["collector", "--db", "postgresql://edgert:pw0rd@127.0.0.1:1/x", "--port", "0"])
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "127.0.0.1:1/x" in res.stderr and "pw0rd" not in res.stderr
    res = _cli(["collector", "report", "--db", "redis://x"])
    assert res.returncode == 1 and "redis:// is not supported" in res.stderr


def test_sigterm_stops_cleanly_and_unreachable_broker_is_one_line(tmp_path):
    import signal

    from fleet_cli import start_cli_collector

    proc, port = start_cli_collector(str(tmp_path / "c.db"))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    res = _cli(["collector", "--db", str(tmp_path / "c.db"), "--port", "0", "--mqtt", "127.0.0.1:1"])
    assert res.returncode == 1 and "Traceback" not in res.stderr and "127.0.0.1" in res.stderr, res.stderr
