"""The sync agent: signed model updates (python-tuf ngclient), a power-safe version store, an
explicit activation state machine with smoke test and probation, and local rollback."""

from .errors import SyncError, UpdateRejected

__all__ = ["SyncError", "UpdateRejected"]
