"""Telemetry overhead: single-row latency with recording on vs off, measured in one run.

Same model, same rows, same process. Blocks of calls alternate between the bare ``Model``
and the ``MonitoredModel`` wrapper (whose recorder drains in its background thread and
writes to a real SQLite outbox meanwhile), so machine noise hits both sides alike.

Three figures, all printed:
- **prediction-thread cost**: calls back to back with the drain thread paused (its buffer
  emptied between blocks, outside the timing): exactly what recording adds to each call.
- **latency**: each call timed on its own, with a short sleep between calls as a device
  serving requests has (``--pause-us``, default 200 µs, i.e. a few thousand predictions per
  second), drain thread running. This is what a caller waits for; sleeps make it noisy on
  a busy machine, hence p50 and a trimmed mean.
- **saturated throughput**: calls back to back, no pause, drain thread running. Here the
  background binning competes with the prediction loop for the GIL, so this is the total
  CPU cost of a recorded call, background work included.

    PYTHONPATH=. python benchmarks/telemetry_overhead.py [--model logistic|forest] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["logistic", "forest"], default="logistic")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--block", type=int, default=2000, help="calls per block")
    ap.add_argument("--input", choices=["array", "list"], default="array")
    ap.add_argument("--pause-us", type=float, default=200.0)
    args = ap.parse_args(argv)

    from converters import convert
    from converters.demo import train_demo_model
    from edge_runtime import load
    from edge_runtime.telemetry import MonitoredModel, Recorder

    tmp = Path(tempfile.mkdtemp(prefix="edgert-bench-"))
    est, X_tr, X_te, names = train_demo_model(args.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = convert(est, X_tr, tmp / "bundle", name="bench", version="1.0.0", holdout=X_te,
                       feature_names=names)
    model = load(path)
    rec = Recorder(tmp / "state", window_s=5.0)
    monitored = MonitoredModel(model, rec)
    idle = Recorder(tmp / "state-idle", start=False)  # no drain thread: the hot path alone
    hot_only = MonitoredModel(model, idle)
    rows = [np.ascontiguousarray(X_te[i:i + 1], dtype=np.float32) for i in range(len(X_te))]
    if args.input == "list":
        rows = [r[0].tolist() for r in rows]
    n = len(rows)

    def saturated(predict) -> float:
        t0 = time.perf_counter()
        for i in range(args.block):
            predict(rows[i % n])
        return (time.perf_counter() - t0) / args.block

    pause = args.pause_us / 1e6
    paced_block = max(200, args.block // 10)

    def paced(predict) -> list[float]:
        out, perf, sleep = [], time.perf_counter, time.sleep
        for i in range(paced_block):
            t0 = perf()
            predict(rows[i % n])
            out.append(perf() - t0)
            sleep(pause)
        return out

    def alternate(measure, rounds: int) -> tuple[list, list]:
        off, on = [], []
        for r in range(rounds):
            if r % 2 == 0:
                off.append(measure(model.predict))
                on.append(measure(monitored.predict))
            else:
                on.append(measure(monitored.predict))
                off.append(measure(model.predict))
        return off, on

    for _ in range(3):  # warm-up both
        saturated(model.predict)
        saturated(monitored.predict)
    h_off, h_on = [], []
    for r in range(args.rounds):
        pair = [(model.predict, h_off), (hot_only.predict, h_on)]
        for fn, out in (pair if r % 2 == 0 else pair[::-1]):
            out.append(saturated(fn))
            idle.buf.clear()
    p_off, p_on = alternate(paced, args.rounds)
    lat_off = np.concatenate(p_off)
    lat_on = np.concatenate(p_on)
    s_off, s_on = alternate(saturated, args.rounds)
    rec.flush()
    stats = rec.outbox.stats()
    rec.close()
    expected = 3 * args.block + args.rounds * (paced_block + args.block)

    def q(a: np.ndarray, p: float) -> float:
        return float(np.percentile(a, p)) * 1e6

    def trimmed(a: np.ndarray) -> float:  # mean without the slowest/fastest 1% (scheduler noise)
        lo, hi = np.percentile(a, [1, 99])
        return float(a[(a >= lo) & (a <= hi)].mean()) * 1e6

    print(f"model {args.model}, input {args.input}, one process, blocks alternating off/on")
    ho, hn = statistics.median(h_off), statistics.median(h_on)
    print(f"prediction-thread cost, {args.rounds} x {args.block} calls per side, median block:")
    print(f"  recording off {ho * 1e6:.2f} us/call, on {hn * 1e6:.2f} us/call: "
          f"{100 * (hn / ho - 1):+.1f}% ({1e9 * (hn - ho):+.0f} ns)")
    print(f"latency, {len(lat_off)} calls per side, {args.pause_us:.0f} us pause between calls:")
    for name, a in (("off", lat_off), ("on ", lat_on)):
        print(f"  recording {name}: p50 {q(a, 50):.2f} us  trimmed mean {trimmed(a):.2f} us  "
              f"mean {a.mean() * 1e6:.2f} us  p90 {q(a, 90):.2f} us  p99 {q(a, 99):.2f} us")
    print(f"  overhead: p50 {100 * (q(lat_on, 50) / q(lat_off, 50) - 1):+.1f}%  "
          f"trimmed mean {100 * (trimmed(lat_on) / trimmed(lat_off) - 1):+.1f}%  "
          f"mean {100 * (lat_on.mean() / lat_off.mean() - 1):+.1f}%  "
          f"p90 {100 * (q(lat_on, 90) / q(lat_off, 90) - 1):+.1f}%  "
          f"(p50 {1000 * (q(lat_on, 50) - q(lat_off, 50)):+.0f} ns)")
    mo, mn = statistics.fmean(s_off), statistics.fmean(s_on)
    print(f"saturated throughput, {args.rounds} x {args.block} calls per side, no pause:")
    print(f"  recording off {mo * 1e6:.2f} us/call, on {mn * 1e6:.2f} us/call: "
          f"{100 * (mn / mo - 1):+.1f}% (background binning included)")
    print(f"recorded calls in outbox: {stats['calls']} (expected {expected})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
