"""Errors of the workstation side (they subclass the runtime's base error, so one except works).

Every exception class of ``converters`` is defined here and exported (``__all__``, and from
``converters`` itself); the modules that raised them before (``converters.publish``,
``converters.signing``) re-export them, so existing imports keep working.
"""

from __future__ import annotations

from edge_runtime.errors import EdgeRuntimeError


class ConversionError(EdgeRuntimeError):
    """A model could not be converted."""


class UnsupportedEstimatorError(ConversionError):
    """An estimator (or a step of a pipeline) has no converter; the message says how to add one."""


class ParityError(ConversionError):
    """The converted model does not reproduce the estimator within tolerance: no bundle written."""

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


class CombinationUnsupportedError(ConversionError):
    """One format/precision pair cannot be built for this model (ONNX int8 of a graph made only
    of ai.onnx.ml operators): with other pairs requested it is skipped with a note."""


class PublishError(ConversionError):
    """The repository or the keys are not in a state we can publish from."""


class SigningError(ConversionError):
    """A bundle could not be signed (missing package, unusable key, not a bundle)."""


__all__ = ["CombinationUnsupportedError", "ConversionError", "ParityError", "PublishError",
           "SigningError", "UnsupportedEstimatorError"]
