"""The outbox: closed telemetry windows waiting for upload, in SQLite (WAL) in the state dir.

Rows are only ever removed by an acknowledgement (:meth:`Outbox.ack`) or by the size cap,
which first merges the oldest unsent segments of a model version into one (exact, counts
add up) and only then drops the oldest, recording how many segments and calls it dropped so
the loss itself is reported. A batch, once claimed, keeps its id and contents until acked:
a retry after a crash or a lost acknowledgement resends the same id, and the collector
deduplicates on it. ``synchronous=FULL`` makes every commit survive power loss.

The cap covers what the outbox occupies on disk, not only its payload: the database pages in
use, the WAL (bounded by ``journal_size_limit`` and checkpoints), the shared-memory file and a
small **reserve file**. The reserve is what makes a full disk survivable: SQLite needs a few
free pages to write anything, even a claim or the count of what it had to drop, so when a
write fails for lack of space the outbox deletes its reserve, tightens its cap (merging, then
dropping the oldest, counted) and retries. What still cannot be written is counted in memory
and added to the drop counters by the next write that succeeds, so the collector learns of
every call it never received (never a silent loss). The reserve is recreated once space returns.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

from ..errors import OutboxError as OutboxError  # defined in errors.py; importable from here too
from ..paths import telemetry_state_dir
from .aggregate import merge_segments

OUTBOX_NAME = "outbox.sqlite"
RESERVE_NAME = "outbox.reserve"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
#: Smaller caps are raised to this: an empty SQLite outbox with its WAL and reserve needs it.
MIN_MAX_BYTES = 512 * 1024
BATCH_SCHEMA = 1
_SHM_BYTES = 32 * 1024  # SQLite's wal-index (-shm) file for one small database
_T = TypeVar("_T")
log = logging.getLogger("edge_runtime.telemetry.outbox")

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


@dataclass
class Batch:
    """A claimed batch: its stable id and the JSON body every sink sends."""

    batch_id: str
    body: dict[str, Any] = field(repr=False)
    segments: int = 0
    calls: int = 0

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True).encode()


def _disk_full(exc: BaseException) -> bool:
    """SQLite reports a full disk as SQLITE_FULL, or as an I/O error when a new file (WAL,
    shared memory) cannot even be created."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (13, 10):  # SQLITE_FULL, SQLITE_IOERR
        return True
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text


@dataclass(frozen=True)
class DiskBudget:
    """How ``max_bytes`` is shared between the files of one outbox."""

    total: int
    wal: int
    reserve: int

    @classmethod
    def of(cls, max_bytes: int) -> DiskBudget:
        total = max(MIN_MAX_BYTES, int(max_bytes))
        return cls(total, wal=min(max(total // 8, 128 * 1024), 1024 * 1024),
                   reserve=min(max(total // 16, 64 * 1024), 256 * 1024))

    @property
    def database(self) -> int:
        return self.total - self.wal - self.reserve - _SHM_BYTES


def default_state_dir() -> Path:
    """The state root whose ``telemetry/`` holds the outbox when none is given: the device's
    state dir, or where an upgraded device's outbox already is (``edge_runtime.paths``)."""
    return telemetry_state_dir()


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
        self.reserve_path = self.dir / RESERVE_NAME
        self.budget = DiskBudget.of(max_bytes)
        self.max_bytes = self.budget.total
        self._lock = threading.RLock()
        self._db_cap = self.budget.database  # tightened when the disk runs out first
        self._unsaved_drops = [0, 0]  # segments, calls lost while nothing could be written
        self._reserve_retry_at = 0.0
        self._full = False  # warned once per episode of a full disk
        try:
            self._db = self._with_space(self._open)
        except sqlite3.DatabaseError as exc:
            if _disk_full(exc):
                raise OutboxError(f"{self.path}: no space left to open the telemetry outbox "
                                  f"({exc})") from None
            raise OutboxError(f"{self.path}: not a telemetry outbox ({exc})") from None
        except OSError as exc:
            raise OutboxError(f"{self.path}: cannot open the telemetry outbox ({exc})") from None
        self.device_id = device_id or self._device_id()
        self._ensure_reserve()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                             check_same_thread=False)
        try:
            # auto_vacuum only takes effect on a new file: acked pages go back to the disk.
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute(f"PRAGMA journal_size_limit={self.budget.wal}")
            self._page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            db.execute(f"PRAGMA wal_autocheckpoint={max(8, self.budget.wal // self._page_size // 2)}")
            db.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    # --- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (full disk) has already rolled back: a second
                # ROLLBACK would raise "cannot rollback - no transaction is active".
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _with_space(self, op: Callable[[], _T], *, must: bool = True) -> _T:
        """Run ``op``; if the disk is full, tighten the cap and retry once.

        Only writes that ``must`` succeed (a claim, an ack, the drop counts, opening) may also
        spend the reserve: new windows must not, or nothing would be left for those.
        """
        try:
            return op()
        except (sqlite3.Error, OSError) as exc:
            if not _disk_full(exc):
                raise
            if not self._full:
                log.warning("telemetry outbox %s: disk full (%s): keeping what fits, counting "
                            "the rest as dropped", self.path, exc)
            self._full = True
        if must:
            self._release_reserve()
        if hasattr(self, "_db"):
            self._tighten_cap()
        return op()

    def _write(self, fn: Callable[[sqlite3.Connection], _T], *, must: bool = True) -> _T:
        """One transaction that also records drops no earlier write could (see the module doc)."""
        def op() -> _T:
            with self._lock:
                segs, calls = self._unsaved_drops
                with self._tx() as db:
                    if segs or calls:  # first, so a batch claimed here carries them
                        self._count_drop(segs, calls)
                    result = fn(db)
                # committed: only now are they no longer this process's to remember
                self._unsaved_drops = [self._unsaved_drops[0] - segs, self._unsaved_drops[1] - calls]
                return result
        result = self._with_space(op, must=must)
        self._bound_wal()
        return result

    def _bound_wal(self) -> None:
        """A transaction larger than the WAL budget grew the file past it; journal_size_limit
        would only trim it at the next write, so checkpoint and truncate it now."""
        try:
            if os.stat(f"{self.path}-wal").st_size <= self.budget.wal:
                return
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (OSError, sqlite3.Error) as exc:
            log.debug("telemetry outbox: WAL checkpoint: %s", exc)

    def _count_drop(self, segments: int, calls: int) -> None:
        self._set_meta("dropped_segments", int(self._meta("dropped_segments")) + segments)
        self._set_meta("dropped_calls", int(self._meta("dropped_calls")) + calls)

    def _used_db_bytes(self, db: sqlite3.Connection) -> int:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)  # fixed once the file exists

    def _tighten_cap(self) -> None:
        """The disk ran out before the cap: aim below what is in use now, so new windows
        reuse the pages the oldest ones free instead of growing the file."""
        try:
            used = self._used_db_bytes(self._db)
        except sqlite3.Error:
            return
        self._db_cap = max(0, min(self._db_cap, int(used * 0.75)))

    # --- the reserve file -------------------------------------------------------------------
    def _release_reserve(self) -> None:
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("telemetry outbox: cannot remove %s: %s", self.reserve_path, exc)
        self._reserve_retry_at = time.monotonic() + 5.0

    def _ensure_reserve(self) -> None:
        """(Re)create the reserve when there is space for it; cheap when it exists."""
        if time.monotonic() < self._reserve_retry_at:
            return
        try:
            if self.reserve_path.stat().st_size >= self.budget.reserve:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        if hasattr(os, "statvfs"):  # leave room for the data too, or the next write fails again
            try:
                st = os.statvfs(self.dir)
                if st.f_bavail * st.f_frsize < 2 * self.budget.reserve:
                    self._reserve_retry_at = time.monotonic() + 5.0
                    return
            except OSError:
                return
        tmp = self.reserve_path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(b"\0" * self.budget.reserve)  # real blocks, not a sparse hole
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.reserve_path)
            self._db_cap = self.budget.database  # space came back: the full cap again
            if self._full:
                log.warning("telemetry outbox %s: space is back", self.path)
            self._full = False
        except OSError:
            with suppress(OSError):
                tmp.unlink()
            self._reserve_retry_at = time.monotonic() + 5.0

    def _meta(self, key: str, default: str = "0") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value=excluded.value", (key, str(value)))

    def _device_id(self) -> str:
        def get(db: sqlite3.Connection) -> str:
            dev = self._meta("device_id", "")
            if not dev:
                dev = uuid.uuid4().hex
                self._set_meta("device_id", dev)
            return dev
        return self._write(get)

    def close(self) -> None:
        """Close; never raises (a count that still could not be written is logged)."""
        with self._lock:
            try:
                if any(self._unsaved_drops):
                    self._write(lambda db: None)
            except (sqlite3.Error, OSError) as exc:
                segs, calls = self._unsaved_drops
                log.error("telemetry outbox %s: %d windows (%d calls) were dropped and the disk "
                          "is too full to record it: %s", self.path, segs, calls, exc)
            try:
                self._db.close()
            except sqlite3.Error as exc:
                log.warning("telemetry outbox %s: close: %s", self.path, exc)

    # --- writing ----------------------------------------------------------------------------
    def set_reference(self, model: str, version: str, reference: dict[str, Any]) -> None:
        """Remember a version's reference counts once (sent along with its segments).

        On a disk too full even for that, the reference is skipped (drift for that version
        is then not judged) rather than failing the caller.
        """
        text = json.dumps(reference, separators=(",", ":"))
        try:
            self._write(lambda db: db.execute(
                "INSERT OR IGNORE INTO refs(model, version, payload) VALUES(?, ?, ?)",
                (model, version, text)))
        except (sqlite3.Error, OSError) as exc:
            if not _disk_full(exc):
                raise
            log.warning("telemetry outbox: no space for %s@%s's reference", model, version)

    def add_segments(self, segments: list[dict[str, Any]]) -> None:
        """Store closed windows (one transaction), then apply the size cap.

        Never fails for lack of space: windows that cannot be kept are counted as dropped.
        """
        if not segments:
            return
        rows = []
        for seg in segments:
            seg = dict(seg, segment_id=uuid.uuid4().hex)
            text = json.dumps(seg, separators=(",", ":"))
            rows.append((seg["segment_id"], seg["model"], seg["version"],
                         int(seg.get("calls", 0)), len(text), text))

        incoming = sum(r[4] for r in rows) + 64 * len(rows)  # payload + row overhead

        def insert(db: sqlite3.Connection) -> None:
            self._enforce_cap(db, incoming)  # make room first: the insert reuses freed pages
            db.executemany("INSERT INTO segments(segment_id, model, version, calls, bytes, "
                           "payload) VALUES(?, ?, ?, ?, ?, ?)", rows)
            self._enforce_cap(db)
        try:
            self._write(insert, must=False)
        except (sqlite3.Error, OSError) as exc:
            if not _disk_full(exc):
                raise
            with self._lock:
                self._unsaved_drops[0] += len(rows)
                self._unsaved_drops[1] += sum(r[3] for r in rows)
            return
        self._ensure_reserve()

    def _over_cap(self, db: sqlite3.Connection, incoming: int) -> bool:
        total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM segments").fetchone()[0]
        return max(total, self._used_db_bytes(db)) + incoming > self._db_cap

    def _enforce_cap(self, db: sqlite3.Connection, incoming: int = 0) -> None:
        """Merge, then drop the oldest unsent windows until ``incoming`` more bytes fit."""
        while True:
            if not self._over_cap(db, incoming):
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
            self._count_drop(1, int(calls))

    # --- uploading --------------------------------------------------------------------------
    def next_batch(self, max_segments: int = 100, max_bytes: int = 1024 * 1024) -> Optional[Batch]:
        """The oldest batch in flight (same id and contents as before), else claim a new one.

        A new batch takes the oldest unsent segments, at most ``max_segments`` and about
        ``max_bytes`` (always at least one), plus the drop counters since the last batch.
        """
        def claim(db: sqlite3.Connection) -> Optional[Batch]:
            row = db.execute("SELECT batch_id FROM batches ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                picked: list[int] = []
                size = 0
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
        return self._write(claim)

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
        def delete(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM segments WHERE batch_id=?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id=?", (batch_id,))
        self._write(delete)
        self._give_back_space()

    def _give_back_space(self) -> None:
        """Return freed pages to the file system (auto_vacuum=INCREMENTAL), then the reserve."""
        try:
            with self._lock:
                self._db.execute("PRAGMA incremental_vacuum")
        except sqlite3.Error as exc:
            log.debug("telemetry outbox: incremental_vacuum: %s", exc)
        self._ensure_reserve()

    def reject(self, batch: Batch, reason: str) -> None:
        """The collector refuses the batch for good: keep it aside (never silently deleted;
        ``edgert telemetry status`` counts it) so the batches behind it can go."""
        def move(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO rejected VALUES(?, ?, ?, ?)",
                       (batch.batch_id, time.time(), reason[:1000], batch.encode().decode()))
            db.execute("DELETE FROM segments WHERE batch_id=?", (batch.batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id=?", (batch.batch_id,))
        self._write(move)

    # --- backoff state (kept here so it survives restarts of the daemon) --------------------
    def backoff_state(self) -> tuple[int, float]:
        with self._lock:
            return int(self._meta("failures")), float(self._meta("next_attempt_at"))

    def set_backoff_state(self, failures: int, next_attempt_at: float) -> None:
        def save(db: sqlite3.Connection) -> None:
            self._set_meta("failures", failures)
            self._set_meta("next_attempt_at", next_attempt_at)
        self._write(save)

    def disk_bytes(self) -> int:
        """What the outbox occupies on disk now: database, WAL, shared memory and reserve."""
        total = 0
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(OSError):
                total += os.stat(f"{self.path}{suffix}").st_blocks * 512
        with suppress(OSError):
            total += self.reserve_path.stat().st_blocks * 512
        return total

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
                    "disk_bytes": self.disk_bytes(),
                    "batches_in_flight": in_flight, "rejected_batches": rejected,
                    "dropped_segments_unreported": int(self._meta("dropped_segments"))
                    + self._unsaved_drops[0],
                    "dropped_calls_unreported": int(self._meta("dropped_calls"))
                    + self._unsaved_drops[1],
                    "failures": int(self._meta("failures"))}
