"""What alerting and the dashboard cost: one on-device alert pass, and the collector's report
with and without its series over time.

- **device**: ``Recorder.check_alerts()`` for one watched version (error rate and p99 over a
  full ``live_n`` = 1000 ring, PSI of 30 features over the current window). The drain thread
  runs it after every drain that brought calls (every 0.5 s by default), never on the
  prediction path, so this is background CPU per drain, not latency per call.
- **collector**: ``store.report()`` against ``report(series=True)`` (what ``/v1/report`` and
  the dashboard ask for) over ``--segments`` windows of one version, interleaved rounds.

    PYTHONPATH=. python benchmarks/alerts_overhead.py [--segments 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _median_ms(fn, rounds: int) -> float:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)

    from collector import CollectorStore
    from converters import convert
    from converters.demo import train_demo_model
    from edge_runtime import load
    from edge_runtime.telemetry import Outbox, Recorder, monitor

    tmp = Path(tempfile.mkdtemp(prefix="edgert-bench-alerts-"))
    est, X_tr, X_te, names = train_demo_model("logistic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = convert(est, X_tr, tmp / "bundle", name="bench", version="1.0.0", holdout=X_te,
                       feature_names=names)
    rec = Recorder(tmp / "state", start=False, window_s=3600)
    mm = monitor(load(path), rec, on_alert=lambda b: None)
    X = np.ascontiguousarray(X_te, dtype=np.float32)
    for i in range(1000):
        mm.predict(X[i % len(X):i % len(X) + 1])
    rec.drain()
    per_pass = _median_ms(lambda: [rec.check_alerts() for _ in range(100)], args.rounds) / 100
    print(f"device: one alert pass (1 version, {len(names)} features, live_n 1000): "
          f"{per_pass:.3f} ms")
    rec.close()

    ob = Outbox(tmp / "state")
    seg = ob.next_batch().body["segments"][0]
    ref = ob.next_batch().body.get("refs") or []
    ob.close()
    store = CollectorStore(tmp / "c.db")
    t0 = time.time() - args.segments * 60
    for i in range(0, args.segments, 100):
        segs = []
        for j in range(i, min(i + 100, args.segments)):
            s = copy.deepcopy(seg)
            s.update(segment_id=f"s{j}", window_start=t0 + 60 * j, window_end=t0 + 60 * (j + 1))
            segs.append(s)
        store.ingest({"batch_id": f"b{i}", "device_id": f"d{i % 7}", "segments": segs,
                      "refs": ref})
    totals = {"report": [], "report(series=True)": []}
    for _ in range(args.rounds):
        totals["report"].append(_median_ms(store.report, 1))
        totals["report(series=True)"].append(_median_ms(lambda: store.report(series=True), 1))
    for name, v in totals.items():
        print(f"collector: {name} over {args.segments} windows: {statistics.median(v):.1f} ms")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
