"""numpy: a portable ONNX interpreter for devices without onnxruntime (armv7, Pyodide with
numpy, unusual Pythons).

numpy is imported inside the methods, never at module level: backend discovery imports every
module in this package, and that must work in Pyodide's numpy-less core.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Sequence

from ..errors import BackendError, BackendUnavailableError
from . import register
from .base import Backend, BackendOptions


@register
class NumpyBackend(Backend):
    name = "numpy"
    formats = ("onnx",)
    priority = 50

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("numpy") is not None

    def __init__(self, model_bytes: bytes, artifact: Any, options: BackendOptions):
        """Decode and plan the model once.

        Raises:
            BackendUnavailableError: numpy is not installed.
            ModelDecodeError: the bytes are not a well-formed ONNX model.
            UnsupportedModelError: the model uses operators this backend lacks (all named).
            BundleError: the manifest's tensor names are not the model's.
        """
        super().__init__(model_bytes, artifact, options)
        try:
            import numpy  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailableError(f"numpy is not installed ({exc})") from None
        from ..onnx_numpy.plan import load_plan

        self._plan, model = load_plan(model_bytes)
        graph = model.graph  # never None: load_plan refuses a model without a graph
        values = [] if graph is None else list(graph.inputs) + list(graph.outputs)
        self._widths = {v.name: v.shape[1] for v in values
                        if v.shape is not None and len(v.shape) == 2 and isinstance(v.shape[1], int)}
        self.check_names({name: "" for name in self._plan.inputs}, self._plan.outputs)
        self._input = artifact.input_name

    def widths(self) -> dict[str, int]:
        return dict(self._widths)

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        """The requested outputs for ``x``.

        Raises:
            BackendError: the input does not fit the model (shape, feature count).
        """
        import numpy as np

        try:
            # overflow to inf in exp() etc. is part of the model's arithmetic (onnxruntime
            # gives the same inf silently): no RuntimeWarnings for the caller
            with np.errstate(all="ignore"):
                feeds = {k: np.asarray(v) for k, v in x.items()} if type(x) is dict \
                    else {self._input: np.asarray(x)}
                return self._plan.run(feeds, list(outputs))
        except (ValueError, IndexError, TypeError, KeyError, ArithmeticError, MemoryError) as exc:
            raise BackendError(f"numpy backend failed on '{self.artifact.path}': {exc}") from None

    def close(self) -> None:
        self._plan = None  # type: ignore[assignment]
