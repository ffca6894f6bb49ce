"""``ListModel``: :class:`edge_runtime.model.Model` for Pythons without numpy (Pyodide's core).

Same methods, same errors; results are plain lists: ``predict`` gives one label or value per
row, ``predict_proba`` one list of class probabilities per row. Backends receive a
:class:`edge_runtime.inputs.Rows` matrix and may answer with lists, array-likes with
``tolist()`` or flat buffers plus the row count (:class:`edge_runtime.outputs.ListDecoder`).
:func:`edge_runtime.load` builds one of these when numpy cannot be imported; nothing here is on
the numpy path.
"""

from __future__ import annotations

from typing import Any, Optional

from .errors import NumpyRequiredError
from .inputs.lists import ListInputAdapter
from .model import Model
from .outputs.lists import ListDecoder
from .outputs.plan import OutputPlan


class ListModel(Model):
    """A loaded bundle bound to one backend, answering in plain Python lists."""

    @staticmethod
    def _make_decoder(plan: OutputPlan, classes: Optional[list[Any]]) -> Any:
        return ListDecoder(plan, classes)

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
        return self._decode(self.backend.run(x, self._predict_out)[0], x.shape[0])

    def predict_proba(self, X: Any, *, strict: bool = False, key: Any = None,  # type: ignore[override]
                      ids: Any = None) -> list[list[float]]:
        """Class probabilities, one row per input row, columns in ``self.classes`` order.

        Raises:
            NoProbabilitiesError: the model gives no probabilities (also an ``AttributeError``).
        """
        if self._proba_out is None:
            raise self._no_proba()
        x = self._adapt(X, strict)
        return self._decoder.probabilities(self.backend.run(x, self._proba_out)[0], x.shape[0])

    async def predict_async(self, X: Any, *, strict: bool = False, key: Any = None,  # type: ignore[override]
                            ids: Any = None) -> list[Any]:
        """Awaitable :meth:`predict`: all rows go to the backend in one call."""
        x = self._adapt(X, strict)
        return self._decode((await self.backend.run_async(x, self._predict_out))[0], x.shape[0])

    async def predict_proba_async(self, X: Any, *, strict: bool = False,  # type: ignore[override]
                                  key: Any = None, ids: Any = None) -> list[list[float]]:
        """Awaitable :meth:`predict_proba`: all rows go to the backend in one call."""
        if self._proba_out is None:
            raise self._no_proba()
        x = self._adapt(X, strict)
        raw = (await self.backend.run_async(x, self._proba_out))[0]
        return self._decoder.probabilities(raw, x.shape[0])

    def feature_matrix(self, X: Any) -> Any:
        """``X`` checked, as the :class:`edge_runtime.inputs.Rows` matrix the backend takes."""
        return self._adapt(X)

    def scores(self, X: Any, *, strict: bool = False) -> list[Any]:  # type: ignore[override]
        """The model's raw scores (see :meth:`Model.scores`): one value per row where the model
        gives one, else one list per row."""
        if self._scores_out is None:
            raise self._no_scores()
        x = self._adapt(X, strict)
        return self._decoder.values(self.backend.run(x, self._scores_out)[0], x.shape[0])
