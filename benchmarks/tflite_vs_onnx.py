"""TFLite (LiteRT) vs ONNX (onnxruntime), one thread, measured in one run: single-row latency,
10k-row batch time, and artifact sizes at fp32 / fp16 / int8, for the logistic pipeline, an
MLPs 64×64 and 128×128 and a 100-tree forest (depth 10) on breast_cancer, plus int8 single-row
latency and int8 label agreement with scikit-learn.

    python benchmarks/tflite_vs_onnx.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, median_call_s  # noqa: E402


def models():
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from converters.demo import train_demo_model

    lr, X_tr, X_te, names = train_demo_model("logistic")
    rf = train_demo_model("forest")[0]
    out = {"logistic": lr}
    for width in (64, 128):  # ~1.7 KB of a file is structure and float biases, whatever the width
        mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(width, width), max_iter=500,
                                                            random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[f"MLP {width}×{width}"] = mlp.fit(X_tr, lr.predict(X_tr))
    out["forest 100"] = rf
    return out, X_tr, X_te


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import edge_runtime
    from converters import convert

    ests, X_tr, X_te = models()
    one = np.ascontiguousarray(X_te[:1], np.float32)
    big = np.ascontiguousarray(np.resize(X_te, (10_000, X_te.shape[1])), np.float32)
    print(f"{'model':<13} {'TFLite 1 row':>13} {'ORT 1 row':>10} {'TFL/ORT':>8} {'int8 1 row':>11} "
          f"{'TFLite 10k':>11} {'ORT 10k':>9} {'fp32 B':>8} {'fp16 B':>8} {'int8 B':>8} {'int8/fp32':>9} "
          f"{'int8 labels':>11}")
    for name, est in ests.items():
        with tempfile.TemporaryDirectory() as tmp:
            b = convert(est, X_tr, Path(tmp) / "b", holdout=X_te, formats=("onnx", "tflite"),
                        precisions={"onnx": ("fp32",), "tflite": ("fp32", "fp16", "int8")})
            tfl = edge_runtime.load(b, backend="litert", threads=1)
            ort = edge_runtime.load(b, backend="onnxruntime", threads=1)
            sizes = {a.precision: a.size for a in tfl.manifest.artifacts if a.format == "tflite"}
            int8 = edge_runtime.load(b, backend="litert", precision="int8", threads=1)
            t = compare({"tfl": lambda m=tfl: m.predict_proba(one), "ort": lambda m=ort: m.predict_proba(one),
                         "int8": lambda m=int8: m.predict_proba(one)},
                        rounds=5 if args.quick else 15, number=500 if args.quick else 2000)
            reps = 3 if args.quick else 9
            tb = median_call_s(lambda m=tfl: m.predict_proba(big), reps) * 1e3
            ob = median_call_s(lambda m=ort: m.predict_proba(big), reps) * 1e3
            agree = float(np.mean(int8.predict(X_te) == est.predict(X_te)))
        print(f"{name:<13} {t['tfl']:>10.2f} µs {t['ort']:>7.2f} µs {t['tfl'] / t['ort']:>8.2f} {t['int8']:>8.2f} µs "
              f"{tb:>8.2f} ms {ob:>6.2f} ms {sizes['fp32']:>8} {sizes['fp16']:>8} {sizes['int8']:>8} "
              f"{sizes['int8'] / sizes['fp32']:>9.1%} {agree:>11.2%}")


if __name__ == "__main__":
    main()
