"""Acceptance: two collectors on one database (an in-process one and a real ``edgert
collector`` process), 50 devices uploading at once through proxies that lose answers, some
batches sent to both collectors at the same moment → exact totals, nothing stored twice.

Devices run the real outbox and uploader; the database is SQLite or a real PostgreSQL."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from fleet_cli import scrape_counter, start_cli_collector
from fleet_data import reference, totals, window
from telemetry_net import CuttingProxy

from collector import Collector
from edge_runtime.telemetry import HttpSink, Outbox, Uploader
from edge_runtime.telemetry.sinks import SinkError

N_DEVICES = 50


class FleetSink:
    """A device's view of two collectors behind a load balancer: each send goes to one at
    random, and one in five goes to both at the same moment (a retry racing the original)."""

    def __init__(self, urls: list[str], rng: random.Random):
        self.sinks = [HttpSink(u, timeout_s=10) for u in urls]
        self.rng = rng
        self.raced = 0

    def send(self, batch) -> None:
        if self.rng.random() < 0.2:
            self.raced += 1
            errors: list[SinkError] = []

            def one(sink: HttpSink) -> None:
                try:
                    sink.send(batch)
                except SinkError as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=one, args=(s,)) for s in self.sinks]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len(errors) == len(self.sinks):
                raise errors[0]
            return
        self.rng.choice(self.sinks).send(batch)

    def close(self) -> None:
        pass


def _device(i: int, state: Path, urls: list[str], ref: dict, out: dict, lock: threading.Lock) -> None:
    rng = random.Random(i)
    ob = Outbox(state, device_id=f"dev-{i:02d}")
    version = "1.0.0" if i % 3 else "1.1.0"
    ob.set_reference("m", version, ref)
    segs = [window("m", version, rng, ref, start=1000.0 + 10 * k) for k in range(rng.randint(3, 8))]
    ob.add_segments(segs)
    sink = FleetSink(urls, rng)
    up = Uploader(ob, sink, batch_segments=rng.randint(1, 3), base_delay_s=0.001, max_delay_s=0.02)
    try:
        res = up.flush(max_attempts=1000, respect_backoff=False)
    finally:
        ob.close()
    with lock:
        out["segments"].extend(segs)
        out["results"].append(res)
        out["raced"] += sink.raced


def test_two_collectors_fifty_devices_exact(db_url, tmp_path):
    coll = Collector(db_url).start()
    coll.delay_s = 0.01  # stored, ack still on its way: the window a cut answer hits
    proc, cli_port = start_cli_collector(db_url)
    cut_rng = random.Random(99)
    proxies = [CuttingProxy(port, cut=lambda n: cut_rng.random() < 0.25) for port in (coll.port, cli_port)]
    urls = [f"http://127.0.0.1:{p.port}/v1/batches" for p in proxies]
    ref = reference()
    out: dict = {"segments": [], "results": [], "raced": 0}
    lock = threading.Lock()
    try:
        threads = [threading.Thread(target=_device, args=(i, tmp_path / f"dev{i}", urls, ref, out, lock))
                   for i in range(N_DEVICES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(out["results"]) == N_DEVICES
        assert all(r.complete for r in out["results"]), [r.errors[-2:] for r in out["results"] if not r.complete]
        want = totals(out["segments"])
        rep = coll.store.report()
        got = {(v["model"], v["version"]): v for v in rep["versions"]}
        assert set(got) == set(want)
        for key, t in want.items():
            v = got[key]
            assert (v["calls"], v["rows"], v["segments"], v["feedback"]["n"]) == \
                (t["calls"], t["rows"], t["segments"], t["feedback"]), key
            assert v["errors_by_kind"] == dict(t["errors"]) and v["classes"] == dict(t["classes"])
        assert rep["devices"] == N_DEVICES
        assert coll.store.counts() == {"batches": sum(r.batches for r in out["results"]),
                                       "segments": len(out["segments"])}
        # the retries really happened, and both collectors turned some away as duplicates
        cli_dups = scrape_counter(cli_port, "edgert_collector_duplicate_batches_total")
        assert sum(p.cuts for p in proxies) > 0 and out["raced"] > 0
        assert coll.store.duplicates > 0 and cli_dups > 0
    finally:
        for p in proxies:
            p.close()
        proc.terminate()
        proc.wait(10)
        coll.stop()
