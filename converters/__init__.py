"""Workstation side: compile fitted scikit-learn models into verified edge-runtime bundles.

Heavy dependencies (scikit-learn, skl2onnx, onnx) live here and never on the device.
"""

from __future__ import annotations

from .core import EXPORTERS, ExportContext, convert
from .errors import (
    CombinationUnsupportedError,
    ConversionError,
    ParityError,
    PublishError,
    SigningError,
    UnsupportedEstimatorError,
)
from .registry import SUPPORTED, register_converter

__all__ = ["convert", "register_converter", "SUPPORTED", "EXPORTERS", "ExportContext",
           "CombinationUnsupportedError", "ConversionError", "ParityError", "PublishError", "SigningError",
           "UnsupportedEstimatorError"]
