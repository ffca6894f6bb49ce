"""The outbox on a full disk: predictions go on, every call is either kept or counted as
dropped, ``close()`` never raises, and ``edgert telemetry flush`` drains it (a claim needs a
write) — on a real, tiny tmpfs, because only a real file system fails the way a full one does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from telemetry_helpers import version

from collector import Collector, CollectorStore
from edge_runtime.telemetry import MonitoredModel, Outbox, Recorder
from edge_runtime.telemetry.aggregate import WindowAccumulator

pytestmark = pytest.mark.device

MADE = 1_000_000


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs mounted for this test (needs the right to mount: root in CI)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True,
                       capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a 2 MiB tmpfs here (needs root): {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(disk: Path, leave: int) -> Path:
    """Someone else's file takes all but ``leave`` bytes of the disk."""
    st = os.statvfs(disk)
    filler = disk / "other-app.data"
    with open(filler, "wb") as fh:
        fh.write(b"x" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def _segment(i: int, calls: int) -> dict:
    acc = WindowAccumulator("m", "1.0.0", float(i), 1.0, None)
    acc.add_calls(np.full(calls, 1e-5), calls)
    acc.add_outputs(np.array([str(k % 50) for k in range(calls)]), True)
    seg = acc.to_segment()
    seg["outputs"].update({f"pad-{uuid.uuid4().hex}": 0 for _ in range(40)})  # not mergeable away
    return seg


def test_outbox_on_a_full_disk_counts_what_it_cannot_keep(tiny_disk, tmp_path):
    ob = Outbox(tiny_disk)  # the default 16 MiB cap: the disk runs out long before it
    _fill(tiny_disk, leave=300 * 1024)
    made = 0
    for i in range(400):
        ob.add_segments([_segment(i, 10)])  # never raises, full disk or not
        made += 10
    st = ob.stats()
    assert st["dropped_calls_unreported"] > 0, "the disk never filled: the test proves nothing"
    assert st["calls"] + st["dropped_calls_unreported"] == made
    batch = ob.next_batch(max_segments=5)  # a claim on a full disk works (the reserve)
    assert batch is not None and batch.body["dropped"]["calls"] == st["dropped_calls_unreported"]
    ob.close()  # never raises
    ob = Outbox(tiny_disk)  # reopening on a full disk works too
    store = CollectorStore(tmp_path / "c.db")
    try:
        while (b := ob.next_batch(max_segments=20)) is not None:
            store.ingest(json.loads(b.encode()))
            ob.ack(b.batch_id)
        rep = store.report()
        assert version(rep, "1.0.0")["calls"] + rep["dropped"]["calls"] == made
    finally:
        ob.close()
        store.close()


@pytest.mark.slow
def test_a_million_calls_on_a_2mb_tmpfs(tiny_disk, tmp_path, cancer_bundles, cancer_data, tel_env):
    """Acceptance: 1M predictions with the default cap on a 2 MiB disk another file half fills;
    flush works on the full disk, then delivers the rest once space returns; the collector's
    report accounts for every call (kept + dropped = made)."""
    from edge_runtime import load

    filler = _fill(tiny_disk, leave=1024 * 1024)
    model = load(cancer_bundles["1.0.0"])
    rec = Recorder(tiny_disk, window_s=0.05, drain_interval_s=0.05, persist_interval_s=0.2)
    mm = MonitoredModel(model, rec)
    X = np.ascontiguousarray(cancer_data[2], dtype=np.float32)
    rows = [X[i:i + 1] for i in range(len(X))]
    for i in range(MADE):
        mm.predict(rows[i % len(rows)])  # must never raise
    rec.close()  # must never raise
    assert rec.lost == 0
    ob = Outbox(tiny_disk)
    st = ob.stats()
    ob.close()
    assert st["dropped_calls_unreported"] > 0, "the disk never filled: the test proves nothing"
    assert st["disk_bytes"] <= 1024 * 1024 + 64 * 1024
    kept_before = st["calls"]

    coll = Collector(tmp_path / "c.db").start()
    flush = [sys.executable, "-m", "edge_runtime", "telemetry", "flush", "--state-dir", str(tiny_disk),
             "--sink", f"http://127.0.0.1:{coll.port}/v1/batches", "--max-time", "60", "-q"]
    try:
        first = subprocess.run(flush + ["--max-batches", "2", "--batch-segments", "5"], env=tel_env,
                               capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr  # on the full disk
        assert json.loads(first.stdout)["batches"] == 2
        filler.unlink()  # space comes back
        rest = subprocess.run(flush, env=tel_env, capture_output=True, text=True, timeout=120)
        assert rest.returncode == 0, rest.stderr
        assert json.loads(rest.stdout)["remaining_segments"] == 0
        rep = coll.store.report()
        v = version(rep, "1.0.0")
        assert v["calls"] == kept_before
        assert v["calls"] + rep["dropped"]["calls"] == MADE
    finally:
        coll.stop()
