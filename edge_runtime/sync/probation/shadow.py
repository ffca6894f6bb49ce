"""The shadow worker: off the caller's path, the previous good version answers a sample of the
live calls the new version served, and the evidence probation judges is counted here: label
agreement or relative error against the previous version, the new version's class shares, and
right/wrong on delayed labels for both versions on the same calls.

The caller's only cost is :func:`take_sample` (a bounded copy of the first rows: the caller
may reuse its buffers once the call returned) and one ``put_nowait``; when the queue is full
the sample is dropped and counted, the caller never waits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

log = logging.getLogger("edge_runtime.sync")
_STOP = ("stop",)


@dataclass
class Evidence:
    """Counters written by the worker thread only; readers may see a slightly old state."""

    shadow: str = "none"  # "none" (no previous version), "loading", "ready", "failed: …"
    dropped: int = 0  # samples not queued because the queue was full
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


def take_sample(X: Any, out: Any, ids: Any, rows: int) -> tuple[Any, Any, Any]:
    """Copies of at most ``rows`` rows of the input, output and ids of one call."""
    if isinstance(X, np.ndarray) and isinstance(out, np.ndarray) and X.ndim >= 1:
        return X[:rows].copy(), out[:rows].copy(), None if ids is None else list(ids[:rows])
    if isinstance(X, (list, tuple)) and isinstance(out, np.ndarray):
        return list(X[:rows]), out[:rows].copy(), None if ids is None else list(ids[:rows])
    return X, np.array(out, copy=True), None if ids is None else list(ids)  # dict, DataFrame: whole


class ShadowWorker:
    """One daemon thread and a bounded queue; :meth:`close` stops it without waiting."""

    def __init__(self, *, task: str, classes: Any, load_previous: Optional[Callable[[], Any]],
                 queue_max: int = 256, ids_max: int = 10_000):
        self.task = task
        self.classes = None if classes is None else np.asarray(classes)
        self.ev = Evidence(shadow="loading" if load_previous is not None else "none")
        self.submitted = 0  # call samples queued (caller side)
        self.handled = 0  # call samples taken off the queue (worker side)
        self._labels: Counter = Counter()
        self._prev_labels: Counter = Counter()
        self._ids: OrderedDict = OrderedDict()  # prediction id -> (new label, previous label)
        self._ids_max = ids_max
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(queue_max)))
        self._drop_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(load_previous,), daemon=True,
                                        name="edgert-probation-shadow")
        self._thread.start()

    # --- caller side --------------------------------------------------------------------------
    def submit(self, item: tuple) -> bool:
        """Queue a call sample or a label; False (and counted) when the queue is full."""
        try:
            self._q.put_nowait(item)
            if item[0] == "call":
                self.submitted += 1
            return True
        except queue.Full:
            with self._drop_lock:
                self.ev.dropped += 1
            return False

    def drain(self, timeout: float) -> bool:
        """Wait until every queued item was handled (tests, benchmarks). True if it was."""
        end = time.monotonic() + timeout
        while self._q.unfinished_tasks and self._thread.is_alive() and time.monotonic() < end:
            time.sleep(0.005)
        return not self._q.unfinished_tasks

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop the thread (queued samples are discarded); it closes the shadow model itself.
        With ``timeout``, wait that long for the thread to end."""
        self._stop.set()
        try:
            self._q.put_nowait(_STOP)
        except queue.Full:
            pass  # the thread sees the stop flag within its poll interval
        if timeout is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- worker side --------------------------------------------------------------------------
    def _run(self, load_previous: Optional[Callable[[], Any]]) -> None:
        previous = None
        if load_previous is not None:
            try:
                previous = load_previous()
                self.ev.shadow = "ready"
            except Exception as exc:  # noqa: BLE001 - any failure: judged without a shadow
                self.ev.shadow = f"failed: {type(exc).__name__}: {exc}"
                log.warning("probation shadow: the previous version did not load: %s", exc)
        try:
            while not self._stop.is_set():
                try:
                    item = self._q.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    if item[0] == "call":
                        self._compare(previous, *item[1:])
                        self.handled += 1
                    elif item[0] == "feedback":
                        self._feedback(*item[1:])
                except Exception as exc:  # noqa: BLE001 - the worker outlives any bad sample
                    log.warning("probation shadow: sample skipped: %s: %s", type(exc).__name__, exc)
                finally:
                    self._q.task_done()
        finally:
            if previous is not None:
                previous.close()

    def _new_labels(self, method: str, out: np.ndarray) -> np.ndarray:
        if method == "predict_proba" and self.classes is not None:
            return self.classes[np.asarray(out).reshape(len(out), -1).argmax(axis=1)].astype(str)
        return np.asarray(out).reshape(-1).astype(str)

    def _compare(self, previous: Any, method: str, X: Any, out: np.ndarray, ids: Any) -> None:
        got = None
        if previous is not None:
            try:
                got = np.asarray(previous.predict(X)).reshape(-1)
            except Exception:  # noqa: BLE001 - the previous version's failure is not the new one's
                self.ev.shadow_errors += 1
        if self.task == "classification":
            new = self._new_labels(method, out)
            self._labels.update(new.tolist())
            self.ev.labels = dict(self._labels)
            old = None
            if got is not None and got.shape == new.shape:
                old = got.astype(str)
                self._prev_labels.update(old.tolist())
                self.ev.prev_labels = dict(self._prev_labels)
                self.ev.agreed += int((new == old).sum())
                self.ev.compared += int(new.size)
            elif got is not None:
                self.ev.shadow_errors += 1
            if ids is not None and len(ids) == new.size:
                self._remember(ids, new, old)
        elif got is not None:
            self._relative(np.asarray(out, dtype=np.float64).reshape(-1), got.astype(np.float64))

    def _relative(self, new: np.ndarray, old: np.ndarray) -> None:
        if new.shape != old.shape:
            self.ev.shadow_errors += 1
            return
        ok = np.isfinite(old)
        both = ok & np.isfinite(new)
        self.ev.nonfinite += int((ok & ~both).sum())
        self.ev.abs_diff += float(np.abs(new[both] - old[both]).sum())
        self.ev.abs_prev += float(np.abs(old[both]).sum())
        self.ev.compared += int(ok.sum())

    def _remember(self, ids: list, new: np.ndarray, old: Optional[np.ndarray]) -> None:
        for i, pid in enumerate(ids):
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
            self.ev.fb_unmatched += 1
            return
        new, old = entry
        t = self._as_label(truth)
        new_right = new == t
        self.ev.fb_n += 1
        self.ev.fb_new_right += int(new_right)
        if old is not None:
            old_right = old == t
            self.ev.fb_paired += 1
            self.ev.fb_prev_right += int(old_right)
            self.ev.fb_worse += int(old_right and not new_right)
            self.ev.fb_better += int(new_right and not old_right)
