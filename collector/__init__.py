"""The fleet side of telemetry: receive device batches, deduplicate, store, report, check.

No device runs this package (an import-linter contract keeps ``edge_runtime`` from importing
it). It shares with the device only the segment format and the drift statistics
(:mod:`edge_runtime.telemetry.aggregate`, :mod:`edge_runtime.telemetry.histograms`).
Install it with ``pip install 'edge-runtime[collector]'``; PostgreSQL needs nothing more.
"""

from __future__ import annotations

from edge_runtime.errors import CollectorStoreError
from edge_runtime.health import Breach

from .alerts import Alerter
from .core import Collector, CollectorStore
from .report import Thresholds, breaches, check
from .storage import Store, open_store, redact_url

__all__ = ["Alerter", "Breach", "Collector", "CollectorStore", "CollectorStoreError", "Store", "Thresholds",
           "breaches", "check", "open_store", "redact_url"]
