"""Device telemetry commands: ``edgert telemetry status|flush``."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ._util import echo_json, require_extra


def register(cli: click.Group) -> None:
    cli.add_command(telemetry)


_state_dir = click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                          envvar="EDGERT_STATE_DIR",
                          help="Device state directory (default: $EDGERT_STATE_DIR or the "
                               "user data dir; docs/paths.md).")


@click.group()
def telemetry() -> None:
    """Device side: the outbox and its upload."""


@telemetry.command()
@_state_dir
def status(state_dir: Optional[str]) -> None:
    """Show what waits in the outbox."""
    from ..telemetry.outbox import Outbox

    ob = Outbox(state_dir)
    try:
        echo_json(ob.stats())
    finally:
        ob.close()


@telemetry.command()
@_state_dir
@click.option("--sink", required=True, envvar="EDGERT_TELEMETRY_SINK",
              help="http(s)://host:port/v1/batches or mqtt://host:port[/prefix].")
@click.option("--token", default=None, envvar="EDGERT_TELEMETRY_TOKEN",
              help="Bearer token (HTTP) / password (MQTT); prefer the environment variable.")
@click.option("--max-batches", type=click.IntRange(1), default=None, help="Stop after N batches.")
@click.option("--max-attempts", type=click.IntRange(1), default=5, show_default=True,
              help="Consecutive failures tolerated (with backoff) before giving up.")
@click.option("--batch-segments", type=click.IntRange(1), default=50, show_default=True,
              help="Most outbox windows per uploaded batch.")
@click.option("--batch-bytes", type=click.IntRange(1024), default=512 * 1024, show_default=True,
              help="Largest uploaded batch in bytes.")
@click.option("--base-delay", type=float, default=1.0, show_default=True,
              help="Backoff base in seconds (doubles per failure, with jitter).")
@click.option("--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds to wait for one batch's acknowledgement.")
@click.option("--max-time", type=click.FloatRange(0.1), default=300.0, show_default=True,
              help="Seconds the whole flush may take, backoff sleeps included.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def flush(state_dir: Optional[str], sink: str, token: Optional[str], max_batches: Optional[int],
          max_attempts: int, batch_segments: int, batch_bytes: int, base_delay: float,
          timeout: float, max_time: float, quiet: bool) -> None:
    """Upload the outbox; delete only acknowledged batches.

    Prints a JSON summary on stdout and a progress line per batch or failure on stderr. Exit 1
    if some remain unsent; a refused token (HTTP 401/403) stops at once with one error line.
    """
    from ..telemetry.outbox import Outbox
    from ..telemetry.sinks import SinkAuthError, sink_from_url
    from ..telemetry.uploader import Uploader

    if sink.startswith("mqtt"):  # before the outbox is opened, not when a first batch is sent
        require_extra("paho.mqtt.client", "telemetry")
    ob = Outbox(state_dir)
    try:
        up = Uploader(ob, sink_from_url(sink, token=token, timeout_s=timeout),
                      batch_segments=batch_segments, batch_bytes=batch_bytes,
                      base_delay_s=base_delay)
        res = up.flush(max_batches, max_attempts=max_attempts, respect_backoff=False,
                       max_time_s=max_time,
                       progress=None if quiet else lambda line: click.echo(f"flush: {line}", err=True))
    finally:
        ob.close()
    echo_json({"batches": res.batches, "segments": res.segments, "calls": res.calls,
               "failures": res.failures, "errors": res.errors,
               "rejected": res.rejected, "rejections": res.rejections,
               "remaining_segments": res.remaining_segments, "timed_out": res.timed_out})
    if res.fatal is not None:
        raise SinkAuthError(res.fatal)
    if res.retry_after_s is not None:
        sys.exit(1)
