"""Unit and property tests: histograms, binning, merging, outbox cap, batches, backoff,
collector input validation, queue overflow, raw-input sampling."""

from __future__ import annotations

import contextlib
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telemetry_helpers import StoreSink

from collector import CollectorStore, Thresholds, check
from edge_runtime.telemetry import Outbox, Uploader
from edge_runtime.telemetry.aggregate import WindowAccumulator, merge_segments
from edge_runtime.telemetry.histograms import LATENCY_EDGES, psi, quantile_from_buckets
from edge_runtime.telemetry.outbox import MIN_MAX_BYTES
from edge_runtime.telemetry.recorder import Recorder, Stream
from edge_runtime.telemetry.sinks import SinkError

pytestmark = pytest.mark.device


def test_latency_quantiles_within_one_bucket():
    lat = np.random.default_rng(0).lognormal(np.log(2e-5), 0.6, 20000)
    from edge_runtime.telemetry.histograms import latency_bucket_counts

    counts = latency_bucket_counts(lat)
    assert counts.sum() == lat.size
    for q in (0.5, 0.9, 0.99):
        got, want = quantile_from_buckets(counts, q), np.quantile(lat, q)
        assert want / 10 ** 0.1 <= got <= want * 10 ** 0.1
    assert LATENCY_EDGES[0] == pytest.approx(1e-6) and LATENCY_EDGES[-1] == pytest.approx(100)


def test_psi_basics():
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert psi([10, 20, 30], [30, 20, 10]) > 0.5
    assert psi([0, 0], [1, 1]) is None


floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None)
@given(edges=st.lists(st.floats(-1e39, 1e39), max_size=9, unique=True),
       rows=st.lists(st.lists(floats, min_size=3, max_size=3), min_size=1, max_size=40))
def test_binning_equals_searchsorted(edges, rows):
    edges = sorted(edges)
    feats = [{"name": "a", "edges": edges}, {"name": "b", "edges": []},
             {"name": "c", "edges": edges[:2]}]
    acc = WindowAccumulator("m", "1.0.0", 0.0, 1.0, {"features": feats})
    x = np.asarray(rows, dtype=np.float64)
    acc.add_inputs(x)
    acc.add_inputs(x.astype(np.float32))  # the float32 path must bin identically
    for j, f in enumerate(feats):
        col = x[:, j][~np.isnan(x[:, j])]
        e = np.asarray(f["edges"], dtype=np.float64)
        want = 2 * np.bincount(np.searchsorted(e, col, side="right"), minlength=e.size + 1)
        assert acc.bins[j].tolist() == want.tolist()
        assert acc.missing[j] == 2 * np.isnan(x[:, j]).sum()


def _acc(calls):
    acc = WindowAccumulator("m", "1.0.0", 0.0, 1.0, {"features": [{"name": "a", "edges": [0.5]}]})
    for lat, label, x, err in calls:
        if err:
            acc.add_errors(["InputError"], np.array([lat]))
        else:
            acc.add_calls(np.array([lat]), 1)
            acc.add_outputs(np.array([label]), True)
            acc.add_inputs(np.array([[x]]))
    return acc.to_segment()


@settings(max_examples=40, deadline=None)
@given(calls=st.lists(st.tuples(st.floats(1e-7, 10), st.sampled_from(["x", "y"]),
                                st.floats(0, 1), st.booleans()), min_size=2, max_size=30),
       cut=st.integers(1, 29))
def test_merge_is_exact(calls, cut):
    cut = min(cut, len(calls) - 1)
    whole = _acc(calls)
    merged = merge_segments(_acc(calls[:cut]), _acc(calls[cut:]))
    for key in ("calls", "rows", "errors", "latency", "classes", "features"):
        assert merged[key] == whole[key]


def _segment(i: int, classes: int = 1) -> dict:
    acc = WindowAccumulator("m", "1.0.0", float(i), 1.0, None)
    acc.add_calls(np.full(10, 1e-5), 10)
    acc.add_outputs(np.array([f"class-{k % classes}" for k in range(10 * classes)][:10]), True)
    seg = acc.to_segment()
    seg["outputs"].update({f"class-{k}": 0 for k in range(classes)})  # a wide segment, ~30 B a class
    return seg


def test_outbox_cap_merges_then_drops_and_reports(tmp_path):
    ob = Outbox(tmp_path, max_bytes=3000)  # raised to the floor: the cap covers the files on disk
    assert ob.max_bytes == MIN_MAX_BYTES
    cap = ob.budget.database
    for i in range(40):
        ob.add_segments([_segment(i, classes=400)])  # 40 x ~11 kB: more than the cap
    stats = ob.stats()
    assert stats["bytes"] <= cap and stats["segments"] < 40
    assert stats["calls"] == 400  # merging lost nothing so far
    acc = WindowAccumulator("n", "1.0.0", 0.0, 1.0, None)  # a second version: not mergeable
    big = acc.to_segment()
    big["outputs"] = {str(k): 1 for k in range(cap // 30)}  # ~cap/3: fits alone, not with the rest
    assert cap // 4 < len(json.dumps(big, separators=(",", ":"))) < cap // 2
    big["calls"] = 7
    for j in range(3):  # three versions: not mergeable with each other either
        ob.add_segments([dict(big, version=f"1.0.{j + 1}")])  # the oldest go to make room
    stats = ob.stats()
    assert stats["dropped_segments_unreported"] >= 1
    assert stats["disk_bytes"] <= ob.max_bytes
    dropped_calls = stats["dropped_calls_unreported"]
    store = CollectorStore(tmp_path / "c.db")
    assert Uploader(ob, StoreSink(store)).flush().complete
    rep = store.report()
    kept = sum(v["calls"] for v in rep["versions"])
    assert kept + rep["dropped"]["calls"] == 421 and rep["dropped"]["calls"] == dropped_calls
    assert any("dropped" in line for line in check(rep, Thresholds()))


def test_batch_id_and_body_stable_until_acked(tmp_path):
    ob = Outbox(tmp_path)
    ob.add_segments([_segment(i) for i in range(5)])
    b1 = ob.next_batch(max_segments=2)
    ob.close()
    ob = Outbox(tmp_path)  # a restart (or kill -9) between send and ack
    b2 = ob.next_batch(max_segments=3)
    assert b1.batch_id == b2.batch_id and b1.encode() == b2.encode() and b2.segments == 2
    ob.ack(b2.batch_id)
    b3 = ob.next_batch(max_segments=100, max_bytes=1)  # byte bound: still at least one
    assert b3.batch_id != b1.batch_id and b3.segments == 1
    assert ob.stats()["segments"] == 3


class FailingSink:
    def __init__(self, fail: int):
        self.fail, self.sent = fail, []

    def send(self, batch) -> None:
        if self.fail:
            self.fail -= 1
            raise SinkError("down")
        self.sent.append(batch.batch_id)

    def close(self) -> None:
        pass


def test_backoff_exponential_with_jitter_and_retry_same_batch(tmp_path):
    ob = Outbox(tmp_path)
    ob.add_segments([_segment(i) for i in range(4)])
    slept = []
    sink = FailingSink(3)
    up = Uploader(ob, sink, batch_segments=2, base_delay_s=1.0, max_delay_s=3.0,
                  rng=random.Random(1), sleep=slept.append)
    first = ob.next_batch(2).batch_id
    res = up.flush(max_attempts=10)
    assert res.complete and res.failures == 3 and res.batches == 2
    assert sink.sent[0] == first  # the retried batch kept its id
    assert 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0 and 1.5 <= slept[2] <= 3.0
    delays = {up.delay_for(5) for _ in range(20)}
    assert len(delays) > 1 and all(1.5 <= d <= 3.0 for d in delays)


def test_flush_counts_every_failure_it_lists_and_stops_at_its_time_limit(tmp_path):
    ob = Outbox(tmp_path)
    ob.add_segments([_segment(i) for i in range(4)])
    lines: list[str] = []
    up = Uploader(ob, FailingSink(10**6), batch_segments=2, base_delay_s=0.02, max_delay_s=0.05)
    res = up.flush(max_attempts=10**6, max_time_s=0.5, progress=lines.append)
    assert res.timed_out and res.batches == 0 and res.retry_after_s is not None
    assert res.failures == len(res.errors) >= 2  # the count is what is listed, all of it
    assert sum("failed" in line for line in lines) == res.failures
    assert ob.stats()["calls"] == 40  # nothing lost


def test_refused_credentials_stop_the_flush_at_once(tmp_path):
    from edge_runtime.telemetry.sinks import SinkAuthError

    class Refusing(FailingSink):
        def send(self, batch) -> None:
            raise SinkAuthError("HTTP 401 Unauthorized")

    ob = Outbox(tmp_path)
    ob.add_segments([_segment(0)])
    slept: list[float] = []
    res = Uploader(ob, Refusing(0), sleep=slept.append).flush(max_attempts=5)
    assert res.fatal and "401" in res.fatal and res.failures == 1 and not slept


@settings(max_examples=80, deadline=None)
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                             max_size=5),
                         max_leaves=20))
def test_collector_rejects_malformed_batches_cleanly(tmp_path_factory, body):
    store = CollectorStore(tmp_path_factory.mktemp("fuzz") / "c.db")
    try:
        with contextlib.suppress(ValueError):
            store.ingest(body)
        assert store.counts()["segments"] == 0 or isinstance(body, dict)
        store.report()
    finally:
        store.close()


def test_collector_rejects_bad_segment_fields(tmp_path):
    store = CollectorStore(tmp_path / "c.db")
    seg = dict(_segment(0), segment_id="s1")
    ok = {"batch_id": "b1", "device_id": "d", "segments": [seg]}
    for bad, field in ((dict(seg, calls=-1.5), "calls"), (dict(seg, latency={"999": 1}), "latency"),
                       (dict(seg, classes={"a": -3}), "classes")):
        with pytest.raises(ValueError, match=field):
            store.ingest(dict(ok, segments=[bad]))
    assert store.ingest(ok) == ("b1", False)
    assert store.ingest(json.loads(json.dumps(ok))) == ("b1", True)
    assert store.counts() == {"batches": 1, "segments": 1}


def test_full_queue_counts_lost_and_sampling_is_opt_in(tmp_path):
    rec = Recorder(tmp_path / "s1", queue_max=5, start=False)
    stream = Stream("m", "1.0.0", classification=True, width=1,
                    reference={"features": [{"name": "a", "edges": [0.0], "counts": [1, 1]}]})

    class Echo:
        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    from edge_runtime.telemetry import MonitoredModel

    mm = MonitoredModel(Echo(), rec, name="m", version="1.0.0", reference=stream.reference)
    for i in range(8):
        mm.predict(np.array([[float(i)]]))
    rec.close()
    seg = json.loads(Outbox(tmp_path / "s1").next_batch().encode())["segments"][0]
    assert (seg["calls"], seg["lost"]) == (5, 3) and "samples" not in seg
    rec = Recorder(tmp_path / "s2", sample_rate=1.0)
    mm = MonitoredModel(Echo(), rec, name="m", version="1.0.0", reference=stream.reference)
    mm.predict(np.array([[1.5], [2.5]]))
    rec.close()
    seg = json.loads(Outbox(tmp_path / "s2").next_batch().encode())["segments"][0]
    assert seg["samples"] == [[1.5], [2.5]]


class _Echo:
    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def test_concurrent_producers_lose_nothing_across_buffer_swaps(tmp_path):
    import threading

    from edge_runtime.telemetry import MonitoredModel

    rec = Recorder(tmp_path / "s", drain_interval_s=0.001, window_s=0.05)
    mm = MonitoredModel(_Echo(), rec, name="m", version="1.0.0")
    x = np.ones((1, 3))

    def work():
        for _ in range(5000):
            mm.predict(x)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    assert Outbox(tmp_path / "s").stats()["calls"] == 20000


def test_late_append_to_a_swapped_buffer_is_taken_next_drain(tmp_path):
    from edge_runtime.telemetry import MonitoredModel

    rec = Recorder(tmp_path / "s", start=False)
    mm = MonitoredModel(_Echo(), rec, name="m", version="1.0.0")
    stale = rec.buf  # what a producer read just before the swap
    mm.predict(np.ones((2, 3)))
    assert rec.drain() == 1
    stale.extend((0, mm._sid, 0.0, 1e-5, np.ones((1, 3)), np.ones((1, 3)).tobytes(),
                  np.zeros(1, dtype=int), None))  # ... and appended after it
    assert rec.drain() == 1
    assert rec.drain() == 0
    rec.close()
    assert Outbox(tmp_path / "s").stats()["calls"] == 2


def test_a_rejected_batch_is_kept_aside_and_does_not_block_the_rest(tmp_path):
    from edge_runtime.telemetry.sinks import BatchRejected

    class Picky:
        def __init__(self):
            self.sent = 0

        def send(self, batch) -> None:
            if batch.body["segments"][0]["window_start"] == 0.0:
                raise BatchRejected("HTTP 400: schema")
            self.sent += 1

        def close(self) -> None:
            pass

    ob = Outbox(tmp_path)
    ob.add_segments([_segment(i) for i in range(3)])
    sink = Picky()
    res = Uploader(ob, sink, batch_segments=1).flush()
    assert (res.rejected, sink.sent, res.complete) == (1, 2, True)
    assert ob.stats()["rejected_batches"] == 1 and ob.stats()["segments"] == 0
