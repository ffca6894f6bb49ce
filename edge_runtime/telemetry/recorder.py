"""The recorder: takes raw facts from the prediction path and aggregates them elsewhere.

The prediction thread only appends one flat entry of ``ENTRY`` values ``(kind, stream id,
perf_counter time, latency, input, input bytes, output, ids)`` to a bounded in-memory list
(``list.extend`` of a tuple is atomic under the GIL; the input bytes are a snapshot, so a
caller that reuses its array cannot change what is recorded). A background thread swaps the
list for an empty one every ``drain_interval_s``, slices it into columns, bins latencies,
outputs and features per model version and time window (vectorised over the whole block),
and writes closed windows to the SQLite outbox. Predictions never wait on binning, disk or
network. When the buffer is full a call is counted as ``lost`` instead of blocking.

A producer that read ``recorder.buf`` just before a swap may still append to the old list:
the drain keeps the previous list and takes such late entries on its next pass.

Raw inputs are never stored unless ``sample_rate`` > 0 is set explicitly.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import operator
import os
import random
import threading
import time
import weakref
from collections import OrderedDict, deque
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar, Union

import numpy as np

from ..health import LiveMetrics
from ..sampling import percentile
from .aggregate import WindowAccumulator
from .alerting import AlertCallback, AlertDispatcher, LiveAlerts
from .outbox import DEFAULT_MAX_BYTES, Outbox

log = logging.getLogger("edge_runtime.telemetry")

# entry kinds, and the number of values per entry in the flat buffer
CALL, PROBA_CALL, ERROR, FEEDBACK, SHADOW = range(5)
ENTRY = 8
LIVE_NAME = "live.json"
#: Entries aggregated per GIL hold by the drain thread (bounds the pause it can cause).
DRAIN_CHUNK = 1024


class Stream:
    """What the recorder knows about one monitored model version (made by MonitoredModel)."""

    def __init__(self, model: str, version: str, *, classification: bool,
                 classes: Optional[list[Any]] = None,
                 reference: Optional[dict[str, Any]] = None,
                 adapt: Optional[Callable[[Any], np.ndarray]] = None,
                 width: Optional[int] = None):
        self.model = model
        self.version = version
        self.key = (model, version)
        self.classification = classification
        self.classes = np.asarray(classes) if classes is not None else None
        self.reference = reference if reference and reference.get("features") else None
        self.adapt = adapt
        self.width = width
        self.sid: Optional[int] = None
        self.state: Optional[str] = None  # rollout state sent with each window (set_rollout_state)

    def to_matrix(self, X: Any) -> Optional[np.ndarray]:
        """The validated 2-D input again (drain thread only); None if it cannot be rebuilt."""
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "fiub" \
                and (self.width is None or X.shape[1] == self.width):
            return X
        if self.adapt is None:
            return None
        try:
            return self.adapt(X)
        except Exception:  # noqa: BLE001 - the call succeeded; a stale mutable input is not fatal
            return None


_T = TypeVar("_T")


def _window_start(t: float, window_s: float) -> float:
    return math.floor(t / window_s) * window_s


class Recorder:
    """Aggregates prediction facts into per-version windows and persists them to the outbox.

    One recorder per process and state directory is usual (:func:`get_recorder`). All
    public methods are thread-safe; :meth:`flush` makes everything recorded so far durable.
    """

    def __init__(self, state_dir: Union[str, os.PathLike[str], None] = None, *,
                 outbox: Optional[Outbox] = None, window_s: float = 300.0,
                 drain_interval_s: float = 0.5, persist_interval_s: float = 60.0,
                 queue_max: int = 200_000, sample_rate: float = 0.0, live_n: int = 1000,
                 max_pending_feedback: int = 100_000, feedback_ttl_s: float = 7 * 86400.0,
                 max_bytes: int = DEFAULT_MAX_BYTES, start: bool = True):
        if window_s <= 0 or drain_interval_s <= 0:
            raise ValueError("window_s and drain_interval_s must be positive")
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be within [0, 1], got {sample_rate}")
        self.outbox = outbox or Outbox(state_dir, max_bytes=max_bytes)
        self.window_s = float(window_s)
        self.drain_interval_s = float(drain_interval_s)
        self.persist_interval_s = float(persist_interval_s)
        self.queue_max = int(queue_max)
        self.sample_rate = float(sample_rate)
        self.live_n = int(live_n)
        self.max_pending_feedback = int(max_pending_feedback)
        self.feedback_ttl_s = float(feedback_ttl_s)
        self.buf: list = []  # flat entries of ENTRY values; swapped out by drain()
        self.buf_cap = self.queue_max * ENTRY
        self._retired: list = []
        self._retired_done = 0
        self.lost = 0  # incremented on the prediction path when the queue is full
        self._lost_seen = 0
        self._windows: dict[tuple[tuple[str, str], float], tuple[Stream, WindowAccumulator]] = {}
        self._live: dict[tuple[str, str], deque] = {}
        self._pending: OrderedDict[Any, tuple[Stream, Any, float]] = OrderedDict()
        self._refs_sent: set[tuple[str, str]] = set()
        self._streams: list[Stream] = []
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_persist = time.monotonic()
        self._clock_offset = time.time() - time.perf_counter()
        self.live_write_s = 1.0
        self._last_live_write = 0.0
        self._live_dirty = False
        self._live_write_failed = False
        self._last_stream: Optional[Stream] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._watchers: list[LiveAlerts] = []
        self._dispatcher: Optional[AlertDispatcher] = None
        if start:
            self.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgert-telemetry",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.drain_interval_s)
            self._wake.clear()
            try:
                if self.drain() and self._watchers:
                    self.check_alerts()
                if self._live_dirty and \
                        time.monotonic() - self._last_live_write >= self.live_write_s:
                    self.write_live()
                if time.monotonic() - self._last_persist >= self.persist_interval_s:
                    self.persist(all_windows=True)
                else:
                    self.persist(all_windows=False)
            except Exception:  # noqa: BLE001 - telemetry must never take the process down
                log.warning("telemetry drain failed; retrying", exc_info=True)
                time.sleep(self.drain_interval_s)

    def flush(self) -> None:
        """Aggregate everything queued and write every window (open ones too) to the outbox."""
        self.drain()
        self.persist(all_windows=True)

    def close(self) -> None:
        """Stop the drain thread and flush. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - closing (often at exit) must not raise
            log.warning("telemetry: final flush failed", exc_info=True)
        finally:
            self.outbox.close()
            if self._dispatcher is not None:
                self._dispatcher.stop()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- entry points used off the hot path -------------------------------------------------
    def feedback(self, prediction_id: Any, label: Any) -> None:
        """Record the true outcome of an earlier prediction made with ``ids=``."""
        self.buf.extend((FEEDBACK, None, time.perf_counter(), 0.0, prediction_id, None, label,
                         None))

    def shadow_result(self, stream: Stream, candidate: str, n: int, agree: int) -> None:
        """Record that ``agree`` of ``n`` shadow outputs of ``candidate`` matched ``stream``'s."""
        self.buf.extend((SHADOW, self.register(stream), time.perf_counter(), 0.0, candidate, None,
                         n, agree))

    def register(self, stream: Stream) -> int:
        """Give the stream a small integer id (queue entries hold ints, not objects, so the
        garbage collector untracks them) and store its reference statistics once, so the
        collector can compute PSI."""
        if stream.sid is None:
            with self._drain_lock:
                stream.sid = len(self._streams)
                self._streams.append(stream)
        if stream.reference and stream.key not in self._refs_sent:
            ref = {"features": [{"name": f.get("name"), "counts": f.get("counts"),
                                 "missing": f.get("missing", 0)}
                                for f in stream.reference["features"]]}
            self.outbox.set_reference(stream.model, stream.version, ref)
            self._refs_sent.add(stream.key)
        return stream.sid

    # --- live view for the sync agent's probation -------------------------------------------
    def live_metrics(self, model: str, version: str, last_n: Optional[int] = None) -> LiveMetrics:
        """Error rate and p50/p99 latency over the last ``last_n`` calls (drains first)."""
        self.drain()
        return self._live_metrics(model, version, last_n)

    # --- on-device alerts (telemetry/alerting.py) -------------------------------------------
    def watch(self, stream: Stream, callback: AlertCallback,
              rules: Optional[dict[str, Any]] = None) -> LiveAlerts:
        """Call ``callback(Breach)`` (on the alert thread) when ``stream``'s live window
        breaches ``rules``; judged after every drain that brought new entries. Inputs are
        binned once more for the watcher's own drift window (``drift_rows`` rows)."""
        watcher = LiveAlerts(stream.model, stream.version, callback, rules,
                             reference=stream.reference)
        self.register(stream)
        with self._drain_lock:
            if self._dispatcher is None:
                self._dispatcher = AlertDispatcher()
            self._watchers.append(watcher)
        return watcher

    def check_alerts(self, wait: bool = False) -> None:
        """Judge every watched version now (the drain thread does it by itself); ``wait``
        returns only once the callbacks have run."""
        self.drain()
        with self._drain_lock:
            dispatcher = self._dispatcher
            for w in self._watchers:
                metrics = self._live_metrics(*w.key, None)
                drift = w.drift_window()
                for breach in w.evaluate(metrics, drift):
                    if dispatcher is not None:
                        dispatcher.put(w.callback, breach)
        if wait and dispatcher is not None:
            dispatcher.join()

    def write_live(self) -> None:
        """Write every version's live metrics to ``<state>/telemetry/live.json`` so another
        process (the sync daemon's probation) can read them with :func:`read_live_metrics`.

        Replaced atomically (temp + rename) but not fsynced: it is a live view, rebuilt
        every second, not data to keep across a power loss.
        """
        self._last_live_write = time.monotonic()
        self._live_dirty = False
        doc = {"updated": time.time(), "pid": os.getpid(), "versions": {
            f"{m}@{v}": self._live_metrics(m, v, None).as_dict() for m, v in list(self._live)}}
        path = self.outbox.dir / LIVE_NAME
        tmp = path.with_name(f".{LIVE_NAME}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: the live view is stale, predictions go on
            with contextlib.suppress(OSError):
                tmp.unlink()
            if not self._live_write_failed:
                log.warning("telemetry: cannot write %s: %s", path, exc)
            self._live_write_failed = True
        else:
            self._live_write_failed = False

    def _live_metrics(self, model: str, version: str, last_n: Optional[int]) -> LiveMetrics:
        ring = list(self._live.get((model, version), ()))
        if last_n is not None:
            ring = ring[-int(last_n):]
        n = len(ring)
        errors = sum(1 for _, bad in ring if bad)
        lat = sorted(t for t, _ in ring)
        p50 = percentile(lat, 50) if n else None
        p99 = percentile(lat, 99) if n else None
        return LiveMetrics(model, version, n, errors, errors / n if n else 0.0, p50, p99)

    # --- background work --------------------------------------------------------------------
    def _window(self, stream: Stream, t: float) -> WindowAccumulator:
        start = _window_start(t, self.window_s)
        key = (stream.key, start)
        got = self._windows.get(key)
        if got is None:
            got = (stream, WindowAccumulator(stream.model, stream.version, start, self.window_s,
                                             stream.reference))
            self._windows[key] = got
        return got[1]

    def drain(self) -> int:
        """Move everything buffered into the window accumulators. Returns entries processed."""
        with self._drain_lock:
            late = self._retired[self._retired_done:]
            cur = self.buf
            self.buf = []
            chunk = cur[:]  # a producer may still append to `cur`: those go next time
            self._retired, self._retired_done = cur, len(chunk)
            flat = late + chunk if late else chunk
            step = DRAIN_CHUNK * ENTRY
            for i in range(0, len(flat), step):
                if i:
                    time.sleep(0)  # let a waiting prediction thread take the GIL
                part = flat[i:i + step]
                try:
                    self._process(part)
                except Exception:  # noqa: BLE001 - count what could not be aggregated
                    log.warning("telemetry: could not aggregate %d entries", len(part) // ENTRY,
                                exc_info=True)
                    kinds = part[0::ENTRY]
                    self.lost += kinds.count(CALL) + kinds.count(PROBA_CALL)
            if flat:
                self._live_dirty = True
            lost = self.lost
            if lost != self._lost_seen and self._last_stream is not None:
                self._window(self._last_stream, time.time()).lost += lost - self._lost_seen
                self._lost_seen = lost
            return len(flat) // ENTRY

    def _process(self, flat: list) -> None:
        """Aggregate drained entries; calls first (vectorised per stream), then the rest.

        Entries carry ``perf_counter`` times (cheaper than ``time.time`` on the hot path);
        they become wall-clock times here through a fixed offset taken at start-up.
        """
        kinds, sids, ts, lats, xs, xbs, ys, ids = (flat[i::ENTRY] for i in range(ENTRY))
        n = len(kinds)
        table = self._streams
        if kinds.count(kinds[0]) == n and kinds[0] in (CALL, PROBA_CALL) \
                and sids.count(sids[0]) == n:
            self._calls(table[sids[0]], kinds[0], ts, lats, xs, xbs, ys, ids)
            return
        groups: dict[tuple[Any, int], list[int]] = {}
        later: list[int] = []
        for i, (k, sid) in enumerate(zip(kinds, sids)):
            if k in (CALL, PROBA_CALL, ERROR):
                groups.setdefault((sid, k), []).append(i)
            else:
                later.append(i)
        for (sid, k), idx in groups.items():
            stream = table[sid]
            if k == ERROR:
                self._errors(stream, [ts[i] for i in idx], [lats[i] for i in idx],
                             [xs[i] for i in idx])
            else:
                self._calls(stream, k, *([col[i] for i in idx]
                                         for col in (ts, lats, xs, xbs, ys, ids)))
        for i in later:
            wall = ts[i] + self._clock_offset
            if kinds[i] == FEEDBACK:
                self._apply_feedback(wall, xs[i], ys[i])
            else:
                self._window(table[sids[i]], wall).add_shadow(xs[i], ys[i], ids[i])

    def _live_ring(self, stream: Stream) -> deque:
        live = self._live.get(stream.key)
        if live is None:
            live = self._live[stream.key] = deque(maxlen=self.live_n)
        return live

    def _errors(self, stream: Stream, ts: Sequence[float], lats: Sequence[float],
                kinds: Sequence[str]) -> None:
        self._last_stream = stream
        for t, lat, kind in zip(ts, lats, kinds):
            acc = self._window(stream, t + self._clock_offset)
            acc.add_errors([kind], np.array([lat]))
        self._live_ring(stream).extend(zip(lats, repeat(True)))

    def _calls(self, stream: Stream, kind: int, ts: Sequence[float], lats: Sequence[float],
               xs: Sequence[Any], xbs: Sequence[Optional[bytes]], ys: Sequence[Any],
               ids: Sequence[Any]) -> None:
        self._last_stream = stream
        wall = np.fromiter(ts, dtype=np.float64, count=len(ts)) + self._clock_offset
        starts = np.floor(wall / self.window_s) * self.window_s
        if starts.min() != starts.max():  # the drain straddles a window boundary: split
            for w in np.unique(starts).tolist():
                sel = np.flatnonzero(starts == w).tolist()
                self._calls(stream, kind, _pick(ts, sel), _pick(lats, sel), _pick(xs, sel),
                            _pick(xbs, sel), _pick(ys, sel), _pick(ids, sel))
            return
        acc = self._window(stream, float(wall[0]))
        acc.touched(float(wall.min()))
        acc.touched(float(wall.max()))
        lat = np.fromiter(lats, dtype=np.float64, count=len(lats))
        self._live_ring(stream).extend(zip(lats[-self.live_n:], repeat(False)))
        x, rows = self._inputs(stream, xs, xbs, ys)
        acc.add_calls(lat, rows)
        if x is not None:
            self._observe_inputs(stream, acc, x)
        y = _output_block(kind, ys)
        if y is None:
            return
        if kind == PROBA_CALL:
            idx = y.argmax(axis=1)
            y = stream.classes[idx] if stream.classes is not None else idx
        acc.add_outputs(y, stream.classification)
        if ids.count(None) != len(ids):
            self._remember_calls(stream, ids, ys, y, float(wall[0]))

    def _observe_inputs(self, stream: Stream, acc: WindowAccumulator, x: np.ndarray) -> None:
        """The window's and the live watchers' input bins, and the sampled rows."""
        acc.add_inputs(x)
        for w in self._watchers:
            if w.key == stream.key:
                w.add_inputs(x)
        if self.sample_rate > 0:
            take = [r for r in x.tolist() if random.random() < self.sample_rate]
            if take:
                acc.add_samples(take)

    def _remember_calls(self, stream: Stream, ids: Sequence[Any], ys: Sequence[Any], y: np.ndarray,
                        t: float) -> None:
        """Each call's slice of the output block, kept under its prediction id for feedback."""
        pos = 0
        for pid, v in zip(ids, ys):
            k = len(v)
            if pid is not None:
                self._remember(stream, pid, y[pos:pos + k], t)
            pos += k

    @staticmethod
    def _snapshot(v: Any, b: Optional[bytes]) -> Any:
        return np.frombuffer(b, dtype=v.dtype).reshape(v.shape) if b is not None else v

    def _inputs(self, stream: Stream, xs: Sequence[Any], xbs: Sequence[Optional[bytes]],
                ys: Sequence[Any]) -> tuple[Optional[np.ndarray], int]:
        """The recorded inputs as one 2-D block (rebuilt from the byte snapshots), and rows."""
        snapshots = [b for b in xbs if b is not None]
        if len(snapshots) == len(xbs):
            shapes = set(map(_shape, xs))
            dtypes = set(map(_dtype, xs))
            if len(shapes) == 1 and len(dtypes) == 1:
                shape = next(iter(shapes))
                if len(shape) == 2 and (not stream.width or shape[1] == stream.width):
                    flat = np.frombuffer(b"".join(snapshots), dtype=next(iter(dtypes)))
                    return flat.reshape(len(xs) * shape[0], shape[1]), len(xs) * shape[0]
        mats = [stream.to_matrix(self._snapshot(v, b)) for v, b in zip(xs, xbs)]
        good = [m for m in mats if m is not None]
        x: Optional[np.ndarray]
        try:
            x = np.concatenate([np.asarray(m, dtype=np.float64) for m in good]) if good else None
        except ValueError:
            x = None
        rows = sum(m.shape[0] if m is not None else _rows_of(y) for m, y in zip(mats, ys))
        return x, rows

    def _remember(self, stream: Stream, ids: Any, y: np.ndarray, t: float) -> None:
        if isinstance(ids, (str, bytes, int)):
            ids = [ids]
        pending = self._pending
        for pid, label in zip(ids, y.tolist()):
            pending[pid] = (stream, label, t)
            pending.move_to_end(pid)
        while len(pending) > self.max_pending_feedback:
            pending.popitem(last=False)

    def _apply_feedback(self, t: float, pid: Any, truth: Any) -> None:
        cutoff = t - self.feedback_ttl_s
        pending = self._pending
        while pending:
            first = next(iter(pending.values()))
            if first[2] >= cutoff:
                break
            pending.popitem(last=False)
        got = pending.pop(pid, None)
        if got is None:
            if self._last_stream is not None:
                self._window(self._last_stream, t).unmatched_feedback += 1
            return
        stream, predicted, _ = got
        self._window(stream, t).add_feedback(predicted, truth, stream.classification)

    def persist(self, all_windows: bool = True) -> int:
        """Write windows to the outbox: closed ones, or all (then they restart empty)."""
        with self._drain_lock:
            now = time.time()
            done, segments = [], []
            for key, (stream, acc) in self._windows.items():
                if all_windows or acc.window_end <= now:
                    done.append(key)
                    if not acc.empty():
                        self.register(stream)
                        seg = acc.to_segment()
                        if stream.state is not None:
                            seg["state"] = stream.state
                        segments.append(seg)
            self.outbox.add_segments(segments)
            for key in done:
                del self._windows[key]
            if all_windows:
                self._last_persist = time.monotonic()
            return len(segments)


_shape = operator.attrgetter("shape")
_dtype = operator.attrgetter("dtype")
_ndim = operator.attrgetter("ndim")


def _rows_of(y: Any) -> int:
    shape = getattr(y, "shape", None)
    return int(shape[0]) if shape else 1


def _pick(col: Sequence[_T], sel: Sequence[int]) -> list[_T]:
    return [col[i] for i in sel]


def _output_block(kind: int, ys: Sequence[Any]) -> Optional[np.ndarray]:
    """The calls' outputs as one block (2-D probabilities or 1-D values), None when they do not
    stack (then the window counts the calls and inputs but not the outputs)."""
    try:
        try:
            uniform = len(set(map(_ndim, ys))) == 1 and type(ys[0]) is np.ndarray
        except AttributeError:
            uniform = False
        if uniform and ys[0].ndim == (2 if kind == PROBA_CALL else 1):
            return np.concatenate(ys) if len(ys) > 1 else ys[0]
        if kind == PROBA_CALL:
            return np.concatenate([np.asarray(v).reshape(len(v), -1) for v in ys])
        return np.concatenate([np.ravel(v) for v in ys])
    except ValueError:
        return None


def _close_at_exit(ref: weakref.ref[Recorder]) -> None:
    """Flush a recorder still open when the interpreter exits (the weak reference lets an
    unused recorder be collected before that)."""
    recorder = ref()
    if recorder is not None:
        recorder.close()


def read_live_metrics(model: str, version: str,
                      state_dir: Union[str, os.PathLike[str], None] = None, *,
                      max_age_s: Optional[float] = 10.0) -> Optional[LiveMetrics]:
    """Live metrics of a version as last written by the predicting process (None if there
    are none, or they are older than ``max_age_s``). For the sync daemon's probation."""
    from .outbox import default_state_dir

    path = Path(state_dir if state_dir is not None else default_state_dir()) / "telemetry" / LIVE_NAME
    try:
        doc = json.loads(path.read_text())
        if max_age_s is not None and time.time() - float(doc["updated"]) > max_age_s:
            return None
        got = doc["versions"].get(f"{model}@{version}")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return LiveMetrics(**got) if got else None


_RECORDERS: dict[str, Recorder] = {}
_RECORDERS_LOCK = threading.Lock()


def get_recorder(state_dir: Union[str, os.PathLike[str], None] = None, **options: Any) -> Recorder:
    """The process-wide recorder for a state directory (created on first use)."""
    from .outbox import default_state_dir

    key = os.path.abspath(str(state_dir if state_dir is not None else default_state_dir()))
    with _RECORDERS_LOCK:
        rec = _RECORDERS.get(key)
        if rec is None or rec._closed:
            rec = _RECORDERS[key] = Recorder(key, **options)
        return rec
