"""Errors of the sync agent and its version store."""

from __future__ import annotations

from ..errors import EdgeRuntimeError


class SyncError(EdgeRuntimeError):
    """The agent could not complete a sync (network, repository, lock); the device keeps its model."""


class UpdateRejected(SyncError):
    """A candidate version failed a check (TUF, digests, load, smoke test, probation) and was
    marked bad; the previous version stays active."""


class StoreError(SyncError):
    """The version store refused or could not record a change; ``active.json`` is unchanged."""


class TransitionError(StoreError):
    """A state change that the store's state machine does not allow from the version's state
    (e.g. committing a version that is not on probation, rolling back to a bad version)."""


class StoreBusy(StoreError):
    """Another process held the store's record lock past the time limit; try again later."""
