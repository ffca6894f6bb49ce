"""Figures over time for one model version: the report's ``series`` (the dashboard's lines).

Segments are summed per device window start (the same window from every device adds up
exactly, see :func:`~edge_runtime.telemetry.aggregate.merge_segments`); when a version has
more windows than :data:`MAX_POINTS`, neighbouring windows are summed into equal time
buckets so a long history stays a small report.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from edge_runtime.telemetry.aggregate import merge_segments

#: Points per version at most (a dashboard line is ~600 px wide: more would not show).
MAX_POINTS = 120
# what a point needs (feature bins, outputs, shadow and samples are left out of the sums:
# they are most of the merging work and no line shows them)
_SLIM_KEEP = ("model", "version", "window_start", "window_end", "calls", "rows", "errors",
              "latency", "classes")
_SLIM_EMPTY = ("feedback", "outputs", "shadow")


def slim(seg: dict[str, Any]) -> dict[str, Any]:
    """The part of a segment a point is made of (kept per window until the buckets are known)."""
    return {k: seg.get(k) or {} for k in _SLIM_EMPTY} | {k: seg[k] for k in _SLIM_KEEP}


def bucket_segments(segments: Iterable[dict[str, Any]], max_points: int = MAX_POINTS
                    ) -> list[dict[str, Any]]:
    """Segments (:func:`slim` ones will do) of one model version summed into at most
    ``max_points`` time buckets, oldest first; each bucket's ``window_start``/``window_end``
    cover what it holds."""
    segs = list(segments)
    if not segs:
        return []
    starts = sorted({float(s["window_start"]) for s in segs})
    t0, span = starts[0], starts[-1] - starts[0]
    width = span / max_points * (1 + 1e-9) if len(starts) > max_points and span > 0 else None
    buckets: dict[float, dict[str, Any]] = {}
    for seg in segs:
        ws = float(seg["window_start"])
        key = ws if width is None else t0 + math.floor((ws - t0) / width) * width
        buckets[key] = merge_segments(buckets[key], seg) if key in buckets else seg
    return [buckets[k] for k in sorted(buckets)]


def point(summary: dict[str, Any]) -> dict[str, Any]:
    """The few figures of one bucket's version report that the dashboard plots."""
    fb = summary["feedback"]
    return {"window_start": summary["window_start"], "window_end": summary["window_end"],
            "calls": summary["calls"], "errors": summary["errors"],
            "error_rate": summary["error_rate"],
            "p50_s": summary["latency_s"]["p50"], "p99_s": summary["latency_s"]["p99"],
            "accuracy": fb["accuracy"], "feedback_n": fb["n"]}
