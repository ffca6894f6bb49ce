"""What a required signature adds to ``edge_runtime.load`` on the demo bundle (breast_cancer
logistic pipeline): median ms of a load with ``trust=`` minus one without (target ≤ 5 ms), the
verification alone, and what importing the verifier costs.

    python benchmarks/signing_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    import edge_runtime
    from converters import convert
    from converters.demo import train_demo_model
    from converters.signing import init_signing_key
    from edge_runtime.bundle import open_bundle
    from edge_runtime.signing import TrustedKeys, verify_bundle

    est, X_tr, X_te, names = train_demo_model("logistic")
    with tempfile.TemporaryDirectory() as tmp:
        priv, pub = init_signing_key(Path(tmp) / "keys")
        bundle = convert(est, X_tr, Path(tmp) / "b", holdout=X_te, feature_names=names, sign_with=priv)
        trust = TrustedKeys.load(pub)
        res = compare({
            "load": lambda: edge_runtime.load(bundle, threads=1).close(),
            "load(trust=pub.pem)": lambda: edge_runtime.load(bundle, threads=1, trust=pub).close(),
            "verify_bundle only": lambda: verify_bundle(open_bundle(bundle), trust),
        }, rounds=args.rounds, number=20, warmup=5)
    for k, v in res.items():
        print(f"{k:<24} {v / 1000:8.3f} ms")
    print(f"{'signature check adds':<24} {(res['load(trust=pub.pem)'] - res['load']) / 1000:8.3f} ms (target ≤ 5)")
    code = ("import time; t=time.perf_counter(); import edge_runtime.signing, "
            "cryptography.hazmat.primitives.asymmetric.ec, cryptography.hazmat.primitives.serialization; "
            "print((time.perf_counter()-t)*1000)")
    base = "import time; t=time.perf_counter(); import edge_runtime; print((time.perf_counter()-t)*1000)"
    for label, snippet in (("import edge_runtime", base), ("import edge_runtime.signing+crypto", code)):
        ms = sorted(float(subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                                         check=True).stdout) for _ in range(7))[3]
        print(f"{label:<28} {ms:7.1f} ms (median of 7 fresh processes)")


if __name__ == "__main__":
    main()
