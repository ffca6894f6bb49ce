"""Row-count routing for ``backend="auto"``: the fastest engine for one row is rarely the
fastest for ten thousand (one-thread onnxruntime wins single rows by far; at 10k rows more
threads, or another engine, can win). ``tune`` measures every (backend, threads) candidate at a
few row counts, once per bundle and device profile, and caches the verdict; ``load`` then wraps
the chosen engines in a :class:`RoutedBackend` that dispatches each call on its row count.

Candidates: every backend that runs the bundle's ONNX artifact, and backends of the bundle's
other formats at the same precision (LiteRT on the ``.tflite`` twin) through :class:`ViaArtifact`,
which answers in the ONNX artifact's tensor names. Each candidate is proven on the golden rows
(through that adapter) before it competes and again before it is used.
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
        n = (next(iter(x.values())) if type(x) is dict else x).shape[0]  # named inputs: a dict
        if n == 1:
            return self._one.run(x, outputs)
        for limit, engine in self._routes:
            if n <= limit:
                return engine.run(x, outputs)
        return self._routes[-1][1].run(x, outputs)

    def close(self) -> None:
        for _, engine in self._routes:
            engine.close()


class ViaArtifact(Backend):
    """An engine of *another* artifact of the same bundle (e.g. LiteRT on the ``.tflite`` twin of
    the ``.onnx``) answering in the primary artifact's tensor names, so one ``Model`` can route
    between formats. Roles map by name; an index-encoded label is turned into the class value the
    primary artifact would give. Every such route is proven on the golden rows *through* this
    adapter before it is used."""

    def __init__(self, engine: Backend, primary: Artifact, own: Artifact, classes: Optional[Sequence[Any]]):
        # not Backend.__init__: the wrapped engine already holds the model
        self.artifact = primary
        self.options = engine.options
        self.name = engine.name
        self._engine = engine
        self._names = {primary.outputs[r]: own.outputs[r] for r in primary.outputs}
        self._dtype = own.input_dtype
        index = "index"
        own_index = own.extra.get("label_encoding") == index
        primary_index = primary.extra.get("label_encoding") == index
        self._label = primary.outputs.get("label")
        self._classes = None
        if own_index and not primary_index and classes is not None:
            import numpy as np

            self._classes = np.asarray(classes)

    @staticmethod
    def compatible(primary: Artifact, own: Artifact, classes: Optional[Sequence[Any]]) -> bool:
        if not all(r in own.outputs for r in primary.outputs):
            return False
        own_index = own.extra.get("label_encoding") == "index"
        primary_index = primary.extra.get("label_encoding") == "index"
        if "label" in primary.outputs and own_index != primary_index:
            return own_index and classes is not None  # index -> class value is a lookup
        return True

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        if str(x.dtype) != self._dtype:
            x = x.astype(self._dtype)
        res = self._engine.run(x, [self._names[o] for o in outputs])
        if self._classes is not None and self._label in outputs:
            i = list(outputs).index(self._label)
            res[i] = self._classes[res[i].astype("int64").ravel()]
        return res

    def close(self) -> None:
        self._engine.close()


def _candidates(bundle: Bundle, artifact: Artifact, backends: Optional[Sequence[str]]
                ) -> list[tuple[str, Artifact]]:
    """(backend, artifact) pairs that may compete: the primary artifact on every backend of its
    format, and same-precision artifacts of other formats whose outputs map onto the primary's."""
    out = []
    classes = bundle.manifest.classes
    for b in backends or available_backends():
        if b not in backend_names():
            continue
        cls = get_backend(b)
        if not cls.is_available() or getattr(cls, "async_only", False):
            continue
        if artifact.format in cls.formats:
            out.append((b, artifact))
            continue
        own = bundle.artifact_for(cls.formats, artifact.precision)
        if own is not None and ViaArtifact.compatible(artifact, own, classes):
            out.append((b, own))
    return out


def _engine(bundle: Bundle, name: str, threads: int, primary: Artifact, own: Artifact) -> Backend:
    engine = get_backend(name)(bundle.read_artifact(own), own, BackendOptions(threads=threads))
    if own is not primary:
        engine = ViaArtifact(engine, primary, own, bundle.manifest.classes)
    return engine


def _rows(bundle: Bundle, n: int, dtype: str, artifact: Optional[Artifact] = None) -> Any:
    """``n`` rows to time with. Drawn from the manifest's training-data histograms when it has
    them: the golden rows tiled would replay the same few tree paths, which the CPU's branch
    predictor and caches learn, so tree ensembles would look several times faster than on real
    data and the tuner would pick wrongly. An artifact with named (string) inputs gets its
    golden rows tiled, fed as the runtime feeds them."""
    import numpy as np

    if artifact is not None and artifact.inputs:
        from .inputs.arrays import FeedAdapter

        golden = (bundle.manifest.golden or {}).get("inputs") or []
        return FeedAdapter(bundle.manifest.features, artifact.inputs)(
            [golden[i % len(golden)] for i in range(n)])

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

    outputs = list(artifact.outputs.values())
    engines: dict[str, Backend] = {}
    sources: dict[str, str] = {}
    for name, own in _candidates(bundle, artifact, backends):
        # only onnxruntime takes a thread count; other engines compete once, single-threaded
        for threads in thread_options(max_threads) if name == "onnxruntime" else [1]:
            try:
                engine = _engine(bundle, name, threads, artifact, own)
                Model(bundle, engine, artifact).check_golden()  # through the adapter, if any
            except Exception:  # noqa: BLE001 - a candidate that cannot run simply does not compete
                continue
            engines[f"{name}:{threads}"] = engine
            sources[f"{name}:{threads}"] = own.path
    timings: dict[str, dict[str, float]] = {k: {} for k in engines}
    try:
        for n in row_counts:
            x = _rows(bundle, n, artifact.input_dtype, artifact)
            calls = {k: (lambda x=x, e=e: e.run(x, outputs)) for k, e in engines.items()}
            for key, t in _interleaved(calls, budget_s * len(calls)).items():
                timings[key][str(n)] = t
    finally:
        for engine in engines.values():
            engine.close()
    best = {str(n): pick({k: v[str(n)] for k, v in timings.items()}) for n in row_counts} if timings else {}
    table = {"schema": SCHEMA, "artifact": artifact.sha256, "profile": profile_name,
             "row_counts": list(row_counts), "timings_s": timings, "best": best, "artifacts": sources,
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
    paths = table.get("artifacts") or {}
    by_path = {a.path: a for a in bundle.manifest.artifacts}
    engines: dict[str, Backend] = {}
    for key in dict.fromkeys(choice):
        name, threads = key.rsplit(":", 1)
        own = by_path.get(paths.get(key, artifact.path), artifact)
        engine = _engine(bundle, name, int(threads), artifact, own)
        Model(bundle, engine, artifact).check_golden()
        engines[key] = engine
    # a call of n rows goes to the choice for the nearest measured count (geometric midpoints)
    routes = []
    for i, n in enumerate(counts):
        limit = int((n * counts[i + 1]) ** 0.5) if i + 1 < len(counts) else 2**62
        routes.append((limit, engines[choice[i]]))
    return RoutedBackend(routes, artifact, table)
