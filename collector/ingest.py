"""One batch in: check an untrusted body, flatten it to rows, store it once.

Nothing is stored unless the whole batch is valid, so a device gets one clear refusal
naming the field, and a retry of a good batch is acknowledged without being stored again.
"""

from __future__ import annotations

import json
from typing import Any

from edge_runtime.telemetry.aggregate import validate_segment

from .storage import Store, StoredBatch

MAX_ID_CHARS = 128


def validate_batch(body: Any) -> dict[str, Any]:
    """The batch, checked.

    Raises:
        ValueError: naming the first field that is missing or malformed.
    """
    if not isinstance(body, dict):
        raise ValueError("batch is not a JSON object")
    for key, kind in (("batch_id", str), ("device_id", str), ("segments", list)):
        if not isinstance(body.get(key), kind) or not body.get(key) and kind is str:
            raise ValueError(f"batch field '{key}' is missing or not {kind.__name__}")
    if len(body["batch_id"]) > MAX_ID_CHARS or len(body["device_id"]) > MAX_ID_CHARS:
        raise ValueError(f"batch_id/device_id longer than {MAX_ID_CHARS} characters")
    for i, seg in enumerate(body["segments"]):
        try:
            validate_segment(seg)
        except ValueError as exc:
            raise ValueError(f"segments[{i}]: {exc}") from None
        if len(seg["segment_id"]) > MAX_ID_CHARS:
            raise ValueError(f"segments[{i}]: segment_id longer than {MAX_ID_CHARS} characters")
    refs = body.get("refs") or []
    if not isinstance(refs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("model"), str)
            and isinstance(r.get("version"), str) and isinstance(r.get("reference"), dict)
            for r in refs):
        raise ValueError("batch field 'refs' is malformed")
    dropped = body.get("dropped") or {}
    if not isinstance(dropped, dict) or not all(
            isinstance(dropped.get(k, 0), int) and not isinstance(dropped.get(k, 0), bool)
            and dropped.get(k, 0) >= 0 for k in ("segments", "calls")):
        raise ValueError("batch field 'dropped' is malformed")
    return body


def to_rows(body: dict[str, Any]) -> StoredBatch:
    """A validated batch as the rows the store inserts."""
    dropped = body.get("dropped") or {}
    return StoredBatch(
        batch_id=body["batch_id"], device_id=body["device_id"],
        dropped_segments=int(dropped.get("segments", 0)), dropped_calls=int(dropped.get("calls", 0)),
        segments=[(s["segment_id"], s["model"], s["version"], float(s["window_start"]),
                   float(s["window_end"]), json.dumps(s, separators=(",", ":")))
                  for s in body["segments"]],
        refs=[(r["model"], r["version"], json.dumps(r["reference"], separators=(",", ":")))
              for r in body.get("refs") or []])


def ingest(store: Store, body: Any) -> tuple[str, bool]:
    """Store a batch once (committed on return). Returns (batch id, was it a duplicate).

    Raises:
        ValueError: the batch is malformed (nothing stored).
    """
    rows = to_rows(validate_batch(body))
    return rows.batch_id, not store.put_batch(rows)
