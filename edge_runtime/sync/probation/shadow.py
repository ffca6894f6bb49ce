"""The shadow worker: off the caller's path, the previous good version answers a sample of the
live calls the new version served, and the evidence probation judges is counted here: label
agreement or relative error against the previous version, the new version's class shares, and
right/wrong on delayed labels for both versions on the same calls.

The caller's only cost is :func:`take_sample` (a bounded copy of the first rows: the caller
may reuse its buffers once the call returned) and one ``deque.append``; when the buffer is
full the sample is dropped and counted, the caller never waits.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np

log = logging.getLogger("edge_runtime.sync")
_STOP = ("stop",)
_ndarray = np.ndarray
#: How often the worker looks for new samples when it has none.
POLL_S = 0.05


@dataclass
class Evidence:
    """What the worker counted. Readers get a consistent snapshot (:attr:`ShadowWorker.ev`,
    replaced as a whole after each batch), never counters caught mid-update."""

    shadow: str = "none"  # "none" (no previous version), "loading", "ready", "failed: …"
    compared: int = 0  # rows both versions answered
    agreed: int = 0  # classification: rows with the same label
    abs_diff: float = 0.0  # regression: sum |new - previous|
    abs_prev: float = 0.0  # regression: sum |previous|
    nonfinite: int = 0  # rows where the new version answered NaN/inf and the previous did not
    shadow_errors: int = 0  # calls the previous version could not answer (not compared)
    labels: dict[str, int] = field(default_factory=dict)  # new version's labels (a snapshot)
    prev_labels: dict[str, int] = field(default_factory=dict)  # previous version's, same rows
    fb_n: int = 0  # delayed labels matched to a sampled call
    fb_new_right: int = 0
    fb_paired: int = 0  # of those, with the previous version's answer too
    fb_prev_right: int = 0
    fb_worse: int = 0  # new wrong, previous right
    fb_better: int = 0  # new right, previous wrong
    fb_unmatched: int = 0  # labels for calls never sampled (dropped, or ids unknown)


def _background_priority() -> None:
    """Lower this thread's scheduling priority where the OS allows it per thread (Linux:
    ``setpriority`` on the thread id), so the serving thread wins a contended core."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted: the shadow still works
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _count(counter: Counter, labels: np.ndarray) -> None:
    values, counts = np.unique(labels, return_counts=True)
    counter.update(dict(zip(values.tolist(), counts.tolist())))


def _batchable(a: Any, b: Any) -> bool:
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == b.ndim == 2
            and a.shape[1] == b.shape[1] and a.dtype == b.dtype)


def take_sample(X: Any, out: Any, ids: Any, rows: int) -> tuple[Any, Any, Any]:
    """Copies of at most ``rows`` rows of the input, output and ids of one call."""
    if type(X) is np.ndarray and type(out) is np.ndarray and X.ndim:  # the hot case: exact types
        if len(X) > rows:
            X, out, ids = X[:rows], out[:rows], None if ids is None else ids[:rows]
        return X.copy(), out.copy(), None if ids is None else list(ids)
    if isinstance(X, (list, tuple)) and isinstance(out, np.ndarray):
        return list(X[:rows]), out[:rows].copy(), None if ids is None else list(ids[:rows])
    return X, np.array(out, copy=True), None if ids is None else list(ids)  # dict, DataFrame: whole


#: running workers, stopped and joined at interpreter exit: a daemon thread still inside an
#: engine (onnxruntime) while the interpreter tears down aborts the process ("terminate called")
_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for worker in list(_LIVE):
        worker.close(timeout=5.0)


class ShadowWorker:
    """One daemon thread and a bounded buffer; :meth:`close` stops it without waiting.

    The caller appends to a deque (no lock, no wake-up: nothing that could make it wait);
    the worker polls it every :data:`POLL_S` and answers what accumulated in one call of the
    previous version per run of same-width arrays, so its cost per row stays small too.
    """

    def __init__(self, *, task: str, classes: Any, load_previous: Optional[Callable[[], Any]],
                 queue_max: int = 256, ids_max: int = 10_000):
        self.task = task
        self.classes = None if classes is None else np.asarray(classes)
        self._ev = Evidence(shadow="loading" if load_previous is not None else "none")
        self.ev = replace(self._ev)  # the published snapshot
        self.dropped = 0  # samples not queued because the buffer was full
        self.submitted = 0  # call samples queued (caller side)
        self.handled = 0  # call samples answered or given up on (worker side)
        self._labels: Counter = Counter()
        self._prev_labels: Counter = Counter()
        self._ids: OrderedDict = OrderedDict()  # prediction id -> (new label, previous label)
        self._ids_max = ids_max
        self._buf: deque = deque()
        self._cap = max(1, int(queue_max))
        self._busy = False
        self._drop_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(load_previous,), daemon=True,
                                        name="edgert-probation-shadow")
        _LIVE.add(self)
        self._thread.start()

    # --- caller side --------------------------------------------------------------------------
    def submit(self, item: tuple) -> bool:
        """Queue a call sample or a label; False (and counted) when the buffer is full."""
        if len(self._buf) < self._cap:
            self._buf.append(item)
            if item[0] == "call":
                self.submitted += 1
            return True
        with self._drop_lock:
            self.dropped += 1
        return False

    def submit_call(self, method: str, X: Any, out: Any, ids: Any, rows: int) -> None:
        """Queue a sample of one served call (the caller's path: a copy and an append)."""
        buf = self._buf
        if len(buf) >= self._cap:
            with self._drop_lock:
                self.dropped += 1
        elif type(X) is _ndarray and type(out) is _ndarray and X.ndim and len(X) <= rows and ids is None:
            buf.append(("call", method, X.copy(), out.copy(), None))
            self.submitted += 1
        else:
            try:
                buf.append(("call", method, *take_sample(X, out, ids, rows)))
            except TypeError:  # ids that are not a sequence: the call is still sampled, without them
                buf.append(("call", method, *take_sample(X, out, None, rows)))
            self.submitted += 1

    def drain(self, timeout: float) -> bool:
        """Wait until every queued item was handled (tests, benchmarks). True if it was."""
        end = time.monotonic() + timeout
        while (self._buf or self._busy) and self._thread.is_alive() and time.monotonic() < end:
            time.sleep(0.005)
        return not (self._buf or self._busy)

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop the thread (queued samples are discarded); it closes the shadow model itself.
        With ``timeout``, wait that long for the thread to end."""
        self._stop.set()
        if timeout is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- worker side --------------------------------------------------------------------------
    def _run(self, load_previous: Optional[Callable[[], Any]]) -> None:
        _background_priority()
        previous = None
        if load_previous is not None:
            try:
                previous = load_previous()
                self._ev.shadow = "ready"
            except Exception as exc:  # noqa: BLE001 - any failure: judged without a shadow
                self._ev.shadow = f"failed: {type(exc).__name__}: {exc}"
                log.warning("probation shadow: the previous version did not load: %s", exc)
        self.ev = replace(self._ev)
        try:
            while not self._stop.wait(0 if self._buf else POLL_S):
                self._busy = True
                try:
                    items = [self._buf.popleft() for _ in range(len(self._buf))]
                    self._handle(previous, items)
                    self._ev.labels, self._ev.prev_labels = dict(self._labels), dict(self._prev_labels)
                    self.ev = replace(self._ev)
                finally:
                    self._busy = False
        finally:
            if previous is not None:
                previous.close()

    def _handle(self, previous: Any, items: list[tuple]) -> None:
        """Runs of call samples with same-width arrays go to the previous version as one
        batch; labels are applied in order, after the calls queued before them."""
        run: list[tuple] = []
        for item in items + [_STOP]:
            if item[0] == "call" and (not run or _batchable(run[-1][2], item[2])):
                run.append(item)
                continue
            if run:
                self._guarded(self._calls, previous, run)
                self.handled += len(run)
                run = [item] if item[0] == "call" else []
            if item[0] == "feedback":
                self._guarded(self._feedback, *item[1:])

    @staticmethod
    def _guarded(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the worker outlives any bad sample
            log.warning("probation shadow: sample skipped: %s: %s", type(exc).__name__, exc)

    def _calls(self, previous: Any, run: list[tuple]) -> None:
        """One batch: the previous version answers all rows in one call, and the counting is
        done on whole arrays (the worker holds the GIL as briefly as it can)."""
        method = run[0][1]
        if len(run) > 1 and all(it[1] == method and it[3].shape[1:] == run[0][3].shape[1:] for it in run):
            ids = None if all(it[4] is None for it in run) else \
                [i for it in run for i in (it[4] if it[4] is not None else [None] * len(it[3]))]
            run = [("call", method, np.concatenate([it[2] for it in run]),
                    np.concatenate([it[3] for it in run]), ids)]
        answers: list[Optional[np.ndarray]] = [None] * len(run)
        if previous is not None:
            try:
                if len(run) == 1:
                    answers = [np.asarray(previous.predict(run[0][2])).reshape(-1)]
                else:
                    got = np.asarray(previous.predict(np.concatenate([it[2] for it in run]))).reshape(-1)
                    answers = [*np.split(got, np.cumsum([len(it[2]) for it in run])[:-1])]
            except Exception:  # noqa: BLE001 - the previous version's failure is not the new one's
                self._ev.shadow_errors += len(run)
        for (_, m, _X, out, ids), answer in zip(run, answers):
            self._compare(m, out, ids, answer)

    def _new_labels(self, method: str, out: np.ndarray) -> np.ndarray:
        if method == "predict_proba" and self.classes is not None:
            return self.classes[np.asarray(out).reshape(len(out), -1).argmax(axis=1)].astype(str)
        return np.asarray(out).reshape(-1).astype(str)

    def _compare(self, method: str, out: np.ndarray, ids: Any, got: Optional[np.ndarray]) -> None:
        if self.task != "regression":  # labels: classes, anomaly flags, clusters
            new = self._new_labels(method, out)
            _count(self._labels, new)
            old = None
            if got is not None and got.shape == new.shape:
                old = got.astype(str)
                _count(self._prev_labels, old)
                self._ev.agreed += int((new == old).sum())
                self._ev.compared += int(new.size)
            elif got is not None:
                self._ev.shadow_errors += 1
            if ids is not None and len(ids) == new.size:
                self._remember(ids, new, old)
        elif got is not None:
            self._relative(np.asarray(out, dtype=np.float64).reshape(-1), got.astype(np.float64))

    def _relative(self, new: np.ndarray, old: np.ndarray) -> None:
        if new.shape != old.shape:
            self._ev.shadow_errors += 1
            return
        ok = np.isfinite(old)
        both = ok & np.isfinite(new)
        self._ev.nonfinite += int((ok & ~both).sum())
        self._ev.abs_diff += float(np.abs(new[both] - old[both]).sum())
        self._ev.abs_prev += float(np.abs(old[both]).sum())
        self._ev.compared += int(ok.sum())

    def _remember(self, ids: list, new: np.ndarray, old: Optional[np.ndarray]) -> None:
        for i, pid in enumerate(ids):
            if pid is not None:
                self._ids[pid] = (new[i], None if old is None else old[i])
        while len(self._ids) > self._ids_max:
            self._ids.popitem(last=False)

    def _as_label(self, truth: Any) -> str:
        """The true label spelt as the model's labels are (1.0 -> "1" for integer classes)."""
        if self.classes is not None:
            try:
                return str(np.asarray([truth]).astype(self.classes.dtype)[0])
            except (TypeError, ValueError):
                pass  # not one of the classes: counted wrong for both versions
        return str(truth)

    def _feedback(self, prediction_id: Any, truth: Any) -> None:
        entry = self._ids.pop(prediction_id, None)
        if entry is None:
            self._ev.fb_unmatched += 1
            return
        new, old = entry
        t = self._as_label(truth)
        new_right = new == t
        self._ev.fb_n += 1
        self._ev.fb_new_right += int(new_right)
        if old is not None:
            old_right = old == t
            self._ev.fb_paired += 1
            self._ev.fb_prev_right += int(old_right)
            self._ev.fb_worse += int(old_right and not new_right)
            self._ev.fb_better += int(new_right and not old_right)
