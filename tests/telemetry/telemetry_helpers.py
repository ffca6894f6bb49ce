"""Helpers for the telemetry tests (module names prefixed so they never shadow other tests' helpers)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from collector import CollectorStore
from edge_runtime.telemetry import Outbox, Uploader

N_PREDICTIONS = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_flush_midway(state_dir: Path, sink_url: str, collector: Any, env: dict, *, min_batches: int = 8) -> None:
    """Run the real ``edgert telemetry flush`` one segment a batch, and kill -9 it once the
    collector has stored ``min_batches`` batches (the flush still running)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_runtime", "telemetry", "flush", "--state-dir", str(state_dir),
         "--sink", sink_url, "--batch-segments", "1", "--max-attempts", "1000", "--base-delay", "0.001",
         "--timeout", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while collector.store.counts()["batches"] < min_batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class StoreSink:
    """A sink that hands the exact JSON a real sink would send to a collector store."""

    def __init__(self, store: CollectorStore):
        self.store = store

    def send(self, batch) -> None:
        self.store.ingest(json.loads(batch.encode()))

    def close(self) -> None:
        pass


def deliver(state_dir: Path, db: Path) -> dict:
    """Upload everything in ``state_dir``'s outbox into the collector db; return the report."""
    store = CollectorStore(db)
    ob = Outbox(state_dir)
    try:
        res = Uploader(ob, StoreSink(store)).flush()
        assert res.complete, res.errors
        return store.report()
    finally:
        ob.close()
        store.close()


def version(report: dict, v: str) -> dict:
    return next(x for x in report["versions"] if x["version"] == v)
