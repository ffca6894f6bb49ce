"""``Predictor``: the one contract every model and model wrapper answers to.

A loaded :class:`~edge_runtime.model.Model`, a
:class:`~edge_runtime.telemetry.MonitoredModel`, the deployment strategies of
:mod:`edge_runtime.strategies` and :class:`~edge_runtime.hotswap.HotSwapModel` can wrap each
other in any order, so they must take the same arguments and mean the same by them. Their
meaning is defined here, once:

``strict`` (default ``False``)
    Also refuse values outside each feature's training min/max (an ``InputError`` naming the
    row and the feature). Every wrapper passes it on to the model that answers.
``key`` (default ``None``)
    A stable identity of the caller or request (a user, a session, a device) for *sticky
    routing*: the same key is always sent to the same version. Used by
    :class:`~edge_runtime.strategies.ABSplit` (and a ``StrategySwitch`` whose active strategy
    is one); every other wrapper passes it on unchanged, so a router further down still sees
    it. A bare ``Model`` is one version with nothing to route, and ignores it.
``ids`` (default ``None``)
    One id per row (or one id for a one-row call), naming each prediction so its true label can
    be reported later with ``feedback(id, label)``. Recorded by ``MonitoredModel`` (telemetry
    accuracy), which also passes them on, and by ``HotSwapModel`` (probation compares the
    versions on labelled calls), which serves a bare ``Model``; the strategies pass them on. A
    bare ``Model`` records nothing, and ignores them. ``Ensemble`` deliberately does not pass
    them to its members: its answer is none of theirs, so a label belongs to the ensemble
    (monitor the ensemble itself to record them).

All three are keyword-only. ``predict`` gives one label or value per row, ``predict_proba`` one
row of class probabilities per input row (columns in ``classes`` order); the ``_async`` twins
are the same calls as coroutines (event loops, Pyodide's asynchronous JavaScript engines).

Importing this module costs nothing (no numpy): it only declares the protocol.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Sequence, runtime_checkable


@runtime_checkable
class Predictor(Protocol):
    """What a model or a wrapper of models offers (see the module docstring for the arguments).

    ``isinstance(obj, Predictor)`` checks that the members exist, not their signatures;
    ``tests/test_predictor.py`` checks the signatures of every implementation.
    """

    @property
    def task(self) -> str:
        """``classification``, ``regression``, ``anomaly`` or ``clustering``."""

    @property
    def classes(self) -> Optional[Sequence[Any]]:
        """Class labels in ``predict_proba`` column order; ``None`` without classes."""

    @property
    def feature_names(self) -> Sequence[str]:
        """The input columns, in the order array inputs must have."""

    @property
    def input_schema(self) -> Any:
        """The :class:`edge_runtime.inputs.InputSchema` inputs are checked against."""

    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> Any:
        """Labels (classification) or values (regression), one per row."""

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> Any:
        """Class probabilities, one row per input row, columns in ``classes`` order."""

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> Any:
        """Awaitable :meth:`predict`."""

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> Any:
        """Awaitable :meth:`predict_proba`."""

