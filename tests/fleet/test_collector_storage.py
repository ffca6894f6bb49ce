"""The collector's storage on SQLite and on a real PostgreSQL server: versioned migrations,
the exactly-once rule, the race of one batch reaching two collectors at once."""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid

import pytest
from fleet_data import reference, window

from collector import CollectorStore, CollectorStoreError, open_store
from collector.storage import SCHEMA_VERSION


def _batch(device: str, n: int = 3, seed: int = 0, version: str = "1.0.0") -> dict:
    rng = random.Random(seed)
    ref = reference()
    segs = [dict(window("m", version, rng, ref), segment_id=uuid.uuid4().hex) for _ in range(n)]
    return {"batch_id": uuid.uuid4().hex, "device_id": device, "segments": segs,
            "refs": [{"model": "m", "version": version, "reference": ref}],
            "dropped": {"segments": 1, "calls": 7}}


def test_migrations_apply_once_and_refuse_newer(db_url):
    store = open_store(db_url)
    try:
        with store._tx() as cur:
            got = [r[0] for r in cur.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert got == list(range(1, SCHEMA_VERSION + 1))
        assert store.migrate() == SCHEMA_VERSION  # again: nothing re-applied
        with store._tx(write=True) as cur:
            cur.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (SCHEMA_VERSION + 1, 0.0))
    finally:
        store.close()
    with pytest.raises(CollectorStoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        open_store(db_url)


def test_database_of_the_sqlite_only_collector_migrates_in_place(tmp_path):
    """A database the previous collector wrote (its tables, no schema_migrations) keeps its
    batches and gains the new schema steps."""
    path = tmp_path / "old.db"
    store = CollectorStore(path)
    batch = _batch("dev-old")
    store.ingest(batch)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE schema_migrations")
        db.execute("DROP INDEX segments_version")
    store = CollectorStore(path)
    try:
        (v,) = store.report()["versions"]
        assert v["calls"] == sum(s["calls"] for s in batch["segments"])
        assert store.ingest(batch) == (batch["batch_id"], True)  # still deduplicated
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION


def test_retry_is_stored_once_and_bad_batch_stores_nothing(db_url):
    store = CollectorStore(db_url)
    try:
        b = _batch("dev-1")
        assert store.ingest(b) == (b["batch_id"], False)
        assert store.ingest(b) == (b["batch_id"], True)
        assert store.duplicates == 1
        assert store.counts() == {"batches": 1, "segments": 3}
        bad = _batch("dev-1")
        bad["segments"][2]["calls"] = "many"
        with pytest.raises(ValueError, match=r"segments\[2\]: segment field 'calls'"):
            store.ingest(bad)
        assert store.counts() == {"batches": 1, "segments": 3}
        rep = store.report()
        assert rep["dropped"] == {"segments": 1, "calls": 7}
        (v,) = rep["versions"]
        assert v["devices"] == v["devices_current"] == 1
        assert v["calls"] == sum(s["calls"] for s in b["segments"])
    finally:
        store.close()


def test_same_batch_at_two_collectors_at_once(db_url):
    """Two collectors (separate connections) get the same retried batches at the same moment:
    each batch is stored exactly once and every caller is told the truth."""
    stores = [CollectorStore(db_url) for _ in range(2)]
    batches = [_batch(f"dev-{i}", n=2, seed=i) for i in range(12)]
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(store: CollectorStore, b: dict, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            r = store.ingest(b)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(r)

    try:
        for b in batches:  # 4 senders per batch, 2 on each collector, released together
            barrier = threading.Barrier(4)
            threads = [threading.Thread(target=send, args=(stores[i % 2], b, barrier)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert not errors, errors
        stored = [bid for bid, dup in results if not dup]
        assert sorted(stored) == sorted(b["batch_id"] for b in batches)  # each once
        assert len(results) == 4 * len(batches)
        assert sum(s.duplicates for s in stores) == 3 * len(batches)
        assert stores[0].counts() == {"batches": 12, "segments": 24}
        rep = stores[1].report()
        assert rep["versions"][0]["calls"] == sum(s["calls"] for b in batches for s in b["segments"])
        assert rep["devices"] == 12
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize("url, match", [
    ("mysql://x/y", "mysql:// is not supported"),
    ("sqlite://rel.db", "expected sqlite:///relative/path"),
    ("postgresql://edgert:s3cret@127.0.0.1:1/none", "postgresql://edgert@127.0.0.1:1/none"),
])
def test_bad_database_urls_say_what_is_wrong(url, match):
    with pytest.raises(CollectorStoreError, match=match) as info:
        open_store(url)
    assert "s3cret" not in str(info.value)


def test_sqlite_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url, path in (("sqlite:///rel.db", tmp_path / "rel.db"),
                      (f"sqlite:///{tmp_path}/abs.db", tmp_path / "abs.db")):
        open_store(url).close()
        assert path.is_file(), url
