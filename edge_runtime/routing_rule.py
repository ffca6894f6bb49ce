"""``auto`` without a tuning step: a rule of thumb measured on the project's benchmark machine,
refined by a short measurement on the first load of a bundle on this machine (cached), so that
``load(bundle)`` routes each call to the engine expected fastest for its row count.

The measurement is bounded by counts, not only by time: at most :data:`MAX_CALLS` engine calls
and :data:`MAX_ROWS` rows in all, over the rule's :data:`SHORTLIST` best candidates per row
count (numpy is last where the rule does not name it), :data:`TIMED` of them at most. Time
bounds it too, on a slow or busy device: candidates beyond the rule's own pick are built only
while their build fits in :data:`BUILD_SHARE` of :data:`BUDGET_S`, a candidate far slower on
few rows is not run on many, the least promising candidates are left out of a row count whose
expected cost (warm-up included) would cross :data:`BUDGET_S`, and a row count with no time for
two keeps the rule's verdict. Every engine is proven on the golden rows before it is timed, and a
route whose engine fails them is never used.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .routing import MEASURE_ENV, ROW_COUNTS, cache_path, fastest_rounds, proven_engine, route_candidates, route_table
from .routing_live import LIVE_FROM, runner_up
from .sampling import timing_rows

if TYPE_CHECKING:
    from .backends.base import Backend
    from .bundle import Artifact, Bundle
    from .profiles import DeviceProfile

#: Preference per model family and row count, measured with ``benchmarks/suite.py`` (breast_cancer,
#: 2-core x86_64, see benchmarks/RESULTS.md): for one row of a dense model (linear, MLP) compiled
#: code is fastest (~1.1 µs per engine call against ~2 µs for LiteRT, ~4 µs onnxruntime); from a
#: few rows on LiteRT's vectorised kernels win (32 rows of the logistic pipeline 4.2 µs vs 5.3 µs
#: native; the MLP 6.7 µs vs 90 µs: our C is a plain loop; 10k rows 0.46 vs 0.73 ms); trees run
#: 10-40× faster in onnxruntime than in LiteRT or numpy, compiled code faster again; large
#: batches of trees want every core. "all" is the most threads a threaded engine may use here.
#: numpy's matrix product (BLAS) ties LiteRT on 10k rows of the logistic pipeline (0.30 ms both),
#: so it competes there. Backends the rule does not name rank after the named ones, numpy last.
#: Dense code compiled at -O3 (vectorised, AVX2 where the CPU has it) is the fastest engine for
#: the logistic pipeline at every row count (1,024 rows 0.048 ms vs LiteRT 0.052; 10k on two
#: threads 0.34 vs numpy 0.36, LiteRT 0.45) but 2.5x behind LiteRT on the MLP's batches: native
#: competes at every row count, and what ran on fewer rows picks who is timed on more (TIMED).
RULE: dict[str, dict[int, tuple[str, ...]]] = {
    "dense": {1: ("native:1", "litert:1", "onnxruntime:1"),
              32: ("litert:1", "native:1", "onnxruntime:1"),
              1024: ("litert:1", "native:all", "onnxruntime:all", "onnxruntime:1"),
              10_000: ("litert:1", "native:all", "onnxruntime:all", "numpy:1", "onnxruntime:1")},
    "trees": {1: ("native:1", "onnxruntime:1", "litert:1"),
              32: ("native:1", "onnxruntime:1", "litert:1"),
              1024: ("native:all", "onnxruntime:all", "onnxruntime:1", "litert:1"),
              10_000: ("native:all", "native:1", "onnxruntime:all", "onnxruntime:1", "litert:1")},
}
#: A linear model (the final step of its pipeline) is a dense one but for 10,000 rows, where
#: its compiled code on every core leads: the logistic pipeline 0.30-0.37 ms against LiteRT 0.58
#: and numpy 0.53 on an Intel 2-vCPU VM (AMD: 0.34 against 0.45 and 0.36). Ranked first, it is
#: not overturned by a first load whose other core was busy (an app's BLAS threads spin ~100 ms
#: after a call): one such measurement put it level with LiteRT, which then served 1.3x slower.
RULE["linear"] = {**RULE["dense"],
                  10_000: ("native:all", "litert:1", "numpy:1", "onnxruntime:all", "onnxruntime:1")}
#: estimator names (the manifest's provenance) that make a model a tree ensemble for the rule
TREE_WORDS = ("Tree", "Forest", "Boosting", "XGB", "LGBM", "CatBoost")
#: ... and, as a pipeline's last step, a linear model
LINEAR_WORDS = ("Logistic", "Linear", "Ridge", "SGD", "Lasso", "ElasticNet", "Perceptron",
                "PassiveAggressive", "Lars", "Huber")
#: per model family, how many of the rule's best candidates are built for each row count. A
#: dense model's third engine on 1 or 32 rows (onnxruntime, with LiteRT and native ahead) was
#: 2-5x behind the fastest in every suite run: timing it there only spent the budget
SHORTLIST = {"dense": {1: 2, 32: 2, 1024: 3, 10_000: 4},
             "trees": {1: 3, 32: 3, 1024: 2, 10_000: 3}}
SHORTLIST["linear"] = SHORTLIST["dense"]
#: at most this many of a row count's shortlist are timed: the rule's pick, then those fastest
#: on fewer rows (one not run yet counts as fast: it may be)
TIMED = 3
#: per model family, row counts timed on first load -> the row count whose verdict each gives.
#: A tree model's 10,000 rows are judged on 4,096, a batch a threaded engine splits (native from
#: 2,048 rows), at a fraction of the cost (a forest's 10k call takes ~8 ms on the sampled rows).
#: Judged on 1,024 rows (where native runs one thread whatever its setting), "every core" could
#: not show its cost and lost to one thread at 10,000 rows on a busy machine (1.2-1.6x). A dense
#: model's 10k call costs 0.4-2 ms, and its engines change order between 4,096 and 10,000 rows
#: (numpy's BLAS product tied LiteRT at 4,096 rows of the logistic pipeline, won by 10-20 % at
#: 10,000): judged on 10,000
MEASURED = {"trees": {1: 1, 32: 32, 1024: 1024, 4096: 10_000},
            "dense": {1: 1, 32: 32, 1024: 1024, 10_000: 10_000}}
MEASURED["linear"] = MEASURED["dense"]
MAX_CALLS = 1500
MAX_ROWS = 400_000
BUDGET_S = 0.2
#: of :data:`BUDGET_S`, what timing leaves for what follows it (the route table, the cache
#: write) and for a last round that runs a little long
FINISH_S = 0.015
#: Before a row count of :data:`SETTLED_FROM` rows or more (where a threaded engine splits the
#: batch) is timed, the measurement waits, a :data:`QUIET_WINDOW_S` at a time, while other threads
#: of this process use more than :data:`QUIET_SHARE` of a core: BLAS threads spin for ~130 ms after
#: the app's last matrix product, and timed then, a threaded engine lost its second core and its
#: route (a linear model's 10k rows went to one thread or LiteRT in 5 of 10 loads that followed a
#: product; none after a 150 ms pause). Without time to wait, the rule's verdict stands and the
#: table is not cached: the next load measures again
SETTLED_FROM = 4096
QUIET_WINDOW_S = 0.005
QUIET_SHARE = 0.3


def other_threads_cpu_s() -> float:
    """CPU seconds this process's other threads have used (the app's, BLAS's, onnxruntime's)."""
    return time.process_time() - time.thread_time()


#: what warming a candidate up on a new row count costs, in steady calls: its first call on a
#: new batch shape allocates (10k rows on a 2-core VM: numpy 7x a steady call, LiteRT 3.7x,
#: onnxruntime 1.3x), its second is timed
WARM_CALLS = 5
#: the clock the budget is kept on (a test replaces it to make a build look slow)
clock: Callable[[], float] = time.perf_counter
#: a round times every candidate once; the fastest of 5 survives four preempted rounds
ROUNDS = 5
#: calls per round per candidate at each measured row count. Three at 1,024 rows: one call
#: (~0.06 ms) right after another engine's was too noisy to split the logistic pipeline's LiteRT
#: from native, 15 % apart on an Intel VM (2 of 12 first loads chose the slower; none with 3)
NUMBER = {1: 50, 32: 10, 1024: 3, 4096: 1, 10_000: 1}


def family(bundle: Bundle) -> str:
    """'trees', 'linear' or 'dense', from the estimator the converter recorded (a hint only:
    the measurement and the golden rows decide)."""
    name = str((bundle.manifest.provenance or {}).get("estimator", ""))
    if any(w in name for w in TREE_WORDS):
        return "trees"
    last = name.rsplit("→", 1)[-1]  # "Pipeline(StandardScaler → LogisticRegression)": the model
    return "linear" if any(w in last for w in LINEAR_WORDS) else "dense"


def measure_enabled(profile: Optional[DeviceProfile]) -> bool:
    """The first-load measurement runs unless the profile says ``auto_measure = false`` or the
    environment ``EDGERT_AUTO_MEASURE`` is 0/false/no/off."""
    if os.environ.get(MEASURE_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    return profile is None or profile.auto_measure


def order(fam: str, n: int, keys: list[str]) -> list[str]:
    """``keys`` ("backend:threads") best first for ``n`` rows of a ``fam`` model, by :data:`RULE`
    (the nearest row count it lists); "all" threads means the most a key offers per backend."""
    table = RULE.get(fam, RULE["dense"])
    near = min(table, key=lambda c: abs(math.log(max(n, 1) / c)))
    prefs = table[near]
    most: dict[str, int] = {}
    for k in keys:
        name, t = k.rsplit(":", 1)
        most[name] = max(most.get(name, 0), int(t))

    def rank(key: str) -> tuple[int, int, str]:
        name, t = key.rsplit(":", 1)
        for i, p in enumerate(prefs):
            pname, pt = p.rsplit(":", 1)
            if pname == name and int(t) == (most[name] if pt == "all" else int(pt)):
                return (0, i, key)
        return (2 if name == "numpy" else 1, int(t), key)

    return sorted(keys, key=rank)


#: how much slower than the fastest measured candidate the rule's favourite may be and still be
#: routed to: the fastest-round estimate (``routing.fastest_rounds``) is steady to a few per cent, and
#: ``auto`` must stay within 10 % of the fastest engine (issue 17), so a wider margin (it was
#: ``routing.MARGIN``, 1.2) kept measurably slower engines on the rule's word
RULE_MARGIN = 1.05


def prefer(ranked: list[str], times: dict[str, float]) -> str:
    """The rule's favourite among the measured candidates within ``RULE_MARGIN`` of the fastest: a
    short measurement overturns the rule on clear evidence, not on noise."""
    fastest = min(times[k] for k in ranked)
    return next(k for k in ranked if times[k] <= fastest * RULE_MARGIN)


#: a candidate whose second call is this many times slower than the fastest one's is not timed
HOPELESS = 4.0
#: a candidate this many times slower than the fastest at a smaller row count is not run at the
#: larger ones: a tree model's LiteRT, 40x slower than native at 32 rows, took 120 of the 200 ms
#: warming up on 4,096 rows. Wider than :data:`HOPELESS`: ratios move with the row count
HOPELESS_AHEAD = 8.0
#: the share of :data:`BUDGET_S` that building and proving the candidates beyond the rule's own
#: pick may take; the rest is left for timing them
BUILD_SHARE = 0.5


def _warm(calls: dict[str, Callable[[], Any]], deadline: float) -> Optional[dict[str, float]]:
    """Each call once to warm up (a new batch shape may allocate), then once timed: seconds;
    None when the deadline passes on the way (a first call on a new shape can cost many times
    a steady one)."""
    for fn in calls.values():
        fn()
        if clock() > deadline:
            return None
    once = {}
    for k, fn in calls.items():
        t0 = clock()
        fn()
        once[k] = max(clock() - t0, 1e-9)
    return once if clock() <= deadline else None


def _keys(bundle: Bundle, artifact: Artifact, profile: Optional[DeviceProfile]
          ) -> dict[str, tuple[str, int, Artifact]]:
    out = {}
    for cls, own in route_candidates(bundle, artifact, profile):
        for t in cls.thread_counts(profile.cores if profile else None):
            out[f"{cls.name}:{t}"] = (cls.name, t, own)
    return out


class _Pool:
    """Engines built and golden-proven on demand, at most once each, with what each backend's
    build cost so far (the guess for the next one of that backend)."""

    def __init__(self, bundle: Bundle, artifact: Artifact, keys: dict[str, tuple[str, int, Artifact]],
                 optimization: str):
        self.bundle, self.artifact, self.keys, self.opt = bundle, artifact, keys, optimization
        self.engines: dict[str, Backend] = {}
        self.bad: set[str] = set()
        self.build_s: dict[str, float] = {}

    def get(self, key: str) -> Optional[Backend]:
        if key in self.engines:
            return self.engines[key]
        if key in self.bad:
            return None
        name, threads, own = self.keys[key]
        t0 = clock()
        engine = proven_engine(self.bundle, name, threads, self.artifact, own, self.opt)
        self.build_s[name] = max(self.build_s.get(name, 0.0), clock() - t0)
        if engine is None:
            self.bad.add(key)
        else:
            self.engines[key] = engine
        return engine

    def affordable(self, key: str, until: float) -> bool:
        """Whether ``key``'s engine is built or should be ready by ``until``: a backend not built
        yet is guessed at the dearest build so far."""
        if key in self.engines or key in self.bad:
            return True
        name = self.keys[key][0]
        guess = self.build_s.get(name, max(self.build_s.values(), default=0.0))
        return clock() + guess <= until

    def first(self, ranked: list[str], k: int, until: Optional[float] = None) -> list[str]:
        """The first ``k`` keys of ``ranked`` whose engine is proven (and, given ``until``,
        whose engine could be built by then)."""
        out: list[str] = []
        for key in ranked:
            if len(out) == k:
                break
            if (until is None or self.affordable(key, until)) and self.get(key) is not None:
                out.append(key)
        return out


def _shortlists(pool: _Pool, ranked: dict[int, list[str]], measure: bool, until: float,
                sizes: dict[int, int]) -> dict[int, list[str]]:
    """Per row count, the rule's pick (what a rule-only load builds), then, when measuring, the
    next candidates up to ``sizes`` (the family's :data:`SHORTLIST`), built best-ranked first across row counts while
    they fit before ``until``: a slow build leaves fewer candidates, never a late load."""
    short = {n: pool.first(ranked[n], 1) for n in ROW_COUNTS}
    if not measure:
        return short
    for depth in range(2, max(sizes.values()) + 1):
        for n in ROW_COUNTS:
            if sizes[n] >= depth and len(short[n]) == depth - 1:
                short[n] += pool.first([k for k in ranked[n] if k not in short[n]], 1, until)
    return short


class _Measurement:
    """The bounded timing of each row count's shortlist, smallest row count first, so what a
    candidate cost on small batches predicts its cost on larger ones."""

    def __init__(self, bundle: Bundle, artifact: Artifact, pool: _Pool, deadline: float, spent: dict[str, int]):
        self.bundle, self.artifact, self.pool, self.deadline, self.spent = bundle, artifact, pool, deadline, spent
        # the call users make most: probabilities where the model has them (predict_proba), else
        # every output; asking for a label the engine must map (LiteRT's index labels) would
        # charge it for work predict_proba never does
        self.outputs = ([artifact.outputs["probabilities"]] if "probabilities" in artifact.outputs
                        else list(artifact.outputs.values()))
        self.timings: dict[str, dict[str, float]] = {}
        #: per row count timed, the candidate within ``routing_live.TIE`` of the verdict's, if any
        self.runners: dict[int, str] = {}
        #: row counts not judged because this process's other threads kept a core busy
        self.busy: list[int] = []
        self.slow: dict[str, float] = {}  # key -> times slower than the fastest, last time it ran
        self.last: dict[str, tuple[int, float]] = {}  # key -> (rows, seconds per call), last time it ran

    def _note(self, n: int, times: dict[str, float]) -> None:
        fastest = min(times.values())
        for k, t in times.items():
            self.slow[k], self.last[k] = t / fastest, (n, t)

    def _call_s(self, ks: list[str], n: int) -> dict[str, float]:
        """Seconds one call of each of ``ks`` is expected to take on ``n`` rows: linear in rows
        from the last time it ran; one not run yet is guessed at the dearest of the others (0
        when none has run: the first, small row counts cost little)."""
        known = {k: self.last[k][1] * n / self.last[k][0] for k in ks if k in self.last}
        guess = max(known.values(), default=0.0)
        return {k: known.get(k, guess) for k in ks}

    def _affordable(self, ks: list[str], n: int, calls: int) -> list[str]:
        """``ks`` less its last candidates (the least promising) until ``calls`` calls of each
        are expected to end before the deadline: on a slow or busy device fewer candidates are
        timed rather than the load made late."""
        cost = self._call_s(ks, n)
        while len(ks) > 1 and clock() + calls * sum(cost[k] for k in ks) > self.deadline:
            ks = ks[:-1]
        return ks

    def verdict(self, n: int, shortlist: list[str]) -> Optional[str]:
        """The fastest of ``shortlist`` on ``n`` rows (the rule's favourite within
        :data:`RULE_MARGIN`), or None when the bounds leave the rule's verdict standing."""
        ks = [k for k in shortlist if self.slow.get(k, 1.0) <= HOPELESS_AHEAD]
        if len(ks) == 1 and len(shortlist) > 1:
            return ks[0]  # the others were hopeless on fewer rows
        ks = ks[:1] + sorted(ks[1:], key=lambda k: self.slow.get(k, 1.0))[:TIMED - 1]
        number = NUMBER[n]
        ks = self._affordable(ks, n, WARM_CALLS + number * ROUNDS)
        if len(ks) < 2 or not self._capped(len(ks) * (number * ROUNDS + 2), n):
            return None
        if n >= SETTLED_FROM and not self._settled(sum(self._call_s(ks, n).values()) * (WARM_CALLS + number * ROUNDS)):
            self.busy.append(n)
            return None
        x = timing_rows(self.bundle, n, self.artifact.input_dtype, self.artifact)
        calls: dict[str, Callable[[], Any]] = {k: functools.partial(self.pool.engines[k].run, x, self.outputs)
                                               for k in ks}
        once = _warm(calls, self.deadline)
        self._count(2 * len(ks), n)
        if once is None:
            return None
        self._note(n, once)
        # a candidate several times slower than the fastest cannot win: not timed further; nor
        # are the least promising ones the time left does not cover
        hopeful = [k for k in calls if self.slow[k] <= HOPELESS]
        calls = {k: calls[k] for k in self._affordable(hopeful, n, number * ROUNDS)}
        if len(calls) == 1:
            return next(iter(calls))
        got = self._timed(calls, n, number)
        ranked = [k for k in shortlist if k in got]  # in the rule's order, for prefer
        choice = prefer(ranked, got)
        pair = (ranked[0], choice)
        if choice != ranked[0]:
            # the rule overturned: the two again, alone, so one disturbed moment (the other core
            # busy while a threaded engine ran) does not decide a verdict that is cached; without
            # the time for it, the rule's favourite stays
            if clock() + 2 * sum(got[k] for k in pair) * number * ROUNDS > self.deadline or not self._capped(
                    2 * number * ROUNDS, n):
                choice = ranked[0]
            else:
                again = self._timed({k: calls[k] for k in pair}, n, number)
                got = {k: min(t, again.get(k, t)) for k, t in got.items()}
                self._note(n, got)
                choice = prefer(ranked, got)
        for k, t in got.items():
            self.timings.setdefault(k, {})[str(n)] = t
        runner = runner_up(got, choice)
        if runner is not None:
            self.runners[n] = runner
        return choice

    def _settled(self, need_s: float) -> bool:
        """Whether this process's other threads leave the cores free (see :data:`SETTLED_FROM`),
        waiting for it while ``need_s`` still fits before the deadline."""
        for _ in range(int(BUDGET_S / QUIET_WINDOW_S)):  # bounded whatever the clock says
            cpu, t0 = other_threads_cpu_s(), clock()
            time.sleep(QUIET_WINDOW_S)
            if other_threads_cpu_s() - cpu <= QUIET_SHARE * max(clock() - t0, QUIET_WINDOW_S):
                return True
            if clock() + QUIET_WINDOW_S + need_s > self.deadline:
                break
        return False

    def _timed(self, calls: dict[str, Callable[[], Any]], n: int, number: int) -> dict[str, float]:
        """Each call's fastest of :data:`ROUNDS` rounds, stopped early at the deadline."""
        got = fastest_rounds(calls, {k: number for k in calls}, ROUNDS, stop=lambda: clock() > self.deadline)
        self._count(len(calls) * number * ROUNDS, n)
        self._note(n, got)
        return got

    def _capped(self, calls: int, n: int) -> bool:
        """Whether ``calls`` more calls of ``n`` rows stay within :data:`MAX_CALLS` and :data:`MAX_ROWS`."""
        return self.spent["calls"] + calls <= MAX_CALLS and self.spent["rows"] + calls * n <= MAX_ROWS

    def _count(self, calls: int, n: int) -> None:
        self.spent["calls"] += calls
        self.spent["rows"] += calls * n


def plan(bundle: Bundle, artifact: Artifact, profile: Optional[DeviceProfile], measure: bool,
         counter: Optional[dict[str, int]] = None) -> tuple[Optional[dict[str, Any]], dict[str, Backend]]:
    """The routing table for a first load (rule, refined by the bounded measurement when
    ``measure``) and the proven engines it built, for :func:`routing.routed` to reuse. ``None``
    when fewer than two engines could compete (nothing to route). ``counter`` receives the calls
    and rows spent on timing (tests count them)."""
    started = clock()
    keys = _keys(bundle, artifact, profile)
    fam = family(bundle)
    pool = _Pool(bundle, artifact, keys, profile.optimization if profile else "all")
    spent = counter if counter is not None else {}
    spent.setdefault("calls", 0)
    spent.setdefault("rows", 0)
    ranked = {n: order(fam, n, list(keys)) for n in ROW_COUNTS}
    short = _shortlists(pool, ranked, measure, started + BUILD_SHARE * BUDGET_S, SHORTLIST.get(fam, SHORTLIST["dense"]))
    if len(pool.engines) < 2:
        for engine in pool.engines.values():
            engine.close()
        return None, {}
    best = {str(n): ks[0] for n, ks in short.items() if ks}
    timings: dict[str, dict[str, float]] = {}
    busy: list[int] = []
    runners: dict[str, str] = {}
    method = "rule"
    if measure:
        method = "measured"
        # engines built and proven count against the budget too
        measurement = _Measurement(bundle, artifact, pool, started + BUDGET_S - FINISH_S, spent)
        for n, verdict in MEASURED[fam].items():
            choice = measurement.verdict(n, short[verdict])
            if choice is not None:
                best[str(verdict)] = choice
                if verdict >= LIVE_FROM and n in measurement.runners:
                    runners[str(verdict)] = measurement.runners[n]
        timings = measurement.timings
        busy = measurement.busy
    sources = {k: keys[k][2].path for k in set(best.values()) | set(runners.values())}
    table = route_table(bundle, artifact, profile, method, ROW_COUNTS, timings, best, sources, runners)
    if measure and busy:
        table["busy"] = busy  # row counts the rule judged: this process kept the cores busy
    return table, pool.engines


def first_load(bundle: Bundle, artifact: Artifact, profile: Optional[DeviceProfile]
               ) -> tuple[Optional[dict[str, Any]], dict[str, Backend]]:
    """:func:`plan` for ``load``: measured and cached when enabled, the rule alone otherwise
    (not cached: it costs nothing to recompute), nor is a measurement that found the cores busy
    with this process's other threads."""
    from .fsutil import atomic_write_json

    measure = measure_enabled(profile)
    table, engines = plan(bundle, artifact, profile, measure)
    if table is not None and measure and not table.get("busy"):
        # a read-only cache only costs the measurement again next time
        with contextlib.suppress(OSError):
            atomic_write_json(cache_path(bundle, profile.name if profile else None), table)
    return table, engines
