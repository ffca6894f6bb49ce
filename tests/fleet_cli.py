"""A real ``edgert collector`` process for tests and the ingest benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_cli_collector(db: str, *extra: str) -> tuple[subprocess.Popen, int]:
    """``edgert collector --db DB --port 0 [extra...]`` from this checkout; returns (process,
    HTTP port) once it listens (its first stderr line says where)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", "collector", "--db", db, "--port", "0",
                             *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline() if proc.stderr else ""
    try:
        return proc, int(json.loads(line)["listening"].rsplit(":", 1)[1].split("/")[0])
    except (ValueError, KeyError, IndexError, TypeError):
        proc.kill()
        raise RuntimeError(f"collector did not start: {line}{proc.communicate()[1]}") from None


def scrape_counter(port: int, name: str) -> int:
    """An unlabelled counter from a collector's ``/metrics``."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
    if m is None:
        raise AssertionError(f"{name} not in /metrics")
    return int(m.group(1))
