"""``Model``: validated inputs in, labels / probabilities / predictions out, on any backend.

numpy is optional: where it cannot be imported (Pyodide's core, tiny Pythons) ``Model(...)``
builds a :class:`edge_runtime.model_pure.ListModel`, the same API on plain lists. The choice is
made once, at construction, so the numpy path pays nothing per call for it.
"""

from __future__ import annotations

from typing import Any, Optional

from . import golden
from .backends.base import Backend
from .bundle import LABEL_TASKS, Artifact, Bundle
from .errors import EdgeRuntimeError
from .golden import flat

try:
    import numpy as np
except ImportError:  # the core runs without numpy (Pyodide offline): see model_pure
    np = None  # type: ignore[assignment]
else:
    from .inputs.arrays import FeedAdapter, InputAdapter


class Model:
    """A loaded bundle bound to one backend. Build it with :func:`edge_runtime.load`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Model:
        if cls is Model and np is None:
            from .model_pure import ListModel
            cls = ListModel
        return super().__new__(cls)

    def __init__(self, bundle: Bundle, backend: Backend, artifact: Artifact):
        m = bundle.manifest
        self.bundle = bundle
        self.manifest = m
        self.backend = backend
        self.artifact = artifact
        self.task = m.task
        self.feature_names = m.feature_names
        self.classes = self._make_classes(m.classes)
        self._adapt = self._make_adapter(m.features, artifact)
        outs = artifact.outputs
        self._label_out = [outs["label"]] if "label" in outs else None
        self._proba_out = [outs["probabilities"]] if "probabilities" in outs else None
        self._pred_out = [outs["prediction"]] if "prediction" in outs else None
        self._scores_out = [outs["scores"]] if "scores" in outs else None
        self._label_is_index = artifact.extra.get("label_encoding") == "index"
        if artifact.extra.get("label_from") == "probabilities" and self._proba_out is not None:
            self._label_out = None  # the converter found argmax(proba) matches the framework
            self._label_is_index = True
        if self.task in LABEL_TASKS and self._label_out is None and self._proba_out is None:
            raise EdgeRuntimeError(f"artifact '{artifact.path}' has neither a label nor a "
                                   "probabilities output")
        if self.task == "regression" and self._pred_out is None:
            raise EdgeRuntimeError(f"artifact '{artifact.path}' has no 'prediction' output")
        # predict and predict_proba pick the engine for a call's row count themselves when the
        # backend routes (Backend.engine_for): a router's and an adapter's dispatch frames cost
        # 5-10 % of a one-row call. The one-row engines are found here; None: nothing to skip
        # (no router, or named inputs, which come as a dict)
        self._predict_out = self._pred_out or self._label_out or self._proba_out or []
        self._one_predict = self._skip_to(backend, self._predict_out)
        self._one_proba = self._skip_to(backend, self._proba_out or [])

    def _skip_to(self, backend: Backend, outputs: list[str]) -> Optional[Backend]:
        one = backend.engine_for(1, outputs)
        return None if one is backend or self.artifact.inputs else one

    @staticmethod
    def _make_classes(classes: Optional[list[Any]]) -> Any:
        return np.asarray(classes) if classes is not None else None

    @staticmethod
    def _make_adapter(features: Any, artifact: Artifact) -> Any:
        if artifact.inputs:  # several named inputs (strings among them): one array each
            return FeedAdapter(features, artifact.inputs)
        return InputAdapter(features, artifact.input_dtype)

    @property
    def input_schema(self) -> Any:
        """The :class:`edge_runtime.inputs.InputSchema` inputs are checked against (kinds,
        categories, messages), for readers that parse text (CSV cells) before predicting."""
        return self._adapt.schema

    # --- prediction -------------------------------------------------------------------------
    def predict(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Class labels (classification) or predicted values (regression), one per row.
        ``strict`` also refuses values outside the training min/max of each feature.

        Raises:
            InputError: the input does not fit the schema (names the row and the feature).
        """
        x = self._adapt(X, strict)
        one = self._one_predict
        engine = (self.backend if one is None else one if x.shape[0] == 1
                  else self.backend.engine_for(x.shape[0], self._predict_out))
        if self._pred_out is not None:
            return self._values(engine.run(x, self._pred_out)[0])
        if self._label_out is not None:
            return self._labels(engine.run(x, self._label_out)[0])
        return self._labels(engine.run(x, self._proba_out)[0].argmax(axis=1))

    def predict_proba(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Class probabilities, shape (rows, classes), columns in ``self.classes`` order."""
        if self._proba_out is None:
            raise EdgeRuntimeError(f"model '{self.manifest.name}' gives no probabilities "
                                   f"(task {self.task}); use predict()")
        x = self._adapt(X, strict)
        one = self._one_proba
        engine = (self.backend if one is None else one if x.shape[0] == 1
                  else self.backend.engine_for(x.shape[0], self._proba_out))
        return engine.run(x, self._proba_out)[0]

    async def predict_async(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Awaitable :meth:`predict`, for event loops and for Pyodide's async JS engines."""
        x = self._adapt(X, strict)
        if self._pred_out is not None:
            return self._values((await self.backend.run_async(x, self._pred_out))[0])
        if self._label_out is not None:
            return self._labels((await self.backend.run_async(x, self._label_out))[0])
        proba = (await self.backend.run_async(x, self._proba_out))[0]
        return self._labels(np.asarray(proba).argmax(axis=1))

    async def predict_proba_async(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Awaitable :meth:`predict_proba`."""
        if self._proba_out is None:
            raise EdgeRuntimeError(f"model '{self.manifest.name}' gives no probabilities")
        return np.asarray((await self.backend.run_async(self._adapt(X, strict), self._proba_out))[0])

    def scores(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """The model's raw scores, one row per input: for ``anomaly`` the anomaly score
        (scikit-learn's ``decision_function``: below 0 is an outlier, ``predict`` gives -1), for
        ``clustering`` the distance to each cluster centre (``transform``), for classifiers
        without probabilities their decision values."""
        if self._scores_out is None:
            raise EdgeRuntimeError(f"model '{self.manifest.name}' has no scores output (task {self.task})")
        return self._values(self.backend.run(self._adapt(X, strict), self._scores_out)[0])

    def decision_function(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Anomaly score per row (below 0: outlier), as scikit-learn's ``decision_function``."""
        return self.scores(X, strict=strict)

    def transform(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Distance of each row to each cluster centre (clustering), as scikit-learn's ``transform``."""
        if self.task != "clustering":
            raise EdgeRuntimeError(f"model '{self.manifest.name}' is a {self.task} model; transform() "
                                   "gives cluster distances of a clustering model")
        return self.scores(X, strict=strict)

    def _labels(self, raw: Any) -> np.ndarray:
        raw = np.asarray(raw).reshape(-1)
        if self._label_is_index and self.classes is not None:
            return self.classes[raw.astype(np.intp)]
        return raw

    @staticmethod
    def _values(raw: Any) -> np.ndarray:
        raw = np.asarray(raw)
        return raw.reshape(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw

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
