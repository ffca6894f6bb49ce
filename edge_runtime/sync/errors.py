"""Typed errors of the sync agent."""

from ..errors import EdgeRuntimeError


class SyncError(EdgeRuntimeError):
    """An update could not be fetched, verified or activated."""


class StoreLockedError(SyncError):
    """Another agent holds the store lock."""


class NoVersionError(SyncError):
    """The store has no usable version."""
