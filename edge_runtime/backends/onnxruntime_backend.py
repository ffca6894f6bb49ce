"""onnxruntime: the default engine wherever its wheels exist (x86_64, aarch64, macOS, Windows)."""

from __future__ import annotations

import importlib.util
from typing import Any, Optional, Sequence

from ..errors import BackendUnavailableError, UnsupportedModelError
from . import register
from .base import Backend, BackendOptions

_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(string)": "string"}


@register
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx",)
    priority = 10
    threaded = True

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def __init__(self, model_bytes: bytes, artifact: Any, options: BackendOptions):
        super().__init__(model_bytes, artifact, options)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(
                f"onnxruntime is not installed ({exc}); pip install onnxruntime, or use "
                "backend='numpy'") from None
        so = ort.SessionOptions()
        if options.threads:
            so.intra_op_num_threads = int(options.threads)
            so.inter_op_num_threads = 1
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                              _OPT_LEVELS.get(options.optimization, "ORT_ENABLE_ALL"))
        so.log_severity_level = 3
        # Worker threads block between calls instead of spinning: spinning kept a core busy for
        # ~50 ms after every threaded call (a device's battery, and a second core that the app
        # and other engines need; a threaded engine timed in that window lost it), and cost
        # nothing measurable when off (forest, 2 threads: 1,024 and 10k rows within noise)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise UnsupportedModelError(f"onnxruntime cannot load '{artifact.path}': {exc}") from None
        self.check_names({i.name: _DTYPES.get(i.type, "") for i in self._session.get_inputs()},
                         [o.name for o in self._session.get_outputs()])
        self._input = artifact.input_name
        self._run_options = ort.RunOptions()
        # The session's C++ binding skips the Python wrapper's per-call input checks, which are
        # most of the cost of a single-row call; Model already validated the input. Fall back to
        # the public method if a future onnxruntime renames it.
        inner = getattr(self._session, "_sess", None)
        self._fast = inner.run if inner is not None and hasattr(inner, "run") else None

    def widths(self) -> dict[str, int]:
        return {t.name: t.shape[1] for t in self._session.get_inputs() + self._session.get_outputs()
                if len(t.shape) == 2 and isinstance(t.shape[1], int)}

    def effective_threads(self) -> Optional[int]:
        if self._session is None:
            return self.options.threads
        return self._session.get_session_options().intra_op_num_threads or None

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        feeds = x if type(x) is dict else {self._input: x}  # several named inputs come as a dict
        if self._fast is not None:
            try:
                return self._fast(outputs, feeds, self._run_options)
            except TypeError:
                self._fast = None
        return self._session.run(list(outputs), feeds)

    def close(self) -> None:
        self._session = None
        self._fast = None
