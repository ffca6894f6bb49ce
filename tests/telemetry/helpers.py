"""Small helpers: deliver an outbox straight into a collector store (no network)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_runtime.telemetry import Outbox, Uploader
from edge_runtime.telemetry.collector import CollectorStore


class StoreSink:
    """A sink that hands the exact JSON a real sink would send to a collector store."""

    def __init__(self, store: CollectorStore):
        self.store = store

    def send(self, batch) -> None:
        self.store.ingest(json.loads(batch.encode()))

    def close(self) -> None:
        pass


def deliver(state_dir: Path, db: Path) -> dict:
    """Upload everything in ``state_dir``'s outbox into the collector db; return the report."""
    store = CollectorStore(db)
    ob = Outbox(state_dir)
    try:
        res = Uploader(ob, StoreSink(store)).flush()
        assert res.complete, res.errors
        return store.report()
    finally:
        ob.close()
        store.close()


def version(report: dict, v: str) -> dict:
    return next(x for x in report["versions"] if x["version"] == v)
