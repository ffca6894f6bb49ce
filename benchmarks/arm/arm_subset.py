"""The ARM subset: ``prepare`` (host, with the converters) builds demo bundles and the host's
outputs; ``check`` (under emulation, runtime only) loads every bundle on every backend that is
importable there, compares with the host's outputs, and prints latency ratios between backends.
Where the cross compilers and qemu-user are installed (scripts/setup.d/60-cross.sh), the bundles
also carry native libraries for aarch64 and armv7, so the ratios include native vs onnxruntime.

    python benchmarks/arm/arm_subset.py prepare DIR
    python benchmarks/arm/arm_subset.py check DIR
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path


def prepare(out: Path) -> None:
    import shutil

    import numpy as np
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters import convert

    tools = ("aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "qemu-aarch64-static", "qemu-arm-static")
    native = all(shutil.which(t) for t in tools)
    formats = ["onnx", "native"] if native else ["onnx"]
    out.mkdir(parents=True, exist_ok=True)
    cases = {
        "logistic": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)), load_breast_cancer),
        "forest": (RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0), load_iris),
        "mlp": (make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=800,
                                                              random_state=0)), load_iris),
        "gbr": (GradientBoostingRegressor(n_estimators=50, random_state=0), load_diabetes),
    }
    for name, (est, loader) in cases.items():
        X, y = loader(return_X_y=True)
        X = X.astype(np.float32).astype(np.float64)
        est.fit(X, y)
        bundle = convert(est, X, out / name, holdout=X[::3], formats=formats,
                         targets=["aarch64", "armv7"] if native else None)
        rows = X[:64]
        expected = {"rows": rows.tolist(), "predict": np.asarray(est.predict(rows)).tolist()}
        if hasattr(est, "predict_proba"):
            expected["proba"] = est.predict_proba(rows).tolist()
        (bundle / "expected.json").write_text(json.dumps(expected))
    print(f"prepared {len(cases)} bundles in {out} ({', '.join(formats)})")


def check(src: Path) -> None:
    import numpy as np

    import edge_runtime
    from edge_runtime.backends import available_backends, get_backend

    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}, "
          f"backends here: {available_backends()}")
    runnable = [b for b in available_backends() if not get_backend(b).async_only]
    if not runnable:
        core_only(src)
        return
    failures = 0
    for bundle in sorted(p for p in src.iterdir() if (p / "manifest.json").exists()):
        exp = json.loads((bundle / "expected.json").read_text())
        rows = np.asarray(exp["rows"])
        timings = {}
        for name in available_backends():
            if get_backend(name).async_only:
                continue
            t0 = time.perf_counter()
            try:
                # golden rows checked; the native libraries are this harness's own build
                model = edge_runtime.load(bundle, backend=name, threads=1, allow_unsigned_native=name == "native")
            except edge_runtime.EdgeRuntimeError as exc:
                print(f"  {bundle.name:<9} {name:<12} not usable here: {exc}")
                continue
            load_s = time.perf_counter() - t0
            pred = model.predict(rows)
            if model.task == "classification":
                ok = [str(v) for v in pred.tolist()] == [str(v) for v in exp["predict"]]
                diff = float(np.max(np.abs(model.predict_proba(rows) - np.asarray(exp["proba"]))))
                ok = ok and diff <= 1e-4
            else:
                diff = float(np.max(np.abs(pred - np.asarray(exp["predict"]))))
                ok = diff <= 1e-3 * (1 + float(np.max(np.abs(exp["predict"]))))
            one = np.ascontiguousarray(rows[:1], dtype=np.float32)
            for _ in range(20):
                model.predict(one)
            n = 300
            t0 = time.perf_counter()
            for _ in range(n):
                model.predict(one)
            timings[name] = (time.perf_counter() - t0) / n
            failures += not ok
            print(f"  {bundle.name:<9} {name:<12} {'ok ' if ok else 'FAIL'} max|Δ| {diff:.2e}  load "
                  f"{load_s * 1e3:.0f} ms  single row {timings[name] * 1e6:.0f} µs (emulated)")
        if len(timings) > 1:
            base = min(timings.values())
            print("  ratios: " + ", ".join(f"{k} {v / base:.2f}×" for k, v in timings.items()))
        if not timings:
            failures += 1
            print(f"  {bundle.name}: no backend could run it")
    bench_smoke(src)
    if failures:
        sys.exit(f"{failures} check(s) failed")
    print("all ARM checks passed")


def core_only(src: Path) -> None:
    """No engine here (armv7 before the numpy backend is installed): prove what can be proven
    (the runtime imports, bundles open, digests verify, inputs validate) and say so loudly."""
    import numpy as np

    from edge_runtime.backends import backend_names
    from edge_runtime.bundle import open_bundle
    from edge_runtime.inputs import InputAdapter

    for path in sorted(p for p in src.iterdir() if (p / "manifest.json").exists()):
        bundle = open_bundle(path)
        bundle.verify()
        rows = np.asarray(json.loads((path / "expected.json").read_text())["rows"])
        x = InputAdapter(bundle.manifest.features)(rows)
        print(f"  {path.name:<9} core ok: manifest, digests, {x.shape[0]} input rows validated")
    print(f"NO ENGINE: no backend can run a model on {platform.machine()} with this checkout "
          f"(registered: {backend_names()}); the numpy backend is needed. Environment ready; "
          "backend checks SKIPPED.")


def bench_smoke(src: Path) -> None:
    """The bench CLI's warm/throughput measurement on one bundle (cold start needs fresh
    processes, which qemu-user cannot spawn without binfmt_misc)."""
    from edge_runtime import load
    from edge_runtime.bundle import open_bundle
    from edge_runtime.latency.runner import BenchConfig, _rows, warm_and_throughput

    bundle = open_bundle(src / "logistic")
    cfg = BenchConfig(batches=(1, 32), warm_seconds=0.3, batch_seconds=0.2)
    model = load(bundle, threads=1)
    res = warm_and_throughput(model.predict_proba, _rows(bundle, cfg, 32), cfg, "logistic")
    w = res["warm"]
    assert w["n"] >= 200 and w["p50_ms"] <= w["p99_ms"]
    print(f"  bench smoke: p50 {w['p50_ms'] * 1e3:.0f} µs, p99 {w['p99_ms'] * 1e3:.0f} µs, "
          f"{res['throughput'][-1]['rows_per_s']:,.0f} rows/s @32 (emulated)")


if __name__ == "__main__":
    {"prepare": prepare, "check": check}[sys.argv[1]](Path(sys.argv[2]))
