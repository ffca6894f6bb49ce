"""Collector ingest throughput: batches/s on SQLite and PostgreSQL, with 1 and 2 collector
processes sharing the database.

Each collector is a real ``edgert collector`` process (waitress, durable commits: SQLite
``synchronous=FULL``, PostgreSQL with fsync on); client threads here POST pre-built batches
(``--segments`` windows each, made by the device's accumulator) over keep-alive connections,
spread evenly over the collectors. Every run checks that the database holds exactly the batches
sent. PostgreSQL is a private server initdb'd in a temporary directory (as the ``postgres``
user when run as root; ``scripts/setup.d/65-postgresql.sh`` installs it).

    PYTHONPATH=. python benchmarks/collector_ingest.py [--batches 600] [--segments 5] [--clients 8]

Figures from a shared, noisy machine: compare the rows of one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "fleet"))


def _bodies(n: int, segments: int) -> list[bytes]:
    from fleet_data import reference, window

    ref = reference()
    rng = random.Random(0)
    template = [window("m", "1.0.0", rng, ref) for _ in range(segments)]
    out = []
    for i in range(n):
        segs = [dict(s, segment_id=uuid.uuid4().hex) for s in template]
        out.append(json.dumps({"batch_id": uuid.uuid4().hex, "device_id": f"dev-{i % 100}",
                               "segments": segs}).encode())
    return out


def _run(db: str, n_collectors: int, bodies: list[bytes], clients: int) -> dict:
    from fleet_cli import start_cli_collector

    procs = [start_cli_collector(db) for _ in range(n_collectors)]
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def client(k: int) -> None:
        port = procs[k % n_collectors][1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                _, body = queue.pop()
            conn.request("POST", "/v1/batches", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append(str(resp.status))
        conn.close()

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait(10)
    from collector import CollectorStore

    store = CollectorStore(db)
    stored = store.counts()["batches"]
    store.close()
    if failures or stored != len(bodies):
        raise SystemExit(f"{db}: {len(failures)} failures, {stored} stored of {len(bodies)}")
    rate = len(bodies) / elapsed
    return {"collectors": n_collectors, "seconds": elapsed, "batches_per_s": rate,
            "per_collector": rate / n_collectors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=600)
    ap.add_argument("--segments", type=int, default=5, help="windows per batch")
    ap.add_argument("--clients", type=int, default=8, help="concurrent client connections")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args(argv)
    bodies = _bodies(args.batches, args.segments)
    tmp = Path(tempfile.mkdtemp(prefix="edgert-bench-collector-"))
    rows = []
    for n in (1, 2):
        rows.append(("sqlite", _run(str(tmp / f"c{n}.db"), n, bodies, args.clients)))
    if not args.skip_postgres:
        from fleet_pg import PgServer

        pg = PgServer(fsync=True)
        try:
            for n in (1, 2):
                rows.append(("postgresql", _run(pg.create_db(f"bench{n}"), n, bodies, args.clients)))
        finally:
            pg.close()
    print(f"{args.batches} batches of {args.segments} windows, {args.clients} client connections, "
          f"{os.cpu_count()} CPUs")
    print(f"{'database':<11} {'collectors':>10} {'seconds':>8} {'batches/s':>10} {'per collector':>14}")
    for db, r in rows:
        print(f"{db:<11} {r['collectors']:>10} {r['seconds']:>8.2f} {r['batches_per_s']:>10.0f} "
              f"{r['per_collector']:>14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
