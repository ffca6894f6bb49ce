"""edge-runtime: run verified scikit-learn model bundles on devices, offline.

``import edge_runtime`` is cheap and needs neither numpy nor an engine (Pyodide without numpy
imports it too); what is used is imported on first use.

    >>> import edge_runtime
    >>> model = edge_runtime.load("bundle/")            # doctest: +SKIP
    >>> model.predict([[5.1, 3.5, 1.4, 0.2]])           # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import (
    AlertDeliveryError,
    AttributeMissing,
    BackendError,
    BackendOutputError,
    BackendUnavailableError,
    BatchRejected,
    BenchError,
    BundleError,
    CandidateFailed,
    CollectorStoreError,
    EdgeRuntimeError,
    GoldenMismatchError,
    InputError,
    IntegrityError,
    ModelDecodeError,
    ModelFileError,
    ModelUseError,
    NoProbabilitiesError,
    NoServableModelError,
    NumpyRequiredError,
    OutboxError,
    ProfileError,
    SchemaVersionError,
    ScoringOptionError,
    ServeConfigError,
    SinkAuthError,
    SinkError,
    StoreBusy,
    StoreError,
    StrategyError,
    SyncError,
    TransitionError,
    TrialUnavailable,
    UnsafeArchiveError,
    UnsignedNativeError,
    UnsupportedModelError,
    UpdateRejected,
)

__all__ = [
    "__version__", "load", "load_async", "Model", "Predictor", "open_bundle", "pack_bundle", "unpack_bundle",
    # every exception class of edge_runtime.errors (tests/test_errors.py checks it), so one
    # ``except edge_runtime.X`` works for an app
    "AlertDeliveryError", "AttributeMissing", "BackendError", "BackendOutputError",
    "BackendUnavailableError", "BatchRejected", "BenchError", "BundleError", "CandidateFailed",
    "CollectorStoreError", "EdgeRuntimeError", "GoldenMismatchError", "InputError",
    "IntegrityError", "ModelDecodeError", "ModelFileError", "ModelUseError", "NoProbabilitiesError",
    "NoServableModelError", "NumpyRequiredError", "OutboxError", "ProfileError",
    "SchemaVersionError", "ScoringOptionError", "ServeConfigError", "SinkAuthError", "SinkError", "StoreBusy",
    "StoreError", "StrategyError", "SyncError", "TransitionError", "TrialUnavailable",
    "UnsafeArchiveError", "UnsignedNativeError", "UnsupportedModelError", "UpdateRejected",
]

_LAZY = {
    "load": ("loader", "load"),
    "load_async": ("loader", "load_async"),
    "Model": ("model", "Model"),
    "Predictor": ("predictor", "Predictor"),
    "open_bundle": ("bundle", "open_bundle"),
    "pack_bundle": ("bundle", "pack_bundle"),
    "unpack_bundle": ("bundle", "unpack_bundle"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'edge_runtime' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
