"""A TCP proxy for tests that cuts connections: the request reaches the server, the
answer never reaches the client (a lost acknowledgement)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from typing import Callable


class CuttingProxy:
    def __init__(self, target_port: int, cut: Callable[[int], bool]):
        self.target_port = target_port
        self.cut = cut
        self.connections = 0
        self.cuts = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            cut = self.cut(self.connections)
            self.cuts += int(cut)
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    def _serve(self, client: socket.socket, cut: bool) -> None:
        try:
            up = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return

        def pump_up() -> None:
            try:
                while data := client.recv(65536):
                    up.sendall(data)
            except OSError:
                pass

        threading.Thread(target=pump_up, daemon=True).start()
        try:
            while data := up.recv(65536):
                if cut:  # the server answered, so it has the batch: drop the answer
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, up):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()


def mosquitto_binary() -> str | None:
    """The Mosquitto broker, if installed: Debian puts it in /usr/sbin, which is not on every
    user's PATH."""
    sbin = "/usr/sbin/mosquitto"
    return shutil.which("mosquitto") or (sbin if os.path.exists(sbin) else None)
