"""``edgert serve``: the local prediction service (see docs/serve.md)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Optional

import click

from ._service import Service
from ._util import apply_trust, require_extra, trust_option
from .predict import BACKEND_HELP


def register(cli: click.Group) -> None:
    cli.add_command(serve)


@click.command()
@click.argument("source", metavar="BUNDLE_OR_STORE", type=click.Path(exists=True))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Keep 127.0.0.1 unless other machines must reach it "
                   "(then also use --token-file).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 = any free port; the bound address is printed).")
@click.option("--backend", default="auto", show_default=True, help=BACKEND_HELP)
@click.option("--threads", "http_threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Request threads (waitress).")
@click.option("--model-threads", default=None, type=click.IntRange(1, 256),
              help="Threads per model call (default: the backend's).")
@click.option("--max-body", default=1024 * 1024, show_default=True, type=click.IntRange(1),
              help="Largest accepted request body in bytes (larger: 413).")
@click.option("--max-rows", default=None, type=click.IntRange(1),
              help="Most rows in one request (more: 422, as any request the served OpenAPI refuses). "
                   "Default: as many as always fit in --max-body for the served model's features, "
                   "whatever their values (printed at start).")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Require 'Authorization: Bearer <token>' (the file's content, chmod 600) on every "
                   "path but /healthz; 401 without it.")
@click.option("--unix-socket", type=click.Path(dir_okay=False),
              help="Listen on this Unix socket (mode 0600) instead of --host/--port.")
@click.option("--connection-limit", "connections", default=None, type=click.IntRange(1),
              help="Most connections open at once (default 1000, within the file-descriptor limit); "
                   "more wait in the listen backlog.")
@click.option("--idle-timeout", default=30, show_default=True, type=click.IntRange(1),
              help="Seconds without a byte before an idle connection is closed (slowloris guard).")
@click.option("--poll-interval", default=0.5, show_default=True, type=click.FloatRange(0.01),
              help="Seconds between checks of a sync store's active.json.")
@click.option("--strict", is_flag=True,
              help="Also refuse values outside each feature's training min/max (422).")
@trust_option
def serve(source: str, host: str, port: int, backend: str, http_threads: int,
          model_threads: Optional[int], max_body: int, max_rows: Optional[int],
          token_file: Optional[str], unix_socket: Optional[str], connections: Optional[int],
          idle_timeout: int, poll_interval: float, strict: bool, trust: tuple[str, ...]) -> None:
    """Serve BUNDLE_OR_STORE over HTTP: POST /predict, GET /healthz /readyz /metrics /model /openapi.json.

    Given a sync store (a directory with active.json and versions/), it serves the current
    version (or, if that cannot be served, marks it bad and serves the newest good one), swaps
    to each newly activated version after verifying and golden-checking it, without failing or
    dropping a request, and judges a version on probation by the calls it serves.
    """
    require_extra("waitress", "serve")  # before the bundle is loaded and checked
    from ..server.run import serve as run

    ctx = click.get_current_context()
    if unix_socket and any(ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT
                           for p in ("host", "port")):
        raise click.UsageError("--unix-socket replaces --host/--port: give one or the other")
    apply_trust(trust)  # every load and every swap then requires a signature by these keys

    logging.basicConfig(level=logging.INFO, format="edgert: %(levelname)s %(message)s", stream=sys.stderr)
    service = Service()
    # SIGTERM (systemd, docker, tests) stops the server the same way Ctrl-C does.
    service.install_signal_handlers(interrupt=True)
    try:
        serve_with(service, run, source=source, host=host, port=port, backend=backend,
                   model_threads=model_threads, http_threads=http_threads, max_body=max_body,
                   max_rows=max_rows, poll_interval=poll_interval, strict=strict,
                   token_file=token_file, unix_socket=unix_socket, connections=connections,
                   idle_timeout=idle_timeout)
    except ImportError as exc:  # a ServeConfigError is a usage error: exit 2, by the CLI's handler
        raise click.ClickException(str(exc)) from None
    finally:
        service.close()


def serve_with(service: Service, run: Callable[..., None], *,
               also_healthy: Callable[[], bool] = lambda: True, **options: Any) -> None:
    """``run`` (``server.run.serve``) with its announce line on stderr and as the READY=1
    status; then the service's periodic check asks the bound address's ``/readyz`` (and
    ``also_healthy``), and keeps STATUS naming the version actually served after each swap."""
    from ._service import http_ready

    lines: list[str] = []
    said: list[str] = []

    def announce(line: str) -> None:
        lines.append(line)
        click.echo(line, err=True)

    def ready(url: str, token: Optional[bytes]) -> None:
        def check() -> bool:
            answer = http_ready(url, token)
            if answer is None:
                return False
            now = f"serving {answer.get('model')} {answer.get('version')} on {url}"
            if not said or said[-1] != now:
                said.append(now)
                service.status(now)
            return also_healthy()

        service.ready(lines[-1].removeprefix("edgert: ") if lines else f"serving on {url}",
                      healthy=check)

    run(announce=announce, on_ready=ready, **options)
