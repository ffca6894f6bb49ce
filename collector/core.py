"""The reference collector: receive batches (HTTP and/or MQTT), deduplicate, store, report.

Deduplication is by batch id *and* segment id inside one SQLite transaction that commits
before the acknowledgement is sent: a batch retried after a lost ack is acknowledged again
but stored once. The report merges every stored segment per model version (the figures are
sums, so order and batching do not matter) and ``check`` turns thresholds into breaches.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Union

from edge_runtime.bundle import parse_semver
from edge_runtime.health import Breach
from edge_runtime.telemetry.aggregate import merge_segments, validate_segment
from edge_runtime.telemetry.stats import PSI_MIN_ROWS, PSI_THRESHOLD, feature_drift, quantile_from_buckets

from .series import bucket_segments, point, slim

log = logging.getLogger("collector")
MAX_BODY_BYTES = 32 * 1024 * 1024

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, device_id TEXT NOT NULL,
       received REAL NOT NULL, segments INTEGER NOT NULL, dropped_segments INTEGER NOT NULL,
       dropped_calls INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS segments (segment_id TEXT PRIMARY KEY, batch_id TEXT NOT NULL,
       device_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
       window_start REAL NOT NULL, window_end REAL NOT NULL, payload TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS refs (model TEXT NOT NULL, version TEXT NOT NULL,
       payload TEXT NOT NULL, PRIMARY KEY (model, version))""",
]


def _validate_batch(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("batch is not a JSON object")
    for key, kind in (("batch_id", str), ("device_id", str), ("segments", list)):
        if not isinstance(body.get(key), kind) or not body.get(key) and kind is str:
            raise ValueError(f"batch field '{key}' is missing or not {kind.__name__}")
    if len(body["batch_id"]) > 128 or len(body["device_id"]) > 128:
        raise ValueError("batch_id/device_id longer than 128 characters")
    for i, seg in enumerate(body["segments"]):
        try:
            validate_segment(seg)
        except ValueError as exc:
            raise ValueError(f"segments[{i}]: {exc}") from None
    refs = body.get("refs") or []
    if not isinstance(refs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("model"), str)
            and isinstance(r.get("version"), str) and isinstance(r.get("reference"), dict)
            for r in refs):
        raise ValueError("batch field 'refs' is malformed")
    dropped = body.get("dropped") or {}
    if not isinstance(dropped, dict) or not all(
            isinstance(dropped.get(k, 0), int) for k in ("segments", "calls")):
        raise ValueError("batch field 'dropped' is malformed")
    return body


class CollectorStore:
    """The collector's SQLite database (WAL). Thread-safe."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.duplicates = 0  # batches received again (a retry after a lost ack), not stored
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for stmt in _SCHEMA:
            self._db.execute(stmt)

    def ingest(self, body: Any) -> tuple[str, bool]:
        """Store a batch once. Returns (batch id, was it a duplicate).

        Raises:
            ValueError: the batch is malformed (nothing stored).
        """
        body = _validate_batch(body)
        bid, dev = body["batch_id"], body["device_id"]
        dropped = body.get("dropped") or {}
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM batches WHERE batch_id=?", (bid,)).fetchone():
                    db.execute("COMMIT")
                    self.duplicates += 1
                    return bid, True
                db.execute("INSERT INTO batches VALUES(?, ?, ?, ?, ?, ?)",
                           (bid, dev, time.time(), len(body["segments"]),
                            int(dropped.get("segments", 0)), int(dropped.get("calls", 0))))
                for seg in body["segments"]:
                    db.execute("INSERT OR IGNORE INTO segments VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                               (seg["segment_id"], bid, dev, seg["model"], seg["version"],
                                float(seg["window_start"]), float(seg["window_end"]),
                                json.dumps(seg, separators=(",", ":"))))
                for ref in body.get("refs") or []:
                    db.execute("INSERT OR IGNORE INTO refs VALUES(?, ?, ?)",
                               (ref["model"], ref["version"], json.dumps(ref["reference"])))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return bid, False

    def counts(self) -> dict[str, int]:
        with self._lock:
            b = self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            s = self._db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        return {"batches": b, "segments": s}

    def report(self, *, psi_threshold: float = PSI_THRESHOLD,
               min_rows: int = PSI_MIN_ROWS, since: Optional[float] = None,
               series: bool = False) -> dict[str, Any]:
        """Per model version: calls, rows, error rate, errors by kind, latency quantiles,
        classes, drift, feedback accuracy, shadow agreement; plus what devices reported as
        dropped. ``since`` (a collector clock time) keeps only batches received from then on
        (alerts judge a recent window, not all history); ``series`` adds each version's
        figures over time (:mod:`collector.series`)."""
        cut = "" if since is None else " WHERE received >= ?"
        args = () if since is None else (float(since),)
        with self._lock:
            rows = self._db.execute(
                "SELECT model, version, payload, device_id, window_end FROM segments" + (
                    "" if since is None else f" WHERE batch_id IN (SELECT batch_id FROM batches{cut})"),
                args).fetchall()
            refs = {(m, v): json.loads(p) for m, v, p in
                    self._db.execute("SELECT model, version, payload FROM refs")}
            dropped = self._db.execute(
                "SELECT COALESCE(SUM(dropped_segments), 0), COALESCE(SUM(dropped_calls), 0) "
                f"FROM batches{cut}", args).fetchone()
            devices = self._db.execute(
                f"SELECT COUNT(DISTINCT device_id) FROM batches{cut}", args).fetchone()[0]
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        nseg: dict[tuple[str, str], int] = {}
        raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
        devs: dict[tuple[str, str], dict[str, tuple[float, Optional[str]]]] = {}
        for model, version, text, device, wend in rows:
            seg = json.loads(text)
            key = (model, version)
            merged[key] = merge_segments(merged[key], seg) if key in merged else seg
            nseg[key] = nseg.get(key, 0) + 1
            if series:
                raw.setdefault(key, []).append(slim(seg))
            last = devs.setdefault(key, {}).get(device)
            if last is None or wend >= last[0]:  # the device's latest word on its rollout state
                devs[key][device] = (wend, seg.get("state") if isinstance(seg.get("state"), str)
                                     else (last[1] if last else None))
        versions = []
        for key in sorted(merged, key=lambda k: (k[0], _semver_key(k[1]))):
            versions.append(_version_report(merged[key], refs.get(key), nseg[key],
                                            psi_threshold, min_rows))
            states: dict[str, int] = {}
            for _, state in devs[key].values():
                if state is not None:
                    states[state] = states.get(state, 0) + 1
            versions[-1].update(devices=len(devs[key]), states=states)
            if series:
                versions[-1]["series"] = [
                    point(_version_report(b, None, 1, psi_threshold, min_rows))
                    for b in bucket_segments(raw[key])]
        return {"versions": versions, "devices": devices,
                "dropped": {"segments": int(dropped[0]), "calls": int(dropped[1])}}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _semver_key(v: str) -> tuple:
    try:
        return (0, parse_semver(v))
    except Exception:  # noqa: BLE001 - non-semver versions (ensembles) sort after
        return (1, v)


def _version_report(seg: dict[str, Any], ref: Optional[dict[str, Any]], nseg: int,
                    psi_threshold: float, min_rows: int) -> dict[str, Any]:
    errors = sum(seg["errors"].values())
    calls = seg["calls"]
    lat = [0] * (max((int(k) for k in seg["latency"]), default=-1) + 1)
    for k, v in seg["latency"].items():
        lat[int(k)] = v
    q = {name: quantile_from_buckets(lat, p) for name, p in (("p50", .5), ("p90", .9), ("p99", .99))}
    fb = seg.get("feedback") or {}
    n_fb = int(fb.get("n", 0))
    out: dict[str, Any] = {
        "model": seg["model"], "version": seg["version"], "segments": nseg,
        "window_start": seg["window_start"], "window_end": seg["window_end"],
        "calls": calls, "rows": seg["rows"], "lost": int(seg.get("lost", 0)),
        "errors": errors, "errors_by_kind": seg["errors"],
        "error_rate": errors / (calls + errors) if calls + errors else 0.0,
        "latency_s": q, "classes": seg["classes"], "outputs": seg["outputs"],
        "feedback": {"n": n_fb, "unmatched": int(fb.get("unmatched", 0)),
                     "accuracy": fb.get("correct", 0) / n_fb if n_fb and seg["classes"] else None,
                     "mae": fb.get("abs_err", 0.0) / n_fb if n_fb and not seg["classes"] else None,
                     "true": fb.get("true", {})},
        "shadow": {c: {"n": s["n"], "agree": s["agree"],
                       "agreement": s["agree"] / s["n"] if s["n"] else None}
                   for c, s in (seg.get("shadow") or {}).items()},
        "drift": {},
    }
    feats = seg.get("features")
    if feats and ref:
        by_name = {f.get("name"): f for f in ref.get("features") or []}
        for name, counts, missing in zip(feats["names"], feats["bins"], feats["missing"]):
            if name in by_name:
                out["drift"][name] = feature_drift(by_name[name], counts, missing,
                                                   threshold=psi_threshold, min_rows=min_rows)
    return out


@dataclass
class Thresholds:
    max_psi: float = PSI_THRESHOLD
    min_rows: int = PSI_MIN_ROWS
    max_error_rate: float = 0.05
    max_p99_ms: Optional[float] = None
    max_accuracy_drop: float = 0.05
    min_feedback: int = 30


def breaches(report: dict[str, Any], t: Thresholds) -> list[Breach]:
    """Every breach of ``t`` in ``report``: drift per feature, error rate, p99 latency,
    accuracy drop, windows dropped by devices.

    The accuracy drop of a version is measured against the nearest earlier version (by
    semver) of the same model that has at least ``min_feedback`` labelled predictions.
    """
    out = []
    last_acc: dict[str, tuple[str, float]] = {}
    for v in report["versions"]:
        m, ver = v["model"], v["version"]
        tag = f"{m}@{ver}"
        for name, d in v["drift"].items():
            if d["psi"] is not None and d["rows"] >= t.min_rows and d["psi"] > t.max_psi:
                out.append(Breach("drift", m, ver, d["psi"], t.max_psi,
                                  f"{tag}: drift in feature '{name}': PSI {d['psi']:.3f} > {t.max_psi}",
                                  feature=name))
        if v["calls"] + v["errors"] and v["error_rate"] > t.max_error_rate:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(v["errors_by_kind"].items()))
            out.append(Breach("error_rate", m, ver, v["error_rate"], t.max_error_rate,
                              f"{tag}: error rate {v['error_rate']:.2%} > {t.max_error_rate:.2%} "
                              f"({v['errors']} of {v['calls'] + v['errors']}: {kinds})"))
        p99 = v["latency_s"]["p99"]
        if t.max_p99_ms is not None and p99 is not None and p99 * 1000 > t.max_p99_ms:
            out.append(Breach("latency", m, ver, p99 * 1000, t.max_p99_ms,
                              f"{tag}: p99 latency {p99 * 1000:.3g} ms > {t.max_p99_ms} ms"))
        acc, n = v["feedback"]["accuracy"], v["feedback"]["n"]
        if acc is not None and n >= t.min_feedback:
            prev = last_acc.get(m)
            if prev is not None and prev[1] - acc > t.max_accuracy_drop:
                out.append(Breach("accuracy", m, ver, prev[1] - acc, t.max_accuracy_drop,
                                  f"{tag}: accuracy {acc:.2%} dropped {prev[1] - acc:.2%} from "
                                  f"{prev[1]:.2%} ({m}@{prev[0]}) > {t.max_accuracy_drop:.2%}"))
            last_acc[m] = (ver, acc)
    if report["dropped"]["segments"]:
        out.append(Breach("dropped", "", "", report["dropped"]["segments"], 0,
                          f"devices dropped {report['dropped']['segments']} telemetry windows "
                          f"({report['dropped']['calls']} calls) under the outbox size cap"))
    return out


def check(report: dict[str, Any], t: Thresholds) -> list[str]:
    """One line per breach (see :func:`breaches`)."""
    return [b.message for b in breaches(report, t)]


# --- receivers --------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _reply(self, status: int, obj: Any, ctype: str = "application/json") -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        from . import dashboard

        if self.path == "/v1/health":
            self._reply(200, {"ok": True, **self.server.store.counts()})
        elif (got := dashboard.route(self.path, self.server.store)) is not None:
            self._reply(got[0], got[2], got[1])
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        coll = self.server.collector
        if self.path.split("?", 1)[0] != "/v1/batches":
            self._reply(404, {"error": "not found"})
            return
        if coll.token is not None:
            got = self.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {coll.token}".encode()):
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, {"error": "Content-Length required"})
            return
        if not 0 < length <= MAX_BODY_BYTES:
            self._reply(413, {"error": f"body must be 1..{MAX_BODY_BYTES} bytes"})
            return
        raw = self.rfile.read(length)
        try:
            bid, dup = coll.store.ingest(json.loads(raw))
        except ValueError as exc:
            self._reply(400, {"error": str(exc)})
            return
        if coll.delay_s:
            time.sleep(coll.delay_s)
        self._reply(200, {"ack": bid, "duplicate": dup})


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    collector: Collector
    store: CollectorStore


class Collector:
    """HTTP (and optionally MQTT) receiver in front of a :class:`CollectorStore`.

    ``delay_s`` (tests) holds every acknowledgement back after the batch is stored.
    """

    def __init__(self, db: Union[str, Path], *, host: str = "127.0.0.1", port: int = 0,
                 token: Optional[str] = None, mqtt: Optional[tuple[str, int]] = None,
                 mqtt_prefix: str = "edgert/telemetry", http: bool = True):
        self.store = CollectorStore(db)
        self.token = token
        self.delay_s = 0.0
        self._http: Optional[_HttpServer] = None
        self._threads: list[threading.Thread] = []
        self._mqtt_client: Any = None
        if http:
            self._http = _HttpServer((host, port), _Handler)
            self._http.collector = self
            self._http.store = self.store
        self.mqtt, self.mqtt_prefix = mqtt, mqtt_prefix.strip("/")

    @property
    def port(self) -> int:
        return self._http.server_address[1] if self._http else 0

    def start(self) -> Collector:
        if self._http is not None:
            t = threading.Thread(target=self._http.serve_forever, daemon=True,
                                 name="edgert-collector-http")
            t.start()
            self._threads.append(t)
        if self.mqtt is not None:
            self._start_mqtt(*self.mqtt)
        return self

    def _start_mqtt(self, host: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        prefix = self.mqtt_prefix
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edgert-collector",
                             clean_session=False)
        ready = threading.Event()

        def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
            c.subscribe(f"{prefix}/batches/+", qos=1)

        def on_message(c: Any, userdata: Any, msg: Any) -> None:
            device = msg.topic.rsplit("/", 1)[-1]
            body: Any = None
            try:
                body = json.loads(msg.payload)
                bid, _ = self.store.ingest(body)
            except ValueError as exc:
                log.warning("rejected MQTT batch on %s: %s", msg.topic, exc)
                bid = body.get("batch_id") if isinstance(body, dict) else None
                if isinstance(bid, str):  # tell the device, so it stops resending it
                    c.publish(f"{prefix}/acks/{device}",
                              json.dumps({"reject": bid, "error": str(exc)[:500]}), qos=1)
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            c.publish(f"{prefix}/acks/{device}", json.dumps({"ack": bid}), qos=1)

        client.on_connect = on_connect
        client.on_message = on_message
        client.on_subscribe = lambda *a, **k: ready.set()
        client.connect(host, int(port), keepalive=30)
        client.loop_start()
        if not ready.wait(10):
            raise OSError(f"mqtt://{host}:{port}: collector could not subscribe")
        self._mqtt_client = client

    def serve_forever(self) -> None:
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._mqtt_client is not None:
            self._mqtt_client.disconnect()
            self._mqtt_client.loop_stop()
            self._mqtt_client = None
        self.store.close()
