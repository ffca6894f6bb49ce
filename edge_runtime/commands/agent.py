"""``edgert agent``: everything an IoT device runs, in one process (one systemd unit): the sync
daemon (the options of ``edgert sync --daemon``) on a thread, optionally the prediction service
on the store (``--port``; it swaps to each activated version and judges its probation), and the
telemetry upload (``--collector``) on another thread. SIGTERM/SIGINT stop it cleanly; under
systemd it speaks sd_notify (READY=1 once serving, STATUS=, WATCHDOG=1 while healthy, STOPPING=1).
"""

from __future__ import annotations

import logging
import random
import sys
import threading
from typing import Any, Callable, Optional

import click

from ..errors import EdgeRuntimeError
from ._service import Service
from ._util import require_extra
from .sync import agent_options, build_agent, interval_option, parse_interval

log = logging.getLogger("edge_runtime.agent")


def register(cli: click.Group) -> None:
    cli.add_command(agent)


class _Worker:
    """A named daemon thread that logs (never hides) the exception that ends it; the watchdog
    stops pinging once a worker is dead, so systemd restarts the process."""

    def __init__(self, name: str, target: Callable[[], None]):
        self.name = name
        self.error: Optional[BaseException] = None
        self._target = target
        self.thread = threading.Thread(target=self._run, name=f"edgert-{name}", daemon=True)

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # noqa: BLE001 - reported, and the process turns unhealthy
            self.error = exc
            log.exception("%s stopped", self.name)

    def alive(self) -> bool:
        return self.thread.is_alive()


def _upload_loop(stop: threading.Event, sink: Any, telemetry_dir: Optional[str], every_s: float,
                 echo: Callable[[str], None]) -> None:
    """Flush the telemetry outbox through ``sink`` now and every ``every_s`` (±10%), respecting
    the uploader's stored backoff, until ``stop``."""
    from ..telemetry.outbox import Outbox
    from ..telemetry.uploader import Uploader

    outbox = Outbox(telemetry_dir)  # opened on this thread: SQLite connections stay on theirs
    try:
        uploader = Uploader(outbox, sink)
        while not stop.is_set():
            try:
                res = uploader.flush(respect_backoff=True)
                if res.batches or res.errors:
                    echo(f"telemetry: {res.batches} batch(es), {res.calls} call(s) uploaded"
                         + (f"; {res.errors[-1]}" if res.errors else ""))
            except EdgeRuntimeError as exc:  # an outbox or sink error: retry next round
                echo(f"telemetry: upload failed: {exc}")
            stop.wait(every_s * random.uniform(0.9, 1.1))
    finally:
        outbox.close()
        sink.close()


@click.command()
@agent_options
@interval_option
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Also serve the store over HTTP on this port (0 = any free port). Default: no server.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --port: address to bind.")
@click.option("--backend", default="auto", show_default=True, help="With --port: backend to serve on.")
@click.option("--threads", "http_threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="With --port: request threads.")
@click.option("--poll-interval", default=0.5, show_default=True, type=click.FloatRange(0.01),
              help="With --port: seconds between checks of the store's active.json.")
@click.option("--collector", default=None, envvar="EDGERT_TELEMETRY_SINK",
              help="Upload the telemetry outbox to this sink: http(s)://host:port/v1/batches or "
                   "mqtt://host:port[/prefix]. Default: no upload.")
@click.option("--token", default=None, envvar="EDGERT_TELEMETRY_TOKEN",
              help="Collector bearer token (HTTP) / password (MQTT); prefer the environment variable.")
@click.option("--upload-interval", default="5m", show_default=True, help="Telemetry upload interval.")
@click.option("--telemetry-dir", default=None, envvar="EDGERT_STATE_DIR", type=click.Path(file_okay=False),
              help="Directory of the telemetry outbox the app writes (default: $EDGERT_STATE_DIR or "
                   "the user data dir; docs/paths.md).")
def agent(interval: str, port: Optional[int], host: str, backend: str, http_threads: int,
          poll_interval: float, collector: Optional[str], token: Optional[str], upload_interval: str,
          telemetry_dir: Optional[str], **options: Any) -> None:
    """Run a device: sync daemon, optional prediction service (--port) and telemetry upload
    (--collector) in one process, until SIGTERM or Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="edgert: %(levelname)s %(message)s", stream=sys.stderr)
    sync_s, upload_s = parse_interval(interval), parse_interval(upload_interval)

    def echo(line: str) -> None:
        click.echo(line, err=True)

    require_extra("tuf", "sync")  # fail now, not on every pass of the daemon thread
    if port is not None:
        require_extra("waitress", "serve")  # fail now, not once a first version has arrived
    sync_agent = build_agent(**options, echo=lambda line: echo(f"sync: {line}"))
    sink = None
    if collector:
        from ..telemetry.sinks import sink_from_url

        sink = sink_from_url(collector, token=token)  # a bad URL fails here, before anything runs
    service = Service()
    stop = service.stop_requested
    service.install_signal_handlers(interrupt=port is not None)
    workers = [_Worker("sync", lambda: sync_agent.daemon(sync_s, stop=stop.is_set, wait=stop.wait))]
    if sink is not None:
        workers.append(_Worker("telemetry", lambda: _upload_loop(stop, sink, telemetry_dir, upload_s, echo)))
    for w in workers:
        w.thread.start()

    def workers_alive() -> bool:
        return all(w.alive() for w in workers)

    try:
        if port is None:
            service.ready(f"syncing {options['repo']} every {interval}"
                          + (", uploading telemetry" if collector else ""),  # no URL: it may hold a password
                          healthy=workers_alive)
            stop.wait()
        else:
            _serve_store(service, sync_agent.store, workers_alive, echo, host=host, port=port,
                         backend=backend, http_threads=http_threads, poll_interval=poll_interval)
    except KeyboardInterrupt:
        pass
    finally:
        service.close()  # STOPPING=1; the workers see the stop and end
        for w in workers:
            w.thread.join(timeout=10)  # then a pass still downloading is cut off: the store
            # stays loadable at every step, as the kill -9 tests prove
        echo("edgert: agent stopped")


def _serve_store(service: Service, store: Any, workers_alive: Callable[[], bool],
                 echo: Callable[[str], None], **options: Any) -> None:
    """Serve the store once it has a servable version (STATUS says what it waits for)."""
    from ..server.run import serve as run
    from .serve import serve_with

    stop = service.stop_requested
    waiting: Optional[str] = None
    while not stop.is_set():
        if store.read_active().get("current"):
            try:
                serve_with(service, run, source=str(store.root), also_healthy=workers_alive, **options)
                return
            except EdgeRuntimeError as exc:  # nothing servable yet: the sync daemon may bring one
                why = f"no servable version in {store.root} yet: {exc}"
        else:
            why = f"waiting for a first version in {store.root}"
        if why != waiting:
            waiting = why
            echo(f"edgert: {why}")
            service.status(why)
        stop.wait(2.0)
