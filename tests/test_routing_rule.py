"""``auto`` without tuning: the rule per row count, the bounded first-load measurement (counted
in calls and rows, never timed here), its cache, its off switches, and the golden proof of
every route; ``backends.candidates`` as the one source of candidate engines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import test_routing

import edge_runtime
from edge_runtime import backends, routing, routing_rule
from edge_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge_runtime.bundle import open_bundle

forest = test_routing.bundle  # the same small forest bundle (a fixture), built once per module
pytestmark = pytest.mark.device


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(routing.MEASURE_ENV, raising=False)


KEYS = ["onnxruntime:1", "onnxruntime:2", "litert:1", "numpy:1", "native:1", "native:2", "other:1"]


def test_rule_picks_per_row_count_and_model_family():
    assert routing_rule.order("dense", 1, KEYS)[0] == "native:1"
    assert routing_rule.order("dense", 32, KEYS)[0] == "litert:1"  # vectorised kernels from a few rows on
    dense_big = routing_rule.order("dense", 10_000, KEYS)
    # every core for big batches; compiled code and numpy's BLAS product tie LiteRT on a linear model
    assert dense_big[:4] == ["litert:1", "native:2", "onnxruntime:2", "numpy:1"]
    assert routing_rule.order("trees", 10_000, KEYS)[0] == "native:2"
    plain = [k for k in KEYS if not k.startswith("native")]
    assert routing_rule.order("dense", 1, plain)[:2] == ["litert:1", "onnxruntime:1"]
    assert routing_rule.order("dense", 32, plain)[0] == "litert:1"
    assert routing_rule.order("trees", 1, plain)[0] == "onnxruntime:1"
    assert routing_rule.order("trees", 5000, plain)[0] == "onnxruntime:2"
    assert routing_rule.order("trees", 10_000, ["onnxruntime:1", "onnxruntime:4"])[0] == "onnxruntime:4"
    for fam, n in [("trees", 1), ("trees", 32), ("trees", 1024), ("trees", 10_000), ("dense", 1), ("dense", 32)]:
        ranked = routing_rule.order(fam, n, KEYS)  # numpy where the rule does not name it: last
        assert ranked[-1] == "numpy:1" and ranked.index("other:1") < ranked.index("numpy:1")
    assert routing_rule.order("dense", 1, ["numpy:1"]) == ["numpy:1"]


def test_a_short_measurement_overturns_the_rule_only_on_clear_evidence():
    ranked = ["litert:1", "onnxruntime:1"]
    assert routing_rule.prefer(ranked, {"litert:1": 1.04, "onnxruntime:1": 1.0}) == "litert:1"  # noise
    # 10 % slower is no tie: auto must stay within 1.1x of the fastest engine
    assert routing_rule.prefer(ranked, {"litert:1": 1.1, "onnxruntime:1": 1.0}) == "onnxruntime:1"
    assert routing_rule.prefer(ranked, {"litert:1": 1.5, "onnxruntime:1": 1.0}) == "onnxruntime:1"


def test_family_comes_from_the_recorded_estimator(forest):
    from types import SimpleNamespace

    assert routing_rule.family(open_bundle(forest[0])) == "trees"

    def fam(estimator: str) -> str:
        return routing_rule.family(SimpleNamespace(manifest=SimpleNamespace(provenance={"estimator": estimator})))

    assert fam("Pipeline(StandardScaler → LogisticRegression)") == "linear"
    assert fam("LinearSVC") == fam("Ridge") == "linear"
    assert fam("Pipeline(StandardScaler → MLPClassifier)") == "dense"
    assert fam("Pipeline(Ridge → RandomForestClassifier)") == "trees"
    assert fam("") == "dense"  # no provenance: the dense rule


def test_a_linear_model_takes_every_core_first_on_big_batches():
    """Only 10,000 rows differ from the dense rule: compiled code on every core leads there."""
    assert routing_rule.order("linear", 10_000, KEYS)[:3] == ["native:2", "litert:1", "numpy:1"]
    for n in (1, 32, 1024):
        assert routing_rule.order("linear", n, KEYS) == routing_rule.order("dense", n, KEYS)


def test_first_load_measurement_is_bounded_in_calls_and_rows(forest, monkeypatch):
    calls = {"runs": 0, "rows": 0}
    real_run = OnnxRuntimeBackend.run

    def counting(self, x, outputs):
        calls["runs"] += 1
        calls["rows"] += x.shape[0]
        return real_run(self, x, outputs)

    monkeypatch.setattr(OnnxRuntimeBackend, "run", counting)
    monkeypatch.setattr(routing_rule, "BUDGET_S", 600.0)  # the bound under test is the count, not the clock
    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    spent: dict[str, int] = {}
    table, engines = routing_rule.plan(b, art, None, True, counter=spent)
    try:
        assert table is not None and table["method"] == "measured"
        assert 0 < spent["calls"] <= routing_rule.MAX_CALLS and 0 < spent["rows"] <= routing_rule.MAX_ROWS
        golden = len(b.manifest.golden["inputs"])
        proofs = len(engines) * 2 * (1 + golden)  # each engine: labels and probabilities, batch + per row
        assert calls["runs"] <= spent["calls"] + proofs  # nothing runs beyond the proofs and the budget
        assert set(table["best"]) == {"1", "32", "1024", "10000"}
        assert set(table["best"].values()) <= set(engines)
    finally:
        for e in engines.values():
            e.close()


def test_first_load_is_cached_and_reused_and_answers_like_a_plain_engine(forest, monkeypatch):
    path, X_te = forest
    first = edge_runtime.load(path)
    assert isinstance(first.backend, routing.RoutedBackend)
    cache_file = routing.cache_path(open_bundle(path), None)
    assert json.loads(cache_file.read_text())["best"] == first.backend.table["best"]

    def no_measuring(*a, **k):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(routing_rule, "plan", no_measuring)
    again = edge_runtime.load(path)
    assert again.backend.table == first.backend.table
    plain = edge_runtime.load(path, backend="onnxruntime", threads=1)
    for n in (1, 5, 40, 2000, 12_000):
        X = np.resize(X_te, (n, X_te.shape[1]))
        assert np.array_equal(again.predict(X), plain.predict(X))
        assert np.allclose(again.predict_proba(X), plain.predict_proba(X), atol=1e-6)


def test_measurement_off_by_env_uses_the_rule_and_caches_nothing(forest, monkeypatch):
    monkeypatch.setenv(routing.MEASURE_ENV, "0")
    m = edge_runtime.load(forest[0])
    assert isinstance(m.backend, routing.RoutedBackend)
    assert m.backend.table["method"] == "rule" and m.backend.table["timings_s"] == {}
    assert m.backend.table["best"]["1"] == "onnxruntime:1"
    assert not routing.cache_path(open_bundle(forest[0]), None).exists()


def test_measurement_off_by_profile(forest, tmp_path):
    from edge_runtime.profiles import parse_profile

    text = Path(edge_runtime.profiles.builtin_dir(), "laptop-x86_64.toml").read_text()
    f = tmp_path / "quiet.toml"
    f.write_text(text + "auto_measure = false\n")
    prof = parse_profile(f)
    assert prof.auto_measure is False and routing_rule.measure_enabled(prof) is False
    m = edge_runtime.load(forest[0], profile=prof)
    assert m.backend.table["method"] == "rule" and m.backend.table["profile"] == "quiet"
    assert not routing.cache_path(open_bundle(forest[0]), "quiet").exists()


class Liar(OnnxRuntimeBackend):
    """A fast engine that gets the answers wrong: it must never be routed to."""

    name = "liar"

    def run(self, x, outputs):
        return [np.ascontiguousarray(o[..., ::-1]) if o.ndim == 2 else 1 - o for o in super().run(x, outputs)]


def test_routes_failing_golden_rows_are_never_used(forest, monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "liar", Liar)
    rule = {fam: {n: ("liar:1", *prefs) for n, prefs in by_n.items()} for fam, by_n in routing_rule.RULE.items()}
    monkeypatch.setattr(routing_rule, "RULE", rule)
    assert routing_rule.order("trees", 1, ["onnxruntime:1", "liar:1"])[0] == "liar:1"
    for flag in ("1", "0"):  # measured, and the rule alone
        monkeypatch.setenv(routing.MEASURE_ENV, flag)
        m = edge_runtime.load(forest[0])
        assert not any(k.startswith("liar") for k in m.backend.table["best"].values())
    # a cached table that names it (written by hand) is refused at load: the plain engine answers
    b = open_bundle(forest[0])
    table = json.loads(json.dumps(m.backend.table))
    table["best"] = {k: "liar:1" for k in table["best"]}
    table["artifacts"] = {"liar:1": b.artifact_for(("onnx",)).path}
    routing.cache_path(b, None).parent.mkdir(parents=True, exist_ok=True)
    routing.cache_path(b, None).write_text(json.dumps(table))
    m = edge_runtime.load(forest[0])
    assert not isinstance(m.backend, routing.RoutedBackend)
    m.check_golden()


def test_candidates_is_the_one_source_of_candidate_engines():
    root = Path(edge_runtime.__file__).parent
    owner = root / "backends" / "__init__.py"
    for f in root.rglob("*.py"):
        text = f.read_text()
        if f != owner:
            assert "available_backends()" not in text, f"{f} lists backends itself: use backends.candidates"
            assert ".artifact_for(cls.formats" not in text, f"{f} picks artifacts itself"
        assert not re.search(r"getattr\([^)]*(async_only|unavailable_reason|open_async)", text), f
        if f.parent.name != "backends":
            assert "._session" not in text, f"{f} reads an engine's private session"


def test_candidates_reports_why_each_backend_was_passed_over(forest):
    b = open_bundle(forest[0])
    found = backends.candidates(b, backends=["onnxruntime", "litert", "nope", "pyodide"])
    assert [c.name for c in found] == ["onnxruntime"]
    kinds = {s.name: s.kind for s in found.skipped}
    assert kinds["nope"] == "unknown" and kinds["pyodide"] == "unavailable"
    assert kinds.get("litert") in ("no-artifact", "unavailable")
    assert backends.candidates(b, precision="int8").usable == []


@pytest.mark.slow
def test_bench_tune_writes_the_table_load_then_uses(forest, capsys):
    from edge_runtime.commands.bench import _tune

    table = _tune(str(forest[0]), None)
    assert table["method"] == "tuned" and "cached in" in capsys.readouterr().out
    assert edge_runtime.load(forest[0]).backend.table == table


two_format_bundle = test_routing.two_format_bundle


def test_a_tampered_twin_met_while_routing_is_an_integrity_error(two_format_bundle, tmp_path):
    import shutil

    from edge_runtime.errors import IntegrityError

    path = shutil.copytree(two_format_bundle[0], tmp_path / "b")
    tfl = path / "model.tflite"
    data = bytearray(tfl.read_bytes())
    data[-1] ^= 1
    tfl.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        edge_runtime.load(path)


def test_timing_rounds_vary_so_no_candidate_always_follows_the_same_one():
    seen: list[str] = []
    calls = {k: (lambda k=k: seen.append(k)) for k in "abcd"}
    got = routing.fastest_rounds(calls, {k: 1 for k in calls}, 4)
    assert set(got) == set("abcd") and len(seen) == 16
    assert [seen[i] for i in (0, 4, 8, 12)] == ["a", "b", "c", "d"]  # each round starts with another one
    assert seen[4:8] == ["b", "a", "d", "c"]  # every other round backwards
    rounds = [seen[i:i + 4] for i in range(0, 16, 4)]
    for k in "abcd":  # within a round, each candidate runs after more than one other candidate
        before = {r[r.index(k) - 1] for r in rounds if r.index(k) > 0}
        assert len(before) >= 2, (k, rounds)
    assert routing.fastest_rounds({}, {}, 3) == {}


def test_timing_reports_each_candidates_fastest_round(monkeypatch):
    """Other work only adds time on a shared device: a preempted round must not move the figure
    (a median of few rounds does). A scripted clock, no real timing."""
    clock = [0.0]
    monkeypatch.setattr(routing.time, "perf_counter", lambda: clock[0])
    durations = {"a": [5.0, 1.0, 3.0, 9.0], "b": [2.0, 2.5, 8.0, 2.0]}
    done = {k: 0 for k in durations}

    def call(k: str) -> None:
        clock[0] += durations[k][done[k]]
        done[k] += 1

    got = routing.fastest_rounds({k: (lambda k=k: call(k)) for k in durations}, {"a": 1, "b": 1}, 4)
    assert got == {"a": 1.0, "b": 2.0}


def test_the_big_batch_verdict_is_measured_on_a_batch_threaded_engines_split(forest, monkeypatch):
    """10,000 rows is judged on 4,096 (native splits from 2,048 rows; on 1,024 rows "every core"
    runs one thread and cannot show its cost), and candidates far slower than the fastest are
    dropped after their first timed call."""
    from edge_runtime.backends.native_backend import PARALLEL_MIN_ROWS

    sizes: list[int] = []
    real_run = OnnxRuntimeBackend.run

    def recording(self, x, outputs):
        sizes.append(x.shape[0])
        return real_run(self, x, outputs)

    monkeypatch.setattr(OnnxRuntimeBackend, "run", recording)
    monkeypatch.setattr(routing_rule, "BUDGET_S", 600.0)
    monkeypatch.setattr(routing_rule, "HOPELESS", float("inf"))  # every candidate is timed here
    monkeypatch.setattr(routing_rule, "HOPELESS_AHEAD", float("inf"))
    measured = [n for n, verdict in routing_rule.MEASURED["trees"].items() if verdict == 10_000]
    assert measured and all(n >= PARALLEL_MIN_ROWS for n in measured)
    b = open_bundle(forest[0])
    table, engines = routing_rule.plan(b, b.artifact_for(("onnx",)), None, True)
    try:
        assert measured[0] in sizes and table["best"]["10000"] in table["timings_s"]
        assert str(measured[0]) in table["timings_s"][table["best"]["10000"]]
    finally:
        for e in engines.values():
            e.close()
    assert routing_rule.prefer(["a", "b"], {"a": 1.0, "b": 0.5}) == "b"


def _attempts(monkeypatch) -> list[str]:
    """Every engine routing_rule tries to build, as "backend:threads", in order."""
    tried: list[str] = []
    real = routing_rule.proven_engine

    def spy(bundle, name, threads, *a, **k):
        tried.append(f"{name}:{threads}")
        return real(bundle, name, threads, *a, **k)

    monkeypatch.setattr(routing_rule, "proven_engine", spy)
    return tried


def test_extra_candidates_are_built_only_while_the_budget_allows(forest, monkeypatch):
    """The rule's own pick per row count is always built; a candidate beyond it only when its
    build (guessed at the dearest so far) fits in the build share of the budget: a slow build
    leaves fewer candidates, never a late load. The clock is a fake one here: a build of
    onnxruntime at two threads "takes" 1.5 s of a 2 s budget."""
    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    monkeypatch.setattr(routing_rule, "BUDGET_S", 600.0)
    tried = _attempts(monkeypatch)
    table, engines = routing_rule.plan(b, art, None, True)
    for e in engines.values():
        e.close()
    assert "numpy:1" in tried  # with time to spare, numpy makes the one-row shortlist

    offset = [0.0]
    monkeypatch.setattr(routing_rule, "clock", lambda: routing_rule.time.perf_counter() + offset[0])
    real_engine = routing_rule.proven_engine

    def slow_build(bundle, name, threads, *a, **k):
        if (name, threads) == ("onnxruntime", 2):
            offset[0] += 1.5
        return real_engine(bundle, name, threads, *a, **k)

    monkeypatch.setattr(routing_rule, "proven_engine", slow_build)
    monkeypatch.setattr(routing_rule, "BUDGET_S", 1.0)
    tried_now = _attempts(monkeypatch)
    table, engines = routing_rule.plan(b, art, None, True)
    try:
        assert tried_now == ["onnxruntime:1", "onnxruntime:2"]  # the rule's picks; numpy never tried
        assert table is not None and set(table["best"].values()) <= {"onnxruntime:1", "onnxruntime:2"}
    finally:
        for e in engines.values():
            e.close()


def test_a_candidate_hopeless_on_few_rows_is_not_run_on_many(forest, monkeypatch):
    """numpy made 100x slower than onnxruntime is dropped at one row and never warmed up on the
    4,096 rows that judge big batches (a tree model's LiteRT took 120 of the 200 ms there)."""
    import time

    from edge_runtime.backends.numpy_backend import NumpyBackend

    sizes: list[int] = []
    real_run = NumpyBackend.run

    def slow(self, x, outputs):
        sizes.append(x.shape[0])
        time.sleep(0.005)
        return real_run(self, x, outputs)

    monkeypatch.setattr(NumpyBackend, "run", slow)
    monkeypatch.setattr(routing_rule, "BUDGET_S", 600.0)
    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    big = [n for n, verdict in routing_rule.MEASURED["trees"].items() if verdict == 10_000]

    def planned() -> list[int]:
        sizes.clear()
        table, engines = routing_rule.plan(b, art, None, True)
        for e in engines.values():
            e.close()
        assert table is not None and "numpy:1" not in table["best"].values()
        return list(sizes)

    assert "numpy:1" in routing_rule.order("trees", 10_000, ["onnxruntime:1", "onnxruntime:2", "numpy:1"])
    assert 1 in planned() and not set(big) & set(sizes)
    monkeypatch.setattr(routing_rule, "HOPELESS_AHEAD", float("inf"))  # the control: now it is run there
    assert set(big) <= set(planned())


def test_timing_stops_at_the_deadline_after_at_least_one_round():
    seen: list[str] = []
    calls = {k: (lambda k=k: seen.append(k)) for k in "ab"}
    asked = []

    def stop() -> bool:
        asked.append(len(seen))
        return len(seen) >= 4

    got = routing.fastest_rounds(calls, {"a": 1, "b": 1}, 10, stop=stop)
    assert set(got) == {"a", "b"} and len(seen) == 4 and asked == [2, 4]
    seen.clear()
    routing.fastest_rounds(calls, {"a": 1, "b": 1}, 10, stop=lambda: True)
    assert len(seen) == 2  # the first round always runs


class _Scripted:
    """An engine whose every call takes the next duration of its script on a fake clock."""

    def __init__(self, clock: list[float], durations: list[float]):
        self.clock, self.durations = clock, iter(durations)

    def run(self, x, outputs):
        self.clock[0] += next(self.durations)
        return [None]


def _verdict(forest, monkeypatch, fav: list[float], challenger: list[float]) -> tuple[str, dict]:
    fake = [0.0]
    monkeypatch.setattr(routing_rule, "clock", lambda: fake[0])
    monkeypatch.setattr(routing.time, "perf_counter", lambda: fake[0])
    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    pool = type("Pool", (), {"engines": {"fav:1": _Scripted(fake, fav), "chal:2": _Scripted(fake, challenger)}})()
    measurement = routing_rule._Measurement(b, art, pool, 1e9, {"calls": 0, "rows": 0})
    choice = measurement.verdict(32, ["fav:1", "chal:2"])
    return choice, measurement.timings


def test_an_overturned_rule_is_timed_again_before_the_verdict_is_cached(forest, monkeypatch):
    """The rule's favourite, disturbed in its first rounds (the other core busy), loses them; the
    two are timed again, alone, and the favourite's clean rounds win the verdict back. A
    challenger that is really faster keeps it."""
    timed = routing_rule.ROUNDS * routing_rule.NUMBER[32]
    disturbed = [1.0, 1.0] + [3.0] * timed + [1.0] * timed
    choice, timings = _verdict(forest, monkeypatch, disturbed, [2.0] * (2 + 2 * timed))
    assert choice == "fav:1" and timings["fav:1"]["32"] == 1.0 and timings["chal:2"]["32"] == 2.0
    slower = [1.0, 1.0] + [3.0] * (2 * timed)
    choice, timings = _verdict(forest, monkeypatch, slower, [2.0] * (2 + 2 * timed))
    assert choice == "chal:2" and timings["fav:1"]["32"] == 3.0


def test_without_time_to_confirm_the_rules_favourite_stays(forest, monkeypatch):
    """One set of rounds that overturns the rule is not enough: with no time left to time the two
    again, the favourite keeps the verdict (a cached verdict must not rest on one moment)."""
    timed = routing_rule.ROUNDS * routing_rule.NUMBER[32]
    fake = [0.0]
    monkeypatch.setattr(routing_rule, "clock", lambda: fake[0])
    monkeypatch.setattr(routing.time, "perf_counter", lambda: fake[0])
    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    engines = {"fav:1": _Scripted(fake, [1.0, 1.0] + [3.0] * timed), "chal:2": _Scripted(fake, [2.0] * (2 + timed))}
    pool = type("Pool", (), {"engines": engines})()
    # room for the first rounds (~2 * 5 * 10 calls of ~2.5 s after warming up), not for a second set
    measurement = routing_rule._Measurement(b, art, pool, 10 + 2.5 * 2 * timed + 1, {"calls": 0, "rows": 0})
    assert measurement.verdict(32, ["fav:1", "chal:2"]) == "fav:1"
    assert measurement.timings["chal:2"]["32"] == 2.0 and measurement.timings["fav:1"]["32"] == 3.0


def test_at_most_timed_candidates_run_the_rules_pick_and_the_fastest_so_far(forest):
    """Four built for a row count, :data:`TIMED` (3) run: the rule's pick, then those fastest on
    fewer rows, a candidate not run yet counting as fast; the slowest so far is not run at all."""
    from types import SimpleNamespace

    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    ran: list[str] = []

    class Fake:
        def __init__(self, key: str):
            self.key = key

        def run(self, x, outputs):
            ran.append(self.key)
            return []

    assert routing_rule.TIMED == 3
    pool = SimpleNamespace(engines={k: Fake(k) for k in ("rule", "slow", "quick", "new")})
    m = routing_rule._Measurement(b, art, pool, routing_rule.clock() + 600.0, {"calls": 0, "rows": 0})
    m.slow.update({"rule": 1.5, "slow": 3.0, "quick": 1.0})  # "new" never ran
    m.last.update({k: (32, 1e-6) for k in ("rule", "slow", "quick")})
    assert m.verdict(1024, ["rule", "slow", "quick", "new"]) in ("rule", "quick", "new")
    assert set(ran) == {"rule", "quick", "new"}


class _Steady:
    """An engine whose every call takes ``seconds`` on a fake clock, its calls counted."""

    def __init__(self, clock: list[float], seconds: float):
        self.clock, self.seconds, self.calls = clock, seconds, 0

    def run(self, x, outputs):
        self.clock[0] += self.seconds
        self.calls += 1
        return [None]


def _measurement(forest, monkeypatch, engines: dict, deadline: float):
    fake = [0.0]
    monkeypatch.setattr(routing_rule, "clock", lambda: fake[0])
    monkeypatch.setattr(routing.time, "perf_counter", lambda: fake[0])
    b = open_bundle(forest[0])
    pool = type("Pool", (), {"engines": {k: make(fake) for k, make in engines.items()}})()
    return routing_rule._Measurement(b, b.artifact_for(("onnx",)), pool, deadline, {"calls": 0, "rows": 0}), pool


def test_candidates_the_time_left_cannot_cover_are_not_run(forest, monkeypatch):
    """On a slow device the measurement times fewer candidates rather than ending late: with
    time for two candidates' warm-up and rounds on 1,024 rows, the least promising third is never
    run, and the last call ends before the deadline."""
    per_call = 1e-3
    calls = routing_rule.WARM_CALLS + routing_rule.ROUNDS * routing_rule.NUMBER[1024]
    deadline = 2 * calls * per_call * 1.05
    m, pool = _measurement(forest, monkeypatch, {k: (lambda c: _Steady(c, per_call)) for k in ("rule", "quick", "new")},
                           deadline)
    m.last.update({k: (32, per_call * 32 / 1024) for k in ("rule", "quick")})  # "new" never ran: guessed as dear
    m.slow.update({"rule": 1.0, "quick": 1.0})
    m.verdict(1024, ["rule", "quick", "new"])
    engines = pool.engines
    assert engines["new"].calls == 0 and engines["rule"].calls > 0 and engines["quick"].calls > 0
    assert routing_rule.clock() <= deadline
    # with no time for even two, nothing runs and the rule's verdict stands
    m, pool = _measurement(forest, monkeypatch, {k: (lambda c: _Steady(c, per_call)) for k in ("rule", "quick")},
                           calls * per_call)
    m.last.update({k: (1024, per_call) for k in ("rule", "quick")})
    assert m.verdict(1024, ["rule", "quick"]) is None
    assert all(e.calls == 0 for e in pool.engines.values())


def test_a_first_call_that_runs_past_the_deadline_stops_the_measurement(forest, monkeypatch):
    """A first call on a new batch shape can cost many steady calls (allocation): once one runs
    past the deadline nothing more is called, and the rule's verdict stands."""
    m, pool = _measurement(forest, monkeypatch, {"rule": lambda c: _Scripted(c, [50.0]),
                                                 "other": lambda c: _Scripted(c, [])}, 10.0)
    assert m.verdict(32, ["rule", "other"]) is None  # "other" has no call scripted: any would raise
    assert m.timings == {}


def test_a_big_batch_is_not_judged_while_this_process_keeps_the_cores_busy(forest, monkeypatch):
    """Other threads of the process using a core (BLAS threads spin ~130 ms after an app's matrix
    product) would take a threaded engine's second core while it is timed: the measurement waits
    for them, and without time to wait the rule's verdict stands, nothing runs on that row count,
    and the table is not cached (the next load measures again)."""
    used = [0.0]

    def busy_threads() -> float:
        used[0] += 1.0  # a whole core between any two readings
        return used[0]

    m, pool = _measurement(forest, monkeypatch, {k: (lambda c: _Steady(c, 1e-3)) for k in ("rule", "quick")}, 10.0)
    monkeypatch.setattr(routing_rule, "other_threads_cpu_s", busy_threads)
    monkeypatch.setattr(routing_rule.time, "sleep", lambda s: None)
    m.last.update({k: (1024, 1e-3) for k in ("rule", "quick")})
    assert m.verdict(4096, ["rule", "quick"]) is None and m.busy == [4096]
    assert all(e.calls == 0 for e in pool.engines.values())
    assert m.verdict(32, ["rule", "quick"]) is not None  # a small batch has no second core to lose
    monkeypatch.setattr(routing_rule, "other_threads_cpu_s", lambda: 0.0)  # quiet: timed as usual
    assert m.verdict(4096, ["rule", "quick"]) is not None and m.busy == [4096]

    monkeypatch.undo()
    monkeypatch.setenv("EDGERT_CACHE_DIR", str(forest[0].parent / "busy-cache"))
    monkeypatch.setattr(routing_rule, "other_threads_cpu_s", busy_threads)
    # time enough to reach 4,096 rows on a loaded machine too: only the busy threads may stop it
    monkeypatch.setattr(routing_rule, "BUDGET_S", 1.0)
    b = open_bundle(forest[0])
    art = b.artifact_for(("onnx",))
    table, engines = routing_rule.first_load(b, art, None)
    for engine in engines.values():
        engine.close()
    assert table is not None and table["busy"] and "4096" not in str(table["timings_s"])
    assert routing.cached(b, art, None) is None


def test_onnxruntime_workers_do_not_spin_between_calls(forest):
    """Spinning onnxruntime workers kept a core busy ~50 ms after every threaded call: on a device
    that is battery and a core the app needs, and a threaded engine timed then lost its second
    core. The threaded session's workers block instead (the CPU they use is not asserted here:
    other tests' threads share this process), and answer as the one-thread session does."""
    b = open_bundle(forest[0])
    x = np.resize(np.asarray(b.manifest.golden["inputs"], dtype=np.float32), (4096, len(b.manifest.features)))
    two = edge_runtime.load(forest[0], backend="onnxruntime", threads=2)
    one = edge_runtime.load(forest[0], backend="onnxruntime", threads=1)
    assert two.backend._session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"
    assert np.array_equal(two.predict_proba(x), one.predict_proba(x))
    two.close()
    one.close()
