"""The fleet side of telemetry: receive device batches, deduplicate, store, report, check.

No device runs this package (an import-linter contract keeps ``edge_runtime`` from importing
it). It shares with the device only the segment format and the drift statistics
(:mod:`edge_runtime.telemetry.aggregate`, :mod:`edge_runtime.telemetry.stats`).
Install it with ``pip install 'edge-runtime[collector]'``.
"""

from __future__ import annotations

from .alerts import Alerter
from .core import Breach, Collector, CollectorStore, Thresholds, breaches, check

__all__ = ["Alerter", "Breach", "Collector", "CollectorStore", "Thresholds", "breaches", "check"]
