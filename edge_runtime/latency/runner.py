"""Runs every measurement of ``edgert bench`` for one bundle and returns one JSON-able report
(schema: docs/bench.md). Each (backend, precision) pair is measured the same way, in one run,
so ratios between them, and to an optional scikit-learn baseline, are fair on a noisy machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .._version import __version__
from ..backends import Candidate, candidates
from ..bundle import Bundle
from ..errors import BenchError, EdgeRuntimeError
from ..loader import open_trusted
from ..profiles import DeviceProfile
from ..sampling import golden_rows, reference_rows
from .timing import sample_latency, summarize, throughput

SCHEMA = "edgert-bench/1"


@dataclass
class BenchConfig:
    backends: Sequence[str] = ("all",)
    batches: Sequence[int] = (1, 32, 1024)
    cold_runs: int = 5
    warm_seconds: float = 2.0
    batch_seconds: float = 0.5
    threads: Optional[int] = None
    profile: Optional[DeviceProfile] = None
    data: Optional[Any] = None  # 2-D rows; default: the bundle's golden rows
    baseline: Optional[Any] = None  # a fitted estimator (workstation only)
    progress: Callable[[str], None] = field(default=lambda msg: None)


def machine_info() -> dict[str, Any]:
    info = {"machine": platform.machine(), "system": platform.system(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "edge_runtime": __version__, "processor": platform.processor()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


#: Spellings of one architecture (``platform.machine()`` differs by OS).
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv7": "armv7l",
                 "armhf": "armv7l", "emscripten": "wasm32"}


def _arch(name: str) -> str:
    n = name.strip().lower()
    return _ARCH_ALIASES.get(n, n)


def machine_mismatch(profile: DeviceProfile, machine: dict[str, Any]) -> Optional[str]:
    """Why this machine is not the profile's device (architecture or core count), or None: a
    bench against a Pi's budgets on a laptop measures the laptop, and must say so."""
    diffs = []
    if _arch(str(machine.get("machine") or "")) != _arch(profile.arch):
        diffs.append(f"architecture {machine.get('machine')} (profile: {profile.arch})")
    if machine.get("cpu_count") is not None and machine["cpu_count"] != profile.cores:
        diffs.append(f"{machine['cpu_count']} cores (profile: {profile.cores})")
    if not diffs:
        return None
    return (f"this machine is not a {profile.name} device: {', '.join(diffs)}; the figures and the "
            "PASS/FAIL verdicts are this machine's, not the device's")



def _targets(bundle: Bundle, cfg: BenchConfig) -> list[Candidate]:
    """Every (backend, artifact) to measure: one per precision each backend can run."""
    every = list(cfg.backends) == ["all"]
    found = candidates(bundle, cfg.profile, backends=None if every else cfg.backends,
                       every_precision=True)
    for s in found.skipped:
        if s.kind == "unknown" and not every and s.refusal is not None:
            raise s.refusal
        cfg.progress(f"skip {s.name}: {s.why}")
    out: dict[tuple[str, str], Candidate] = {}
    for c in found.usable:
        out.setdefault((c.name, c.artifact.precision), c)
    return list(out.values())


def cold_start(bundle_path: str, backend: str, precision: str, threads: Optional[int],
               runs: int) -> dict[str, Any]:
    """Median and spread over ``runs`` fresh processes."""
    results = []
    for _ in range(runs):
        r = subprocess.run([sys.executable, "-m", "edge_runtime.latency.coldstart", bundle_path,
                            backend, precision, str(threads or 0)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise BenchError(f"cold start of {backend}/{precision} failed: "
                             + (r.stderr.strip().splitlines() or ["?"])[-1])
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {"runs": runs}
    for key in ("import_s", "load_s", "first_predict_s", "total_s", "peak_rss_mb"):
        vals = [r[key] for r in results]
        out[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def _predictor(model: Any) -> Callable[[Any], Any]:
    if model.task == "classification" and "probabilities" in model.artifact.outputs:
        return model.predict_proba
    return model.predict


def _rows(bundle: Bundle, cfg: BenchConfig, need: int) -> Any:
    return _rows_and_source(bundle, cfg, need)[0]


def _rows_and_source(bundle: Bundle, cfg: BenchConfig, need: int) -> tuple[Any, str]:
    """``--data`` rows (tiled), else the golden rows topped up with rows drawn from the manifest's
    training histograms: a few golden rows tiled to 1024 would replay the same tree paths, which
    the branch predictor learns, and tree ensembles would look faster than on real data."""
    import numpy as np

    if cfg.data is not None:
        base = np.asarray(cfg.data, dtype=np.float32)
        source = f"--data ({base.shape[0]} rows{', tiled' if base.shape[0] < need else ''})"
    else:
        base = golden_rows(bundle)
        if not base.shape[0]:
            raise BenchError("the bundle has no golden rows: pass --data X.csv")
        source = f"golden rows ({base.shape[0]})"
        extra = reference_rows(bundle, need - base.shape[0]) if base.dtype != object else None
        if extra is not None:
            base = np.concatenate([base, extra.astype(np.float32)])
            source += f" + {extra.shape[0]} drawn from the training histograms"
    reps = -(-need // base.shape[0])
    return np.ascontiguousarray(np.tile(base, (reps, 1))[:need]), source


def run_bench(bundle_path: str, cfg: BenchConfig) -> dict[str, Any]:
    """Measure every (backend, precision) of the bundle; returns the report dict."""
    from .. import load

    bundle = open_trusted(bundle_path, profile=cfg.profile)  # native code only when it may run
    threads = cfg.threads or (cfg.profile.threads if cfg.profile else None)
    rows, source = _rows_and_source(bundle, cfg, max(cfg.batches) if cfg.batches else 1)
    report: dict[str, Any] = {
        "schema": SCHEMA, "bundle": {"path": str(bundle_path), "name": bundle.manifest.name,
                                     "version": bundle.manifest.version},
        "machine": machine_info(), "threads": threads,
        "profile": cfg.profile.name if cfg.profile else None, "inputs": source, "results": [],
        "baseline": None}
    if cfg.profile is not None:
        report["machine_mismatch"] = machine_mismatch(cfg.profile, report["machine"])
    for cand in _targets(bundle, cfg):
        backend, art = cand.name, cand.artifact
        precision = art.precision
        cfg.progress(f"{backend}/{precision}: cold start ×{cfg.cold_runs}")
        entry: dict[str, Any] = {"backend": backend, "precision": precision,
                                 "artifact": art.path, "size_bytes": art.size}
        try:
            entry["cold_start"] = cold_start(str(bundle_path), backend, precision, threads,
                                             cfg.cold_runs)
            model = load(bundle, backend=backend, precision=precision, threads=threads)
        except EdgeRuntimeError as exc:
            entry["error"] = str(exc)
            report["results"].append(entry)
            cfg.progress(f"{backend}/{precision}: failed: {exc}")
            continue
        entry["threads"] = model.backend.effective_threads()
        entry.update(warm_and_throughput(_predictor(model), rows, cfg, f"{backend}/{precision}"))
        model.close()
        report["results"].append(entry)
    if cfg.baseline is not None:
        report["baseline"] = baseline(cfg.baseline, rows, cfg)
        for entry in report["results"]:
            add_ratios(entry, report["baseline"])
    if cfg.profile is not None:
        report["budgets"] = check_budgets(report, cfg.profile)
    return report


def _bound(predict: Callable[[Any], Any], rows: Any) -> Callable[[], Any]:
    return lambda: predict(rows)


def _first_rows(predict: Callable[[Any], Any], rows: Any, n: int) -> Callable[[], Any]:
    """``predict`` on the first ``n`` rows, sliced in each call (as the warm figure is)."""
    return lambda: predict(rows[:n])


def warm_and_throughput(predict: Callable[[Any], Any], rows: Any, cfg: BenchConfig,
                        label: str) -> dict[str, Any]:
    """Warm single-row percentiles and throughput at each batch size, for one predictor."""
    one = rows[:1]
    cfg.progress(f"{label}: warm single-row latency ({cfg.warm_seconds:.1f} s)")
    out: dict[str, Any] = {"warm": summarize(sample_latency(lambda: predict(one), seconds=cfg.warm_seconds))}
    out["throughput"] = []
    for b in cfg.batches:
        cfg.progress(f"{label}: batch {b}")
        chunk = rows[:b]
        out["throughput"].append(throughput(_bound(predict, chunk), b, seconds=cfg.batch_seconds))
    return out


def baseline(estimator: Any, rows: Any, cfg: BenchConfig) -> dict[str, Any]:
    """scikit-learn's own predict on the same rows, measured the same way."""
    import warnings

    rows64 = rows.astype("float64")
    fn = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
    cfg.progress("scikit-learn baseline")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = summarize(sample_latency(lambda: fn(rows64[:1]), seconds=cfg.warm_seconds,
                                        warmup=5, min_samples=30))
        tp = [throughput(_first_rows(fn, rows64, b), b, seconds=cfg.batch_seconds) for b in cfg.batches]
    return {"name": f"scikit-learn {type(estimator).__name__}", "warm": warm, "throughput": tp}


def add_ratios(entry: dict[str, Any], base: dict[str, Any]) -> None:
    """speedup = baseline time / our time (> 1: we are faster)."""
    if "warm" not in entry:
        return
    entry["vs_baseline"] = {
        "warm_p50_speedup": base["warm"]["p50_ms"] / entry["warm"]["p50_ms"],
        "warm_p99_speedup": base["warm"]["p99_ms"] / entry["warm"]["p99_ms"],
        "throughput_speedup": {str(t["batch"]): t["rows_per_s"] / bt["rows_per_s"]
                               for t, bt in zip(entry["throughput"], base["throughput"])}}


def check_budgets(report: dict[str, Any], profile: DeviceProfile) -> list[dict[str, Any]]:
    out = []
    for entry in report["results"]:
        if "warm" not in entry:
            continue
        p99 = entry["warm"]["p99_ms"]
        rss = entry["cold_start"]["peak_rss_mb"]["max"]
        out.append({"backend": entry["backend"], "precision": entry["precision"],
                    "p99_ms": p99, "latency_budget_ms": profile.latency_budget_ms,
                    "latency_ok": p99 <= profile.latency_budget_ms,
                    "peak_rss_mb": rss, "memory_budget_mb": profile.memory_budget_mb,
                    "memory_ok": rss <= profile.memory_budget_mb})
    return out


def write_json(report: dict[str, Any], path: Path) -> None:
    from ..bundle import json_safe
    from ..fsutil import atomic_write_json

    atomic_write_json(path, json_safe(report))
