"""``Model``: validated inputs in, labels / probabilities / predictions out, on any backend.

This is the numpy model; :class:`edge_runtime.model_lists.ListModel` is the same API on plain
lists, for Pythons without numpy (Pyodide's core). :func:`edge_runtime.load` picks the class
(:func:`edge_runtime.loader.model_class`); this module never imports the lists one. How raw
engine outputs become answers is :mod:`edge_runtime.outputs`, decided once at construction, so a
call runs the input adapter, the engine and one decode function.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from . import golden
from .backends.base import Backend
from .bundle import Artifact, Bundle
from .errors import BackendUnavailableError, ModelUseError, NoProbabilitiesError
from .golden import flat
from .outputs.plan import OutputPlan

try:
    import numpy as np
except ImportError:  # importable without numpy: ListModel (model_lists) subclasses this class
    np = None  # type: ignore[assignment]
else:
    from .inputs.arrays import FeedAdapter, InputAdapter
    from .outputs.arrays import ArrayDecoder


class Model:
    """A loaded bundle bound to one backend. Build it with :func:`edge_runtime.load`.

    Raises:
        BundleError: the artifact lacks the outputs the manifest's task needs.
    """

    def __init__(self, bundle: Bundle, backend: Backend, artifact: Artifact):
        m = bundle.manifest
        self.bundle = bundle
        self.manifest = m
        self.backend = backend
        self.artifact = artifact
        self.task = m.task
        self.feature_names = m.feature_names
        self._adapt = self._make_adapter(m.features, artifact)
        plan = OutputPlan(artifact, m.task)
        self._decoder = self._make_decoder(plan, m.classes)
        self.classes = self._decoder.classes
        # what each call requests and the one function that decodes its answer
        self._predict_out = plan.predict
        self._proba_out = plan.probabilities
        self._scores_out = plan.scores
        self._decode = self._decoder.predict
        # predict and predict_proba pick the engine for a call's row count themselves when the
        # backend routes: a router's and an adapter's dispatch frames (Backend.engine_for) cost
        # 5-10 % of a small call (0.4 us of LiteRT's 6 us on 32 rows), so each route's engine is
        # resolved here, per output list, once
        self._predict_routes = self._resolve(backend, self._predict_out)
        self._proba_routes = self._resolve(backend, self._proba_out or [])

    def _resolve(self, backend: Backend, outputs: list[str]) -> tuple[tuple[int, Backend], ...]:
        """(largest row count, the engine that answers it for ``outputs``) per route of
        :attr:`Backend.routes`, ascending, the last taking any larger call. Named inputs come as a
        dict with no shape to route on: the backend routes them."""
        if self.artifact.inputs:
            return ((sys.maxsize, backend),)
        return tuple((limit, engine.engine_for(limit, outputs)) for limit, engine in backend.routes)

    @staticmethod
    def _make_decoder(plan: OutputPlan, classes: Optional[list[Any]]) -> Any:
        return ArrayDecoder(plan, classes)

    @staticmethod
    def _make_adapter(features: Any, artifact: Artifact) -> Any:
        if np is None:
            raise BackendUnavailableError("Model answers in numpy arrays and numpy is not installed: "
                                          "edge_runtime.load() gives the plain-lists ListModel here")
        if artifact.inputs:  # several named inputs (strings among them): one array each
            return FeedAdapter(features, artifact.inputs)
        return InputAdapter(features, artifact.input_dtype)

    def _no_proba(self) -> NoProbabilitiesError:
        return NoProbabilitiesError.of(self.manifest.name, self.task)

    def _no_scores(self) -> ModelUseError:
        return ModelUseError(f"model '{self.manifest.name}' has no scores output (task {self.task})")

    @property
    def input_schema(self) -> Any:
        """The :class:`edge_runtime.inputs.InputSchema` inputs are checked against (kinds,
        categories, messages), for readers that parse text (CSV cells) before predicting."""
        return self._adapt.schema

    def feature_matrix(self, X: Any) -> np.ndarray:
        """``X`` checked and turned into the float matrix telemetry bins for drift, one column
        per feature (a categorical value as its category's index, text as 0), so a wrapper that
        records inputs (:class:`~edge_runtime.telemetry.MonitoredModel`) bins what the model saw.

        Raises:
            InputError: the input does not fit the schema.
        """
        adapt = self._adapt
        return adapt.codes(X) if isinstance(adapt, FeedAdapter) else adapt(X)

    # --- prediction -------------------------------------------------------------------------
    def predict(self, X: Any, *, strict: bool = False, key: Any = None, ids: Any = None) -> np.ndarray:
        """Class labels (classification) or predicted values (regression), one per row.
        ``strict`` also refuses values outside the training min/max of each feature; ``key``
        and ``ids`` are ignored (one version, nothing recorded: see :mod:`edge_runtime.predictor`).

        Raises:
            InputError: the input does not fit the schema (names the row and the feature).
        """
        x = self._adapt(X, strict)
        routes = self._predict_routes
        engine = routes[0][1] if len(routes) == 1 or x.shape[0] <= routes[0][0] else _route(routes, x.shape[0])
        return self._decode(engine.run(x, self._predict_out)[0])

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,
                      ids: Any = None) -> np.ndarray:
        """Class probabilities, shape (rows, classes), columns in ``self.classes`` order.

        Raises:
            NoProbabilitiesError: the model gives no probabilities (also an ``AttributeError``).
        """
        if self._proba_out is None:
            raise self._no_proba()
        x = self._adapt(X, strict)
        routes = self._proba_routes
        engine = routes[0][1] if len(routes) == 1 or x.shape[0] <= routes[0][0] else _route(routes, x.shape[0])
        return engine.run(x, self._proba_out)[0]  # engines answer arrays

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,
                            ids: Any = None) -> np.ndarray:
        """Awaitable :meth:`predict`, for event loops and for Pyodide's async JS engines."""
        return self._decode((await self.backend.run_async(self._adapt(X, strict), self._predict_out))[0])

    async def predict_proba_async(self, X: Any, *, strict: bool = False, key: Any = None,
                                  ids: Any = None) -> np.ndarray:
        """Awaitable :meth:`predict_proba`."""
        if self._proba_out is None:
            raise self._no_proba()
        raw = (await self.backend.run_async(self._adapt(X, strict), self._proba_out))[0]
        return self._decoder.probabilities(raw)

    def scores(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """The model's raw scores, one row per input: for ``anomaly`` the anomaly score
        (scikit-learn's ``decision_function``: below 0 is an outlier, ``predict`` gives -1), for
        ``clustering`` the distance to each cluster centre (``transform``), for classifiers
        without probabilities their decision values."""
        if self._scores_out is None:
            raise self._no_scores()
        return self._decoder.values(self.backend.run(self._adapt(X, strict), self._scores_out)[0])

    def decision_function(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Anomaly score per row (below 0: outlier), as scikit-learn's ``decision_function``."""
        return self.scores(X, strict=strict)

    def transform(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Distance of each row to each cluster centre (clustering), as scikit-learn's ``transform``."""
        if self.task != "clustering":
            raise ModelUseError(f"model '{self.manifest.name}' is a {self.task} model; transform() "
                                "gives cluster distances of a clustering model")
        return self.scores(X, strict=strict)

    # --- trust ------------------------------------------------------------------------------
    def check_golden(self) -> dict[str, float]:
        """Run the golden rows all at once and one row at a time (engines take other paths by
        batch size) and compare both with the stored outputs, at the capped tolerances of
        :mod:`edge_runtime.golden`. Returns the worst figures of the two runs.

        Raises:
            GoldenMismatchError: a label differs or a value is off by more than the tolerance.
            BundleError: the bundle has no golden rows for this model (load with ``verify=False``).
        """
        plan = self._golden_plan()
        at_once = {key: self._golden_call(key, plan.inputs) for key in plan.wanted}
        by_row = {key: [v for row in plan.inputs for v in flat(self._golden_call(key, [row]))]
                  for key in plan.wanted}
        return plan.judge(at_once, by_row, self._golden_where())

    async def check_golden_async(self) -> dict[str, float]:
        """Awaitable :meth:`check_golden`, for backends that only answer asynchronously.

        Raises:
            GoldenMismatchError: a label differs or a value is off by more than the tolerance.
            BundleError: the bundle has no golden rows for this model (load with ``verify=False``).
        """
        plan = self._golden_plan()
        at_once = {key: await self._golden_call_async(key, plan.inputs) for key in plan.wanted}
        by_row: dict[str, list[Any]] = {key: [] for key in plan.wanted}
        for key in plan.wanted:
            for row in plan.inputs:
                by_row[key].extend(flat(await self._golden_call_async(key, [row])))
        return plan.judge(at_once, by_row, self._golden_where())

    def _golden_plan(self) -> golden.GoldenPlan:
        # no golden rows: BundleError, not a pass (also when loaded with verify=False and checked later)
        return golden.plan(self.manifest.require_golden(), self.artifact, self.task,
                           has_proba=self._proba_out is not None)

    def _golden_call(self, key: str, rows: list[list[float]]) -> Any:
        return self.predict_proba(rows) if key == "probabilities" else self.predict(rows)

    async def _golden_call_async(self, key: str, rows: list[list[float]]) -> Any:
        return await (self.predict_proba_async(rows) if key == "probabilities"
                      else self.predict_async(rows))

    def _golden_where(self) -> str:
        return f"backend '{self.backend.name}' on '{self.artifact.path}'"

    # --- description ------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """What is loaded: name, version, task, features, classes, backend and artifact."""
        m = self.manifest
        return {"name": m.name, "version": m.version, "task": m.task,
                "features": m.feature_names,
                "classes": m.classes, "backend": self.backend.name,
                "artifact": {"path": self.artifact.path, "format": self.artifact.format,
                             "precision": self.artifact.precision, "size": self.artifact.size,
                             "sha256": self.artifact.sha256},
                "parity": self.artifact.parity, "provenance": m.provenance,
                "source": self.bundle.origin}

    def close(self) -> None:
        self.backend.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (f"<Model {m.name} {m.version} {m.task} on {self.backend.name} "
                f"({self.artifact.format}/{self.artifact.precision})>")


def _route(routes: tuple[tuple[int, Backend], ...], rows: int) -> Backend:
    """The engine of the first route whose limit ``rows`` is within, else the last route's;
    a call within the first route never comes here: one frame less on single rows."""
    for limit, engine in routes[:-1]:
        if rows <= limit:
            return engine
    return routes[-1][1]
