"""The collector: a store (SQLite or PostgreSQL) with HTTP and/or MQTT receivers in front.

Deduplication is by batch id *and* segment id inside one transaction that commits before
the acknowledgement is sent: a batch retried after a lost ack is acknowledged again but
stored once, also when several collectors share the database (:mod:`.storage`).
The pieces: :mod:`.storage` (databases), :mod:`.ingest` (validate + store one batch),
:mod:`.wsgi` (HTTP via waitress), :mod:`.mqtt` (shared subscriptions), :mod:`.report`
(figures and checks), :mod:`.metrics` (Prometheus text).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Union

from edge_runtime.telemetry.histograms import PSI_MIN_ROWS, PSI_THRESHOLD

from . import metrics
from .ingest import ingest
from .mqtt import DEFAULT_GROUP, MqttReceiver
from .report import Thresholds, build_report, check
from .storage import Store, open_store
from .wsgi import MAX_BODY_BYTES, CollectorApp, WsgiServer

__all__ = ["Collector", "CollectorStore", "Thresholds", "check", "MAX_BODY_BYTES"]


class CollectorStore:
    """Batches in (:meth:`ingest`), figures out (:meth:`report`), over one database URL or
    path (``postgresql://…``, ``sqlite:///…`` or a plain path). Thread-safe."""

    def __init__(self, db: Union[str, Path]):
        self.db: Store = open_store(db)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def duplicates(self) -> int:
        """Batches this process received again (a retry after a lost ack), not stored."""
        return self.db.duplicates

    def ingest(self, body: Any) -> tuple[str, bool]:
        """Store a batch once. Returns (batch id, was it a duplicate).

        Raises:
            ValueError: the batch is malformed (nothing stored).
        """
        return ingest(self.db, body)

    def counts(self) -> dict[str, int]:
        return self.db.counts()

    def report(self, *, psi_threshold: float = PSI_THRESHOLD, min_rows: int = PSI_MIN_ROWS,
               since: Optional[float] = None, series: bool = False) -> dict[str, Any]:
        """Per model version: calls, rows, error rate, errors by kind, latency quantiles,
        classes, drift, feedback accuracy, shadow agreement, devices and their rollout states;
        plus what devices reported as dropped. ``since`` (a collector clock time) keeps only
        batches received from then on (alerts judge a recent window, not all history);
        ``series`` adds each version's figures over time (:mod:`collector.series`)."""
        return build_report(self.db.snapshot(since), psi_threshold=psi_threshold,
                            min_rows=min_rows, series=series)

    def metrics(self, *, mqtt_received: Optional[int] = None) -> str:
        """The report as Prometheus text (``GET /metrics``)."""
        return metrics.render(self.report(), counts=self.counts(), duplicates=self.duplicates,
                              mqtt_received=mqtt_received)

    def close(self) -> None:
        self.db.close()


class Collector:
    """HTTP (and optionally MQTT) receiver in front of a :class:`CollectorStore`.

    Several collectors may share one database (PostgreSQL, or one SQLite file on one
    machine) and, over MQTT, one topic (``mqtt_group``: a shared subscription; give each
    member its own ``mqtt_client_id``). ``delay_s`` (tests) holds every acknowledgement back
    after the batch is stored.
    """

    def __init__(self, db: Union[str, Path], *, host: str = "127.0.0.1", port: int = 0,
                 token: Optional[str] = None, mqtt: Optional[tuple[str, int]] = None,
                 mqtt_prefix: str = "edgert/telemetry", http: bool = True,
                 mqtt_group: str = DEFAULT_GROUP, mqtt_client_id: Optional[str] = None,
                 http_threads: int = 8):
        self.store = CollectorStore(db)
        self.token = token
        self.delay_s = 0.0
        self.app = CollectorApp(self)
        self.app.add_page("/metrics", self._metrics_page)
        from . import dashboard

        self.app.add_handler(lambda path, query: dashboard.route(
            path + (f"?{query}" if query else ""), self.store))
        self._http: Optional[WsgiServer] = None
        if http:
            try:
                self._http = WsgiServer(self.app, host, port, threads=http_threads)
            except BaseException:
                self.store.close()
                raise
        self.mqtt, self.mqtt_prefix = mqtt, mqtt_prefix.strip("/")
        self._started = self._stopped = False
        self._mqtt: Optional[MqttReceiver] = None
        if mqtt is not None:
            self._mqtt = MqttReceiver(self, mqtt[0], mqtt[1], prefix=self.mqtt_prefix,
                                      group=mqtt_group, client_id=mqtt_client_id)

    def _metrics_page(self) -> tuple[str, bytes]:
        received = self._mqtt.received if self._mqtt is not None else None
        return metrics.CONTENT_TYPE, self.store.metrics(mqtt_received=received).encode()

    @property
    def port(self) -> int:
        return self._http.port if self._http else 0

    def start(self) -> Collector:
        """Start the receivers (again: no-op)."""
        if self._started:
            return self
        self._started = True
        if self._http is not None:
            self._http.start()
        if self._mqtt is not None:
            try:
                self._mqtt.start()
            except BaseException:
                self.stop()  # not half started: the HTTP side closes too
                raise
        return self

    def serve_forever(self) -> None:
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def stop(self) -> None:
        """Close the receivers and the database (again: no-op)."""
        if self._stopped:
            return
        self._stopped = True
        if self._http is not None:
            self._http.stop()
        if self._mqtt is not None:
            self._mqtt.stop()
        self.store.close()
