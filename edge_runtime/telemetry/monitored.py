"""``MonitoredModel``: a :class:`~edge_runtime.model.Model` with telemetry and feedback.

The core ``Model`` stays free of any per-call cost; wrap it when you want recording:

    >>> from edge_runtime.telemetry import monitor
    >>> model = monitor(edge_runtime.load("bundle/"), state_dir="state/")   # doctest: +SKIP
    >>> model.predict(rows, ids=["order-17"])                              # doctest: +SKIP
    >>> model.feedback("order-17", "fraud")                                # doctest: +SKIP

The hot path adds two clock reads, a byte snapshot of the input array and one
``list.extend``; everything else (binning, PSI, SQLite) happens in the recorder's background
thread.
"""

from __future__ import annotations

import os
import time
from typing import Any, Awaitable, Callable, Coroutine, Optional, Union

import numpy as np

from ..errors import NoProbabilitiesError
from ..predictor import Predictor
from .alerting import AlertCallback
from .recorder import CALL, ERROR, PROBA_CALL, LiveMetrics, Recorder, Stream, get_recorder

_perf = time.perf_counter


class MonitoredModel:
    """A :class:`~edge_runtime.predictor.Predictor` that records every call of the one it wraps.

    ``model`` is a :class:`~edge_runtime.predictor.Predictor` (a loaded :class:`Model`, a
    strategy, a ``HotSwapModel``) or anything with ``predict`` (and optionally
    ``predict_proba``); name and version come from its ``manifest``, else from its
    ``name``/``version``, else from the arguments. ``ids`` are recorded (for :meth:`feedback`)
    and, like ``strict`` and ``key``, passed on to a ``Predictor``; an object that is not one
    gets ``strict=True`` when asked (it fails if it cannot check ranges) and neither ``key`` nor
    ``ids``, which it has no use for.
    """

    def __init__(self, model: Any, recorder: Recorder, *, name: Optional[str] = None,
                 version: Optional[str] = None, reference: Optional[dict[str, Any]] = None,
                 on_alert: Optional[AlertCallback] = None,
                 alert_rules: Optional[dict[str, Any]] = None):
        manifest = getattr(model, "manifest", None)
        self.model = model
        self.recorder = recorder
        self.name = str(name or (manifest.name if manifest is not None
                                 else getattr(model, "name", type(model).__name__)))
        self.version = str(version or (manifest.version if manifest is not None
                                       else getattr(model, "version", "0.0.0")))
        ref = reference if reference is not None else (
            manifest.reference if manifest is not None else getattr(model, "reference", None))
        classes = getattr(model, "classes", None)
        task = getattr(model, "task", "classification" if classes is not None else "regression")
        feature_names = getattr(model, "feature_names", None)
        self.stream = Stream(self.name, self.version, classification=task != "regression",
                             classes=list(classes) if classes is not None else None,
                             reference=ref, adapt=getattr(model, "feature_matrix", None),
                             width=len(feature_names) if feature_names else None)
        self._sid = recorder.register(self.stream)
        self._rec = recorder
        if on_alert is not None:
            recorder.watch(self.stream, on_alert, alert_rules)
        forward = isinstance(model, Predictor)
        self.predict = _recording(CALL, model.predict, recorder, self._sid, self._error,  # type: ignore[method-assign]
                                  forward)
        proba = getattr(model, "predict_proba", None)
        self.predict_proba = (  # type: ignore[method-assign]
            _recording(PROBA_CALL, proba, recorder, self._sid, self._error, forward)
            if proba is not None else self._no_proba)
        if forward:
            self.predict_async = _recording_async(  # type: ignore[method-assign]
                CALL, model.predict_async, recorder, self._sid, self._error)
            self.predict_proba_async = _recording_async(  # type: ignore[method-assign]
                PROBA_CALL, model.predict_proba_async, recorder, self._sid, self._error)

    def _no_proba(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        raise NoProbabilitiesError.of(str(self.name), getattr(self.model, "task", "unknown"))

    # --- the hot path -----------------------------------------------------------------------
    # ``__init__`` replaces these methods on the instance with closures from ``_recording``
    # (no bound-method call, no attribute lookups per call); these bodies document the API and
    # serve the async twins of a wrapped object that only answers synchronously.
    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        """Labels or values, as the wrapped model; ``ids`` (one per row) enable feedback."""
        return self.__dict__["predict"](X, strict=strict, key=key, ids=ids)

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> np.ndarray:
        """Class probabilities, as the wrapped model (the argmax class is what is counted)."""
        return self.__dict__["predict_proba"](X, strict=strict, key=key, ids=ids)

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        """Awaitable :meth:`predict` (recorded the same way; a wrapped object without async
        methods answers synchronously)."""
        return self.__dict__["predict"](X, strict=strict, key=key, ids=ids)

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        """Awaitable :meth:`predict_proba`, as :meth:`predict_async`."""
        return self.__dict__["predict_proba"](X, strict=strict, key=key, ids=ids)

    def _error(self, exc: BaseException, t0: float) -> None:
        self._rec.buf.extend((ERROR, self._sid, t0, _perf() - t0, type(exc).__name__, None,
                              None, None))

    # --- what is wrapped --------------------------------------------------------------------
    # Declared (not left to ``__getattr__``) so the Predictor protocol sees them statically.
    @property
    def task(self) -> str:
        """The wrapped model's task (without one: ``classification`` if it has classes)."""
        return getattr(self.model, "task", "classification" if self.classes is not None else "regression")

    @property
    def classes(self) -> Any:
        return getattr(self.model, "classes", None)

    @property
    def feature_names(self) -> Any:
        return getattr(self.model, "feature_names", None)

    @property
    def input_schema(self) -> Any:
        return getattr(self.model, "input_schema", None)

    # --- ground truth, live view ------------------------------------------------------------
    def feedback(self, prediction_id: Any, label: Any) -> None:
        """Record the true outcome for a prediction made with ``ids=[..., prediction_id, ...]``.

        The predicted label is held in memory (bounded, with a TTL) only until this call.
        """
        self.recorder.feedback(prediction_id, label)

    def set_rollout_state(self, state: Optional[str]) -> None:
        """Report this version's state in the version store (``installed``, ``probation``,
        ``good`` or ``bad``) with every telemetry window from now on, so the collector's
        dashboard shows which versions are on probation, committed or rolled back."""
        from ..sync.store import STATES

        if state is not None and state not in STATES:
            raise ValueError(f"rollout state must be one of {', '.join(STATES)}, got {state!r}")
        self.stream.state = state

    def live_metrics(self, last_n: Optional[int] = None) -> LiveMetrics:
        return self.recorder.live_metrics(self.name, self.version, last_n)

    def flush(self) -> None:
        self.recorder.flush()

    def __getattr__(self, name: str) -> Any:  # info, manifest, backend, ...
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"<MonitoredModel {self.name} {self.version} of {self.model!r}>"


def _recording(kind: int, call: Callable[..., np.ndarray], rec: Recorder, sid: int,
               error: Callable[[BaseException, float], None],
               forward: bool) -> Callable[..., np.ndarray]:
    """The recording hot path as a closure: every name it uses is a local or a cell.
    ``forward``: ``call`` is a Predictor's, which takes every keyword argument."""
    cap = rec.buf_cap
    perf = time.perf_counter
    ndarray = np.ndarray

    def predict(X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        t0 = perf()
        try:
            y = call(X, strict=strict, key=key, ids=ids) if forward else _plain(call, X, strict)
        except Exception as exc:
            error(exc, t0)
            raise
        lat = perf() - t0
        buf = rec.buf
        if len(buf) < cap:
            buf.extend((kind, sid, t0, lat, X, X.tobytes() if type(X) is ndarray and X.dtype.kind in "fiub"
                        else None, y, ids))
        else:
            rec.lost += 1
        return y

    return predict


def _plain(call: Callable[..., np.ndarray], X: Any, strict: bool) -> np.ndarray:
    """Call the ``predict`` of an object that is no Predictor (it may take no keywords)."""
    return call(X, strict=True) if strict else call(X)


def _recording_async(kind: int, call: Callable[..., Awaitable[np.ndarray]], rec: Recorder, sid: int,
                     error: Callable[[BaseException, float], None]) -> Callable[..., Coroutine[Any, Any, np.ndarray]]:
    """:func:`_recording` for a Predictor's coroutine methods (the latency includes the wait).
    The entry is the same; it is not shared through a helper because the sync closure keeps it
    inline (a function call there would add about 40 % to the recording overhead)."""
    cap = rec.buf_cap
    perf = time.perf_counter
    ndarray = np.ndarray

    async def predict(X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        t0 = perf()
        try:
            y = await call(X, strict=strict, key=key, ids=ids)
        except Exception as exc:
            error(exc, t0)
            raise
        lat = perf() - t0
        buf = rec.buf
        if len(buf) < cap:
            buf.extend((kind, sid, t0, lat, X, X.tobytes() if type(X) is ndarray and X.dtype.kind in "fiub"
                        else None, y, ids))
        else:
            rec.lost += 1
        return y

    return predict


def monitor(model: Any, recorder: Optional[Recorder] = None, *,
            state_dir: Union[str, os.PathLike[str], None] = None,
            on_alert: Optional[AlertCallback] = None, alert_rules: Optional[dict[str, Any]] = None,
            **recorder_options: Any) -> MonitoredModel:
    """Wrap ``model`` so its predictions are recorded (the process-wide recorder by default).

    ``on_alert(breach)`` is called (on a thread of its own, never from ``predict``) once per
    drift, error-rate or p99-latency breach of the live window, and again only after the
    breach cleared; ``alert_rules`` overrides :data:`~edge_runtime.telemetry.alerting.DEFAULT_ALERT_RULES`.
    """
    rec = recorder or get_recorder(state_dir, **recorder_options)
    return MonitoredModel(model, rec, on_alert=on_alert, alert_rules=alert_rules)
