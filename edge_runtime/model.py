"""``Model``: validated inputs in, labels / probabilities / predictions out, on any backend.

numpy is optional: where it cannot be imported (Pyodide's core, tiny Pythons) ``Model(...)``
builds a :class:`edge_runtime.model_pure.ListModel`, the same API on plain lists. The choice is
made once, at construction, so the numpy path pays nothing per call for it.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .backends.base import Backend
from .bundle import Artifact, Bundle
from .errors import EdgeRuntimeError, GoldenMismatchError

try:
    import numpy as np
except ImportError:  # the core runs without numpy (Pyodide offline): see model_pure
    np = None  # type: ignore[assignment]
else:
    from .inputs import InputAdapter


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
        self._adapt = self._make_adapter(m.features, artifact.input_dtype)
        outs = artifact.outputs
        self._label_out = [outs["label"]] if "label" in outs else None
        self._proba_out = [outs["probabilities"]] if "probabilities" in outs else None
        self._pred_out = [outs["prediction"]] if "prediction" in outs else None
        self._label_is_index = artifact.extra.get("label_encoding") == "index"
        if artifact.extra.get("label_from") == "probabilities" and self._proba_out is not None:
            self._label_out = None  # the converter found argmax(proba) matches the framework
            self._label_is_index = True
        if self.task == "classification" and self._label_out is None and self._proba_out is None:
            raise EdgeRuntimeError(f"artifact '{artifact.path}' has neither a label nor a "
                                   "probabilities output")
        if self.task == "regression" and self._pred_out is None:
            raise EdgeRuntimeError(f"artifact '{artifact.path}' has no 'prediction' output")

    @staticmethod
    def _make_classes(classes: Optional[list[Any]]) -> Any:
        return np.asarray(classes) if classes is not None else None

    @staticmethod
    def _make_adapter(features: Any, dtype: str) -> Any:
        return InputAdapter(features, dtype)

    # --- prediction -------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Class labels (classification) or predicted values (regression), one per row."""
        x = self._adapt(X)
        if self._pred_out is not None:
            return self._values(self.backend.run(x, self._pred_out)[0])
        if self._label_out is not None:
            return self._labels(self.backend.run(x, self._label_out)[0])
        return self._labels(self.backend.run(x, self._proba_out)[0].argmax(axis=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (rows, classes), columns in ``self.classes`` order."""
        if self._proba_out is None:
            raise EdgeRuntimeError(f"model '{self.manifest.name}' gives no probabilities "
                                   f"(task {self.task}); use predict()")
        return self.backend.run(self._adapt(X), self._proba_out)[0]

    async def predict_async(self, X: Any) -> np.ndarray:
        """Awaitable :meth:`predict`, for event loops and for Pyodide's async JS engines."""
        x = self._adapt(X)
        if self._pred_out is not None:
            return self._values((await self.backend.run_async(x, self._pred_out))[0])
        if self._label_out is not None:
            return self._labels((await self.backend.run_async(x, self._label_out))[0])
        proba = (await self.backend.run_async(x, self._proba_out))[0]
        return self._labels(np.asarray(proba).argmax(axis=1))

    async def predict_proba_async(self, X: Any) -> np.ndarray:
        """Awaitable :meth:`predict_proba`."""
        if self._proba_out is None:
            raise EdgeRuntimeError(f"model '{self.manifest.name}' gives no probabilities")
        return np.asarray((await self.backend.run_async(self._adapt(X), self._proba_out))[0])

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
        """Run the manifest's golden rows and compare with the stored outputs.

        Raises:
            GoldenMismatchError: a label differs or a value is off by more than the tolerance.
        """
        golden, x, wanted = self._golden_plan()
        got: dict[str, Any] = {}
        for key in wanted:
            got[key] = self.predict_proba(x) if key == "probabilities" else self.predict(x)
        return self._compare_golden(golden, got)

    async def check_golden_async(self) -> dict[str, float]:
        """Awaitable :meth:`check_golden`, for backends that only answer asynchronously.

        Raises:
            GoldenMismatchError: a label differs or a value is off by more than the tolerance.
        """
        golden, x, wanted = self._golden_plan()
        got: dict[str, Any] = {}
        for key in wanted:
            got[key] = await (self.predict_proba_async(x) if key == "probabilities"
                              else self.predict_async(x))
        return self._compare_golden(golden, got)

    def _golden_plan(self) -> tuple[dict[str, Any], list[list[float]], list[str]]:
        golden = dict(self.manifest.require_golden())  # no golden rows: BundleError, not a pass
        golden.update(self.artifact.extra.get("golden") or {})
        if not golden.get("inputs"):
            return golden, [], []
        x = [[math.nan if v is None else float(v) for v in row] for row in golden["inputs"]]
        wanted = []
        if golden.get("label") is not None and self.task == "classification":
            wanted.append("label")
        if golden.get("probabilities") is not None and self._proba_out is not None:
            wanted.append("probabilities")
        if golden.get("prediction") is not None and self.task == "regression":
            wanted.append("prediction")
        return golden, x, wanted

    def _compare_golden(self, golden: dict[str, Any], got: dict[str, Any]) -> dict[str, float]:
        """Pure-Python comparison (a handful of rows), shared by the numpy and list paths."""
        atol = float(golden.get("atol", 1e-4))
        where = f"backend '{self.backend.name}' on '{self.artifact.path}'"
        figures: dict[str, float] = {}
        if "label" in got:
            have = [str(v) for v in _flat(got["label"])]
            want = [str(v) for v in golden["label"]]
            agree = sum(a == b for a, b in zip(have, want)) / len(want) if len(have) == len(want) else 0.0
            figures["label_agreement"] = agree
            if agree < float(golden.get("min_label_agreement", 1.0)):
                raise GoldenMismatchError(f"{where}: golden labels agree on {agree:.1%} of rows")
        for key in ("probabilities", "prediction"):
            if key not in got:
                continue
            have = [float(v) for v in _flat(got[key])]
            want = [float(v) for v in _flat(golden[key])]
            if len(have) != len(want):
                raise GoldenMismatchError(f"{where}: golden {key} do not have the model's output "
                                          f"shape ({len(have)} values, golden has {len(want)})")
            diffs = [abs(a - b) for a, b in zip(have, want)]
            diff = math.nan if any(d != d for d in diffs) else max(diffs, default=0.0)
            figures[f"{key}_max_abs_diff"] = diff
            tol = atol + float(golden.get("rtol", 0.0)) * max((abs(w) for w in want), default=0.0)
            if not diff <= tol:
                raise GoldenMismatchError(f"{where}: golden {key} differ by {diff:.3g} "
                                          f"(tolerance {tol:.3g})")
        return figures

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



def _flat(values: Any) -> list[Any]:
    """Row-major flattening of an array, a list of rows or a flat list."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        return [values]
    out: list[Any] = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else [v])
    return out
