"""Native (compiled C) artifacts against scikit-learn and onnxruntime, measured in one run.

breast_cancer (30 features), rows resampled with noise; per model: median time of one row and
of 10k rows for scikit-learn, onnxruntime (1 and 2 threads) and the native backend (1 and 2
threads; a batch is split over Python threads calling C, which ctypes runs without the GIL).
Engines are timed at the backend level (``engine.run``: the tensors in, the tensors out), which is
what the router picks between; compile time of each library is printed too. Issue 17's target:
native ≤ 0.5× onnxruntime at 10k rows on both cores for GradientBoosting 100 and RandomForest 100.

    python benchmarks/native.py [--rows 10000] [--rounds 7] [--only NAME]

Figures are from whatever machine runs this (here: 2 shared cores); read the ratios.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _timing import compare, median_call_s  # noqa: E402


def _models() -> list[tuple[str, Any]]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return [
        ("logistic+scaler", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
        ("random_forest_100_d10", RandomForestClassifier(100, max_depth=10, random_state=0)),
        ("gradient_boosting_100", GradientBoostingClassifier(n_estimators=100, random_state=0)),
        ("mlp_64x64", make_pipeline(StandardScaler(), MLPClassifier((64, 64), max_iter=300, random_state=0))),
    ]


def _rows(X: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = X[rng.integers(0, X.shape[0], n)]
    return np.ascontiguousarray(base * (1 + 0.02 * rng.standard_normal(base.shape)), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    from sklearn.datasets import load_breast_cancer

    import converters
    import edge_runtime

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    big = _rows(X, args.rows)
    one = big[:1].copy()
    print(f"# native vs scikit-learn vs onnxruntime — {platform.machine()}, {args.rows} rows, median of "
          f"{args.rounds} interleaved rounds")
    print("| model | rows | scikit-learn | onnxruntime 1t | onnxruntime 2t | native 1t | native 2t | "
          "native/ORT (2t) | native/sklearn |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, est in _models():
            if args.only and args.only != name:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y)
            t0 = time.perf_counter()
            path = converters.convert(est, X, Path(tmp) / name, formats=["onnx", "native"])
            built = time.perf_counter() - t0
            engines: dict[str, Any] = {}
            for backend in ("onnxruntime", "native"):
                for threads in (1, 2):
                    m = edge_runtime.load(path, backend=backend, threads=threads, allow_unsigned_native=True)
                    engines[f"{backend} {threads}t"] = (m.backend, list(m.artifact.outputs.values()))
            art = next(a for a in edge_runtime.open_bundle(path).manifest.artifacts if a.format == "native")

            def call(key: str, x: np.ndarray, engines: dict = engines) -> Callable[[], Any]:
                eng, outs = engines[key]
                return lambda: eng.run(x, outs)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                single = compare({"sklearn": lambda est=est: est.predict_proba(one),
                                  **{k: call(k, one) for k in engines}}, rounds=args.rounds, number=200, warmup=20)
                batch = {"sklearn": median_call_s(lambda est=est: est.predict_proba(big), args.rounds)}
                batch.update({k: median_call_s(call(k, big), args.rounds) for k in engines})
            for label, res, unit, scale in (("1", single, "µs", 1.0), (str(args.rows), batch, "ms", 1e3)):
                cells = [f"{res[k] * scale:.1f} {unit}" for k in ("sklearn", "onnxruntime 1t", "onnxruntime 2t",
                                                                  "native 1t", "native 2t")]
                best_native = min(res["native 1t"], res["native 2t"])
                best_ort = min(res["onnxruntime 1t"], res["onnxruntime 2t"])
                print(f"| {name} | {label} | " + " | ".join(cells)
                      + f" | {best_native / best_ort:.2f}× | {best_native / res['sklearn']:.3f}× |")
                if label != "1" and name.startswith(("random_forest", "gradient_boosting")):
                    verdicts.append((name, best_native / best_ort))
            print(f"|  | build | {art.size} B library, convert (onnx + native, parity) {built:.1f} s, "
                  f"C source {art.extra.get('c_source_bytes')} B |  |  |  |  |  |  |  |")
    for name, ratio in verdicts:
        print(f"target native ≤ 0.5× onnxruntime at {args.rows} rows ({name}): {ratio:.2f}× — "
              + ("met" if ratio <= 0.5 else "NOT met"))


if __name__ == "__main__":
    main()
