"""Row-count routing for ``backend="auto"``: the fastest engine for one row is rarely the
fastest for ten thousand (LiteRT or compiled code win single rows of dense models; at 10k rows
more threads, or another engine, win). Three ways to a routing table, all sending each call
to an engine chosen for its row count through a :class:`RoutedBackend`:

- the **rule** (:data:`RULE`, measured on the project's benchmark machine): an order of
  preference per model family and row count; free, used when nothing is measured;
- the **first-load measurement** (:func:`measure`): on the first ``load`` of a bundle on a
  machine, the rule's few best candidates per row count timed on a bounded number of calls and
  rows (at most :data:`MEASURE_MAX_CALLS` calls, :data:`MEASURE_MAX_ROWS` rows, ~200 ms) and the
  verdict cached per bundle digest, machine and profile; off with ``auto_measure = false`` in the
  device profile or ``EDGERT_AUTO_MEASURE=0``;
- full tuning (:func:`tune`, ``load(tune=True)`` / ``edgert bench --tune``): every candidate
  at every thread count and row count, longer.

A batch route whose runner-up came within a tie of the winner keeps both engines and serves the
faster on live calls (:mod:`edge_runtime.routing_live`): the order of two engines can flip with
the machine's state.

Candidates come from :func:`edge_runtime.backends.candidates`: every backend that runs the
bundle's primary artifact, and backends of the bundle's other formats at the same precision (LiteRT
on the ``.tflite`` twin, a compiled artifact for this machine) through :class:`ViaArtifact`, which
answers in the primary artifact's tensor names. Every engine is proven on the golden rows (through
that adapter) before it competes and again before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .backends import candidates, get_backend
from .backends.base import Backend, BackendOptions
from .bundle import Artifact, Bundle
from .errors import IntegrityError
from .fsutil import atomic_write_json
from .outputs.plan import OutputPlan, index_encoded
from .paths import user_dir
from .routing_live import LIVE_FROM, LiveRoute, runner_up
from .sampling import timing_rows

if TYPE_CHECKING:
    from .profiles import DeviceProfile

ROW_COUNTS = (1, 32, 1024, 10_000)
SCHEMA = "edgert-routing/2"
#: the environment switch for the first-load measurement ("0", "false", "no", "off": rule only)
MEASURE_ENV = "EDGERT_AUTO_MEASURE"


def cache_dir() -> Path:
    return user_dir("cache", "EDGERT_CACHE_DIR")


def machine_id() -> str:
    """A short fingerprint of what makes timings differ between machines: the CPU (model, arch,
    core count), Python and this runtime's version (engines change with it)."""
    from ._version import __version__

    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    text = "|".join([platform.machine(), cpu or platform.processor(), str(os.cpu_count()),
                     platform.python_version(), __version__])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def bundle_digest(bundle: Bundle) -> str:
    """One digest of every artifact the routes may use (the table names their paths)."""
    text = "|".join(sorted(f"{a.path}={a.sha256}" for a in bundle.manifest.artifacts))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(bundle: Bundle, profile_name: Optional[str]) -> Path:
    return (cache_dir() / "routing"
            / f"{bundle_digest(bundle)[:20]}-{machine_id()}-{profile_name or 'default'}.json")


def thread_options(max_threads: Optional[int] = None) -> list[int]:
    """The thread counts a threaded engine is tried at (see :meth:`Backend.thread_counts`)."""
    return get_backend("onnxruntime").thread_counts(max_threads)


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
        self._first_limit, self._one = self._routes[0]
        # what info, metrics and errors name: the engine when every route runs the same one (at
        # different thread counts), else "auto"
        names = {engine.name for _, engine in self._routes}
        self.name = names.pop() if len(names) == 1 else "auto"  # type: ignore[misc]

    @property
    def routes(self) -> list[tuple[int, Backend]]:
        """(largest row count, engine) per route, ascending; the last takes any larger call."""
        return list(self._routes)

    def _route(self, rows: int) -> Backend:
        if rows <= self._first_limit:
            return self._one
        for limit, engine in self._routes:
            if rows <= limit:
                return engine
        return self._routes[-1][1]

    def engine_for(self, rows: int, outputs: Sequence[str] = ()) -> Backend:
        return self._route(rows).engine_for(rows, outputs)

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        n = (next(iter(x.values())) if type(x) is dict else x).shape[0]  # named inputs: a dict
        return (self._one if n == 1 else self._route(n)).run(x, outputs)

    def close(self) -> None:
        engines = {id(x): x for _, e in self._routes for x in (e.engines if isinstance(e, LiveRoute) else (e,))}
        for engine in engines.values():
            engine.close()


class ViaArtifact(Backend):
    """An engine of *another* artifact of the same bundle (e.g. LiteRT on the ``.tflite`` twin of
    the ``.onnx``) answering in the primary artifact's tensor names, so one ``Model`` can route
    between formats. Roles map by name; labels are turned into what the primary artifact would
    give (an index into the classes, or the class value) where the two encode them differently.
    Every such route is proven on the golden rows *through* this adapter before it is used."""

    def __init__(self, engine: Backend, primary: Artifact, own: Artifact, classes: Optional[Sequence[Any]]):
        # not Backend.__init__: the wrapped engine already holds the model
        self.artifact = primary
        self.options = engine.options
        self.name = engine.name  # type: ignore[misc]  # an adapter takes its engine's name
        self._engine = engine
        self._names = {primary.outputs[r]: own.outputs[r] for r in primary.outputs}
        self._same_names = all(a == b for a, b in self._names.items())  # the converter's usual case
        self._same_dtype = str(primary.input_dtype) == str(own.input_dtype)
        import numpy as np

        # a dtype object, compared in C: str(x.dtype) costs ~1 µs per call in numpy 2, a third
        # of a one-row LiteRT call, and made LiteRT lose routes it should win
        self._dtype = np.dtype(own.input_dtype)
        self._label = primary.outputs.get("label")
        # labels encoded differently by the two artifacts: the own artifact's index labels become
        # class values (its class lookup), or its class values become indices (the primary's
        # encoding), so the adapter answers what the primary artifact would
        self._relabel: Optional[Callable[[Any], Any]] = None
        if index_encoded(own) != index_encoded(primary) and classes is not None:
            from .outputs.arrays import ArrayDecoder

            decoder = ArrayDecoder(OutputPlan(own), classes)
            self._relabel = decoder.labels if index_encoded(own) else decoder.index_of

    @staticmethod
    def compatible(primary: Artifact, own: Artifact, classes: Optional[Sequence[Any]]) -> bool:
        if not all(r in own.outputs for r in primary.outputs):
            return False
        if "label" in primary.outputs and index_encoded(own) != index_encoded(primary):
            return classes is not None  # index <-> class value is a lookup either way
        return True

    def engine_for(self, rows: int, outputs: Sequence[str] = ()) -> Backend:
        """The wrapped engine when it would answer ``outputs`` exactly as this adapter does (same
        tensor names, same input dtype, no label to map), so ``Model`` can skip this layer."""
        if self._same_names and self._same_dtype and not (self._relabel is not None and self._label in outputs):
            return self._engine.engine_for(rows, outputs)
        return self

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        if x.dtype != self._dtype:
            x = x.astype(self._dtype)
        res = self._engine.run(x, outputs if self._same_names else [self._names[o] for o in outputs])
        if self._relabel is not None and self._label is not None and self._label in outputs:
            i = list(outputs).index(self._label)
            res[i] = self._relabel(res[i])
        return res

    def close(self) -> None:
        self._engine.close()


def route_candidates(bundle: Bundle, artifact: Artifact, profile: Optional[DeviceProfile] = None,
                     backends: Optional[Sequence[str]] = None) -> list[tuple[type[Backend], Artifact]]:
    """(backend, artifact) pairs that may compete, from :func:`backends.candidates` at the
    primary artifact's precision: the primary artifact on every backend of its format, and
    artifacts of other formats whose outputs map onto the primary's."""
    classes = bundle.manifest.classes
    out = []
    for c in candidates(bundle, profile, artifact.precision,
                        backends=backends if backends is not None else None):
        own = artifact if artifact.format in c.backend.formats and c.backend.accepts(artifact) else c.artifact
        if own is artifact or ViaArtifact.compatible(artifact, own, classes):
            out.append((c.backend, own))
    return out


def _engine(bundle: Bundle, name: str, threads: int, primary: Artifact, own: Artifact,
            optimization: str = "all") -> Backend:
    trust = {"native_trust": bundle.native_trust} if bundle.native_trust else {}
    engine = get_backend(name)(bundle.read_artifact(own), own,
                               BackendOptions(threads=threads, optimization=optimization, extra=trust))
    if own is not primary:
        engine = ViaArtifact(engine, primary, own, bundle.manifest.classes)
    return engine


def proven_engine(bundle: Bundle, name: str, threads: int, primary: Artifact, own: Artifact,
                  optimization: str = "all") -> Optional[Backend]:
    """The engine, proven on the golden rows (through the adapter, if any); None when it cannot
    be built or gets a golden row wrong: such a route is never used."""
    from .errors import IntegrityError
    from .model import Model

    try:
        engine = _engine(bundle, name, threads, primary, own, optimization)
    except IntegrityError:
        raise  # a tampered artifact is an error, not a candidate that cannot run
    except Exception:  # noqa: BLE001 - a candidate that cannot run simply does not compete
        return None
    try:
        Model(bundle, engine, primary).check_golden()
    except Exception:  # noqa: BLE001 - wrong answers: never a route
        engine.close()
        return None
    return engine


#: a candidate with more threads must beat a leaner one by this much to be routed to: on a shared
#: device extra threads only pay off when the gain is clear, and a near-tie is measurement noise
MARGIN = 1.20


def _interleaved(calls: dict[str, Any], budget_s: float, rounds: int = 7) -> dict[str, float]:
    """Seconds per call of each candidate in its fastest round, measured round-robin (each round
    times every candidate once) so that a burst of load from another process hits all of them
    alike (see :func:`fastest_rounds`)."""
    per_call = {}
    for key, fn in calls.items():  # warm up, and size each candidate's batch of calls
        fn()
        t0 = time.perf_counter()
        fn()
        per_call[key] = max(time.perf_counter() - t0, 1e-7)
    slot = budget_s / rounds
    number = {k: max(1, min(2000, int(slot / t))) for k, t in per_call.items()}
    return fastest_rounds(calls, number, rounds)


def round_order(keys: list[str], r: int) -> list[str]:
    """The order of round ``r``: round r starts with candidate r (cyclically), and every other
    round runs backwards. A threaded engine's spinning threads slow whatever runs right after it,
    and rotation alone keeps the cyclic order (each candidate would always follow the same one);
    backward rounds give each its other neighbour as predecessor."""
    if not keys:
        return []
    k = (r + r % 2) % len(keys)  # a backward round ends where a forward one would start
    order = keys[k:] + keys[:k]
    return order[::-1] if r % 2 else order


def fastest_rounds(calls: dict[str, Callable[[], Any]], number: dict[str, int], rounds: int,
                   stop: Optional[Callable[[], bool]] = None) -> dict[str, float]:
    """Seconds per call of each candidate in its fastest round. On a shared device other work only
    ever adds time, so the fastest round is the least disturbed estimate of what each engine
    costs; a median of a few rounds still moves by 10-20 % between runs on a busy 2-core machine,
    more than the gaps routing has to resolve. ``stop`` (asked before every round after the
    first) ends the timing early: a budget kept even when calls turn out slower than foreseen."""
    samples: dict[str, list[float]] = {k: [] for k in calls}
    keys = list(calls)
    for r in range(rounds if keys else 0):
        if r and stop is not None and stop():
            break
        for key in round_order(keys, r):
            fn = calls[key]
            t0 = time.perf_counter()
            for _ in range(number[key]):
                fn()
            samples[key].append((time.perf_counter() - t0) / number[key])
    return {k: min(v) for k, v in samples.items()}


def _threads(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


def pick(times: dict[str, float], margin: float = MARGIN) -> str:
    """The leanest candidate (fewest threads) within ``margin`` of the fastest; then the fastest."""
    fastest = min(times.values())
    close = [k for k, t in times.items() if t <= fastest * margin]
    return min(close, key=lambda k: (_threads(k), times[k]))


def _max_threads(profile: Optional[DeviceProfile]) -> Optional[int]:
    return profile.cores if profile is not None else None


def route_table(bundle: Bundle, artifact: Artifact, profile: Optional[DeviceProfile], method: str,
                row_counts: Sequence[int], timings: dict[str, dict[str, float]], best: dict[str, str],
                sources: dict[str, str], runner_up: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The cached routing decision: which engine per row count (and, for batch routes with a
    near-tie, the runner-up watched on live calls: :mod:`edge_runtime.routing_live`), with the
    timings behind it and what it is valid for (bundle, artifact, machine, profile)."""
    return {"schema": SCHEMA, "bundle": bundle_digest(bundle), "artifact": artifact.sha256,
            "machine": machine_id(), "profile": profile.name if profile else None, "method": method,
            "row_counts": list(row_counts), "timings_s": timings, "best": best,
            "runner_up": dict(runner_up or {}), "artifacts": sources,
            "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def tune(bundle: Bundle, artifact: Artifact, *, profile: Optional[DeviceProfile] = None,
         backends: Optional[Sequence[str]] = None, row_counts: Sequence[int] = ROW_COUNTS,
         budget_s: float = 0.3) -> dict[str, Any]:
    """Measure every candidate at every row count; write and return the routing table.

    Candidates are every available backend that runs the artifact (any registered backend takes
    part), threaded engines at each thread count up to the profile's cores (never more than this
    machine has); each is proven on the golden rows first. ``backends`` defaults to the profile's.
    """
    outputs = list(artifact.outputs.values())
    engines: dict[str, Backend] = {}
    sources: dict[str, str] = {}
    opt = profile.optimization if profile else "all"
    for cls, own in route_candidates(bundle, artifact, profile, backends):
        for threads in cls.thread_counts(_max_threads(profile)):
            engine = proven_engine(bundle, cls.name, threads, artifact, own, opt)
            if engine is not None:
                engines[f"{cls.name}:{threads}"] = engine
                sources[f"{cls.name}:{threads}"] = own.path
    timings: dict[str, dict[str, float]] = {k: {} for k in engines}
    try:
        for n in row_counts:
            x = timing_rows(bundle, n, artifact.input_dtype, artifact)
            calls = {k: (lambda x=x, e=e: e.run(x, outputs)) for k, e in engines.items()}
            for key, t in _interleaved(calls, budget_s * len(calls)).items():
                timings[key][str(n)] = t
    finally:
        for engine in engines.values():
            engine.close()
    best = {str(n): pick({k: v[str(n)] for k, v in timings.items()}) for n in row_counts} if timings else {}
    runners = {str(n): r for n in row_counts if n >= LIVE_FROM and str(n) in best
               and (r := runner_up({k: v[str(n)] for k, v in timings.items()}, best[str(n)]))}
    table = route_table(bundle, artifact, profile, "tuned", row_counts, timings, best, sources, runners)
    atomic_write_json(cache_path(bundle, profile.name if profile else None), table)
    return table


def cached(bundle: Bundle, artifact: Artifact, profile: Optional[DeviceProfile]) -> Optional[dict[str, Any]]:
    """The table cached for this bundle, machine and profile, or None (absent, stale, foreign)."""
    path = cache_path(bundle, profile.name if profile else None)
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (not isinstance(table, dict) or table.get("schema") != SCHEMA or table.get("artifact") != artifact.sha256
            or table.get("bundle") != bundle_digest(bundle) or not table.get("best")):
        return None
    return table


def routed(bundle: Bundle, artifact: Artifact, table: dict[str, Any],
           engines: Optional[dict[str, Backend]] = None, optimization: str = "all") -> RoutedBackend:
    """Build the engines the table chose, each proven on the golden rows (``engines``: already
    proven ones to reuse; those the table does not choose are closed).

    Raises:
        GoldenMismatchError: a chosen engine gets a golden row wrong (the table is not used).
    """
    from .model import Model

    engines = dict(engines or {})
    counts = [int(n) for n in table["row_counts"]]
    choice = [table["best"][str(n)] for n in counts]
    runners = {int(n): k for n, k in (table.get("runner_up") or {}).items()}
    paths = table.get("artifacts") or {}
    by_path = {a.path: a for a in bundle.manifest.artifacts}
    chosen: dict[str, Backend] = {}

    def build(key: str) -> Backend:
        engine = engines.pop(key, None)
        if engine is None:  # not proven on this load yet
            name, threads = key.rsplit(":", 1)
            own = by_path.get(paths.get(key, artifact.path), artifact)
            engine = _engine(bundle, name, int(threads), artifact, own, optimization)
            chosen[key] = engine
            Model(bundle, engine, artifact).check_golden()
        chosen[key] = engine
        return engine

    try:
        for key in dict.fromkeys(choice):
            build(key)
        for key in dict.fromkeys(k for n, k in runners.items() if n in counts and k not in chosen):
            try:
                build(key)
            except IntegrityError:
                raise
            except Exception:  # noqa: BLE001 - a runner-up that cannot run is simply not watched
                runners = {n: k for n, k in runners.items() if k != key}
                failed = chosen.pop(key, None)
                if failed is not None:
                    failed.close()
    except BaseException:
        for engine in chosen.values():
            engine.close()
        raise
    finally:
        for engine in engines.values():
            engine.close()
    # a call of n rows goes to the choice for the nearest measured count (geometric midpoints)
    routes: list[tuple[int, Backend]] = []
    for i, n in enumerate(counts):
        limit = int((n * counts[i + 1]) ** 0.5) if i + 1 < len(counts) else 2**62
        engine = chosen[choice[i]]
        other = runners.get(n)
        if other is not None and other != choice[i] and other in chosen:
            engine = LiveRoute(engine, chosen[other])
        routes.append((limit, engine))
    return RoutedBackend(routes, artifact, table)
