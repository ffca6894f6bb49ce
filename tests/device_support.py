"""Helpers for the device-process tests (sync downloads, publish, ``edgert agent``, sd_notify):
small iris bundles, a test-bound sd_notify socket, the real CLI as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

#: (version, C, shuffled) -> the committed bundle that iris_bundle would train (tests/data).
COMMITTED_IRIS = {("1.0.0", 1.0, False): "iris", ("1.1.0", 3.0, False): "iris-1.1.0-c3"}


def iris_bundle(dest: Path, version: str = "1.0.0", C: float = 1.0, shuffled: bool = False) -> Path:
    """An iris LogisticRegression bundle named ``iris`` at ``dest``: a copy of the committed one
    where there is one (no training: runs on a device install), else trained here."""
    name = COMMITTED_IRIS.get((version, C, shuffled))
    if name is not None:
        from committed import copy_bundle

        return copy_bundle(name, dest)
    return train_iris_bundle(dest, version, C, shuffled)


def train_iris_bundle(dest: Path, version: str = "1.0.0", C: float = 1.0, shuffled: bool = False) -> Path:
    """Train and convert the iris bundle (needs scikit-learn); ``shuffled`` trains it on permuted
    labels (its own golden rows still pass: only judging its answers catches it)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    if shuffled:
        y = np.random.default_rng(7).permutation(y)
    est = LogisticRegression(C=C, max_iter=1000).fit(X, y)
    return converters.convert(est, X, dest, name="iris", version=version, holdout=X_te)


class NotifySocket:
    """A datagram socket bound by the test where ``NOTIFY_SOCKET`` points: collects every
    message (one datagram each) a child process sends, on a thread. ``abstract`` binds in the
    Linux abstract namespace (``@name``)."""

    def __init__(self, abstract: bool = False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"edgert-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
            self._dir: Optional[str] = None
        else:  # AF_UNIX paths are limited to ~108 bytes: a short temporary directory
            self._dir = tempfile.mkdtemp(prefix="sd")
            self.address = os.path.join(self._dir, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for m in list(self.messages) for line in m.split("\n")]

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 60.0,
                 proc: Optional[subprocess.Popen] = None) -> list[str]:
        """Wait until ``predicate(lines)`` holds; fails on timeout or if ``proc`` exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if predicate(lines):
                return lines
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"process exited {proc.returncode} first; messages {lines}; "
                                     f"stderr: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        raise AssertionError(f"no such sd_notify message within {timeout} s; got {self.lines()}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        if self._dir:
            try:
                os.unlink(self.address)
                os.rmdir(self._dir)
            except OSError:
                pass


def edgert_popen(args: list[str], env: dict, **extra_env: str) -> subprocess.Popen:
    """The checkout's real CLI as a long-running child (stderr piped, text)."""
    return subprocess.Popen([sys.executable, "-m", "edge_runtime", *args], env={**env, **extra_env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def status_of(lines: list[str], prefix: str) -> Optional[str]:
    """The last ``STATUS=`` line starting with ``prefix`` (without ``STATUS=``)."""
    found = [ln[len("STATUS="):] for ln in lines if ln.startswith("STATUS=" + prefix)]
    return found[-1] if found else None


class DirectoryServer:
    """A real HTTP server on 127.0.0.1 serving ``root`` (a TUF repository), on a thread."""

    def __init__(self, root: Path):
        import functools
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def http_json(url: str, body: Optional[object] = None, timeout: float = 10.0) -> object:
    """GET (or POST ``body`` as JSON) and decode the JSON answer."""
    import json
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 in tests
        return json.load(r)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               proc: Optional[subprocess.Popen] = None) -> None:
    """Poll ``check`` until true; fail naming ``what`` on timeout or if ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")
