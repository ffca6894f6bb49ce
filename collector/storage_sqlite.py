"""The collector's default database: one SQLite file (WAL), shared safely by several
processes on one machine (``BEGIN IMMEDIATE``: one writer at a time, readers never blocked)."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

from edge_runtime.errors import CollectorStoreError

from .storage import Store


class SqliteStore(Store):
    placeholder = "?"

    def __init__(self, path: Union[str, Path]):
        super().__init__(str(path))
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=60000")
        except sqlite3.DatabaseError as exc:
            raise CollectorStoreError(f"{self.path}: not a collector database ({exc})") from None

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        with self._lock:
            cur = self._db.cursor()
            # IMMEDIATE takes the write lock up front: no upgrade deadlock between processes
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _lock_schema(self, cur: Any) -> None:
        pass  # BEGIN IMMEDIATE already excludes every other writer

    def close(self) -> None:
        with self._lock:
            self._db.close()
