"""Row-count routing for ``backend="auto"``: the fastest engine for one row is rarely the
fastest for ten thousand (one-thread onnxruntime wins single rows by far; at 10k rows more
threads, or another engine, can win). ``tune`` measures every (backend, threads) candidate
that runs the bundle's ONNX artifact at a few row counts, once per bundle and device profile,
and caches the verdict; ``load`` then wraps the chosen engines in a :class:`RoutedBackend`
that dispatches each call on its row count.

Only engines of the same artifact take part, so every route gives the same outputs (each is
proven on the golden rows before use).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from .backends import available_backends, backend_names, get_backend
from .backends.base import Backend, BackendOptions
from .bundle import Artifact, Bundle
from .fsutil import atomic_write_json
from .paths import user_dir

ROW_COUNTS = (1, 32, 1024, 10_000)
SCHEMA = "edgert-routing/1"


def cache_dir() -> Path:
    return user_dir("cache", "EDGERT_CACHE_DIR")


def cache_path(artifact: Artifact, profile_name: Optional[str]) -> Path:
    return cache_dir() / "routing" / f"{artifact.sha256[:20]}-{profile_name or 'default'}.json"


def thread_options(max_threads: Optional[int] = None) -> list[int]:
    here = os.cpu_count() or 1
    # never more threads than this machine has: oversubscribed candidates only add noise
    cores = min(max_threads, here) if max_threads else here
    return sorted({1, min(2, cores), min(4, cores), cores} - {0})


class RoutedBackend(Backend):
    """Dispatches each call to the engine tuned fastest for its row count."""

    name = "auto"
    formats = ("onnx",)

    def __init__(self, routes: Sequence[tuple[int, Backend]], artifact: Artifact, table: dict[str, Any]):
        # not Backend.__init__: this engine wraps engines that already hold the model
        self.artifact = artifact
        self.options = routes[0][1].options
        self.table = table
        self._routes = list(routes)  # (max_rows inclusive, engine), ascending; last is unbounded
        self._one = self._routes[0][1]

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        n = x.shape[0]
        if n == 1:
            return self._one.run(x, outputs)
        for limit, engine in self._routes:
            if n <= limit:
                return engine.run(x, outputs)
        return self._routes[-1][1].run(x, outputs)

    def close(self) -> None:
        for _, engine in self._routes:
            engine.close()


def _rows(bundle: Bundle, n: int, dtype: str) -> Any:
    """``n`` rows to time with. Drawn from the manifest's training-data histograms when it has
    them: the golden rows tiled would replay the same few tree paths, which the CPU's branch
    predictor and caches learn, so tree ensembles would look several times faster than on real
    data and the tuner would pick wrongly."""
    import numpy as np

    feats = ((bundle.manifest.reference or {}).get("features") or [])
    if feats and len(feats) == len(bundle.manifest.features):
        try:
            return np.ascontiguousarray(_sample_reference(feats, n), dtype=dtype)
        except (KeyError, TypeError, ValueError):
            pass  # malformed statistics: fall back to the golden rows
    golden = (bundle.manifest.golden or {}).get("inputs") or []
    base = np.array([[np.nan if v is None else v for v in r] for r in golden], dtype=np.float32)
    if base.size == 0:
        base = np.zeros((1, len(bundle.manifest.features)), dtype=np.float32)
    return np.ascontiguousarray(np.tile(base, (-(-n // base.shape[0]), 1))[:n], dtype=dtype)


def _sample_reference(feats: Sequence[dict[str, Any]], n: int) -> Any:
    """Each feature independently: a bin by its training count, then uniform inside the bin."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = np.empty((n, len(feats)), dtype=np.float64)
    for j, f in enumerate(feats):
        lo, hi = float(f["min"]), float(f["max"])
        bounds = np.concatenate([[lo], np.asarray(f.get("edges") or [], dtype=np.float64), [hi]])
        counts = np.asarray(f.get("counts") or [1], dtype=np.float64)
        if len(counts) != len(bounds) - 1 or counts.sum() <= 0 or not np.all(np.isfinite(bounds)):
            raise ValueError("inconsistent reference statistics")
        b = rng.choice(len(counts), size=n, p=counts / counts.sum())
        out[:, j] = bounds[b] + rng.random(n) * (bounds[b + 1] - bounds[b])
    return out


#: a candidate with more threads must beat a leaner one by this much to be routed to: on a shared
#: device extra threads only pay off when the gain is clear, and a near-tie is measurement noise
MARGIN = 1.20


def _interleaved(calls: dict[str, Any], budget_s: float, rounds: int = 7) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin (each round times every
    candidate once) so that a burst of load from another process hits all of them alike."""
    per_call = {}
    for key, fn in calls.items():  # warm up, and size each candidate's batch of calls
        fn()
        t0 = time.perf_counter()
        fn()
        per_call[key] = max(time.perf_counter() - t0, 1e-7)
    slot = budget_s / rounds
    number = {k: max(1, min(2000, int(slot / t))) for k, t in per_call.items()}
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for key, fn in calls.items():
            t0 = time.perf_counter()
            for _ in range(number[key]):
                fn()
            samples[key].append((time.perf_counter() - t0) / number[key])
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def _threads(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


def pick(times: dict[str, float]) -> str:
    """The leanest candidate (fewest threads) within ``MARGIN`` of the fastest; then the fastest."""
    fastest = min(times.values())
    close = [k for k, t in times.items() if t <= fastest * MARGIN]
    return min(close, key=lambda k: (_threads(k), times[k]))


def tune(bundle: Bundle, artifact: Artifact, *, profile_name: Optional[str] = None,
         backends: Optional[Sequence[str]] = None, max_threads: Optional[int] = None,
         row_counts: Sequence[int] = ROW_COUNTS, budget_s: float = 0.3) -> dict[str, Any]:
    """Measure every candidate at every row count; write and return the routing table.

    Candidates are every available backend that runs the artifact's format (any registered
    backend takes part), onnxruntime at each thread count up to the profile's cores (never more
    than this machine has); each is proven on the golden rows first.
    """
    from .model import Model

    blob = bundle.read_artifact(artifact)
    names = [b for b in (backends or available_backends()) if b in backend_names()
             and artifact.format in get_backend(b).formats and get_backend(b).is_available()
             and not getattr(get_backend(b), "async_only", False)]
    outputs = list(artifact.outputs.values())
    engines: dict[str, Backend] = {}
    for name in names:
        # only onnxruntime takes a thread count; other engines compete once, single-threaded
        for threads in thread_options(max_threads) if name == "onnxruntime" else [1]:
            try:
                engine = get_backend(name)(blob, artifact, BackendOptions(threads=threads))
                Model(bundle, engine, artifact).check_golden()
            except Exception:  # noqa: BLE001 - a candidate that cannot run simply does not compete
                continue
            engines[f"{name}:{threads}"] = engine
    timings: dict[str, dict[str, float]] = {k: {} for k in engines}
    try:
        for n in row_counts:
            x = _rows(bundle, n, artifact.input_dtype)
            calls = {k: (lambda x=x, e=e: e.run(x, outputs)) for k, e in engines.items()}
            for key, t in _interleaved(calls, budget_s * len(calls)).items():
                timings[key][str(n)] = t
    finally:
        for engine in engines.values():
            engine.close()
    best = {str(n): pick({k: v[str(n)] for k, v in timings.items()}) for n in row_counts} if timings else {}
    table = {"schema": SCHEMA, "artifact": artifact.sha256, "profile": profile_name,
             "row_counts": list(row_counts), "timings_s": timings, "best": best,
             "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(cache_path(artifact, profile_name), table)
    return table


def cached(artifact: Artifact, profile_name: Optional[str]) -> Optional[dict[str, Any]]:
    path = cache_path(artifact, profile_name)
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if table.get("schema") != SCHEMA or table.get("artifact") != artifact.sha256 or not table.get("best"):
        return None
    return table


def routed(bundle: Bundle, artifact: Artifact, table: dict[str, Any]) -> RoutedBackend:
    """Build the engines the table chose, each proven on the golden rows."""
    from .model import Model

    counts = [int(n) for n in table["row_counts"]]
    choice = [table["best"][str(n)] for n in counts]
    blob = bundle.read_artifact(artifact)
    engines: dict[str, Backend] = {}
    for key in dict.fromkeys(choice):
        name, threads = key.rsplit(":", 1)
        engine = get_backend(name)(blob, artifact, BackendOptions(threads=int(threads)))
        Model(bundle, engine, artifact).check_golden()
        engines[key] = engine
    # a call of n rows goes to the choice for the nearest measured count (geometric midpoints)
    routes = []
    for i, n in enumerate(counts):
        limit = int((n * counts[i + 1]) ** 0.5) if i + 1 < len(counts) else 2**62
        routes.append((limit, engines[choice[i]]))
    return RoutedBackend(routes, artifact, table)
