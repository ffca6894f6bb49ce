"""Where the collector keeps batches: one schema, versioned migrations, two databases.

:class:`Store` holds everything both databases share (the schema, its migrations, the
exactly-once rule, the queries the report reads); :mod:`.storage_sqlite` and
:mod:`.storage_postgres` only open connections and run transactions. SQL is written once,
with ``%s`` placeholders (psycopg's style; SQLite's ``?`` is substituted) and ``{real}`` /
``{int}`` column types filled per database.

The exactly-once rule: a batch's row and its segments are inserted in ONE transaction with
``ON CONFLICT DO NOTHING`` on the batch id, and the transaction commits before the caller may
acknowledge. When two collectors get the same retried batch at once, the database serialises
them on the batch id's unique index (PostgreSQL makes the second insert wait for the first
transaction; SQLite holds one writer at a time): the loser sees the conflict only after the
winner committed, so its "duplicate" acknowledgement is true too.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar, Union

from edge_runtime.errors import CollectorStoreError

#: Schema versions, applied in order, each once (recorded in ``schema_migrations``). Never edit
#: a released step: add the next one. Version 1 is the schema the SQLite-only collector created
#: (``IF NOT EXISTS``, so its databases migrate in place).
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, device_id TEXT NOT NULL,
           received {real} NOT NULL, segments {int} NOT NULL, dropped_segments {int} NOT NULL,
           dropped_calls {int} NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS segments (segment_id TEXT PRIMARY KEY, batch_id TEXT NOT NULL,
           device_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
           window_start {real} NOT NULL, window_end {real} NOT NULL, payload TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS refs (model TEXT NOT NULL, version TEXT NOT NULL,
           payload TEXT NOT NULL, PRIMARY KEY (model, version))""",
    ]),
    # per-version device counts for /metrics without scanning every payload
    (2, ["CREATE INDEX IF NOT EXISTS segments_version ON segments (model, version, device_id)"]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_RETRIES = 5
_T = TypeVar("_T")


@dataclass
class StoredBatch:
    """A validated batch, flattened to the rows it becomes."""

    batch_id: str
    device_id: str
    dropped_segments: int
    dropped_calls: int
    segments: list[tuple[str, str, str, float, float, str]]  # id, model, version, start, end, json
    refs: list[tuple[str, str, str]] = field(default_factory=list)  # model, version, json


@dataclass
class Snapshot:
    """What the report reads, in one consistent read."""

    segments: list[tuple[str, str, str, str, float]]  # model, version, payload, device, window end
    refs: dict[tuple[str, str], dict[str, Any]]
    dropped_segments: int
    dropped_calls: int
    devices: int
    #: devices whose latest window (of that model) is on this version
    current_by_version: dict[tuple[str, str], int] = field(default_factory=dict)


class Store(ABC):
    """A collector database. Thread-safe; several processes may share one database."""

    #: ``?`` for SQLite, ``%s`` for psycopg
    placeholder = "%s"
    types = {"real": "REAL", "int": "INTEGER"}

    def __init__(self, url: str):
        self.url = url
        self.duplicates = 0  # batches this process received again (stored once, acked again)

    # --- what a database implements ---------------------------------------------------------
    @abstractmethod
    def _transaction(self, *, write: bool) -> Any:
        """Context manager yielding a cursor-like ``execute(sql, params)`` object inside one
        transaction (committed on exit, rolled back on error)."""

    @abstractmethod
    def _lock_schema(self, cur: Any) -> None:
        """Serialise migrations between processes (inside the migration transaction)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection(s)."""

    # --- shared ---------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        text = text.format(**{k: v for k, v in self.types.items()})
        return text.replace("%s", self.placeholder) if self.placeholder != "%s" else text

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Any]:
        with self._transaction(write=write) as cur:
            yield _Exec(cur, self._sql)

    def migrate(self) -> int:
        """Apply the migrations this database lacks; returns its schema version.

        Raises:
            CollectorStoreError: the database was migrated by a newer collector.
        """
        return self._run(self._migrate)

    def _migrate(self) -> int:
        with self._tx(write=True) as cur:
            self._lock_schema(cur.raw)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version {int} PRIMARY KEY, "
                        "applied {real} NOT NULL)")
            done = {int(r[0]) for r in cur.execute("SELECT version FROM schema_migrations")}
            if done and max(done) > SCHEMA_VERSION:
                raise CollectorStoreError(
                    f"{redact_url(self.url)}: schema version {max(done)} is newer than this collector's "
                    f"({SCHEMA_VERSION}); upgrade edge-runtime")
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for stmt in statements:
                    cur.execute(stmt)
                cur.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, time.time()))
        return SCHEMA_VERSION

    def retryable(self, exc: BaseException) -> bool:
        """Is ``exc`` transient (a deadlock, a serialisation failure, a dropped connection)
        so that running the same transaction again is right? Safe for every transaction
        here: reads, and batch inserts, which are idempotent."""
        return False

    def unusable(self, exc: Exception) -> Exception:
        """The error to raise once retries are spent (a database's own error, translated)."""
        return exc

    def _run(self, fn: Callable[[], _T]) -> _T:
        for attempt in range(_RETRIES):
            try:
                return fn()
            except Exception as exc:
                if attempt == _RETRIES - 1 or not self.retryable(exc):
                    raise self.unusable(exc) from None
        raise AssertionError("unreachable")

    def put_batch(self, b: StoredBatch) -> bool:
        """Store a batch once, committed on return. False when it was already stored."""
        return self._run(lambda: self._put_batch(b))

    def _put_batch(self, b: StoredBatch) -> bool:
        with self._tx(write=True) as cur:
            n = cur.execute("INSERT INTO batches VALUES (%s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (batch_id) DO NOTHING",
                            (b.batch_id, b.device_id, time.time(), len(b.segments),
                             b.dropped_segments, b.dropped_calls)).rowcount
            if n == 0:
                self.duplicates += 1
                return False
            # sorted: two transactions that share segment ids lock them in the same order
            if b.segments:  # one round trip (psycopg pipelines executemany)
                cur.executemany("INSERT INTO segments VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                                "ON CONFLICT (segment_id) DO NOTHING",
                                [(seg[0], b.batch_id, b.device_id, *seg[1:])
                                 for seg in sorted(b.segments)])
            if b.refs:
                cur.executemany("INSERT INTO refs VALUES (%s, %s, %s) "
                                "ON CONFLICT (model, version) DO NOTHING", sorted(b.refs))
        return True

    def counts(self) -> dict[str, int]:
        return self._run(self._counts)

    def _counts(self) -> dict[str, int]:
        with self._tx() as cur:
            b = cur.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            s = cur.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        return {"batches": int(b), "segments": int(s)}

    def snapshot(self, since: Optional[float] = None) -> Snapshot:
        """Everything stored, or only the batches received at or after ``since``."""
        return self._run(lambda: self._snapshot(since))

    def _snapshot(self, since: Optional[float] = None) -> Snapshot:
        cut = "" if since is None else " WHERE received >= ?"
        args: tuple[Any, ...] = () if since is None else (float(since),)
        in_window = "" if since is None else " WHERE batch_id IN (SELECT batch_id FROM batches WHERE received >= ?)"
        with self._tx() as cur:
            rows = [(m, v, p, d, float(e)) for m, v, p, d, e in cur.execute(
                "SELECT model, version, payload, device_id, window_end FROM segments" + in_window,
                args).fetchall()]
            refs = {(m, v): json.loads(p) for m, v, p in
                    cur.execute("SELECT model, version, payload FROM refs").fetchall()}
            dropped = cur.execute("SELECT COALESCE(SUM(dropped_segments), 0), "
                                  "COALESCE(SUM(dropped_calls), 0) FROM batches" + cut, args).fetchone()
            devices = cur.execute("SELECT COUNT(DISTINCT device_id) FROM batches" + cut, args).fetchone()[0]
            latest: dict[tuple[str, str], tuple[float, str]] = {}
            for dev, m, v, end in cur.execute(
                    "SELECT device_id, model, version, MAX(window_end) FROM segments "
                    "GROUP BY device_id, model, version").fetchall():
                if (dev, m) not in latest or float(end) > latest[(dev, m)][0]:
                    latest[(dev, m)] = (float(end), v)
        current: dict[tuple[str, str], int] = {}
        for (_, m), (_, v) in latest.items():
            current[(m, v)] = current.get((m, v), 0) + 1
        return Snapshot(rows, refs, int(dropped[0]), int(dropped[1]), int(devices), current)


class _Exec:
    """A cursor that rewrites SQL for its database; ``execute`` returns the database's cursor
    (``fetchone``, ``fetchall``, iteration, ``rowcount``)."""

    def __init__(self, cur: Any, sql: Any):
        self.raw, self._sql = cur, sql

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        self.raw.execute(self._sql(text), tuple(params))
        return self.raw

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        self.raw.executemany(self._sql(text), [tuple(r) for r in rows])


def open_store(db: Union[str, Any]) -> Store:
    """A store for ``db``: ``postgresql://…`` (or ``postgres://``) → PostgreSQL (psycopg 3);
    ``sqlite:///path`` or a plain path → SQLite.

    Raises:
        CollectorStoreError: unknown URL scheme, unreachable database, or psycopg missing.
    """
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        from .storage_postgres import PostgresStore

        store: Store = PostgresStore(text)
    elif "://" in text and not text.startswith("sqlite://"):
        raise CollectorStoreError(f"collector database {text.split('://')[0]}:// is not supported "
                                  "(use a path, sqlite:///path or postgresql://...)")
    else:
        from .storage_sqlite import SqliteStore

        path = text
        if text.startswith("sqlite://"):  # SQLAlchemy's form: sqlite:///rel.db, sqlite:////abs.db
            if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
                raise CollectorStoreError(f"{text}: expected sqlite:///relative/path or "
                                          "sqlite:////absolute/path")
            path = text[len("sqlite:///"):]
        store = SqliteStore(path)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def redact_url(url: str) -> str:
    """The URL without its password (it ends up in logs and error messages)."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, creds = head.partition("://")
    return f"{scheme}://{creds.split(':', 1)[0]}@{tail}"
