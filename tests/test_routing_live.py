"""Batch routes watched on live calls (edge_runtime.routing_live): the faster of two proven
engines serves, judged on a fake clock here (no wall-clock figure in a unit test), and a try of
the other engine never costs the caller an answer."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pytest

import edge_runtime
from edge_runtime import routing, routing_live
from edge_runtime.backends.base import Backend
from edge_runtime.routing_live import EXPLORE, EXPLORE_MAX, SWITCH, TIMED_FROM, LiveRoute, runner_up

pytestmark = pytest.mark.device


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Engine(Backend):
    """Answers its own name per row, taking ``ns_per_row`` of the fake clock."""

    name = "fake"

    def __init__(self, label: float, clock: FakeClock, ns_per_row: float, name: str = "fake"):
        self.label, self.clock, self.ns_per_row = label, clock, ns_per_row
        self.name = name  # type: ignore[misc]
        self.artifact, self.options = None, None  # type: ignore[assignment]
        self.calls = 0
        self.closed = 0
        self.fail: Optional[Exception] = None

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        self.clock.now += self.ns_per_row * 1e-9 * x.shape[0]
        return [np.full(x.shape[0], self.label)]

    def close(self) -> None:
        self.closed += 1


@pytest.fixture()
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(routing_live, "clock", c)
    return c


def _calls(route: LiveRoute, n: int, rows: int = 1024) -> list[float]:
    x = np.zeros((rows, 3), np.float32)
    return [float(route.run(x, ["p"])[0][0]) for _ in range(n)]


def _tries(calls: int) -> int:
    """How many of ``calls`` go to the other engine while it keeps losing: one after EXPLORE
    calls, then each gap twice the last, up to EXPLORE_MAX."""
    tries, gap, at = 0, EXPLORE, EXPLORE
    while at <= calls:
        tries += 1
        gap = min(2 * gap, EXPLORE_MAX)
        at += gap
    return tries


def test_the_winner_serves_and_the_other_is_tried_ever_more_rarely_while_it_loses(clock) -> None:
    a, b = Engine(1, clock, 50), Engine(2, clock, 60)
    route = LiveRoute(a, b)
    answers = _calls(route, 4000)
    tries = _tries(4000)
    assert b.calls == tries and a.calls == 4000 - tries and tries < 4000 / EXPLORE / 10
    assert answers.count(2.0) == tries  # every answer came from one of the two proven engines
    assert route.serving is a and route.switches == 0


def test_the_route_follows_the_machine_when_the_engines_swap_places(clock) -> None:
    a, b = Engine(1, clock, 50), Engine(2, clock, 60)
    route = LiveRoute(a, b)
    _calls(route, 3000)  # settled: tries EXPLORE_MAX apart
    a.ns_per_row, b.ns_per_row = 77, 68  # the host's slow phase: the other engine now leads
    _calls(route, EXPLORE_MAX)
    assert route.serving is b and route.switches == 1
    a.ns_per_row, b.ns_per_row = 49, 60  # and back
    _calls(route, EXPLORE_MAX)
    assert route.serving is a and route.switches == 2


def test_a_lead_inside_the_switch_margin_does_not_move_the_route(clock) -> None:
    a, b = Engine(1, clock, 100), Engine(2, clock, 100 / SWITCH * 1.01)
    route = LiveRoute(a, b)
    _calls(route, 5000)
    assert route.serving is a and route.switches == 0


def test_small_calls_are_neither_timed_nor_tried_elsewhere(clock) -> None:
    a, b = Engine(1, clock, 50), Engine(2, clock, 10)
    route = LiveRoute(a, b)
    assert set(_calls(route, 10 * EXPLORE, rows=TIMED_FROM - 1)) == {1.0}
    assert b.calls == 0 and not route._recent[0]


def test_a_failing_try_is_answered_by_the_serving_engine_and_never_tried_again(clock) -> None:
    a, b = Engine(1, clock, 50), Engine(2, clock, 10)
    b.fail = RuntimeError("engine crashed")
    route = LiveRoute(a, b)
    assert set(_calls(route, 5 * EXPLORE)) == {1.0}
    assert b.calls == 1 and route.serving is a


def test_a_failing_serving_engine_raises_to_the_caller(clock) -> None:
    a, b = Engine(1, clock, 50), Engine(2, clock, 60)
    a.fail = RuntimeError("engine crashed")
    with pytest.raises(RuntimeError, match="crashed"):
        _calls(LiveRoute(a, b), 1)


def test_runner_up_is_the_fastest_other_within_the_tie() -> None:
    assert runner_up({"a": 1.0, "b": 1.2, "c": 1.1}, "a") == "c"
    assert runner_up({"a": 1.0, "b": 2.5}, "a") is None
    assert runner_up({"a": 1.0}, "a") is None
    assert runner_up({"a": 1.0, "b": 0.9}, "b", tie=1.05) is None


def test_a_router_closes_each_engine_once_whatever_routes_share_it(clock) -> None:
    a, b = Engine(1, clock, 50), Engine(2, clock, 60)
    router = routing.RoutedBackend([(5, a), (3200, LiveRoute(a, b)), (2**62, LiveRoute(a, b))], a.artifact, {})
    router.close()
    assert (a.closed, b.closed) == (1, 1)


# --- through load(): the table names the runner-up, the route keeps it, proven -------------
@pytest.fixture()
def dense_bundle(tmp_path, monkeypatch):
    """A committed logistic bundle with ONNX and TFLite twins (LiteRT, onnxruntime, numpy compete)."""
    from committed import copy_bundle

    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path / "cache"))
    return copy_bundle("logistic-multiclass-tflite", tmp_path / "b")


def _table(path: Any, **fields: Any) -> dict:
    m = edge_runtime.load(path, tune=True)
    table = dict(m.backend.table, **fields)
    m.close()
    return table


def test_a_cached_runner_up_becomes_a_watched_route_answering_as_the_plain_engine(dense_bundle) -> None:
    from edge_runtime.bundle import open_bundle

    table = _table(dense_bundle)
    keys = sorted(table["timings_s"])
    assert len(keys) >= 2
    best = table["best"]["1024"]
    other = next(k for k in keys if k != best)
    table = dict(table, runner_up={"1024": other})
    routing.atomic_write_json(routing.cache_path(open_bundle(dense_bundle), None), table)
    m = edge_runtime.load(dense_bundle)
    live = [e for _, e in m.backend.routes if isinstance(e, LiveRoute)]
    assert len(live) == 1 and {e.name for e in live[0].engines} == {best.split(":")[0], other.split(":")[0]}
    plain = edge_runtime.load(dense_bundle, backend=best.split(":")[0], threads=1)
    x = np.random.default_rng(0).normal(size=(1024, len(m.feature_names)))
    for _ in range(2 * EXPLORE):  # the tried engine's answers too
        assert np.allclose(m.predict_proba(x), plain.predict_proba(x), atol=1e-5)
    m.close()
    plain.close()


def test_a_runner_up_that_cannot_run_leaves_the_table_in_use_unwatched(dense_bundle) -> None:
    from edge_runtime.bundle import open_bundle

    table = _table(dense_bundle, runner_up={"1024": "nosuchengine:1"})
    routing.atomic_write_json(routing.cache_path(open_bundle(dense_bundle), None), table)
    m = edge_runtime.load(dense_bundle)
    assert isinstance(m.backend, routing.RoutedBackend)
    assert not any(isinstance(e, LiveRoute) for _, e in m.backend.routes)
    m.close()
