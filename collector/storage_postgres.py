"""PostgreSQL for fleets (psycopg 3): several collector processes share one database.

One connection per thread that asks (a small pool without a dependency); each batch is one
READ COMMITTED transaction whose ``INSERT ... ON CONFLICT DO NOTHING`` on the batch id waits
for a concurrent transaction holding the same id, so exactly one of them stores it. A
deadlock or serialisation failure (two batches sharing segment ids) is retried by
:meth:`Store.put_batch`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from edge_runtime.errors import CollectorStoreError

from .storage import Store, redact_url

#: pg_advisory_xact_lock key for migrations (any constant shared by every collector)
_MIGRATION_LOCK = 0x6564676572740001


class PostgresStore(Store):
    types = {"real": "DOUBLE PRECISION", "int": "BIGINT"}

    def __init__(self, url: str):
        super().__init__(url)
        try:
            import psycopg
        except ImportError:
            raise CollectorStoreError("a postgresql:// collector database needs psycopg 3: "
                                      "pip install 'edge-runtime[collector]'") from None
        self._psycopg = psycopg
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._conn()  # fail now (bad URL, server down), not at the first batch

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.url, connect_timeout=10, autocommit=True)
            except self._psycopg.Error as exc:
                raise CollectorStoreError(f"{redact_url(self.url)}: {exc}".strip()) from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except self._psycopg.OperationalError:
            if conn.broken or conn.closed:
                conn.close()
                self._local.conn = None  # the next transaction reconnects
            raise

    def retryable(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        if isinstance(exc, (errors.DeadlockDetected, errors.SerializationFailure)):
            return True
        # the server dropped the connection (restart, failover, idle kill): run it again on a
        # fresh one; a commit whose answer was lost is then found as a duplicate, never stored twice
        return isinstance(exc, self._psycopg.OperationalError) and getattr(self._local, "conn", 1) is None

    def unusable(self, exc: Exception) -> Exception:
        if isinstance(exc, self._psycopg.Error):
            return CollectorStoreError(f"{redact_url(self.url)}: {exc}".strip())
        return exc

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

