"""``ListModel``: :class:`edge_runtime.model.Model` for Pythons without numpy (Pyodide's core).

Same methods, same errors; results are plain lists: ``predict`` gives one label or value per
row, ``predict_proba`` one list of class probabilities per row. Backends receive a
:class:`edge_runtime.inputs.Rows` matrix and may answer with lists, array-likes with
``tolist()`` or flat buffers plus the row count. ``Model(...)`` builds one of these by itself
when numpy cannot be imported; nothing here is on the numpy path.
"""

from __future__ import annotations

from typing import Any, Optional

from .errors import BackendOutputError, NoProbabilitiesError, NumpyRequiredError
from .inputs.lists import ListInputAdapter
from .model import Model


class ListModel(Model):
    """A loaded bundle bound to one backend, answering in plain Python lists."""

    @staticmethod
    def _make_classes(classes: Optional[list[Any]]) -> Any:
        return list(classes) if classes is not None else None

    @staticmethod
    def _make_adapter(features: Any, artifact: Any) -> Any:
        if artifact.inputs:
            raise NumpyRequiredError(f"artifact '{artifact.path}' takes named inputs (strings among "
                                     "them), which need numpy; install numpy to load this bundle")
        return ListInputAdapter(features, artifact.input_dtype)

    def predict(self, X: Any, *, strict: bool = False, key: Any = None,  # type: ignore[override]
                ids: Any = None) -> list[Any]:
        """Class labels (classification) or predicted values (regression), one per row."""
        x = self._adapt(X, strict)
        return self._finish_predict(x.shape[0], self.backend.run(x, self._predict_outputs()))

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,  # type: ignore[override]
                      ids: Any = None) -> list[list[float]]:
        """Class probabilities, one row per input row, columns in ``self.classes`` order."""
        self._require_proba()
        x = self._adapt(X, strict)
        return _rows(self.backend.run(x, self._proba_out)[0], x.shape[0])

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,  # type: ignore[override]
                            ids: Any = None) -> list[Any]:
        """Awaitable :meth:`predict`: all rows go to the backend in one call."""
        x = self._adapt(X, strict)
        outs = await self.backend.run_async(x, self._predict_outputs())
        return self._finish_predict(x.shape[0], outs)

    async def predict_proba_async(self, X: Any, *, strict: bool = False,  # type: ignore[override]
                                  key: Any = None, ids: Any = None) -> list[list[float]]:
        """Awaitable :meth:`predict_proba`: all rows go to the backend in one call."""
        self._require_proba()
        x = self._adapt(X, strict)
        return _rows((await self.backend.run_async(x, self._proba_out))[0], x.shape[0])

    def feature_matrix(self, X: Any) -> Any:
        """``X`` checked, as the :class:`edge_runtime.inputs.Rows` matrix the backend takes."""
        return self._adapt(X)

    # --- helpers ----------------------------------------------------------------------------
    def _predict_outputs(self) -> list[str]:
        return self._pred_out or self._label_out or self._proba_out  # type: ignore[return-value]

    def _require_proba(self) -> None:
        if self._proba_out is None:
            raise NoProbabilitiesError.of(self.manifest.name, self.task)

    def _finish_predict(self, n: int, outs: list[Any]) -> list[Any]:
        if self._pred_out is not None:
            return _flat_values(outs[0])
        if self._label_out is not None:
            return self._labels(outs[0])
        proba = _rows(outs[0], n)
        return self._labels([max(range(len(p)), key=p.__getitem__) for p in proba])

    def _labels(self, raw: Any) -> list[Any]:  # type: ignore[override]
        flat = _flat_values(raw)
        if self._label_is_index and self.classes is not None:
            return [self.classes[int(i)] for i in flat]
        return flat


def _tolist(values: Any) -> Any:
    return values.tolist() if hasattr(values, "tolist") else values


def _flat_values(raw: Any) -> list[Any]:
    """One value per row from a column (n,), a (n, 1) matrix or nested lists."""
    raw = _tolist(raw)
    if not isinstance(raw, (list, tuple)):
        return [raw]
    if raw and isinstance(raw[0], (list, tuple)):
        if any(len(r) != 1 for r in raw):
            raise BackendOutputError("backend returned several values per row where one was expected")
        return [r[0] for r in raw]
    return list(raw)


def _rows(raw: Any, n: int) -> list[list[float]]:
    """A list of rows from nested lists or a flat row-major list of ``n`` rows."""
    raw = _tolist(raw)
    if raw and isinstance(raw[0], (list, tuple)):
        return [list(r) for r in raw]
    raw = list(raw)
    if n <= 0 or len(raw) % n:
        raise BackendOutputError(f"backend returned {len(raw)} values for {n} rows")
    d = len(raw) // n
    return [raw[i * d:(i + 1) * d] for i in range(n)]
