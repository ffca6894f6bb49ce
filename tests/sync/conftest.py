"""Fixtures shared by the sync suites: a fresh signing key set and repository, served by a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import threading
from http.server import ThreadingHTTPServer

import pytest
from sync_support import Quiet


@pytest.fixture()
def repo(tmp_path):
    from converters import publish as pub

    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    return keys, repo


@pytest.fixture()
def http_repo(repo):
    keys, path = repo
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield keys, path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
