"""Batch routes that follow the machine: a near-tie found on first load is watched on live calls.

On a shared or throttled machine two engines can swap places with the machine's state. On the
Intel 2-vCPU VM of ``benchmarks/RESULTS.md``, 1,024 rows of the logistic pipeline took 49 µs on
LiteRT and 60 µs in compiled code in one phase of the host, and 77 against 68 µs in a slower phase
minutes later: a route fixed at first load then served 1.2x slower than the other engine, in 2 of
4 suite runs. So where the first load (or ``--tune``) timed a runner-up within :data:`TIE` of the
winner on a batch route, that route keeps both engines, each proven on the golden rows like any
route: every :data:`EXPLORE`-th call goes to the one not serving, each call of
:data:`TIMED_FROM` rows or more is timed (two clock reads, ~0.1 µs, against calls of 15 µs and
more), and the route serves whichever answered fastest per row over its last :data:`WINDOW` timed
calls, by :data:`SWITCH`. The cost is bounded: a runner-up at most 1.3x slower, tried on one call
in 16, adds at most 2 % when the winner never changes. Single rows and small batches are never
watched: there a clock read would cost a tenth of the call.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Optional, Sequence

from .backends.base import Backend

#: a runner-up this close to the winner (time per call) is kept and watched
TIE = 1.3
#: only routes measured at this many rows or more are watched
LIVE_FROM = 1024
#: one call in this many goes to the engine not serving
EXPLORE = 16
#: calls with fewer rows are served without being timed (the clock would cost ~1 % of them)
TIMED_FROM = 256
#: each engine is judged by its fastest of its last few timed calls (other work only adds time)
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
        self._calls = 0
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
        self._calls += 1
        serving = self._serving
        i = 1 - serving if self._calls % EXPLORE == 0 else serving
        t0 = clock()
        if i == serving:
            out = self._engines[i].run(x, outputs)
        else:
            try:
                out = self._engines[i].run(x, outputs)
            except Exception:  # noqa: BLE001 - a try must never cost the caller an answer
                self._watch = False  # the serving engine answers alone from now on
                return self._engines[serving].run(x, outputs)
        self._recent[i].append((clock() - t0) / rows)
        other = self._recent[1 - serving]
        if i != serving and len(other) == WINDOW and min(other) * SWITCH < min(self._recent[serving], default=0.0):
            self._serving = 1 - serving
            self.switches += 1
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
