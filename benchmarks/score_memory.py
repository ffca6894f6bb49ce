"""Peak memory and throughput of streaming batch scoring (``edgert predict``) as the file grows,
against the plain alternative (pandas.read_csv of the whole file, then one Model.predict_proba),
each in a fresh process measured by its own peak RSS (VmHWM). Then checks that the streamed
labels of the largest file equal row-by-row ``Model.predict`` on every row.

    PYTHONPATH=$PWD python benchmarks/score_memory.py [--rows 100000 1000000] [--chunk-rows 4096]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

# VmHWM is the process's own peak RSS; ru_maxrss would also count the parent's RSS at fork
# (Linux keeps it across exec), which hides exactly the difference measured here.
PEAK_MB = ("def _peak_mb():\n"
           "    for line in open('/proc/self/status'):\n"
           "        if line.startswith('VmHWM:'):\n"
           "            return int(line.split()[1]) / 1024\n")

_RSS = ("import sys, time\n" + PEAK_MB +
        "t0 = time.perf_counter()\n"
        "{body}\n"
        "print('RESULT', time.perf_counter() - t0, "
        "_peak_mb(), file=sys.stderr)\n")

_STREAM = ("from edge_runtime.cli import main\n"
           "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code")

_PLAIN = ("import pandas as pd\nfrom edge_runtime import load\n"
          "m = load(sys.argv[1])\ndf = pd.read_csv(sys.argv[2])\n"
          "p = m.predict_proba(df[m.feature_names])\n"
          "out = pd.DataFrame({'id': df['id'], 'label': p.argmax(axis=1)})\n"
          "out.to_csv(sys.argv[3], index=False)")


def measure(body: str, args: list[str]) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _RSS.format(body=body), *args], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    line = [x for x in proc.stderr.splitlines() if x.startswith("RESULT")][-1]
    _, seconds, rss = line.split()
    return float(seconds), float(rss)


def write_rows(path: Path, n: int) -> None:
    from serve_support import breast_cancer_rows

    names, X = breast_cancer_rows(min(n, 20_000), seed=7)
    texts = [",".join(repr(float(v)) for v in row) for row in X]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(",".join(["id", *names]) + "\n")
        block: list[str] = []
        for i in range(n):
            block.append(f"r{i},{texts[i % len(texts)]}\n")
            if len(block) == 50_000:
                fh.write("".join(block))
                block = []
        fh.write("".join(block))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--chunk-rows", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-check", action="store_true", help="skip the row-by-row comparison")
    args = ap.parse_args()
    serve_load = __import__("serve_load")
    work = Path(tempfile.mkdtemp(prefix="edgert-score-bench-"))
    try:
        bundle, _ = serve_load.build_demo_bundles(work)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; model {bundle.name} "
              f"(logistic, 30 features); chunk {args.chunk_rows} rows, workers {args.workers}")
        print(f"{'rows':>9} {'file MB':>8} | {'stream s':>8} {'rows/s':>9} {'peak MB':>8} | "
              f"{'pandas s':>8} {'peak MB':>8}")
        last = None
        for n in args.rows:
            src = work / f"rows-{n}.csv"
            write_rows(src, n)
            out = work / f"out-{n}.csv"
            s_t, s_rss = measure(_STREAM, ["predict", str(bundle), str(src), "-o", str(out), "--proba",
                                           "--id-column", "id", "--chunk-rows", str(args.chunk_rows),
                                           "--workers", str(args.workers), "--no-progress"])
            p_t, p_rss = measure(_PLAIN, [str(bundle), str(src), str(work / "plain.csv")])
            print(f"{n:>9} {src.stat().st_size / 1e6:>8.1f} | {s_t:>8.2f} {n / s_t:>9.0f} {s_rss:>8.1f} | "
                  f"{p_t:>8.2f} {p_rss:>8.1f}")
            if last is not None:
                print(f"          streaming peak grew {s_rss - last[1]:+.1f} MB for {n / last[0]:.0f}x "
                      f"the rows; pandas grew {p_rss - last[2]:+.1f} MB")
            last = (n, s_rss, p_rss, src, out)
        if not args.no_check and last is not None:
            check(bundle, last[3], last[4])
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(bundle: Path, src: Path, out: Path) -> None:
    import numpy as np

    from edge_runtime import load

    model = load(bundle)
    t0 = time.perf_counter()
    n = same_label = 0
    max_diff = 0.0
    with open(src, newline="") as fi, open(out, newline="") as fo:
        ri, ro = csv.reader(fi), csv.reader(fo)
        next(ri)
        next(ro)
        for rec_in, rec_out in zip(ri, ro):
            x = np.array([rec_in[1:]], dtype=np.float64)
            assert rec_in[0] == rec_out[0], (rec_in[0], rec_out[0])
            same_label += str(model.predict(x)[0]) == rec_out[1]
            p = model.predict_proba(x)[0]
            max_diff = max(max_diff, float(np.max(np.abs(p - np.array(rec_out[2:], dtype=np.float64)))))
            n += 1
    print(f"row-by-row check of all {n} rows ({time.perf_counter() - t0:.0f} s): labels equal on "
          f"{same_label}/{n}; max |probability difference| {max_diff:.3g} (float32 eps "
          f"{np.finfo(np.float32).eps:.3g})")


if __name__ == "__main__":
    sys.exit(main())
