"""Errors of the sync agent."""

from __future__ import annotations

from ..errors import EdgeRuntimeError


class SyncError(EdgeRuntimeError):
    """The agent could not complete a sync (network, repository, lock); the device keeps its model."""


class UpdateRejected(SyncError):
    """A candidate version failed a check (TUF, digests, load, smoke test, probation) and was
    marked bad; the previous version stays active."""
