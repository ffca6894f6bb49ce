"""Device-side sync: TUF-verified downloads, a version store and safe activation."""

from .store import VersionStore
from .probation import ProbationMonitor, ProbationThresholds

__all__ = ["VersionStore", "ProbationMonitor", "ProbationThresholds"]
