"""One cold start, run as ``python -m edge_runtime.latency.coldstart BUNDLE BACKEND PRECISION``
in a fresh process: prints JSON with import, load (session/interpreter creation + checks),
first prediction times and the process's peak resident memory."""

from __future__ import annotations

import contextlib
import json
import sys
import time


def peak_rss_mb() -> float:
    """Peak resident set size of this process. Linux: VmHWM, which exec resets (ru_maxrss keeps
    the forking parent's peak, so a big parent would inflate every child's figure)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1024.0 / 1024.0


def main(argv: list[str]) -> None:
    bundle, backend, precision = argv[0], argv[1], argv[2]
    threads = int(argv[3]) if len(argv) > 3 and argv[3] != "0" else None
    t0 = time.perf_counter()
    import edge_runtime
    from edge_runtime.bundle import open_bundle

    engine_mod = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert"}.get(backend)
    if engine_mod:
        with contextlib.suppress(ImportError):
            __import__(engine_mod)
    t1 = time.perf_counter()
    b = open_bundle(bundle)
    model = edge_runtime.load(b, backend=backend, precision=precision, threads=threads, verify=False)
    t2 = time.perf_counter()
    rows = (b.manifest.golden or {}).get("inputs") or [[0.0] * len(b.manifest.features)]
    model.predict_proba(rows[:1]) if model.task == "classification" and "probabilities" in \
        model.artifact.outputs else model.predict(rows[:1])
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2,
                      "total_s": t3 - t0, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
