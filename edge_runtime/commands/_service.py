"""What the long-running commands (``serve``, ``agent``) share as systemd services: READY=1 once
serving, STATUS= lines, a watchdog that pings only while the process is healthy, STOPPING=1 and a
clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from ..sdnotify import Notifier, Watchdog


class Service:
    """The service side of one process: notifications and the stop request (signals set it)."""

    def __init__(self) -> None:
        self.notifier = Notifier()
        self.stop_requested = threading.Event()
        self._watchdog: Optional[Watchdog] = None
        self._stopping_sent = False

    def install_signal_handlers(self, interrupt: bool) -> None:
        """SIGTERM (systemd, docker) and SIGINT request a stop; with ``interrupt`` they also
        raise KeyboardInterrupt in the main thread, to break a blocking server loop."""

        def handler(signum: int, frame: Any) -> None:
            self.stopping(f"stopping on {signal.Signals(signum).name}")
            if interrupt:
                raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def ready(self, status: str, healthy: Callable[[], bool]) -> None:
        """READY=1 with ``status``; then the watchdog (if systemd asked for one) checks ``healthy``."""
        self.notifier.ready(status)
        if self._watchdog is None:
            self._watchdog = Watchdog(self.notifier, healthy)
            self._watchdog.start()

    def status(self, status: str) -> None:
        self.notifier.status(status)

    def stopping(self, status: str = "stopping") -> None:
        self.stop_requested.set()
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notifier.stopping(status)

    def close(self) -> None:
        self.stopping()
        if self._watchdog is not None:
            self._watchdog.stop()
        self.notifier.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (``edgert serve --unix-socket``)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def http_ready(url: str, token: Optional[bytes] = None, timeout_s: float = 5.0) -> Optional[dict[str, Any]]:
    """The server's ``GET /readyz`` answer (model, version, backend) when it is ready, else None.
    ``url`` is ``http://host:port`` (a wildcard bind is probed on loopback; no proxy from the
    environment is used) or ``unix:PATH``; ``token`` is sent as a bearer token."""
    conn: http.client.HTTPConnection
    if url.startswith("unix:"):
        conn = _UnixHTTPConnection(url.removeprefix("unix:"), timeout_s)
    else:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        conn = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout_s)
    headers = {"Authorization": "Bearer " + token.decode("ascii")} if token else {}
    try:
        conn.request("GET", "/readyz", headers=headers)
        resp = conn.getresponse()
        body = json.loads(resp.read(64 * 1024) or b"null")
        return body if resp.status == 200 and isinstance(body, dict) else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
