"""pyodide: onnxruntime-web through Pyodide's JS bridge, for browsers and Node without numpy.

onnxruntime has no Pyodide wheel (onnxruntime #27509); its web build runs the same ONNX files
in WebAssembly. The page (or Node script) that starts Pyodide hands it over once::

    import * as ort from "onnxruntime-web";
    pyodide.registerJsModule("onnxruntime_web", ort);

(a page that loads ``ort.min.js`` with a ``<script>`` tag and so has a global ``ort`` needs
nothing more). Session creation and ``run`` return JS promises, and Pyodide cannot block on a
promise under Node 20 or on a browser's main thread, so this backend is asynchronous only:
load with ``await edge_runtime.load_async(...)`` and predict with ``await model.predict_async(rows)``.
Each call crosses the bridge once for the whole batch (~0.3 ms), so pass many rows per call.

Inside Pyodide, ``backend="auto"`` prefers the numpy backend when numpy is importable (it ranks
first), and falls back to this one otherwise.
"""

from __future__ import annotations

import importlib
import sys
from array import array
from typing import Any, Sequence

from ..errors import BackendError, BackendUnavailableError, UnsupportedModelError
from ..inputs.lists import TYPECODES as _TYPECODES  # the dtypes the numpy-free inputs produce
from ..inputs.lists import Rows
from . import register
from .base import Backend, BackendOptions

#: the Python module name under which the host registers onnxruntime-web
JS_MODULE = "onnxruntime_web"


def _onnxruntime_web() -> Any:
    """The onnxruntime-web module object, from ``registerJsModule`` or a page's global ``ort``."""
    try:
        return importlib.import_module(JS_MODULE)
    except ImportError:
        pass
    try:
        import js
    except ImportError:
        return None
    return getattr(js, "ort", None)


@register
class PyodideBackend(Backend):
    name = "pyodide"
    formats = ("onnx",)
    #: after onnxruntime and the numpy backend: in Pyodide with numpy, numpy runs in-process
    priority = 80
    #: the loader must use ``load_async``; ``run`` cannot block on a JS promise
    async_only = True

    @classmethod
    def is_available(cls) -> bool:
        return sys.platform == "emscripten" and _onnxruntime_web() is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        if sys.platform != "emscripten":
            return "only runs inside Pyodide"
        return (f"onnxruntime-web was not handed to Pyodide: call "
                f"pyodide.registerJsModule({JS_MODULE!r}, ort) first")

    def __init__(self, model_bytes: bytes, artifact: Any, options: BackendOptions):
        super().__init__(model_bytes, artifact, options)
        self._bytes = bytes(model_bytes)
        self._session: Any = None
        dtype = artifact.input_dtype
        if artifact.inputs:  # categorical/text features: string tensors through the JS bridge
            raise UnsupportedModelError(f"pyodide backend (onnxruntime-web): '{artifact.path}' takes "
                                        "named inputs (strings among them), which this bridge does not "
                                        "feed yet; load numpy in Pyodide and use backend='numpy'")
        if dtype not in _TYPECODES:
            raise UnsupportedModelError(f"pyodide backend: input dtype {dtype!r} of '{artifact.path}' "
                                        f"is not supported (supported: {', '.join(_TYPECODES)})")
        self._dtype = dtype
        self._input = artifact.input_name

    async def open_async(self) -> None:
        """Create the onnxruntime-web session (a JS promise); called by ``load_async``.

        Raises:
            BackendUnavailableError: onnxruntime-web was not handed to Pyodide.
            UnsupportedModelError: onnxruntime-web refuses the model.
        """
        ort = _onnxruntime_web()
        if ort is None:
            raise BackendUnavailableError(
                f"onnxruntime-web is not available to Pyodide: call "
                f"pyodide.registerJsModule({JS_MODULE!r}, ort) before loading the model")
        from pyodide.ffi import JsException, to_js

        self._ort = ort
        self._to_js = to_js
        import js

        options = to_js({"executionProviders": ["wasm"], "graphOptimizationLevel":
                         _OPT_LEVELS.get(self.options.optimization, "all")},
                        dict_converter=js.Object.fromEntries)
        try:
            self._session = await ort.InferenceSession.create(to_js(self._bytes), options)
        except JsException as exc:
            raise UnsupportedModelError(f"onnxruntime-web cannot load '{self.artifact.path}': "
                                        f"{exc}") from None
        self._bytes = b""  # the session holds its own copy
        self._object_from_entries = js.Object.fromEntries
        self._js_exception = JsException

    def run(self, x: Any, outputs: Sequence[str]) -> list:
        raise BackendError("the pyodide backend (onnxruntime-web) answers only asynchronously: "
                           "use `await model.predict_async(rows)` / `await model.predict_proba_async(rows)` "
                           "(and `await edge_runtime.load_async(...)` to load)")

    async def run_async(self, x: Any, outputs: Sequence[str]) -> list[Any]:
        """All rows of ``x`` in one onnxruntime-web call. Returns numpy arrays when ``x`` is
        one (numpy present), else nested lists (one list per row) or flat lists for 1-D outputs.

        Raises:
            BackendError: the session is not open, or onnxruntime-web failed on this input.
        """
        if self._session is None:
            raise BackendError("pyodide backend: session not created; load the model with "
                               "`await edge_runtime.load_async(...)`")
        JsException = self._js_exception
        n, d = x.shape
        typecode = _TYPECODES[self._dtype]
        from_numpy = not isinstance(x, Rows)  # the numpy-free input path gives Rows
        if isinstance(x, Rows):
            rows = x.data if x.data.typecode == typecode else array(typecode, x.data)
        else:
            rows = array(typecode)
            rows.frombytes(x.tobytes())  # x is C-contiguous and of the artifact's dtype already
        # to_js copies a typed buffer into the matching JS typed array in one go (~6 µs for 300
        # floats, against ~180 µs through a JS list).
        tensor = self._ort.Tensor.new(self._dtype, self._to_js(rows), self._to_js([n, d]))
        feeds = self._to_js({self._input: tensor}, dict_converter=self._object_from_entries)
        try:
            result = await self._session.run(feeds)
        except JsException as exc:
            raise BackendError(f"onnxruntime-web failed on '{self.artifact.path}': {exc}") from None
        out = []
        for name in outputs:
            t = getattr(result, name, None)
            if t is None:
                raise BackendError(f"onnxruntime-web returned no output named {name!r}")
            out.append(_to_python(t, numpy_out=from_numpy))
        return out

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and hasattr(session, "release"):
            session.release()  # a promise; nothing waits on it


_OPT_LEVELS = {"disable": "disabled", "basic": "basic", "extended": "extended", "all": "all"}


def _to_python(tensor: Any, numpy_out: bool) -> Any:
    """A JS ort.Tensor as nested lists (rows) or, when the caller has numpy, an ndarray."""
    dims = [int(v) for v in tensor.dims.to_py()]
    values = tensor.data.to_py()
    flat = values.tolist() if hasattr(values, "tolist") else list(values)
    if tensor.type == "int64" or tensor.type == "uint64":  # BigInt64Array: exact Python ints
        flat = [int(v) for v in flat]
    if numpy_out:
        import numpy as np

        return np.asarray(flat).reshape(dims)
    if len(dims) == 2:
        d = dims[1]
        return [flat[i * d:(i + 1) * d] for i in range(dims[0])]
    return flat
