"""LiteRT (TFLite) through ``ai-edge-litert``, or ``tflite-runtime`` where only that exists
(its last release needs numpy<2).

Two interpreters: one kept at a single row, one for batches, resized when the batch size changes.
Resizing costs ~2.5 µs (more than a one-row call of a linear model), so one interpreter serving
single rows between batches paid it twice per batch; the second is made on the first batch and
costs one more copy of the tensors (XNNPACK's packed weights included).

An interpreter holds its input and output tensors between ``set_tensor``, ``invoke`` and
``get_tensor``: two threads calling one engine at once (``edgert serve`` answers on 4) got each
other's answers (189 of 12,000 calls of 32 rows) or "reference to internal data" errors. A lock
makes each call whole; it costs ~0.1 µs of a 2.6 µs one-row call."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any, Sequence

from ..errors import BackendUnavailableError, UnsupportedModelError
from . import register
from .base import Backend, BackendOptions


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailableError("no TFLite interpreter: pip install ai-edge-litert "
                                          "(or tflite-runtime with numpy<2)") from None
    return Interpreter


@register
class LiteRTBackend(Backend):
    name = "litert"
    formats = ("tflite",)
    priority = 20

    @classmethod
    def is_available(cls) -> bool:
        return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))

    def __init__(self, model_bytes: bytes, artifact: Any, options: BackendOptions):
        super().__init__(model_bytes, artifact, options)
        self._model_bytes = model_bytes
        self._it = self._interpreter()
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        self.check_names({d["name"]: getattr(d["dtype"], "__name__", "") for d in inputs},
                         [d["name"] for d in outputs])
        self._widths = {d["name"]: int(d["shape"][1]) for d in inputs + outputs if len(d["shape"]) == 2}
        self._in = inputs[0]["index"]
        self._out = {d["name"]: d["index"] for d in outputs}
        self._batch_it: Any = None  # made on the first call of more than one row
        self._batch_rows = 0
        self._lock = threading.Lock()  # one call at a time: the interpreters hold its tensors

    def _interpreter(self) -> Any:
        """A new interpreter with its tensors allocated for one row.

        Raises:
            UnsupportedModelError: LiteRT cannot load or allocate the model.
        """
        try:
            it = _interpreter_class()(model_content=self._model_bytes, num_threads=self.options.threads or 1)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UnsupportedModelError(f"LiteRT cannot load '{self.artifact.path}': {exc}") from None
        return it

    def widths(self) -> dict[str, int]:
        return dict(self._widths)

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        n = x.shape[0]
        with self._lock:
            if n == 1:
                it = self._it
            else:
                it = self._batch_it
                if it is None:
                    it = self._batch_it = self._interpreter()
                if n != self._batch_rows:
                    it.resize_tensor_input(self._in, x.shape, strict=False)
                    it.allocate_tensors()
                    self._batch_rows = n
            it.set_tensor(self._in, x)
            it.invoke()
            return [it.get_tensor(self._out[name]) for name in outputs]  # copies

    def close(self) -> None:
        self._it = self._batch_it = None
