"""Local prediction service: a plain WSGI app (:func:`make_app`) served by waitress.

``edgert serve BUNDLE_OR_STORE`` serves one model (:class:`ModelSlot`) or the active version of
a sync store through :class:`edge_runtime.hotswap.HotSwapModel` (swapped without dropping a
request, probation judged), wraps it in the WSGI app and runs it.
Importing this package needs only the standard library; waitress is imported by :func:`run`.
"""

from __future__ import annotations

from .app import OPENAPI_PATH, PredictionApp, make_app
from .metrics import Metrics
from .slot import LoadedModel, ModelSlot, is_sync_store, resolve_version_dir

__all__ = ["OPENAPI_PATH", "LoadedModel", "Metrics", "ModelSlot", "PredictionApp",
           "is_sync_store", "make_app", "resolve_version_dir"]
