"""Static ("full-integer") int8 dense layers: integer arithmetic from the first layer's input to
the logits, with every activation's range calibrated once on the sample rows.

The graph quantizes the (imputed, column-scaled) float input once, runs FULLY_CONNECTED on int8
inputs and int8 weights with int32 biases (scale = input scale × weight scale), TANH/LOGISTIC on
int8 with the fixed output scales the TFLite kernels require, and dequantizes the logits for the
float softmax head. This is what integer-only accelerators and MCU kernels run; the converter's
label-agreement bar judges the result like every int8 artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .builder import Graph

#: (scale, zero point) the int8 TFLite kernels fix for these activations' outputs
_FIXED_OUTPUT = {"TANH": (1.0 / 128.0, 0), "LOGISTIC": (1.0 / 256.0, -128)}
_Activation = Callable[[np.ndarray], np.ndarray]
_ACT: dict[Optional[str], _Activation] = {
    "TANH": np.tanh, "LOGISTIC": lambda z: 1.0 / (1.0 + np.exp(-z)), None: lambda z: z,
    "RELU": lambda z: np.maximum(z, 0.0)}


@dataclass
class Dense:
    """One dense layer: act(x @ w.T + b); ``act`` RELU | TANH | LOGISTIC | None. Here, beside
    its integer form, so that ``compile`` (which builds layers) imports this module one way."""

    w: np.ndarray
    b: np.ndarray
    act: Optional[str] = None


def asymmetric(values: np.ndarray) -> tuple[float, int]:
    """int8 (scale, zero point) covering the observed range and 0 (so padding and ReLU's zero
    are exact)."""
    lo, hi = min(float(np.min(values, initial=0.0)), 0.0), max(float(np.max(values, initial=0.0)), 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


def integer_dense(g: Graph, h: int, layers: Sequence[Dense], rows: np.ndarray) -> int:
    """float h -> QUANTIZE -> int8 layers -> DEQUANTIZE -> float logits."""
    cur = np.asarray(rows, np.float64)
    s_in, z_in = asymmetric(cur)
    t = g.op("QUANTIZE", [h], (-1, cur.shape[1]), np.int8, quant=g.qparams(s_in, z_in))
    for layer in layers:
        n = layer.w.shape[0]
        pre = cur @ layer.w.T + layer.b
        fused = layer.act == "RELU"
        out = np.maximum(pre, 0.0) if fused else pre
        s_out, z_out = asymmetric(out)
        w = g.int8(np.asarray(layer.w, np.float32), "weights")
        s_w = g.tensors[w].quantization.scale[0]
        bias = g.const(np.round(np.asarray(layer.b) / (s_in * s_w)).astype(np.int32), np.int32, "bias",
                       quant=g.qparams(s_in * s_w, 0))
        opts: Any = g.s.FullyConnectedOptionsT()
        opts.fusedActivationFunction = getattr(g.s.ActivationFunctionType, "RELU" if fused else "NONE")
        t = g.op("FULLY_CONNECTED", [t, w, bias], (-1, n), np.int8, options=("FullyConnectedOptions", opts),
                 quant=g.qparams(s_out, z_out))
        s_in, z_in = s_out, z_out
        if layer.act in _FIXED_OUTPUT:
            s_in, z_in = _FIXED_OUTPUT[layer.act]
            t = g.op(layer.act, [t], (-1, n), np.int8, quant=g.qparams(s_in, z_in))
        cur = _ACT[layer.act](pre)
    return g.op("DEQUANTIZE", [t], (-1, layers[-1].w.shape[0]), np.float32)
