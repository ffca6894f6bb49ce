"""Batch routes that follow the machine: a near-tie found on first load is watched on live calls.

On a shared or throttled machine two engines can swap places with the machine's state. On the
Intel 2-vCPU VM of ``benchmarks/RESULTS.md``, 1,024 rows of the logistic pipeline took 49 µs on
LiteRT and 60 µs in compiled code in one phase of the host, and 77 against 68 µs in a slower phase
minutes later: a route fixed at first load then served 1.2x slower than the other engine, in 2 of
4 suite runs; and two threads lose to one when something else takes the second core (the
logistic pipeline's 10k rows: 1.14 ms on two threads against 0.75 on one in one run). So where the
first load (or ``--tune``) timed a runner-up within :data:`TIE` of the winner on a batch route,
that route keeps both engines, each proven on the golden rows like any route. Each call of
:data:`TIMED_FROM` rows or more is timed (two clock reads, ~0.1 µs, against calls of 15 µs and
more); one such call in :data:`EXPLORE` goes to the engine not serving, and that engine takes
over when its time per row beats the serving engine's fastest of its last :data:`WINDOW` calls by
:data:`SWITCH`. Each try that does not take over doubles the gap to the next, up to
:data:`EXPLORE_MAX`, and a switch starts again at :data:`EXPLORE`: a runner-up twice as slow costs
~0.4 % once the route has settled, and a change of the machine is still seen within a few hundred
calls. Single rows and small batches are never watched: there a clock read would cost a tenth of
the call.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Optional, Sequence

from .backends.base import Backend

#: a runner-up this close to the winner (time per call) is kept and watched
TIE = 2.0
#: only routes measured at this many rows or more are watched
LIVE_FROM = 1024
#: one call in this many goes to the engine not serving, at first and after a switch ...
EXPLORE = 16
#: ... and at most this many apart after tries that did not take over
EXPLORE_MAX = 256
#: calls with fewer rows are served without being timed (the clock would cost ~1 % of them)
TIMED_FROM = 256
#: the serving engine is judged by its fastest of its last few timed calls (other work only adds
#: time); the other by its newest, so a figure from before the machine changed cannot move a route
WINDOW = 4
#: the other engine takes over when it is this much faster per row
SWITCH = 1.05
clock = time.perf_counter


def runner_up(times: dict[str, float], best: str, tie: float = TIE) -> Optional[str]:
    """The fastest candidate other than ``best`` within ``tie`` of it, or None."""
    if best not in times:
        return None
    others = [k for k in times if k != best and times[k] <= tie * times[best]]
    return min(others, key=times.__getitem__) if others else None


class LiveRoute(Backend):
    """One batch route served by the faster of two proven engines, judged on live calls."""

    formats = ("onnx",)

    def __init__(self, serving: Backend, other: Backend):
        # not Backend.__init__: the engines already hold the model
        self.artifact = serving.artifact
        self.options = serving.options
        names = {serving.name, other.name}
        self.name = names.pop() if len(names) == 1 else "auto"  # type: ignore[misc]
        self._engines = [serving, other]
        self._serving = 0
        self._gap = EXPLORE  # timed calls between two tries of the other engine
        self._until_try = EXPLORE
        self._recent: list[deque[float]] = [deque(maxlen=WINDOW), deque(maxlen=WINDOW)]
        #: times the serving engine changed (for tests and ``info``)
        self.switches = 0
        self._watch = True

    @property
    def serving(self) -> Backend:
        """The engine answering this route's calls now."""
        return self._engines[self._serving]

    @property
    def engines(self) -> tuple[Backend, Backend]:
        return self._engines[0], self._engines[1]

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        rows = (next(iter(x.values())) if type(x) is dict else x).shape[0]  # named inputs: a dict
        if not self._watch or rows < TIMED_FROM:
            return self._engines[self._serving].run(x, outputs)
        serving = self._serving
        self._until_try -= 1
        i = serving if self._until_try else 1 - serving
        t0 = clock()
        if i == serving:
            out = self._engines[i].run(x, outputs)
        else:
            try:
                out = self._engines[i].run(x, outputs)
            except Exception:  # noqa: BLE001 - a try must never cost the caller an answer
                self._watch = False  # the serving engine answers alone from now on
                return self._engines[serving].run(x, outputs)
        per_row = (clock() - t0) / rows
        self._recent[i].append(per_row)
        if i != serving:
            if per_row * SWITCH < min(self._recent[serving], default=0.0):
                self._serving, self._gap = i, EXPLORE
                self.switches += 1
            else:
                self._gap = min(2 * self._gap, EXPLORE_MAX)
            self._until_try = self._gap
        return out

    def effective_threads(self) -> Optional[int]:
        return self.serving.effective_threads()

    def widths(self) -> dict[str, int]:
        return self._engines[0].widths()

    def check_widths(self, n_features: int, n_classes: Optional[int]) -> None:
        for engine in self._engines:
            engine.check_widths(n_features, n_classes)

    def close(self) -> None:
        for engine in self._engines:
            engine.close()
