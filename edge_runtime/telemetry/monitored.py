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
from typing import Any, Callable, Optional, Union

import numpy as np

from ..errors import NoProbabilitiesError
from .alerting import AlertCallback
from .recorder import CALL, ERROR, PROBA_CALL, LiveMetrics, Recorder, Stream, get_recorder

_perf = time.perf_counter
_ndarray = np.ndarray


class MonitoredModel:
    """Same ``predict`` / ``predict_proba`` (plus ``ids=``) as the wrapped model, recorded.

    ``model`` is anything with ``predict`` (and optionally ``predict_proba``) and either a
    ``manifest`` (a loaded :class:`Model`) or explicit ``name``/``version``.
    """

    def __init__(self, model: Any, recorder: Recorder, *, name: Optional[str] = None,
                 version: Optional[str] = None, reference: Optional[dict[str, Any]] = None,
                 on_alert: Optional[AlertCallback] = None,
                 alert_rules: Optional[dict[str, Any]] = None):
        manifest = getattr(model, "manifest", None)
        self.model = model
        self.recorder = recorder
        self.name = name or (manifest.name if manifest is not None
                             else getattr(model, "name", type(model).__name__))
        self.version = version or (manifest.version if manifest is not None
                                   else getattr(model, "version", "0.0.0"))
        ref = reference if reference is not None else (
            manifest.reference if manifest is not None else getattr(model, "reference", None))
        classes = getattr(model, "classes", None)
        task = getattr(model, "task", "classification" if classes is not None else "regression")
        feature_names = getattr(model, "feature_names", None)
        adapt = getattr(model, "_adapt", None)
        adapt = getattr(adapt, "codes", adapt)  # named inputs (strings): the matrix of codes
        self.stream = Stream(self.name, self.version, classification=task != "regression",
                             classes=list(classes) if classes is not None else None,
                             reference=ref, adapt=adapt,
                             width=len(feature_names) if feature_names else None)
        self._sid = recorder.register(self.stream)
        self._rec = recorder
        if on_alert is not None:
            recorder.watch(self.stream, on_alert, alert_rules)
        self.predict = _recording(CALL, model.predict, recorder, self._sid, self._error)  # type: ignore[method-assign]
        proba = getattr(model, "predict_proba", None)
        if proba is not None:
            self.predict_proba = _recording(PROBA_CALL, proba, recorder, self._sid,  # type: ignore[method-assign]
                                            self._error)
        else:
            self.predict_proba = self._no_proba  # type: ignore[method-assign]

    def _no_proba(self, X: Any, *, ids: Any = None) -> np.ndarray:
        raise NoProbabilitiesError.of(str(self.name), getattr(self.model, "task", "unknown"))

    # --- the hot path -----------------------------------------------------------------------
    # ``__init__`` replaces both methods on the instance with closures from ``_recording``
    # (no bound-method call, no attribute lookups per call); these bodies document the API.
    def predict(self, X: Any, *, ids: Any = None) -> np.ndarray:
        """Labels or values, as the wrapped model; ``ids`` (one per row) enable feedback."""
        return self.__dict__["predict"](X, ids=ids)

    def predict_proba(self, X: Any, *, ids: Any = None) -> np.ndarray:
        """Class probabilities, as the wrapped model (the argmax class is what is counted)."""
        return self.__dict__["predict_proba"](X, ids=ids)

    def _error(self, exc: BaseException, t0: float) -> None:
        self._rec.buf.extend((ERROR, self._sid, t0, _perf() - t0, type(exc).__name__, None,
                              None, None))

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

    def __getattr__(self, name: str) -> Any:  # info, classes, feature_names, manifest, ...
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"<MonitoredModel {self.name} {self.version} of {self.model!r}>"


def _recording(kind: int, call: Callable[[Any], np.ndarray], rec: Recorder, sid: int,
               error: Callable[[BaseException, float], None]) -> Callable[..., np.ndarray]:
    """The recording hot path as a closure: every name it uses is a local or a cell."""
    cap = rec.buf_cap
    perf = time.perf_counter
    ndarray = np.ndarray

    def predict(X: Any, *, ids: Any = None) -> np.ndarray:
        t0 = perf()
        try:
            y = call(X)
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
