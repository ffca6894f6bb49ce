"""scikit-learn -> ONNX through skl2onnx, with the options every edge deployment wants:
plain probability tensors (no ZipMap), a fixed opset the oldest supported onnxruntime runs."""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from edge_runtime.bundle import LABEL_TASKS, InputSpec

from .boosting import libraries_in, register
from .errors import CombinationUnsupportedError, ConversionError, UnsupportedEstimatorError
from .kinds import Typed, input_specs, vectorizer_options
from .registry import refusal, steps_of

#: onnxruntime >= 1.17 (our lower bound) runs these; recorded in every artifact.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
INPUT_NAME = "input"


@dataclass
class Exported:
    """One artifact produced by an exporter, before parity is measured."""

    data: bytes
    format: str
    precision: str
    input_name: str
    input_dtype: str
    outputs: dict[str, str]
    opset: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)
    #: one named input per column (models with categorical/text features); empty: one matrix
    inputs: tuple[InputSpec, ...] = ()
    #: the artifact's file name in the bundle (None: model[.precision].format)
    name: Optional[str] = None
    #: how a native library was built (converters.native.toolchain.Toolchain), for emulated parity
    toolchain: Any = None

    @property
    def key(self) -> str:
        """The artifact's key in the parity report: format/precision[/arch]."""
        arch = self.extra.get("arch")
        return f"{self.format}/{self.precision}" + (f"/{arch}" if arch else "")


def _classifier_options(estimator: Any) -> dict:
    options = {}
    steps = steps_of(estimator)
    for step in list(steps):  # a VotingClassifier's members get a ZipMap of their own otherwise
        if type(step).__name__ == "VotingClassifier":
            steps += [s for e in getattr(step, "estimators_", []) for s in steps_of(e)]
    for step in steps:
        # Only classifiers with probabilities have a ZipMap (skl2onnx rejects the option on others).
        try:
            with_proba = hasattr(step, "predict_proba")
        except AttributeError:
            with_proba = False
        # An empty entry for the others stops skl2onnx's pipeline parser from adding one anyway.
        # (a hard-voting VotingClassifier has no predict_proba, yet skl2onnx gives it a ZipMap)
        if hasattr(step, "classes_") and not hasattr(step, "steps"):
            zipmap = with_proba or type(step).__name__ == "VotingClassifier"
            options[id(step)] = {"zipmap": False} if zipmap else {}
    return options


def convertible(estimator: Any) -> Any:
    """``estimator``, or a copy skl2onnx can convert with the same predictions: a
    VotingClassifier with ``flatten_transform=True`` (its default) stops skl2onnx ("not
    implemented yet") although the flag only shapes ``transform()``, which no bundle exposes."""
    voting = [s for s in steps_of(estimator)
              if type(s).__name__ == "VotingClassifier" and getattr(s, "flatten_transform", False)]
    if not voting:
        return estimator
    clone = copy.deepcopy(estimator)
    for step in steps_of(clone):
        if type(step).__name__ == "VotingClassifier":
            step.flatten_transform = False
    return clone


def export_onnx(estimator: Any, n_features: int, *, task: str, has_proba: bool,
                precision: str = "fp32", quantization: str = "dynamic", calibration: Any = None,
                typed: Optional[Typed] = None, names: Optional[list[str]] = None) -> Exported:
    """Convert a fitted estimator. ``precision`` is fp32, fp64 (double input, for models
    whose float32 arithmetic flips a tree branch; see sklearn-onnx #1192) or int8
    (``quantization`` dynamic, or static with ``calibration`` rows). With ``typed`` (a table
    with string columns, named ``names``) every column is its own input: float for numbers,
    string tensors for categories and text."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    if precision == "int8":
        if typed is not None and quantization == "static":
            raise ConversionError("static int8 quantization calibrates one float matrix; this model "
                                  "takes string inputs: use --quantization dynamic")
        return quantize_int8(export_onnx(estimator, n_features, task=task, has_proba=has_proba,
                                         typed=typed, names=names), quantization, calibration)
    if precision not in ("fp32", "fp64"):
        raise ConversionError(f"ONNX export at precision {precision!r}: use fp32, fp64 or int8 "
                              "(fp16 is available for TFLite)")
    tensor = FloatTensorType if precision == "fp32" else DoubleTensorType
    estimator = convertible(estimator)
    libraries = libraries_in(estimator)
    if libraries:
        register(libraries)
    specs: tuple[InputSpec, ...] = ()
    initial: list[tuple[str, Any]] = [(INPUT_NAME, tensor([None, n_features]))]
    options = _classifier_options(estimator)
    if typed is not None:
        specs = input_specs(names or [], typed, "float32" if precision == "fp32" else "float64")
        initial = [(s.name, (StringTensorType if s.dtype == "string" else tensor)([None, len(s.features)]))
                   for s in specs]
        options.update(vectorizer_options(estimator))
    try:
        onx = convert_sklearn(estimator, initial_types=initial, options=options or None,
                              target_opset=dict(TARGET_OPSET))
    except Exception as exc:
        raise skl2onnx_refusal(estimator, exc) from None
    names = [o.name for o in onx.graph.output]
    if task in LABEL_TASKS:
        outputs = {"label": names[0]}
        if len(names) > 1:
            outputs["probabilities" if has_proba else "scores"] = names[1]
    else:
        outputs = {"prediction": names[0]}
    opset = {(imp.domain or ""): int(imp.version) for imp in onx.opset_import}
    return Exported(data=onx.SerializeToString(), format="onnx", precision=precision,
                    input_name=specs[0].name if specs else INPUT_NAME,
                    input_dtype=specs[0].dtype if specs else "float32" if precision == "fp32" else "float64",
                    outputs=outputs, opset=opset,
                    extra={"ir_version": int(onx.ir_version), "onnx_version": onnx.__version__},
                    inputs=specs)


def skl2onnx_refusal(estimator: Any, exc: BaseException) -> ConversionError:
    """skl2onnx's own error as one line: the first sentence of its message, which names the
    step (the rest is advice about its own registry)."""
    text = " ".join(str(exc).split())
    first = text.split(". ")[0].rstrip(".") if text else type(exc).__name__
    missing = "MissingShapeCalculator" in type(exc).__name__ or "Unable to find" in text or \
        "MissingConverter" in type(exc).__name__
    cls = UnsupportedEstimatorError if missing or isinstance(exc, NotImplementedError) else ConversionError
    return cls(refusal(estimator, f"skl2onnx: {first}"))


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization advises image-model pre-processing through the root logger on
    every call; for these graphs it is noise in the converter's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _CalibrationRows:
    """onnxruntime's CalibrationDataReader over the sample rows, 64 rows a batch, 1,024 at most."""

    def __init__(self, input_name: str, rows: np.ndarray):
        rows = np.ascontiguousarray(rows[:1024], dtype=np.float32)
        self._batches = iter([{input_name: rows[i:i + 64]} for i in range(0, len(rows), 64)])

    def get_next(self) -> Optional[dict]:
        return next(self._batches, None)


def quantize_int8(fp32: Exported, quantization: str = "dynamic", calibration: Any = None) -> Exported:
    """int8 through onnxruntime.quantization. dynamic: MatMul/Gemm weights stored as int8,
    activations quantized per call. static: QDQ with per-channel weights and activation ranges
    calibrated on the sample rows once (full-integer kernels where onnxruntime has them).
    ai.onnx.ml operators (trees, LinearClassifier) have no int8 kernels: refused, naming why."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if quantization == "static" and calibration is None:
        raise ConversionError("static int8 quantization needs calibration rows (the sample)")
    with tempfile.TemporaryDirectory() as tmp, _quiet_root_logger():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32.data)
        try:
            if quantization == "static":
                quantize_static(str(src), str(dst), _CalibrationRows(fp32.input_name, np.asarray(calibration)),
                                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                                weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"])
            else:
                quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        except ValueError as exc:  # no ai.onnx MatMul/Gemm to quantize (ai.onnx.ml-only graphs)
            raise CombinationUnsupportedError(f"onnxruntime cannot quantize this model to int8 ({exc}); it uses "
                                  "ai.onnx.ml operators only. Use --format tflite --precision int8") from None
        data = dst.read_bytes()
    scheme = ("onnxruntime static int8 (QDQ, calibrated on the sample rows)" if quantization == "static"
              else "onnxruntime dynamic int8 (weights)")
    return Exported(data=data, format="onnx", precision="int8", input_name=fp32.input_name,
                    input_dtype=fp32.input_dtype, outputs=dict(fp32.outputs), opset=dict(fp32.opset),
                    extra={**fp32.extra, "quantization": scheme}, inputs=fp32.inputs)
