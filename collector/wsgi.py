"""The collector's HTTP side: a plain WSGI app served by waitress (a production server).

``POST /v1/batches`` (bearer token checked in constant time, body bounded before it is read),
``GET /v1/health``, ``GET /metrics`` (Prometheus text) and any page another module registers
with :meth:`CollectorApp.add_page` (the dashboard).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from http import HTTPStatus
from typing import Any, Callable, Iterable, Optional

log = logging.getLogger("collector")
MAX_BODY_BYTES = 32 * 1024 * 1024
Page = Callable[[], tuple[str, bytes]]  # () -> (content type, body)
#: (path, query string) -> (status, content type, body), or None when the path is not its own
Handler = Callable[[str, str], Optional[tuple[int, str, bytes]]]
StartResponse = Callable[..., Any]


class CollectorApp:
    """WSGI callable over a collector (anything with ``store``, ``token``, ``delay_s``)."""

    def __init__(self, collector: Any, *, max_body: int = MAX_BODY_BYTES):
        self.collector = collector
        self.max_body = int(max_body)
        self.pages: dict[str, Page] = {}
        self.handlers: list[Handler] = []

    def add_page(self, path: str, render: Page) -> None:
        """Serve ``GET path`` with ``render()`` (computed per request)."""
        self.pages[path] = render

    def add_handler(self, handler: Handler) -> None:
        """Serve the GETs ``handler(path, query)`` answers (the dashboard and its data)."""
        self.handlers.append(handler)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path == "/v1/batches":
            if method != "POST":
                return _json(start_response, 405, {"error": "use POST"}, [("Allow", "POST")])
            return self._batches(environ, start_response)
        if method in ("GET", "HEAD"):
            for handler in self.handlers:
                got = handler(path, environ.get("QUERY_STRING", ""))
                if got is not None:
                    status, ctype, body = got
                    start_response(f"{status} {HTTPStatus(status).phrase}",
                                   [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                    ("Cache-Control", "no-store")])
                    return [b"" if method == "HEAD" else body]
        page = self.pages.get(path)
        if page is None and path != "/v1/health":
            return _json(start_response, 404, {"error": "not found"})
        if method not in ("GET", "HEAD"):
            return _json(start_response, 405, {"error": "use GET"}, [("Allow", "GET, HEAD")])
        if page is None:
            return _json(start_response, 200, {"ok": True, **self.collector.store.counts()})
        ctype, body = page()
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [b"" if method == "HEAD" else body]

    def _batches(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        coll = self.collector
        if coll.token is not None:
            got = environ.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {coll.token}".encode()):
                return _json(start_response, 401, {"error": "missing or wrong bearer token"},
                             [("WWW-Authenticate", "Bearer")])
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return _json(start_response, 411, {"error": "Content-Length required"})
        if not 0 < length <= self.max_body:
            return _json(start_response, 413, {"error": f"body must be 1..{self.max_body} bytes"})
        raw = environ["wsgi.input"].read(length)
        try:
            bid, dup = coll.store.ingest(json.loads(raw))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            return _json(start_response, 400, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the database failed: nothing acked, retry later
            log.warning("could not store a batch: %s", exc)
            return _json(start_response, 503, {"error": "collector database unavailable; retry"},
                         [("Retry-After", "5")])
        if coll.delay_s:
            time.sleep(coll.delay_s)
        return _json(start_response, 200, {"ack": bid, "duplicate": dup})


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
            503: "Service Unavailable"}


def _json(start_response: StartResponse, status: int, obj: Any,
          headers: Optional[list[tuple[str, str]]] = None) -> list[bytes]:
    data = json.dumps(obj).encode()
    start_response(f"{status} {_REASONS[status]}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                    *(headers or [])])
    return [data]


class WsgiServer:
    """waitress in a background thread, stoppable (tests and ``Collector.stop``).

    The limits differ from waitress's defaults on purpose: 100 connections and a 120 s idle
    timeout let ~100 idle devices lock every other one out; a fleet needs more, shorter.
    waitress refuses bodies over four times the app's limit before the app runs (a plain-text
    413); in between, the app's JSON 413 names the limit.
    """

    def __init__(self, app: CollectorApp, host: str, port: int, *, threads: int = 8,
                 connection_limit: int = 1000, channel_timeout: int = 30):
        try:
            from waitress.server import create_server
        except ImportError as exc:
            raise ImportError("the collector needs waitress: "
                              "pip install 'edge-runtime[collector]'") from exc
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" floods
        self._server: Any = create_server(
            app, host=host, port=port, threads=threads, connection_limit=connection_limit,
            channel_timeout=channel_timeout, max_request_body_size=4 * app.max_body + 1,
            ident="edgert-collector", clear_untrusted_proxy_headers=True)
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> None:
        """Serve in a background thread (once: two loops on one socket map fail at random)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name="edgert-collector-http")
        self._thread.start()

    def stop(self) -> None:
        """Close every socket from inside the server's loop (it is not thread-safe), wait for
        the loop to end, then stop the worker threads."""
        from waitress import wasyncore

        srv = self._server
        if self._thread is not None:
            srv.trigger.pull_trigger(lambda: wasyncore.close_all(srv._map))
            self._thread.join(10)
        else:
            wasyncore.close_all(srv._map)
        srv.task_dispatcher.shutdown()
