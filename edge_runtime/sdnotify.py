"""systemd's notify protocol without libsystemd: each message is one datagram to the Unix socket
named by ``NOTIFY_SOCKET`` (a leading ``@`` names the abstract namespace). Without that variable
(not started by systemd with ``Type=notify``) every call is a no-op, so callers never check.

The watchdog pings (``WATCHDOG=1``) at half of ``WATCHDOG_USEC`` from a thread, and only while
a health check passes: a process that is alive but no longer serving stops pinging, and systemd
restarts it (``Restart=on-failure``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Callable, Optional

log = logging.getLogger("edge_runtime.sdnotify")


class Notifier:
    """Sends ``KEY=VALUE`` lines to the service manager (silently nothing when not under it)."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None):
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET") or ""
        self.address: Optional[str] = ("\0" + raw[1:]) if raw.startswith("@") else (raw or None)
        self.watchdog_s = _watchdog_seconds(env)
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one message (one datagram). Returns False when not under systemd or
        the socket is gone: notification is best effort and never stops the service."""
        if self.address is None:
            return False
        data = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # non-inheritable (PEP 446)
                self._sock.sendto(data, self.address)
                return True
            except OSError as exc:
                log.warning("sd_notify to %r failed: %s", self.address, exc)
                return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> Optional[float]:
    """``WATCHDOG_USEC`` in seconds, if it is meant for this process (``WATCHDOG_PID``)."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC") or 0)
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class Watchdog:
    """Runs ``healthy()`` every half of the watchdog interval and pings ``WATCHDOG=1`` only when
    it is true (a failing or raising check says so in STATUS once). Without a watchdog interval
    the check still runs every ``check_every_s`` for its own STATUS updates, with no pings."""

    def __init__(self, notifier: Notifier, healthy: Callable[[], bool], *, check_every_s: float = 5.0):
        self.notifier = notifier
        self.healthy = healthy
        self.check_every_s = check_every_s
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> bool:
        """Start the thread when under systemd (``NOTIFY_SOCKET``); returns whether it runs."""
        if not self.notifier.enabled:
            return False
        self._thread = threading.Thread(target=self._run, name="edgert-watchdog", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        wd = self.notifier.watchdog_s
        period = wd / 2 if wd else self.check_every_s
        was_ok = True
        while True:
            try:
                ok = bool(self.healthy())
            except Exception as exc:  # noqa: BLE001 - a broken check means unhealthy, not a dead thread
                log.warning("health check failed: %s", exc)
                ok = False
            if ok and wd:
                self.notifier.notify("WATCHDOG=1")
            elif was_ok:
                self.notifier.status("unhealthy: watchdog pings withheld")
            was_ok = ok
            if self._stop.wait(period):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
