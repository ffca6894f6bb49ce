"""A small TFLite graph builder over the flatbuffer object API that ai-edge-litert ships
(``schema_py_generated``): constants, tensors with a dynamic batch dimension, builtin operators
only. No TensorFlow. Weights can be stored as fp16 or int8 and expanded by DEQUANTIZE at load."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConversionError


def schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:
        try:
            from tflite_runtime import schema_py_generated as s  # type: ignore[no-redef]
        except ImportError:
            raise ConversionError("writing TFLite needs the TFLite schema: pip install ai-edge-litert "
                                  "(TensorFlow is not needed)") from None
    return s


_TYPES = {np.dtype(np.float32): "FLOAT32", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
          np.dtype(np.int16): "INT16",
          np.dtype(np.bool_): "BOOL", np.dtype(np.int8): "INT8", np.dtype(np.float16): "FLOAT16"}


#: operator versions above 1 that our uses need (DEQUANTIZE of int8 is version 2)
_VERSIONS = {"DEQUANTIZE": 2, "GATHER": 2, "ARG_MAX": 2, "SELECT_V2": 1}


class Graph:
    """One subgraph; tensor ids are plain ints. Batch-shaped tensors use -1 in shapeSignature."""

    def __init__(self, weight_precision: str = "fp32"):
        self.s = schema()
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [self.s.BufferT()]  # buffer 0: the empty sentinel
        self.operators: list[Any] = []
        self.opcodes: dict[int, int] = {}
        self.codes: list[Any] = []
        self.weight_precision = weight_precision
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def tensor(self, shape: Sequence[int], dtype: Any = np.float32, name: Optional[str] = None,
               buffer: int = 0, quant: Any = None) -> int:
        t = self.s.TensorT()
        sig = [int(v) for v in shape]
        t.shape = [1 if v < 0 else v for v in sig]
        if any(v < 0 for v in sig):
            t.shapeSignature = sig
        t.type = getattr(self.s.TensorType, _TYPES[np.dtype(dtype)])
        t.name = (name or self._name("t")).encode()
        t.buffer = buffer
        t.quantization = quant
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, value: Any, dtype: Any = np.float32, name: Optional[str] = None, weight: bool = False) -> int:
        """A constant; ``weight=True`` lets fp16/int8 precision store it compressed."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        if weight and arr.dtype == np.float32 and self.weight_precision in ("fp16", "int8") and arr.size >= 16:
            return self._compressed(arr, name)
        b = self.s.BufferT()
        b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
        self.buffers.append(b)
        return self.tensor(arr.shape, arr.dtype, name or self._name("c"), buffer=len(self.buffers) - 1)

    def _compressed(self, arr: np.ndarray, name: Optional[str]) -> int:
        if self.weight_precision == "fp16":
            src = self.const(arr.astype(np.float16), np.float16, (name or "w") + "_fp16")
        else:  # symmetric per-tensor int8
            scale = float(np.max(np.abs(arr))) / 127.0 or 1.0
            q = np.clip(np.round(arr / scale), -127, 127).astype(np.int8)
            qp = self.s.QuantizationParametersT()
            qp.scale = [scale]
            qp.zeroPoint = [0]
            b = self.s.BufferT()
            b.data = np.frombuffer(q.tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            src = self.tensor(q.shape, np.int8, (name or "w") + "_int8", buffer=len(self.buffers) - 1, quant=qp)
        return self.op("DEQUANTIZE", [src], arr.shape, np.float32)

    def op(self, kind: str, inputs: Sequence[int], out_shape: Sequence[int], out_dtype: Any = np.float32,
           options: Optional[tuple[str, Any]] = None, name: Optional[str] = None) -> int:
        code = getattr(self.s.BuiltinOperator, kind)
        if code not in self.opcodes:
            oc = self.s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = _VERSIONS.get(kind, 1)
            self.opcodes[code] = len(self.codes)
            self.codes.append(oc)
        out = self.tensor(out_shape, out_dtype, name or self._name(kind.lower()))
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes[code]
        o.inputs = list(inputs)
        o.outputs = [out]
        if options is not None:
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, options[0])
            o.builtinOptions = options[1]
        self.operators.append(o)
        return out

    # --- common operators -------------------------------------------------------------------
    def fully_connected(self, x: int, weights: np.ndarray, bias: np.ndarray, activation: str = "NONE") -> int:
        """x [N, in] @ weights.T [in, out] + bias -> [N, out] (weights given as [out, in])."""
        opts = self.s.FullyConnectedOptionsT()
        opts.fusedActivationFunction = getattr(self.s.ActivationFunctionType, activation)
        w = self.const(np.asarray(weights, np.float32), weight=True, name="weights")
        b = self.const(np.asarray(bias, np.float32), name="bias", weight=True)
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
                    "LESS_EQUAL": "LessEqualOptions", "NOT_EQUAL": "NotEqualOptions"}[kind]
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

    def build(self, inputs: Sequence[int], outputs: Sequence[int], description: str) -> bytes:
        import flatbuffers

        sg = self.s.SubGraphT()
        sg.tensors = self.tensors
        sg.operators = self.operators
        sg.inputs = list(inputs)
        sg.outputs = list(outputs)
        sg.name = b"main"
        model = self.s.ModelT()
        model.version = 3
        model.operatorCodes = self.codes
        model.subgraphs = [sg]
        model.buffers = self.buffers
        model.description = description.encode()
        fb = flatbuffers.Builder(1024)
        fb.Finish(model.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())
