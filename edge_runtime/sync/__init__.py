"""Device-side sync: TUF-verified downloads, a version store and safe activation."""

from .probation import ProbationMonitor, ProbationThresholds
from .store import VersionStore

__all__ = ["VersionStore", "ProbationMonitor", "ProbationThresholds"]
