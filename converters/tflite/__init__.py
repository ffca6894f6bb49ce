"""scikit-learn -> TFLite without TensorFlow: registers the "tflite" exporter.

Precisions: fp32; fp16 and int8 store the large weight tensors compressed (fp16, or symmetric
int8 with a scale) and expand them with DEQUANTIZE at load, so the arithmetic stays float32 and
stock interpreters run it.
"""

from __future__ import annotations

from typing import Any

from ..core import EXPORTERS, ExportContext
from ..errors import ConversionError
from ..onnx_export import Exported
from .builder import Graph
from .compile import LINEAR, MLP, SUPPORTED, TREES, compile_linear, compile_mlp, split
from .trees import compile_trees

__all__ = ["export_tflite", "SUPPORTED"]


def export_tflite(ctx: ExportContext, precision: str) -> Exported:
    if precision not in ("fp32", "fp16", "int8"):
        raise ConversionError(f"TFLite precision {precision!r}: use fp32, fp16 or int8")
    pre, last = split(ctx.estimator)
    name = type(last).__name__
    static = precision == "int8" and ctx.quantization == "static"
    g = Graph(weight_precision=precision, integer=static and name in LINEAR + MLP, calibration=ctx.sample)
    compiler = compile_linear if name in LINEAR else compile_mlp if name in MLP else compile_trees
    assert name in LINEAR + MLP + TREES
    x, outs = compiler(g, last, pre, ctx.n_features, ctx.has_proba)
    roles = list(outs)
    for role in roles:  # outputs are found by name: name them by what they hold
        g.tensors[outs[role]].name = role.encode()
    data = g.build([x], [outs[r] for r in roles], f"edge-runtime {type(ctx.estimator).__name__}")
    names = {r: g.tensors[outs[r]].name.decode() for r in roles}
    extra: dict[str, Any] = {"label_encoding": "index"} if "label" in names else {}
    extra["strategy"] = g.strategy
    if precision == "int8":
        extra["quantization"] = _int8_scheme(g, name in TREES, len(ctx.sample))
    return Exported(data=data, format="tflite", precision=precision, input_name="input", input_dtype="float32",
                    outputs=names, opset={"tflite_schema": 3}, extra=extra)


def _int8_scheme(g: Graph, trees: bool, calibration_rows: int) -> str:
    """What int8 means in this artifact, for the manifest and ``edgert inspect``."""
    if g.integer:
        return f"static int8: integer dense layers, activation ranges calibrated on {calibration_rows} sample rows"
    if not trees:
        return "dynamic int8: int8 weights, inputs quantized per row (hybrid kernels)"
    if g.strategy.endswith("(compact)"):
        return "int8 node data (fp16 thresholds), float comparisons"
    return "float32 trees (the compact layout does not fit them)"


EXPORTERS["tflite"] = export_tflite
