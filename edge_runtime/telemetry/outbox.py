"""The outbox: closed telemetry windows waiting for upload, in SQLite (WAL) in the state dir.

Rows are only ever removed by an acknowledgement (:meth:`Outbox.ack`) or by the size cap,
which first merges the oldest unsent segments of a model version into one (exact, counts
add up) and only then drops the oldest, recording how many segments and calls it dropped so
the loss itself is reported. A batch, once claimed, keeps its id and contents until acked:
a retry after a crash or a lost acknowledgement resends the same id, and the collector
deduplicates on it. ``synchronous=FULL`` makes every commit survive power loss.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..errors import EdgeRuntimeError
from .aggregate import merge_segments

OUTBOX_NAME = "outbox.sqlite"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
BATCH_SCHEMA = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    segment_id TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    calls INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    payload TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS segments_batch ON segments(batch_id, seq);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    dropped_segments INTEGER NOT NULL,
    dropped_calls INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    model TEXT NOT NULL, version TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    batch_id TEXT PRIMARY KEY, rejected_at REAL NOT NULL, reason TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


class OutboxError(EdgeRuntimeError):
    """The telemetry outbox cannot be opened or is not an outbox."""


@dataclass
class Batch:
    """A claimed batch: its stable id and the JSON body every sink sends."""

    batch_id: str
    body: dict[str, Any] = field(repr=False)
    segments: int = 0
    calls: int = 0

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True).encode()


def default_state_dir() -> Path:
    """``$EDGERT_STATE_DIR``, else the platform's per-user state directory."""
    env = os.environ.get("EDGERT_STATE_DIR")
    if env:
        return Path(env)
    try:
        import platformdirs

        return Path(platformdirs.user_state_dir("edge-runtime"))
    except ImportError:
        return Path.home() / ".local" / "state" / "edge-runtime"


class Outbox:
    """SQLite outbox at ``<state_dir>/telemetry/outbox.sqlite`` (one per device).

    Safe to share between threads (one connection behind a lock) and between processes
    (SQLite locking; claims run in ``BEGIN IMMEDIATE`` transactions).

    Raises:
        OutboxError: the file exists but is not a telemetry outbox.
    """

    def __init__(self, state_dir: Union[str, os.PathLike[str], None] = None, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, device_id: Optional[str] = None):
        base = Path(state_dir) if state_dir is not None else default_state_dir()
        self.dir = base / "telemetry"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / OUTBOX_NAME
        self.max_bytes = int(max_bytes)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            with self._tx():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{self.path}: not a telemetry outbox ({exc})") from None
        self.device_id = device_id or self._device_id()

    # --- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _meta(self, key: str, default: str = "0") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value=excluded.value", (key, str(value)))

    def _device_id(self) -> str:
        with self._tx():
            dev = self._meta("device_id", "")
            if not dev:
                dev = uuid.uuid4().hex
                self._set_meta("device_id", dev)
        return dev

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ----------------------------------------------------------------------------
    def set_reference(self, model: str, version: str, reference: dict[str, Any]) -> None:
        """Remember a version's reference counts once (sent along with its segments)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO refs(model, version, payload) VALUES(?, ?, ?)",
                       (model, version, json.dumps(reference, separators=(",", ":"))))

    def add_segments(self, segments: list[dict[str, Any]]) -> None:
        """Store closed windows (one transaction), then apply the size cap."""
        if not segments:
            return
        with self._tx() as db:
            for seg in segments:
                seg = dict(seg, segment_id=uuid.uuid4().hex)
                text = json.dumps(seg, separators=(",", ":"))
                db.execute("INSERT INTO segments(segment_id, model, version, calls, bytes, "
                           "payload) VALUES(?, ?, ?, ?, ?, ?)",
                           (seg["segment_id"], seg["model"], seg["version"],
                            int(seg.get("calls", 0)), len(text), text))
            self._enforce_cap(db)

    def _enforce_cap(self, db: sqlite3.Connection) -> None:
        while True:
            total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM segments").fetchone()[0]
            if total <= self.max_bytes:
                return
            oldest = db.execute("SELECT seq, model, version FROM segments WHERE batch_id IS NULL "
                                "ORDER BY seq LIMIT 1").fetchone()
            if oldest is None:
                return  # everything left is claimed by a batch in flight
            _, model, version = oldest
            rows = db.execute("SELECT seq, payload FROM segments WHERE batch_id IS NULL AND "
                              "model=? AND version=? ORDER BY seq", (model, version)).fetchall()
            if len(rows) > 1:
                merged = json.loads(rows[0][1])
                for _, text in rows[1:]:
                    merged = merge_segments(merged, json.loads(text))
                merged["segment_id"] = uuid.uuid4().hex
                text = json.dumps(merged, separators=(",", ":"))
                if len(text) < sum(len(t) for _, t in rows):
                    db.executemany("DELETE FROM segments WHERE seq=?", [(s,) for s, _ in rows])
                    db.execute("INSERT INTO segments(segment_id, model, version, calls, bytes, "
                               "payload) VALUES(?, ?, ?, ?, ?, ?)",
                               (merged["segment_id"], model, version, int(merged["calls"]),
                                len(text), text))
                    continue
            seq, calls = db.execute("SELECT seq, calls FROM segments WHERE seq=?",
                                    (rows[0][0],)).fetchone()
            db.execute("DELETE FROM segments WHERE seq=?", (seq,))
            self._set_meta("dropped_segments", int(self._meta("dropped_segments")) + 1)
            self._set_meta("dropped_calls", int(self._meta("dropped_calls")) + int(calls))

    # --- uploading --------------------------------------------------------------------------
    def next_batch(self, max_segments: int = 100, max_bytes: int = 1024 * 1024) -> Optional[Batch]:
        """The oldest batch in flight (same id and contents as before), else claim a new one.

        A new batch takes the oldest unsent segments, at most ``max_segments`` and about
        ``max_bytes`` (always at least one), plus the drop counters since the last batch.
        """
        with self._tx() as db:
            row = db.execute("SELECT batch_id FROM batches ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                picked, size = [], 0
                for seq, nbytes in db.execute(
                        "SELECT seq, bytes FROM segments WHERE batch_id IS NULL ORDER BY seq "
                        "LIMIT ?", (max(1, int(max_segments)),)):
                    if picked and size + nbytes > max_bytes:
                        break
                    picked.append(seq)
                    size += nbytes
                dropped_s, dropped_c = int(self._meta("dropped_segments")), int(self._meta("dropped_calls"))
                if not picked and not dropped_s:
                    return None
                batch_id = uuid.uuid4().hex
                seq = int(self._meta("batch_seq")) + 1
                self._set_meta("batch_seq", seq)
                db.execute("INSERT INTO batches(batch_id, seq, created, dropped_segments, "
                           "dropped_calls) VALUES(?, ?, ?, ?, ?)",
                           (batch_id, seq, time.time(), dropped_s, dropped_c))
                self._set_meta("dropped_segments", 0)
                self._set_meta("dropped_calls", 0)
                db.executemany("UPDATE segments SET batch_id=? WHERE seq=?",
                               [(batch_id, s) for s in picked])
            else:
                batch_id = row[0]
            return self._load_batch(db, batch_id)

    def _load_batch(self, db: sqlite3.Connection, batch_id: str) -> Batch:
        created, dropped_s, dropped_c = db.execute(
            "SELECT created, dropped_segments, dropped_calls FROM batches WHERE batch_id=?",
            (batch_id,)).fetchone()
        segs = [json.loads(t) for (t,) in db.execute(
            "SELECT payload FROM segments WHERE batch_id=? ORDER BY seq", (batch_id,))]
        keys = sorted({(s["model"], s["version"]) for s in segs})
        refs = []
        for model, version in keys:
            r = db.execute("SELECT payload FROM refs WHERE model=? AND version=?",
                           (model, version)).fetchone()
            if r:
                refs.append({"model": model, "version": version, "reference": json.loads(r[0])})
        body = {"schema": BATCH_SCHEMA, "batch_id": batch_id, "device_id": self.device_id,
                "created": created, "segments": segs, "refs": refs,
                "dropped": {"segments": dropped_s, "calls": dropped_c}}
        return Batch(batch_id, body, len(segs), sum(int(s.get("calls", 0)) for s in segs))

    def ack(self, batch_id: str) -> None:
        """The collector has the batch: delete it and its segments (one transaction)."""
        with self._tx() as db:
            db.execute("DELETE FROM segments WHERE batch_id=?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id=?", (batch_id,))

    def reject(self, batch: Batch, reason: str) -> None:
        """The collector refuses the batch for good: keep it aside (never silently deleted;
        ``edgert telemetry status`` counts it) so the batches behind it can go."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO rejected VALUES(?, ?, ?, ?)",
                       (batch.batch_id, time.time(), reason[:1000], batch.encode().decode()))
            db.execute("DELETE FROM segments WHERE batch_id=?", (batch.batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id=?", (batch.batch_id,))

    # --- backoff state (kept here so it survives restarts of the daemon) --------------------
    def backoff_state(self) -> tuple[int, float]:
        with self._lock:
            return int(self._meta("failures")), float(self._meta("next_attempt_at"))

    def set_backoff_state(self, failures: int, next_attempt_at: float) -> None:
        with self._tx():
            self._set_meta("failures", failures)
            self._set_meta("next_attempt_at", next_attempt_at)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            db = self._db
            segs, calls, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(calls), 0), COALESCE(SUM(bytes), 0) "
                "FROM segments").fetchone()
            in_flight = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            rejected = db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
            return {"path": str(self.path), "device_id": self.device_id, "segments": segs,
                    "calls": calls, "bytes": size, "max_bytes": self.max_bytes,
                    "batches_in_flight": in_flight, "rejected_batches": rejected,
                    "dropped_segments_unreported": int(self._meta("dropped_segments")),
                    "dropped_calls_unreported": int(self._meta("dropped_calls")),
                    "failures": int(self._meta("failures"))}
