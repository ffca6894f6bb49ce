"""The numpy backend against onnx.reference and onnxruntime, measured in one run.

For each model at 10k rows (breast_cancer features, resampled with noise): numpy backend vs
``onnx.reference.ReferenceEvaluator`` (target ≥ 20×; on slow models the reference scores a
subsample and its time is scaled linearly to 10k rows, which the table says), vs onnxruntime
(target within 3× for linear and MLP models), and a single row vs onnxruntime (target < 10×).
All engines are held to one thread where they have a setting; timings are medians of
interleaved rounds.

    python benchmarks/numpy_backend.py [--rows 10000] [--rounds 7] [--all] [--only NAME]
"""

from __future__ import annotations

import os

# one thread for every engine: numpy's BLAS too (set before numpy loads), as onnxruntime below;
# on a busy 2-core machine a second BLAS thread makes matmul timings swing 10x
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _timing import compare  # noqa: E402


def _models(include_zoo: bool) -> list[tuple[str, str, Any, str]]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    S = StandardScaler
    out = [
        ("logistic pipeline", "linear", make_pipeline(S(), LogisticRegression(max_iter=2000)), "binary"),
        ("forest 100 trees", "trees",
         RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0), "binary"),
        ("grad. boosting 100", "trees", GradientBoostingClassifier(n_estimators=100, random_state=0),
         "binary"),
        ("MLP 64x64", "mlp", make_pipeline(S(), MLPClassifier((64, 64), max_iter=500, random_state=0)),
         "binary"),
    ]
    if include_zoo:
        from zoo import CASES

        for c in CASES:
            kind = ("mlp" if "mlp" in c.id else "linear" if c.id.split("-")[0] in
                    ("logistic", "sgd", "linearsvc", "linear", "ridge", "minmax") else "other")
            out.append((f"zoo {c.id}", kind, c.make(), c.data))
    return out


def _rows(X: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    pick = X[rng.integers(0, X.shape[0], n)]
    noise = rng.normal(0, 0.01, pick.shape) * (np.abs(pick) + 1e-3)
    return np.ascontiguousarray(pick + noise, dtype=np.float32)


def _median_s(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, kind: str, est: Any, data: str, n_rows: int, rounds: int,
            ref_budget_s: float) -> dict[str, Any]:
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator
    from zoo import dataset

    import edge_runtime
    from converters import convert

    X_tr, y_tr, X_te, _ = dataset(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_tr, y_tr)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = convert(est, X_tr, Path(tmp) / "b", holdout=X_te)
        model = edge_runtime.load(bundle, backend="numpy")
        onnx_bytes = (Path(bundle) / model.artifact.path).read_bytes()
    npy = model.backend
    outs = list(model.artifact.outputs.values())
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    ref = ReferenceEvaluator(onnx_bytes)
    X = _rows(X_te, n_rows)

    def run_np(x=X):
        return npy.run(x, outs)

    def run_ort(x=X):
        return sess.run(outs, {in_name: x})

    # the three engines agree on this batch before anything is timed
    for a, b in zip(run_np(X[:500]), run_ort(X[:500])):
        if np.asarray(a).dtype.kind == "f":
            assert np.allclose(a, b, rtol=1e-5, atol=1e-5), name
        else:
            assert np.array_equal(a, b), name

    # interleaved rounds: machine noise hits both engines alike
    batch = compare({"np": run_np, "ort": run_ort}, rounds=rounds, number=1, warmup=1)
    t_np, t_ort = batch["np"] / 1e6, batch["ort"] / 1e6
    # reference: time a small slice first, then as many rows as the budget allows
    probe = max(1, min(n_rows, 50))
    t_probe = _median_s(lambda: ref.run(outs, {in_name: X[:probe]}), 1) / probe
    ref_rows = int(min(n_rows, max(probe, ref_budget_s / max(t_probe, 1e-9))))
    t_ref = _median_s(lambda: ref.run(outs, {in_name: X[:ref_rows]}), 1) * n_rows / ref_rows
    row = X[:1]
    single = compare({"np": lambda: npy.run(row, outs), "ort": lambda: sess.run(outs, {in_name: row})},
                     rounds=max(3, rounds), number=300, warmup=50)
    return {"name": name, "kind": kind, "np_ms": t_np * 1e3, "ort_ms": t_ort * 1e3,
            "ref_ms": t_ref * 1e3, "ref_rows": ref_rows, "np_row_us": single["np"],
            "ort_row_us": single["ort"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ref-budget", type=float, default=3.0,
                    help="seconds the reference evaluator may spend per model")
    ap.add_argument("--all", action="store_true", help="also every model of tests/zoo.py")
    ap.add_argument("--only", default="", help="run only models whose name contains this")
    args = ap.parse_args()

    import onnx
    import onnxruntime as ort

    print(f"machine: {platform.machine()} python {platform.python_version()}, numpy "
          f"{np.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}; "
          f"{args.rows} rows, one thread for onnxruntime and numpy's BLAS")
    head = ("| model | numpy ms | onnx.reference ms | × vs reference (≥20) | onnxruntime ms | "
            "numpy/ORT (≤3 linear, MLP) | 1 row numpy µs | 1 row ORT µs | 1-row ratio (<10) |")
    print(head)
    print("|" + "---|" * 9)
    for name, kind, est, data in _models(args.all):
        if args.only not in name:
            continue
        r = measure(name, kind, est, data, args.rows, args.rounds, args.ref_budget)
        sub = "" if r["ref_rows"] >= args.rows else f" (scaled from {r['ref_rows']} rows)"
        print(f"| {r['name']} | {r['np_ms']:.2f} | {r['ref_ms']:.1f}{sub} | "
              f"{r['ref_ms'] / r['np_ms']:.0f}× | {r['ort_ms']:.2f} | "
              f"{r['np_ms'] / r['ort_ms']:.2f}× | {r['np_row_us']:.1f} | {r['ort_row_us']:.1f} | "
              f"{r['np_row_us'] / r['ort_row_us']:.1f}× |", flush=True)


if __name__ == "__main__":
    main()
