"""What edge-runtime's Model adds over a raw onnxruntime session, single row, one thread.

Prints, in one run, Model.predict_proba's latency divided by a raw InferenceSession.run's on
the same ONNX file (target ≤ 1.15), and divided by scikit-learn's predict_proba, for the
logistic pipeline and a 100-tree forest on breast_cancer.

    python benchmarks/overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare  # noqa: E402


def measure(kind: str, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    import onnxruntime as ort

    import edge_runtime
    from converters import convert
    from converters.demo import train_demo_model

    est, X_tr, X_te, names = train_demo_model(kind)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = convert(est, X_tr, Path(tmp) / "b", holdout=X_te, feature_names=names)
        model = edge_runtime.load(bundle, threads=1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        raw = ort.InferenceSession(str(Path(bundle) / model.artifact.path), so,
                                   providers=["CPUExecutionProvider"])
        in_name = raw.get_inputs()[0].name
        row = np.ascontiguousarray(X_te[:1], dtype=np.float32)
        row64 = X_te[:1]
        assert np.allclose(model.predict_proba(row), raw.run(None, {in_name: row})[1], atol=1e-6)
        fast = compare({"edge": lambda: model.predict_proba(row),
                        "raw": lambda: raw.run(None, {in_name: row})}, rounds=rounds)
        slow = compare({"sklearn": lambda: est.predict_proba(row64)}, rounds=max(3, rounds // 3),
                       number=50 if kind == "forest" else 500, warmup=5)
    return fast, slow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    import onnxruntime as ort

    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}, "
          f"onnxruntime {ort.__version__}, numpy {np.__version__}; one thread, single row")
    print(f"{'model':<10} {'edge-rt µs':>11} {'raw ORT µs':>11} {'sklearn µs':>11} "
          f"{'edge/raw':>9} {'sklearn/edge':>13}")
    for kind in ("logistic", "forest"):
        fast, slow = measure(kind, args.rounds)
        print(f"{kind:<10} {fast['edge']:>11.2f} {fast['raw']:>11.2f} {slow['sklearn']:>11.1f} "
              f"{fast['edge'] / fast['raw']:>9.3f} {slow['sklearn'] / fast['edge']:>12.0f}×")
    print("edge/raw target ≤ 1.15 (raw = InferenceSession.run(None, {input: row}))")


if __name__ == "__main__":
    main()
