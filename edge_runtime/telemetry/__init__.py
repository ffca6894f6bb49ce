"""Deferred telemetry: record off the prediction path, keep in an outbox, upload later.

Pieces, each in its own module: :mod:`.histograms` (fixed histograms, PSI), :mod:`.aggregate`
(mergeable window figures), :mod:`.recorder` (queue + background drain), :mod:`.monitored`
(``MonitoredModel`` wrapper with feedback), :mod:`.alerting` (on-device alert callbacks),
:mod:`.outbox` (SQLite WAL with a size cap),
:mod:`.sinks` (HTTP JSON, MQTT) and :mod:`.uploader` (batches, acks, backoff); the receiver
is the top-level ``collector`` package, which no device imports. Imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Recorder": "recorder", "get_recorder": "recorder", "LiveMetrics": "recorder",
    "read_live_metrics": "recorder",
    "MonitoredModel": "monitored", "monitor": "monitored",
    "LiveAlerts": "alerting", "DEFAULT_ALERT_RULES": "alerting",
    "Outbox": "outbox", "OutboxError": "outbox", "default_state_dir": "outbox",
    "Uploader": "uploader", "FlushResult": "uploader",
    "HttpSink": "sinks", "MqttSink": "sinks", "SinkError": "sinks", "sink_from_url": "sinks",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
