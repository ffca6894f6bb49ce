"""The reproducible benchmark suite: trains the fixed model set on breast_cancer (ships with
scikit-learn), converts each model, and measures in ONE run, on this machine:

- scikit-learn's own predict_proba, a raw onnxruntime session (one thread) and
  ``onnx.reference.ReferenceEvaluator`` (the plain alternatives),
- every edge-runtime backend installed here that can run the bundle, and ``auto`` tuned for
  row-count routing,

at 1 row (median latency) and 10,000 rows (median batch time), then writes
``benchmarks/RESULTS.md`` with every figure and its ratios. Regenerate it whenever
performance work lands:

    python benchmarks/suite.py [--quick] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, median_call_s  # noqa: E402

BATCH = 10_000


def models() -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        "forest 100×d10": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1),
        "boosting 100": GradientBoostingClassifier(n_estimators=100, random_state=0),
        "MLP 64×64": make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64),
                                                                   max_iter=500, random_state=0)),
    }


def _load_average() -> str:
    """Other processes' load skews every figure (multi-threaded ones most): say how busy it was."""
    try:
        one, five, _ = os.getloadavg()
    except (OSError, AttributeError):
        return "load average unknown"
    return (f"load average at the end {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"
            + (" — the machine was shared, so treat ratios as indicative" if five > 0.75 * (os.cpu_count() or 1)
               else ""))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}, onnxruntime {onnxruntime.__version__}")


def run_model(name: str, est: Any, X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, tmp: Path,
              quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    import edge_runtime
    from converters import EXPORTERS, convert
    from converters.core import _load_optional_exporters
    from edge_runtime.backends import available_backends, backend_names, get_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_tr, y_tr)
    _load_optional_exporters()
    # a TFLite artifact only when this checkout can also run it (its parity is measured on litert)
    formats = ("onnx", "tflite") if "tflite" in EXPORTERS and "litert" in backend_names() else ("onnx",)
    bundle = convert(est, X_tr, tmp / name.split()[0], holdout=X_te, formats=formats,
                     force=False)
    onnx_path = bundle / "model.onnx" if (bundle / "model.onnx").exists() else next(bundle.glob("*.onnx"))
    rows1 = np.ascontiguousarray(X_te[:1], dtype=np.float32)
    big = np.ascontiguousarray(np.resize(X_te, (BATCH, X_te.shape[1])), dtype=np.float32)
    big64 = big.astype(np.float64)
    in_dtype = np.float64 if "fp64" in onnx_path.name else np.float32
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    raw = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    in_name = raw.get_inputs()[0].name
    ref = ReferenceEvaluator(onnx.load(str(onnx_path)))
    r1, rb = rows1.astype(in_dtype), big.astype(in_dtype)

    single: dict[str, Callable[[], Any]] = {"raw onnxruntime": lambda: raw.run(None, {in_name: r1})}
    batch: dict[str, Callable[[], Any]] = {"raw onnxruntime": lambda: raw.run(None, {in_name: rb})}
    engines = {}
    formats_here = {a.format for a in edge_runtime.load(bundle).manifest.artifacts}
    for backend in available_backends():
        cls = get_backend(backend)
        if getattr(cls, "async_only", False) or not formats_here & set(cls.formats):
            continue
        try:
            engines[backend] = edge_runtime.load(bundle, backend=backend, threads=1)
        except edge_runtime.EdgeRuntimeError as exc:
            log(f"  {backend}: cannot run {name}: {exc}")
    auto = edge_runtime.load(bundle, tune=True)
    engines["auto (routed)"] = auto
    for label, m in engines.items():
        single[label] = lambda m=m: m.predict_proba(rows1)
        batch[label] = lambda m=m: m.predict_proba(big)

    log(f"{name}: single-row timings")
    rounds = 5 if quick else 15
    fast = compare(single, rounds=rounds, number=500 if quick else 2000, warmup=100)
    slow_single = {"scikit-learn": lambda: est.predict_proba(X_te[:1]),
                   "onnx.reference": lambda: ref.run(None, {in_name: r1})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = compare(slow_single, rounds=max(3, rounds // 3), number=20 if quick else 60, warmup=3)
    out: dict[str, Any] = {"single_us": {**fast, **slow}}

    log(f"{name}: {BATCH}-row timings")
    reps = 3 if quick else 7
    # interleaved rounds (each round times every engine once), so another process's burst of load
    # hits scikit-learn, raw onnxruntime and auto alike
    batch["scikit-learn"] = lambda: est.predict_proba(big64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = {k: us * 1e-6 for k, us in compare(batch, rounds=reps * 2, number=1, warmup=1).items()}
    sub = 200 if quick else 1000  # onnx.reference is a Python loop per node: extrapolate linearly
    ref_rows = rb[:sub]
    ref_time = median_call_s(lambda: ref.run(None, {in_name: ref_rows}), 1 if quick else 2)
    bt["onnx.reference"] = ref_time * BATCH / sub
    out["batch_ms"] = {k: v * 1e3 for k, v in bt.items()}
    table = auto.backend.table if hasattr(auto.backend, "table") else {}
    out["routes"] = table.get("best", {})
    # every device candidate the tuner measured at the largest row count, to explain a miss
    out["tuned_big_ms"] = {k: v[str(max(table["row_counts"]))] * 1e3
                           for k, v in table.get("timings_s", {}).items()} if table else {}
    out["sizes"] = {a.path: a.size for a in auto.manifest.artifacts}
    out["reference_subsample"] = sub
    return out


def render(results: dict[str, dict[str, Any]], info: str, seconds: float) -> str:
    lines = ["# Benchmark results", "",
             "Generated by `python benchmarks/suite.py` — do not edit by hand.", "",
             f"- machine: {info}",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, suite took {seconds:.0f} s; "
             f"{_load_average()}",
             "- data: breast_cancer (30 features); single row = median µs per `predict_proba` call of one "
             "row; 10k rows = median ms per call on 10,000 rows. Engines run one thread unless routed.",
             "- `auto (routed)` is `edge_runtime.load(bundle, tune=True)`: each call goes to the engine and "
             "thread count measured fastest for its row count on this machine.",
             "- `onnx.reference` at 10k rows is extrapolated from a subsample (it loops in Python per node).",
             ""]
    for kind, unit, key in (("Single row", "µs", "single_us"), ("10,000 rows", "ms", "batch_ms")):
        lines += [f"## {kind} ({unit})", ""]
        cols = ["engine"] + list(results)
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        engines = list(dict.fromkeys(k for r in results.values() for k in r[key]))
        for e in engines:
            cells = [e]
            for r in results.values():
                v = r[key].get(e)
                if v is None:
                    cells.append("–")
                    continue
                sk, raw, ref = r[key]["scikit-learn"], r[key]["raw onnxruntime"], r[key]["onnx.reference"]
                cells.append(f"{v:,.2f} ({sk / v:,.1f}× sklearn, {raw / v:.2f}× raw ORT, {ref / v:,.0f}× ref)"
                             if e not in ("scikit-learn",) else f"{v:,.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Ratios are speed-ups: the baseline's time divided by this engine's (> 1 = faster).")
        lines.append("")
    lines += ["## Targets", ""]
    for model, r in results.items():
        s, b = r["single_us"], r["batch_ms"]
        a1, araw = s["auto (routed)"], s["raw onnxruntime"]
        ab, bsk = b["auto (routed)"], b["scikit-learn"]
        ort1 = s.get("onnxruntime", a1)
        lines.append(f"- {model}: onnxruntime single row {s['scikit-learn'] / ort1:,.0f}× faster than "
                     f"scikit-learn; auto@1 row {a1:.2f} µs vs raw onnxruntime {araw:.2f} µs "
                     f"({'ok' if a1 <= araw else 'MISS'}); auto@10k {ab:.2f} ms vs scikit-learn {bsk:.2f} ms "
                     f"({'ok' if ab <= bsk else 'MISS'}); routes {r['routes']}")
        lines += [f"  - why: {why}" for why in explain_misses(r)]
    lines.append("")
    return "\n".join(lines)


def explain_misses(r: dict[str, Any]) -> list[str]:
    """A reason for each missed target, from figures measured in this run (never canned)."""
    s, b = r["single_us"], r["batch_ms"]
    out = []
    a1, araw = s["auto (routed)"], s["raw onnxruntime"]
    if a1 > araw:
        plain = s.get("onnxruntime")
        out.append(f"auto@1 row is {(a1 / araw - 1) * 100:.1f}% ({a1 - araw:.2f} µs) slower than raw onnxruntime; "
                   f"the route at 1 row is {r['routes'].get('1', '?')}. "
                   + (f"The unrouted one-thread onnxruntime Model took {plain:.2f} µs in the same run "
                      f"({(plain / araw - 1) * 100:+.1f}% vs raw), so " if plain else "")
                   + "the gap is the Model layer (input validation, label decoding) plus run-to-run noise "
                   "on this shared machine, not the routing")
    ab, bsk = b["auto (routed)"], b["scikit-learn"]
    if ab > bsk:
        tuned = sorted(r.get("tuned_big_ms", {}).items(), key=lambda kv: kv[1])
        cands = ", ".join(f"{k} {v:.2f} ms" for k, v in tuned) or "none"
        if tuned and tuned[0][1] < bsk:
            out.append(f"the tuner measured {tuned[0][0]} at {tuned[0][1]:.2f} ms (on rows drawn from the "
                       f"training histograms), faster than scikit-learn, but on the suite's real rows the "
                       f"routed call took {ab:.2f} ms: rows and machine load differ between the two "
                       f"measurements (candidates: {cands}); rerun on an idle machine")
        else:
            out.append(f"at 10k rows no engine that runs on the device beats scikit-learn's compiled predict "
                       f"({bsk:.2f} ms) on this {os.cpu_count()}-core machine; the tuner measured every "
                       f"candidate (on rows drawn from the training histograms): {cands}. scikit-learn "
                       "itself cannot be a route (the device never imports it); a device profile with more "
                       "cores lets onnxruntime use more threads")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="edge-runtime benchmark suite")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    args = ap.parse_args()
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    X_tr, X_te, y_tr, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    t0 = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("EDGERT_CACHE_DIR", str(Path(tmp) / "cache"))
        for name, est in models().items():
            results[name] = run_model(name, est, X_tr, y_tr, X_te, Path(tmp), args.quick,
                                      lambda m: print(m, file=sys.stderr))
    text = render(results, machine(), time.perf_counter() - t0)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
