"""Probation overhead: p50 single-row latency of ``HotSwapModel.predict`` during probation
(the previous version answering a sample of the calls in shadow, in its worker thread) vs
after commit, as a ratio, measured in one run (target ≤ 1.2×).

Two stores in one process hold the same new version of the breast_cancer logistic bundle:
in one it is on probation (previous version installed, so the shadow runs; the probation is
made long enough not to end during the run), in the other it is committed. Blocks of calls
alternate between the two holders, so machine noise hits both sides alike. Each call is
timed alone, with a short sleep between calls as a device serving requests has
(``--pause-us``); p50 and p90 are printed per side, the p50 ratio over all calls and the
median of the per-round ratios (robust to bursts of load from other processes hitting one
side's block), and the shadow's own figures (rows compared, samples dropped) prove it kept
up. ``--pause-us 0`` shows the saturated case, where the worker competes with the caller for
the GIL and drops samples rather than slow it.

    PYTHONPATH=. python benchmarks/probation_overhead.py [--rounds 40] [--block 250] [--pause-us 200]
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


def _store(root: Path, bundles: dict[str, Path], probation: bool) -> Path:
    """A version store holding 1.0.0 and 1.1.0, with 1.1.0 current (on probation or committed)."""
    from edge_runtime.bundle import pack_bundle
    from edge_runtime.sync.store import VersionStore

    store = VersionStore(root)
    for version, path in bundles.items():
        store.install(version, pack_bundle(path, root / f"{version}.tar.gz"))
    rec = store.read_active()
    rec["current"], rec["previous"] = "1.1.0", "1.0.0"
    rec["probation"] = {"version": "1.1.0", "started": time.time(), "starts": 0,
                        "expect": {"predictions": 10_000_000, "minutes": 7 * 24 * 60}} if probation else None
    store.write_active(rec)
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--block", type=int, default=250, help="calls per block")
    ap.add_argument("--pause-us", type=float, default=200.0)
    args = ap.parse_args(argv)

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters import convert
    from edge_runtime.hotswap import HotSwapModel

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    tmp = Path(tempfile.mkdtemp(prefix="edgert-probation-bench-"))
    bundles = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for version, rows in (("1.0.0", slice(0, 300)), ("1.1.0", slice(None))):
            est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X[rows], y[rows])
            bundles[version] = convert(est, X, tmp / version, name="bench", version=version, sample_y=y)
    on_probation = HotSwapModel(_store(tmp / "probation", bundles, True), backend="onnxruntime")
    committed = HotSwapModel(_store(tmp / "committed", bundles, False), backend="onnxruntime")
    monitor = on_probation._monitor  # noqa: SLF001 - the benchmark reads the shadow's figures
    assert monitor is not None and committed._monitor is None  # noqa: SLF001
    rows = [np.ascontiguousarray(X[i:i + 1], dtype=np.float32) for i in range(len(X))]
    pause, perf, sleep = args.pause_us / 1e6, time.perf_counter, time.sleep

    def block(hot: HotSwapModel) -> list[float]:
        out = []
        for i in range(args.block):
            t0 = perf()
            hot.predict(rows[i % len(rows)])
            out.append(perf() - t0)
            if pause:
                sleep(pause)
        return out

    block(on_probation), block(committed)  # warm-up (the shadow loads the previous version)
    monitor.drain(30)
    lat: dict[str, list[float]] = {"probation": [], "committed": []}
    per_round = []
    for r in range(args.rounds):
        order = (("probation", on_probation), ("committed", committed))
        got = {}
        for name, hot in order if r % 2 == 0 else order[::-1]:
            got[name] = block(hot)
            lat[name].extend(got[name])
        per_round.append(float(np.median(got["probation"]) / np.median(got["committed"])))
    monitor.drain(30)
    figs = monitor.figures()

    def pct(xs: list[float], q: float) -> float:
        return float(np.percentile(xs, q)) * 1e6

    for name, xs in lat.items():
        print(f"{name:>9}: p50 {pct(xs, 50):7.1f} µs   p90 {pct(xs, 90):7.1f} µs   "
              f"mean {statistics.fmean(xs) * 1e6:7.1f} µs   over {len(xs)} calls")
    ratio = pct(lat["probation"], 50) / pct(lat["committed"], 50)
    print(f"p50 ratio probation / committed: {ratio:.2f}x over all calls, median of the {args.rounds} "
          f"per-round ratios {statistics.median(per_round):.2f}x (target ≤ 1.2x); pause {args.pause_us:g} µs")
    print(f"shadow: {figs['compared']} rows compared, {figs['agreed']} agreed, {figs['dropped']} samples "
          f"dropped, state {figs['shadow']}; verdict so far: {monitor.verdict()[1]}")
    on_probation.close()
    committed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
