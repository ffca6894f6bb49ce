"""Errors of the sync agent and its version store: defined in :mod:`edge_runtime.errors` (one
place for every exception) and re-exported here, where apps imported them from before."""

from __future__ import annotations

from ..errors import (
    CandidateFailed,
    NoServableModelError,
    StoreBusy,
    StoreError,
    SyncError,
    TransitionError,
    TrialUnavailable,
    UpdateRejected,
)

__all__ = ["CandidateFailed", "NoServableModelError", "StoreBusy", "StoreError", "SyncError",
           "TransitionError", "TrialUnavailable", "UpdateRejected"]
