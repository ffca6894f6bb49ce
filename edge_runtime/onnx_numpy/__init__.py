"""A numpy interpreter for the ONNX graphs our converters emit (no onnx/protobuf needed).

``decode_model`` (``proto``) reads the bytes, ``Plan`` (``plan``) checks and orders the graph
once at load, and ``ops`` holds one module per operator family behind a registry.
"""

from __future__ import annotations

from .proto import ModelDecodeError, decode_model

__all__ = ["ModelDecodeError", "decode_model"]
