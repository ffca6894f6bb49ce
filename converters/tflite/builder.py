"""A small TFLite graph builder over the flatbuffer object API that ai-edge-litert ships
(``schema_py_generated``): constants, tensors with a dynamic batch dimension, builtin operators
only. No TensorFlow. Weights can be stored as fp16 or int8 and expanded by DEQUANTIZE at load."""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConversionError


def schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:
        try:
            from tflite_runtime import schema_py_generated as s
        except ImportError:
            raise ConversionError("writing TFLite needs the TFLite schema: pip install ai-edge-litert "
                                  "(TensorFlow is not needed)") from None
    return s


_TYPES = {np.dtype(np.float32): "FLOAT32", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
          np.dtype(np.int16): "INT16",
          np.dtype(np.bool_): "BOOL", np.dtype(np.int8): "INT8", np.dtype(np.float16): "FLOAT16"}


#: below this many weights, int8 costs more in quantization parameters than it saves
HYBRID_MIN = 64

#: operator versions above 1 that our uses need (DEQUANTIZE of int8 is version 2)
_VERSIONS = {"DEQUANTIZE": 2, "QUANTIZE": 2, "GATHER": 2, "ARG_MAX": 2, "SELECT_V2": 1}


class Graph:
    """One subgraph; tensor ids are plain ints. Batch-shaped tensors use -1 in shapeSignature.

    The first Graph is the model's main subgraph; ``subgraph()`` adds another (a WHILE body or
    condition) that shares the model's buffers and operator codes."""

    def __init__(self, weight_precision: str = "fp32", parent: Optional[Graph] = None, integer: bool = False,
                 calibration: Optional[np.ndarray] = None):
        self.s = schema()
        #: static int8: dense layers in integer arithmetic, ranges calibrated on these rows
        self.integer = integer
        self.calibration = calibration
        #: how the model was compiled, for the manifest (the tree compiler names its strategy)
        self.strategy = "dense"
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.weight_precision = weight_precision
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        if parent is None:
            self.buffers: list[Any] = [self.s.BufferT()]  # buffer 0: the empty sentinel
            self.opcodes: dict[int, int] = {}
            self.codes: list[Any] = []
            self.subgraphs: list[Graph] = [self]
        else:
            self.buffers, self.opcodes, self.codes = parent.buffers, parent.opcodes, parent.codes
            self.subgraphs = parent.subgraphs
            self.subgraphs.append(self)

    def subgraph(self) -> Graph:
        return Graph(self.weight_precision, parent=self, integer=self.integer)

    @property
    def index(self) -> int:
        return self.subgraphs.index(self)

    def tensor(self, shape: Sequence[int], dtype: Any = np.float32, name: Optional[str] = None,
               buffer: int = 0, quant: Any = None) -> int:
        t = self.s.TensorT()
        sig = [int(v) for v in shape]
        t.shape = [1 if v < 0 else v for v in sig]
        if any(v < 0 for v in sig):
            t.shapeSignature = sig
        t.type = getattr(self.s.TensorType, _TYPES[np.dtype(dtype)])
        t.name = name.encode() if name else None  # unnamed: no string in the file
        t.buffer = buffer
        t.quantization = quant
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, value: Any, dtype: Any = np.float32, name: Optional[str] = None, weight: bool = False,
              quant: Any = None) -> int:
        """A constant; ``weight=True`` lets fp16/int8 precision store it compressed."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        if weight and arr.dtype == np.float32 and self.weight_precision in ("fp16", "int8") and arr.size >= 16:
            return self._compressed(arr, name)
        b = self.s.BufferT()
        b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
        self.buffers.append(b)
        return self.tensor(arr.shape, arr.dtype, name, buffer=len(self.buffers) - 1, quant=quant)

    def _compressed(self, arr: np.ndarray, name: Optional[str]) -> int:
        if self.weight_precision == "fp16":
            src = self.const(arr.astype(np.float16), np.float16, (name or "w") + "_fp16")
        else:
            src = self.int8(arr, name)
        return self.op("DEQUANTIZE", [src], arr.shape, np.float32)

    def int8(self, arr: np.ndarray, name: Optional[str] = None) -> int:
        """Symmetric per-tensor int8 (zero point 0, scale max|w|/127): the layout DEQUANTIZE and
        the hybrid FULLY_CONNECTED kernel both read."""
        scale = float(np.max(np.abs(arr))) / 127.0 or 1.0
        q = np.clip(np.round(arr / scale), -127, 127).astype(np.int8)
        qp = self.qparams(scale, 0)
        b = self.s.BufferT()
        b.data = np.frombuffer(q.tobytes(), dtype=np.uint8)
        self.buffers.append(b)
        return self.tensor(q.shape, np.int8, (name or "w") + "_int8", buffer=len(self.buffers) - 1, quant=qp)

    def qparams(self, scale: float, zero_point: int) -> Any:
        qp = self.s.QuantizationParametersT()
        qp.scale = [float(scale)]
        qp.zeroPoint = [int(zero_point)]
        return qp

    def op(self, kind: str, inputs: Sequence[int], out_shape: Sequence[int], out_dtype: Any = np.float32,
           options: Optional[tuple[str, Any]] = None, name: Optional[str] = None, quant: Any = None) -> int:
        out = self.tensor(out_shape, out_dtype, name, quant=quant)
        self.op_into(kind, inputs, [out], options)
        return out

    def op_into(self, kind: str, inputs: Sequence[int], outputs: Sequence[int],
                options: Optional[tuple[str, Any]] = None) -> None:
        """An operator writing into tensors made beforehand (for several outputs, as WHILE has)."""
        code = getattr(self.s.BuiltinOperator, kind)
        if code not in self.opcodes:
            oc = self.s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = _VERSIONS.get(kind, 1)
            self.opcodes[code] = len(self.codes)
            self.codes.append(oc)
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes[code]
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, options[0])
            o.builtinOptions = options[1]
        self.operators.append(o)

    def while_loop(self, cond: Graph, body: Graph, inputs: Sequence[int]) -> list[int]:
        """WHILE cond(vars): vars = body(vars). One copy of the body instead of one per
        iteration: the file stays small however many steps run. Returns the final vars."""
        outs = [self.tensor(self._sig(i), self._dtype(i)) for i in inputs]
        opts = self.s.WhileOptionsT()
        opts.condSubgraphIndex, opts.bodySubgraphIndex = cond.index, body.index
        self.op_into("WHILE", inputs, outs, ("WhileOptions", opts))
        return outs

    def like(self, graph: Graph, tensor: int) -> int:
        """A tensor in this subgraph with the shape and type of ``tensor`` in ``graph``."""
        return self.tensor(graph._sig(tensor), graph._dtype(tensor))

    def _sig(self, tensor: int) -> list[int]:
        t = self.tensors[tensor]
        return list(t.shapeSignature) if t.shapeSignature is not None else list(t.shape)

    def _dtype(self, tensor: int) -> Any:
        code = self.tensors[tensor].type
        return next(dt for dt, nm in _TYPES.items() if getattr(self.s.TensorType, nm) == code)

    # --- common operators -------------------------------------------------------------------
    def fully_connected(self, x: int, weights: np.ndarray, bias: np.ndarray, activation: str = "NONE",
                        exact: bool = False) -> int:
        """x [N, in] @ weights.T [in, out] + bias -> [N, out] (weights given as [out, in]).
        ``exact``: the result must be exact (small integers), so int8 precision keeps float32."""
        opts = self.s.FullyConnectedOptionsT()
        opts.fusedActivationFunction = getattr(self.s.ActivationFunctionType, activation)
        weights = np.asarray(weights, np.float32)
        if self.weight_precision != "int8":  # fp16 stores them compressed (±1 and small integers stay exact)
            w = self.const(weights, weight=True, name="weights")
            b = self.const(np.asarray(bias, np.float32), name="bias", weight=True)
        elif weights.size >= HYBRID_MIN and not exact:
            # int8 weights read directly by FULLY_CONNECTED's hybrid kernel (float in, float out,
            # the bias stays float32): no DEQUANTIZE operator and no float copy of the weights
            w = self.int8(weights, "weights")
            b = self.const(np.asarray(bias, np.float32), name="bias")
            opts.asymmetricQuantizeInputs = True  # per-row zero point: offsets and ReLU outputs keep 8 bits
        else:  # exact, or a handful of weights (float32 costs less than quantization parameters would)
            w = self.const(weights, name="weights")
            b = self.const(np.asarray(bias, np.float32), name="bias")
        return self.op("FULLY_CONNECTED", [x, w, b], (-1, weights.shape[0]),
                       options=("FullyConnectedOptions", opts))

    def unary(self, kind: str, x: int, shape: Sequence[int]) -> int:
        return self.op(kind, [x], shape)

    def softmax(self, x: int, shape: Sequence[int]) -> int:
        opts = self.s.SoftmaxOptionsT()
        opts.beta = 1.0
        return self.op("SOFTMAX", [x], shape, options=("SoftmaxOptions", opts))

    def argmax(self, x: int) -> int:
        opts = self.s.ArgMaxOptionsT()
        opts.outputType = self.s.TensorType.INT64
        axis = self.const(np.array([1], np.int32), np.int32, "axis1")
        return self.op("ARG_MAX", [x, axis], (-1,), np.int64, options=("ArgMaxOptions", opts), name="label")

    def binary(self, kind: str, a: int, b: int, shape: Sequence[int], dtype: Any = np.float32) -> int:
        opt_name = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
                    "LESS_EQUAL": "LessEqualOptions", "NOT_EQUAL": "NotEqualOptions", "EQUAL": "EqualOptions"}[kind]
        return self.op(kind, [a, b], shape, dtype, options=(opt_name, getattr(self.s, opt_name + "T")()))

    def select(self, cond: int, a: int, b: int, shape: Sequence[int], dtype: Any = np.float32) -> int:
        return self.op("SELECT_V2", [cond, a, b], shape, dtype, options=("SelectV2Options", self.s.SelectV2OptionsT()))

    def gather(self, params: int, indices: int, shape: Sequence[int], dtype: Any, axis: int = 0,
               batch_dims: int = 0) -> int:
        opts = self.s.GatherOptionsT()
        opts.axis = axis
        opts.batchDims = batch_dims
        return self.op("GATHER", [params, indices], shape, dtype, options=("GatherOptions", opts))

    def reduce_sum(self, x: int, axis: int, shape: Sequence[int], keep_dims: bool = False) -> int:
        opts = self.s.ReducerOptionsT()
        opts.keepDims = keep_dims
        ax = self.const(np.array([axis], np.int32), np.int32)
        return self.op("SUM", [x, ax], shape, options=("ReducerOptions", opts))

    def _subgraph_t(self) -> Any:
        """The subgraph as written: operator outputs inside the graph carry no name and no shape
        signature (kernels compute their shapes when the input is sized; XNNPACK still wants the
        static shape). Inputs and outputs keep their signatures."""
        keep = set(self.inputs) | set(self.outputs)
        written = []
        for i, t in enumerate(self.tensors):
            if t.buffer == 0 and i not in keep:
                t = copy.copy(t)
                t.shapeSignature = None
            written.append(t)
        sg = self.s.SubGraphT()
        sg.tensors = written
        sg.operators = self.operators
        sg.inputs = list(self.inputs)
        sg.outputs = list(self.outputs)
        sg.name = b"main" if self.index == 0 else f"sub{self.index}".encode()
        return sg

    def build(self, inputs: Sequence[int], outputs: Sequence[int], description: str) -> bytes:
        import flatbuffers

        assert self.index == 0, "build the main subgraph"
        self.inputs, self.outputs = list(inputs), list(outputs)
        model = self.s.ModelT()
        model.version = 3
        model.operatorCodes = self.codes
        model.subgraphs = [g._subgraph_t() for g in self.subgraphs]
        model.buffers = self.buffers
        model.description = description.encode()
        fb = flatbuffers.Builder(1024)
        fb.Finish(model.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())
