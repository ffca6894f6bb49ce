"""edge-runtime inside Pyodide (Node, offline) vs onnxruntime-web called straight from JS.

Builds our wheel, converts the breast_cancer logistic demo, and prints, in one run: loadPyodide,
session creation (Python through the bridge vs JS), first call, and per-row latency for one row
and for a batch, as ratios against the JS floor. Needs tests/js/node_modules
(scripts/setup.d/30-node-pyodide.sh).

    python benchmarks/pyodide_bridge.py [--rounds 200] [--rows 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--rows", type=int, default=200)
    args = ap.parse_args()
    from js_harness import JS_DIR, build_wheel, require_node_modules

    import converters
    from converters.demo import train_demo_model

    node = require_node_modules()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        wheel = build_wheel(tmp_path / "wheel")
        est, X_tr, X_te, names = train_demo_model("logistic")
        bundle = converters.convert(est, X_tr, tmp_path / "bundle", holdout=X_te, feature_names=names)
        rows = (X_te.tolist() * (args.rows // len(X_te) + 1))[:args.rows]
        (tmp_path / "rows.json").write_text(json.dumps(rows))
        r = subprocess.run([node, str(JS_DIR / "bench_pyodide.mjs"), str(wheel), str(bundle),
                            str(tmp_path / "rows.json"), str(args.rounds)], capture_output=True, text=True,
                           cwd=JS_DIR, check=True)
    f = json.loads(r.stdout.strip().splitlines()[-1])
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    n = f["batch_rows"]
    one, one_js = f["py_one_row_ms"] * 1e3, f["js_one_row_ms"] * 1e3
    per_row, per_row_js = f["py_batch_ms"] * 1e3 / n, f["js_batch_ms"] * 1e3 / n
    print(f"Pyodide in Node {version}, onnxruntime-web (wasm, 1 thread), breast_cancer logistic, "
          "30 features")
    print(f"loadPyodide              {f['load_pyodide_ms']:9.0f} ms")
    print(f"session create       py  {f['py_session_create_ms']:9.1f} ms   "
          f"js {f['js_session_create_ms']:8.1f} ms")
    print(f"golden check (await)     {f['py_golden_ms']:9.2f} ms   first call {f['py_first_call_ms']:.2f} ms")
    print(f"one row per call     py  {one:9.0f} µs   js {one_js:8.0f} µs   py/js {one / one_js:.2f}"
          f"   (input validation {f['py_validate_one_row_ms'] * 1e3:.0f} µs)")
    print(f"{n} rows per call   py  {per_row:9.1f} µs/row js {per_row_js:6.1f} µs/row py/js "
          f"{per_row / per_row_js:.2f}   batching gain {one / per_row:.0f}×")

if __name__ == "__main__":
    main()
