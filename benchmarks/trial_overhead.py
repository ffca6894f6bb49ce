"""What trying a candidate in a child process costs over doing it in the agent's process.

For the breast_cancer logistic pipeline and a 100-tree forest, prints the median seconds of
load + golden smoke test: in this (warm) process, in a fresh interpreter running only the same
two calls (a cold start), and through ``try_candidate`` (child start, imports, limits, load,
smoke test, JSON result). The agent used to pay the warm figure; it now pays the trial figure
once per new version, never per prediction.

    python benchmarks/trial_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_call_s  # noqa: E402


def measure(bundle: Path, name: str, repeats: int) -> tuple[str, float, float, float]:
    """(backend, warm in-process s, cold interpreter s, trial s) for one bundle."""
    import edge_runtime
    from edge_runtime.sync.trial import try_candidate

    def in_process() -> str:
        m = edge_runtime.load(bundle, verify=False)
        m.check_golden()
        m.close()
        return m.backend.name

    code = f"import edge_runtime; m = edge_runtime.load({str(bundle)!r}, verify=False); m.check_golden()"

    def cold() -> None:
        subprocess.run([sys.executable, "-c", code], check=True, stdin=subprocess.DEVNULL, capture_output=True)

    backend = in_process()
    return (backend, median_call_s(in_process, repeats), median_call_s(cold, repeats),
            median_call_s(lambda: try_candidate(bundle, name=name, version="1.0.0"), repeats))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from converters import convert
    from converters.demo import train_demo_model

    tmp = Path(tempfile.mkdtemp(prefix="edgert-trial-bench-"))
    print(f"{'model':<9} {'backend':<12} {'in process':>11} {'cold process':>13} {'trial':>8}")
    for kind in ("logistic", "forest"):
        est, X_tr, X_te, names = train_demo_model(kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bundle = convert(est, X_tr, tmp / kind, name=kind, version="1.0.0", holdout=X_te,
                             feature_names=names)
        backend, warm, cold_s, trial = measure(bundle, kind, args.repeats)
        print(f"{kind:<9} {backend:<12} {warm:>10.3f}s {cold_s:>12.3f}s {trial:>7.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
