"""The collector's HTTP side served by waitress: same paths as before, bearer token, body
limits (the app's and waitress's), clear refusals, and a stop that frees the port."""

from __future__ import annotations

import http.client
import json
import random
import socket
import uuid

import pytest
from fleet_data import reference, window

from collector import Collector
from collector.wsgi import CollectorApp, WsgiServer


def _post(port: int, body: bytes, headers: dict | None = None, path: str = "/v1/batches"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _batch() -> bytes:
    seg = dict(window("m", "1.0.0", random.Random(1), reference()), segment_id=uuid.uuid4().hex)
    return json.dumps({"batch_id": uuid.uuid4().hex, "device_id": "d", "segments": [seg]}).encode()


@pytest.fixture
def coll(tmp_path):
    c = Collector(tmp_path / "c.db", token="s3cret").start()
    yield c
    c.stop()


def test_token_checked_and_batch_acked(coll):
    body = _batch()
    assert _post(coll.port, body)[0] == 401
    assert _post(coll.port, body, {"Authorization": "Bearer nope"})[0] == 401
    assert coll.store.counts()["batches"] == 0
    status, answer = _post(coll.port, body, {"Authorization": "Bearer s3cret"})
    assert status == 200 and json.loads(answer) == {"ack": json.loads(body)["batch_id"], "duplicate": False}
    status, answer = _post(coll.port, body, {"Authorization": "Bearer s3cret"})
    assert status == 200 and json.loads(answer)["duplicate"] is True
    assert coll.store.counts() == {"batches": 1, "segments": 1}


def test_refusals_name_the_problem(coll):
    auth = {"Authorization": "Bearer s3cret"}
    status, answer = _post(coll.port, b'{"batch_id": "x", "device_id": "d", "segments": [{}]}', auth)
    assert status == 400 and b"segments[0]" in answer
    status, answer = _post(coll.port, b"{not json", auth)
    assert status == 400
    assert _post(coll.port, _batch(), auth, path="/v2/batches")[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", coll.port, timeout=10)
    conn.request("GET", "/v1/batches")
    assert conn.getresponse().status == 405
    conn.close()
    assert coll.store.counts()["batches"] == 0


def test_body_limits(tmp_path):
    """Over the app's limit: its JSON 413 naming the limit; far over: waitress refuses before
    the app reads anything."""
    coll = Collector(tmp_path / "c.db")
    app = CollectorApp(coll, max_body=1000)
    server = WsgiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        status, answer = _post(server.port, b"x" * 1001)
        assert status == 413 and b"1..1000 bytes" in answer
        status, _ = _post(server.port, b"x" * 100_000)
        assert status == 413
    finally:
        server.stop()
        coll.stop()


def test_health_and_stop_frees_the_port(tmp_path):
    coll = Collector(tmp_path / "c.db").start()
    port = coll.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v1/health")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"ok": True, "batches": 0, "segments": 0}
    coll.stop()  # with a keep-alive connection still open
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_keep_alive_clients_at_once_after_a_second_start(tmp_path):
    """``edgert collector`` calls start() then serve_forever(): a second server loop on the same
    sockets used to drop about one keep-alive request in twenty (EAGAIN in the other loop)."""
    import threading

    coll = Collector(tmp_path / "c.db").start()
    coll.start()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", coll.port, timeout=10)
        for _ in range(40):
            try:
                conn.request("POST", "/v1/batches", body=_batch())
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(str(resp.status))
            except (OSError, http.client.HTTPException) as exc:
                errors.append(repr(exc))
                conn.close()
        conn.close()

    try:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        assert coll.store.counts()["batches"] == 320
    finally:
        coll.stop()


def test_dropped_connections_reconnect_and_a_lost_database_is_503(pg_url, pg_server):
    """PostgreSQL drops the collector's connections (a restart, a failover): the next batches
    are stored on fresh connections. With the database gone, a batch gets a 503 (not acked, so
    the device retries later) instead of a traceback."""
    import psycopg

    coll = Collector(pg_url).start()
    try:
        assert _post(coll.port, _batch())[0] == 200
        name = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (name,))
            assert [_post(coll.port, _batch())[0] for _ in range(5)] == [200] * 5
            assert coll.store.counts() == {"batches": 6, "segments": 6}
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            status, answer = _post(coll.port, _batch())
        assert status == 503 and b"retry" in answer
    finally:
        coll.stop()
