"""scikit-learn -> C -> one shared library per target architecture: the "native" exporter.

Modules, one job each: :mod:`.trees` and :mod:`.dense` generate C per model family,
:mod:`.toolchain` compiles it (host gcc, Debian's cross gcc for aarch64 and armv7),
:mod:`.emulate` runs foreign-architecture libraries under qemu-user for parity, and this module
packages each library as an artifact (format ``native``, with ``arch`` and the ``build`` record).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

from ..core import EXPORTERS, ExportContext
from ..errors import ConversionError, UnsupportedEstimatorError
from ..onnx_export import Exported
from . import dense, prep, trees
from .toolchain import compile_library, find, parse_targets

__all__ = ["CProgram", "export_native", "generate_c", "SUPPORTED"]

SUPPORTED = dense.LINEAR + dense.MLP + trees.TREES + prep.PRE


def _split(estimator: Any) -> tuple[list[Any], Any]:
    if hasattr(estimator, "steps"):
        steps = [s for _, s in estimator.steps if s not in (None, "passthrough")]
        return steps[:-1], steps[-1]
    return [], estimator


class CProgram(NamedTuple):
    source: str
    n_outputs: int  # float64 output columns
    opt: str  # the optimisation flag the generator's code is written for


def generate_c(estimator: Any, n_features: int, has_proba: bool) -> CProgram:
    """The C program for a fitted estimator or pipeline.

    Raises:
        UnsupportedEstimatorError: a step cannot be compiled (names it and what is supported).
    """
    pre, last = _split(estimator)
    name = type(last).__name__
    if name in trees.TREES:
        if pre:
            raise UnsupportedEstimatorError(
                f"native trees take the raw features: drop {type(pre[0]).__name__} before {name} "
                "(trees do not need scaling) or use --format onnx")
        return CProgram(*trees.generate(last, n_features, hasattr(last, "classes_")), trees.OPT)
    if name in dense.LINEAR + dense.MLP:
        return CProgram(*dense.generate(last, pre, n_features, has_proba), dense.OPT)
    raise UnsupportedEstimatorError(f"{name} cannot be compiled to native code. Supported: "
                                    f"{', '.join(dense.LINEAR + dense.MLP + trees.TREES)} (after "
                                    f"{', '.join(prep.PRE)} for the non-tree ones). Use --format onnx.")


def outputs_for(task: str, has_proba: bool) -> dict[str, str]:
    if task == "regression":
        return {"prediction": "prediction"}
    return {"label": "label", "probabilities": "probabilities"} if has_proba else {"label": "label"}


def export_native(ctx: ExportContext, precision: str, targets: Optional[Any] = None) -> list[Exported]:
    """One :class:`Exported` per target; each records ``arch`` and how it was built."""
    if precision != "fp32":
        raise ConversionError(f"native precision {precision!r}: native artifacts take float32 input and "
                              "compute in float64 where scikit-learn does (precision fp32)")
    source, n_out, opt = generate_c(ctx.estimator, ctx.n_features, ctx.has_proba)
    out = []
    for target in parse_targets(targets if targets is not None else ctx.targets):
        tc = dataclasses.replace(find(target), opt=opt)
        data = compile_library(source, tc)
        extra: dict[str, Any] = {"arch": target, "build": tc.describe(), "n_outputs": n_out,
                                 "compute": "float64", "c_source_bytes": len(source)}
        if ctx.task == "classification":
            extra["label_encoding"] = "index"
        out.append(Exported(data=data, format="native", precision="fp32", input_name="input",
                            input_dtype="float32", outputs=outputs_for(ctx.task, ctx.has_proba),
                            opset={"native_abi": 1}, extra=extra, name=f"model.{target}.so",
                            toolchain=tc))
    return out


EXPORTERS["native"] = export_native
