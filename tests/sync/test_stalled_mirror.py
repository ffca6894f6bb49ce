"""A mirror that accepts the connection and then goes silent must not hold a sync (and its store
lock) past ``--download-timeout``: real TCP servers on 127.0.0.1 that send nothing, or headers
and then nothing, for metadata and for a model archive."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from device_support import iris_bundle

from converters import publish as pub
from edge_runtime.sync.agent import SyncAgent
from edge_runtime.sync.errors import SyncError
from edge_runtime.sync.store import VersionStore

pytestmark = pytest.mark.device


class SilentServer:
    """Accepts every connection, reads the request, and answers nothing (or only ``head``)
    until closed."""

    def __init__(self, head: bytes = b""):
        self.head = head
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            if self.head:
                conn.recv(65536)
                conn.sendall(self.head)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for c in self._conns:
            c.close()


HEADERS_ONLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"


@pytest.fixture()
def keys(tmp_path: Path) -> Path:
    pub.init_keys(tmp_path / "keys", tmp_path / "repo")
    return tmp_path / "keys"


def test_cli_sync_gives_up_on_a_silent_mirror_within_the_download_timeout(keys, tmp_path, cli_env):
    server = SilentServer()
    try:
        started = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "edge_runtime", "sync", "--once", "--repo", server.url,
                            "--root", str(keys / "root.json"), "--state", str(tmp_path / "state"),
                            "--download-timeout", "5"], capture_output=True, text=True, env=cli_env,
                           timeout=60)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert r.returncode == 1, r.stdout + r.stderr
    assert server.accepted == 1  # a timed-out read is not retried
    assert "SyncError" in r.stderr and "stalled" in r.stderr and "took longer than 5 s" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert elapsed < 10  # the promise: 5 s timeout; ~0.2 s is the interpreter starting


def test_headers_then_silence_is_cut_off_at_the_deadline(keys, tmp_path):
    server = SilentServer(head=HEADERS_ONLY)
    try:
        agent = SyncAgent(server.url, (keys / "root.json").read_bytes(), tmp_path / "state",
                          download_timeout_s=2.0)
        started = time.monotonic()
        with pytest.raises(SyncError, match=r"metadata not fetched.*took longer than 2 s.*sent no more bytes"):
            agent.sync_once()
        assert time.monotonic() - started < 10  # bounded by the 2 s deadline, not 4 x 30 s
    finally:
        server.close()


class _StallArchives(SimpleHTTPRequestHandler):
    """Serves metadata normally; model archives get their headers and then nothing."""

    def log_message(self, *args: object) -> None:
        pass

    def copyfile(self, source, outputfile):
        if not self.path.endswith(".tar.gz"):
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(10))
        outputfile.flush()
        self.server.release.wait(30)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    return iris_bundle(tmp_path_factory.mktemp("b") / "iris")


def test_a_stalled_archive_is_a_sync_error_and_not_a_bad_version(keys, tmp_path, iris):
    repo = tmp_path / "repo"
    pub.publish(iris, repo, keys)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_StallArchives, directory=str(repo)))
    server.release = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = tmp_path / "state"
    try:
        agent = SyncAgent(f"http://127.0.0.1:{server.server_address[1]}", (keys / "root.json").read_bytes(),
                          state, download_timeout_s=2.0)
        started = time.monotonic()
        with pytest.raises(SyncError, match=r"download of iris/iris-1.0.0.tar.gz rejected.*stalled"):
            agent.sync_once()
        assert time.monotonic() - started < 10
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
    rec = VersionStore(state).read_active()
    assert rec["current"] is None and "1.0.0" not in rec["known_bad"]  # a good mirror may follow
