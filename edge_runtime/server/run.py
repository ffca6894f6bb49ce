"""Build what the server serves (a bundle, or a sync store through the hot-swap core) and serve
it with waitress."""

from __future__ import annotations

import logging
import os
import resource
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..errors import ServeConfigError
from ..hotswap import HotSwapModel
from .app import DEFAULT_MAX_BODY, DEFAULT_MAX_ROWS, make_app
from .auth import read_token
from .metrics import Metrics
from .slot import ModelSlot, is_sync_store, load_checked

log = logging.getLogger("edge_runtime.server")

#: idle connections (slowloris) are closed after this many seconds without a byte; waitress'
#: default (120 s) lets ~100 idle sockets lock every other client out for minutes
DEFAULT_IDLE_TIMEOUT = 30
#: waitress' default is 100; each connection costs one file descriptor and a few KiB
DEFAULT_CONNECTION_LIMIT = 1000
#: descriptors kept free for model files, the store, logs and the listening socket
_SPARE_FDS = 64


def connection_limit(wanted: Optional[int]) -> int:
    """The connection limit this process can honour: ``wanted`` (default 1000), after raising the
    soft descriptor limit towards the hard one if needed.

    Raises:
        ServeConfigError: ``wanted`` needs more file descriptors than the hard limit allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = (wanted or DEFAULT_CONNECTION_LIMIT) + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = need if soft == resource.RLIM_INFINITY else soft - _SPARE_FDS
    if wanted is None:
        return max(1, min(DEFAULT_CONNECTION_LIMIT, room))
    if wanted > room:
        raise ServeConfigError(f"--connection-limit {wanted} needs {need} file descriptors; this process "
                               f"may open {soft} (ulimit -n); lower it or raise the limit")
    return wanted


def quiet_waitress() -> None:
    """waitress logs "Task queue depth is N" at WARNING whenever a request waits for a thread,
    which under any load floods the log with a normal condition: only errors from that logger."""
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def _listen_options(host: str, port: int, unix_socket: Optional[str]) -> dict[str, Any]:
    if unix_socket is None:
        return {"host": host, "port": port}
    path = Path(unix_socket)
    if path.exists() and not stat.S_ISSOCK(path.lstat().st_mode):
        raise ServeConfigError(f"--unix-socket {unix_socket}: exists and is not a socket; refusing to replace it")
    if not path.parent.is_dir():
        raise ServeConfigError(f"--unix-socket {unix_socket}: no directory {path.parent}")
    return {"unix_socket": str(path), "unix_socket_perms": "600"}


def build_slot(source: str, *, backend: str = "auto", threads: Optional[int] = None,
               metrics: Optional[Metrics] = None, poll_interval: float = 0.5
               ) -> Union[ModelSlot, HotSwapModel]:
    """What to serve for ``source``: a :class:`ModelSlot` for a bundle (dir or .tar.gz), or for a
    sync store a :class:`HotSwapModel` (its watcher not yet started: call ``follow()``), which
    starts on the newest good version when the current one cannot be served.

    Raises:
        EdgeRuntimeError: nothing servable (bad bundle, golden mismatch, no loadable version).
    """
    if is_sync_store(source):
        return HotSwapModel(source, backend=backend, threads=threads, check_every_s=poll_interval,
                            on_swap=metrics.swap if metrics else None)
    from ..loader import load

    def loader(path: Path) -> Any:
        return load(path, backend=backend, threads=threads, verify=True)

    return ModelSlot(load_checked(loader, Path(source)))


def serve(source: str, *, host: str = "127.0.0.1", port: int = 8080, backend: str = "auto",
          model_threads: Optional[int] = None, http_threads: int = 4,
          max_body: int = DEFAULT_MAX_BODY, max_rows: Optional[int] = DEFAULT_MAX_ROWS,
          poll_interval: float = 0.5, strict: bool = False, announce: Callable[[str], None] = print,
          on_ready: Optional[Callable[[str, Optional[bytes]], None]] = None,
          token_file: Optional[str] = None, unix_socket: Optional[str] = None,
          connections: Optional[int] = None, idle_timeout: int = DEFAULT_IDLE_TIMEOUT) -> None:
    """Serve until interrupted (``strict``: refuse values outside the training min/max).
    ``announce`` gets one line with the bound address (port 0 picks a free port; tests and the
    load benchmark read it); ``on_ready(url, token)`` is called once the socket listens with a
    model loaded (sd_notify READY=1; ``url`` is ``http://host:port`` or ``unix:PATH``).
    ``token_file``: require ``Authorization: Bearer <token>`` on every path but /healthz;
    ``unix_socket``: listen there (mode 0600) instead of on TCP; ``connections`` open at once
    (default 1000) and ``idle_timeout`` seconds before an idle connection is closed.

    Raises:
        ImportError: waitress is not installed (``pip install 'edge-runtime[serve]'``).
        InputError: ``strict`` with a bundle that records no training min/max.
        ServeConfigError: bad token file, socket path or connection limit.
    """
    try:
        from waitress.server import create_server
    except ImportError as exc:
        raise ImportError("edgert serve needs waitress: pip install 'edge-runtime[serve]'") from exc
    token = read_token(token_file) if token_file else None
    listen = _listen_options(host, port, unix_socket)
    limit = connection_limit(connections)
    quiet_waitress()
    metrics = Metrics()
    slot = build_slot(source, backend=backend, threads=model_threads, metrics=metrics,
                      poll_interval=poll_interval)
    if strict:  # a bundle without training min/max would refuse every request: stop here instead
        from ..inputs import InputSchema

        InputSchema(slot.current.model.manifest.features).require_training()  # type: ignore[union-attr]
    app = make_app(slot, metrics=metrics, max_body=max_body, max_rows=max_rows, strict=strict,
                   token=token)
    # waitress refuses bodies past its own limit before the app runs (a plain-text 413); keep it
    # at four times ours so most oversized requests get the app's JSON 413, which names the option
    # (waitress spools large bodies to a temporary file, not to memory). poll() rather than
    # select(): select cannot watch descriptors past 1024. An idle connection (no byte for
    # idle_timeout s, a slowloris) is closed at the next cleanup, checked every few seconds.
    old_umask = os.umask(0o177) if unix_socket else None  # the socket is never briefly world-writable
    try:
        server = create_server(app, threads=http_threads, max_request_body_size=4 * max_body + 1,
                               ident="edgert", clear_untrusted_proxy_headers=True,
                               connection_limit=limit, channel_timeout=idle_timeout,
                               cleanup_interval=max(1, min(30, idle_timeout // 4)),
                               asyncore_use_poll=True, **listen)
    except OSError as exc:
        where = f"--unix-socket {unix_socket}" if unix_socket else f"{host}:{port}"
        raise ServeConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    finally:
        if old_umask is not None:
            os.umask(old_umask)
    if unix_socket:
        url = f"unix:{unix_socket}"
        app.server_url = "http://localhost"  # what an HTTP client over the socket sends as Host
    else:
        bound = str(server.effective_host)
        shown = f"[{bound}]" if ":" in bound else bound
        url = app.server_url = f"http://{shown}:{server.effective_port}"
    cur = slot.current
    following = isinstance(slot, HotSwapModel)
    if following and slot.last_swap_error:
        log.warning("started on %s: %s", cur.version if cur else None, slot.last_swap_error)
    rows = app.row_limit(cur)
    announce(f"edgert: serving {cur.model.manifest.name} {cur.version} on {url}"  # type: ignore[union-attr]
             + (f" (following store {slot.store_root})" if following else ""))
    log.info("limits: %d bytes and %d rows per request, %d connections, idle ones closed after %d s%s",
             max_body, rows, limit, idle_timeout, "; bearer token required" if token else "")
    sys.stdout.flush()
    if isinstance(slot, HotSwapModel):
        slot.follow()
    if on_ready:
        on_ready(url, token)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if isinstance(slot, HotSwapModel):
            slot.close()
        server.close()
        if unix_socket:
            _remove_socket(unix_socket)


def _remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
