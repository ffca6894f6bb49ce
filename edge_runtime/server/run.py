"""Build what the server serves (a bundle, or a sync store through the hot-swap core) and serve
it with waitress."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..hotswap import HotSwapModel
from .app import DEFAULT_MAX_BODY, DEFAULT_MAX_ROWS, make_app
from .metrics import Metrics
from .slot import ModelSlot, is_sync_store, load_checked

log = logging.getLogger("edge_runtime.server")


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
          max_body: int = DEFAULT_MAX_BODY, max_rows: int = DEFAULT_MAX_ROWS,
          poll_interval: float = 0.5, strict: bool = False, announce: Callable[[str], None] = print,
          on_ready: Optional[Callable[[str, int], None]] = None) -> None:
    """Serve until interrupted (``strict``: refuse values outside the training min/max).
    ``announce`` gets one line with the bound address (port 0 picks a free port; tests and the
    load benchmark read it); ``on_ready(host, port)`` is called once the socket listens with a
    model loaded (sd_notify READY=1).

    Raises:
        ImportError: waitress is not installed (``pip install 'edge-runtime[serve]'``).
        InputError: ``strict`` with a bundle that records no training min/max.
    """
    try:
        from waitress.server import create_server
    except ImportError as exc:
        raise ImportError("edgert serve needs waitress: pip install 'edge-runtime[serve]'") from exc
    metrics = Metrics()
    slot = build_slot(source, backend=backend, threads=model_threads, metrics=metrics,
                      poll_interval=poll_interval)
    if strict:  # a bundle without training min/max would refuse every request: stop here instead
        from ..inputs import InputSchema

        InputSchema(slot.current.model.manifest.features).require_training()  # type: ignore[union-attr]
    app = make_app(slot, metrics=metrics, max_body=max_body, max_rows=max_rows, strict=strict)
    # waitress refuses bodies past its own limit before the app runs (a plain-text 413); keep it
    # at four times ours so most oversized requests get the app's JSON 413, which names the option
    # (waitress spools large bodies to a temporary file, not to memory).
    server = create_server(app, host=host, port=port, threads=http_threads,
                           max_request_body_size=4 * max_body + 1, ident="edgert",
                           clear_untrusted_proxy_headers=True)
    cur = slot.current
    following = isinstance(slot, HotSwapModel)
    if following and slot.last_swap_error:
        log.warning("started on %s: %s", cur.version if cur else None, slot.last_swap_error)
    announce(f"edgert: serving {cur.model.manifest.name} {cur.version} on "  # type: ignore[union-attr]
             f"http://{server.effective_host}:{server.effective_port}"  # type: ignore[union-attr]
             + (f" (following store {slot.store_root})" if following else ""))
    sys.stdout.flush()
    if isinstance(slot, HotSwapModel):
        slot.follow()
    if on_ready:
        on_ready(str(server.effective_host), int(server.effective_port))  # type: ignore[union-attr]
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if isinstance(slot, HotSwapModel):
            slot.close()
        server.close()
