"""``edgert collector``: the fleet side (receive, store, report, check).

The ``collector`` package is imported inside each command, so a device install without the
``collector`` extra gets one line naming it instead of a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import click

from ._service import Service
from ._util import echo_json

if TYPE_CHECKING:  # imported inside the commands: a device install may lack it
    from collector import Collector


def register(cli: click.Group) -> None:
    cli.add_command(collector)


_DB_HELP = ("Collector database: a file path or sqlite:///path (SQLite), or postgresql://... "
            "(PostgreSQL, shared by several collectors; prefer EDGERT_COLLECTOR_DB for passwords).")


def _sqlite_file(db: str) -> Optional[str]:
    """The file of a SQLite database (a path or sqlite:///path); None for a server URL."""
    if "://" in db and not db.startswith("sqlite:"):
        return None
    return db[len("sqlite:///"):] if db.startswith("sqlite:///") else db


def _existing_db(db: Optional[str]) -> str:
    """A database to read: a URL as given, a SQLite file only if it exists (a report must not
    create an empty database and print nothing)."""
    if db is None:
        raise click.UsageError("--db must name an existing collector database")
    path = _sqlite_file(db)
    if path is not None and not Path(path).is_file():
        raise click.UsageError(f"--db must name an existing collector database ({path} is not a file)")
    return db


@click.group(invoke_without_command=True)
@click.option("--db", default=None, envvar="EDGERT_COLLECTOR_DB", help=_DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0 = any free port).")
@click.option("--token", default=None, envvar="EDGERT_COLLECTOR_TOKEN",
              help="Require this bearer token (prefer the environment variable).")
@click.option("--mqtt", default=None, metavar="HOST:PORT",
              help="Also take batches from this MQTT broker (QoS 1).")
@click.option("--mqtt-prefix", default="edgert/telemetry", show_default=True,
              help="MQTT topic prefix the devices publish under.")
@click.option("--mqtt-group", default="edgert-collectors", show_default=True,
              help="MQTT 5 shared-subscription group: collectors in one group split the topic.")
@click.option("--mqtt-client-id", default=None,
              help="MQTT session name (default edgert-collector-<hostname>); give each collector "
                   "of a group its own, stable across restarts.")
@click.option("--no-http", is_flag=True, help="MQTT only.")
@click.pass_context
def collector(ctx: click.Context, db: Optional[str], host: str, port: int, token: Optional[str],
              mqtt: Optional[str], mqtt_prefix: str, mqtt_group: str,
              mqtt_client_id: Optional[str], no_http: bool) -> None:
    """Reference collector: receive, deduplicate and store batches (``report`` to read them)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = dict(ctx.obj or {}, collector_db=db)
        return
    if db is None:
        raise click.UsageError("--db is required")
    from collector import Collector, CollectorStoreError, redact_url

    broker = None
    if mqtt:
        h, _, p = mqtt.rpartition(":")
        if not h or not p.isdigit():
            raise click.BadParameter("expected HOST:PORT", param_hint="--mqtt")
        broker = (h, int(p))
    service = Service()
    # SIGTERM (systemd, docker) stops it like Ctrl-C: receivers closed, connections released
    service.install_signal_handlers(interrupt=True)
    coll: Optional[Collector] = None
    try:
        try:
            coll = Collector(db, host=host, port=port, token=token, mqtt=broker,
                             mqtt_prefix=mqtt_prefix, http=not no_http, mqtt_group=mqtt_group,
                             mqtt_client_id=mqtt_client_id)
            coll.start()
        except (CollectorStoreError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        where = f"http://{host}:{coll.port}/v1/batches" if not no_http else None
        click.echo(json.dumps({"listening": where, "mqtt": mqtt,
                               "db": redact_url(coll.store.url)}), err=True)
        sys.stderr.flush()
        started = coll
        service.ready(f"collecting on {where or mqtt}", healthy=lambda: _db_answers(started))
        coll.serve_forever()
    except KeyboardInterrupt:  # the signal may come at any point once the handlers are in
        pass
    finally:
        if coll is not None:
            coll.stop()
        service.close()


def _db_answers(coll: Collector) -> bool:
    """The watchdog's health check: the database answers a query."""
    try:
        coll.store.counts()
        return True
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return False


def _threshold_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``check`` thresholds, shared by ``report --check`` and ``alerts``."""
    for opt in reversed([
            click.option("--max-psi", type=float, default=0.2, show_default=True,
                         help="Largest PSI of a feature before it counts as drifted."),
            click.option("--min-rows", type=int, default=200, show_default=True,
                         help="Rows a feature needs before drift is judged."),
            click.option("--max-error-rate", type=float, default=0.05, show_default=True,
                         help="Largest share of failed calls."),
            click.option("--max-p99-ms", type=float, default=None, help="Largest p99 latency in ms."),
            click.option("--max-accuracy-drop", type=float, default=0.05, show_default=True,
                         help="Largest accuracy drop on feedback labels."),
            click.option("--min-feedback", type=int, default=30, show_default=True,
                         help="Feedback labels needed before accuracy is judged.")]):
        f = opt(f)
    return f


def _sqlite_path(ctx: click.Context, db: Optional[str]) -> str:
    """The SQLite file ``alerts`` keeps its state in (PostgreSQL is not supported there yet)."""
    path = _sqlite_file(_existing_db(db or (ctx.obj or {}).get("collector_db")))
    if path is None:
        raise click.UsageError("--db: `collector alerts` keeps its state in a SQLite collector database; "
                               "PostgreSQL is not supported for alerts yet")
    return path


@collector.command()
@click.option("--db", default=None, envvar="EDGERT_COLLECTOR_DB", help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--check", is_flag=True, help="Exit 1 with one line per threshold breach.")
@_threshold_options
@click.pass_context
def report(ctx: click.Context, db: Optional[str], as_json: bool, check: bool, max_psi: float,
           min_rows: int, max_error_rate: float, max_p99_ms: Optional[float],
           max_accuracy_drop: float, min_feedback: int) -> None:
    """Per model version: calls, error rate, latency, accuracy, shadow agreement, drift."""
    from collector import CollectorStore, CollectorStoreError, Thresholds
    from collector import check as run_check

    db = _existing_db(db or (ctx.obj or {}).get("collector_db"))
    try:
        store = CollectorStore(db)
    except CollectorStoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        rep = store.report(psi_threshold=max_psi, min_rows=min_rows)
    finally:
        store.close()
    if as_json:
        echo_json(rep)
    else:
        _print_report(rep)
    if check:
        breaches = run_check(rep, Thresholds(max_psi=max_psi, min_rows=min_rows,
                                             max_error_rate=max_error_rate, max_p99_ms=max_p99_ms,
                                             max_accuracy_drop=max_accuracy_drop,
                                             min_feedback=min_feedback))
        for line in breaches:
            click.echo(f"BREACH {line}", err=True)
        if breaches:
            sys.exit(1)


@collector.command()
@click.option("--db", default=None, envvar="EDGERT_COLLECTOR_DB",
              help="Collector database (a SQLite file; default: the group's --db).")
@click.option("--webhook", default=None, metavar="URL",
              help="Send Alertmanager webhook notifications (version 4) to this receiver.")
@click.option("--alertmanager", default=None, metavar="URL",
              help="Or push the alerts to this Alertmanager (its base URL; POST /api/v2/alerts).")
@click.option("--webhook-token", default=None, envvar="EDGERT_WEBHOOK_TOKEN",
              help="Bearer token for the webhook (prefer the environment variable).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds between evaluations.")
@click.option("--window", type=click.FloatRange(min=0, min_open=True), default=3600.0,
              show_default=True, help="Judge the batches received in the last this many seconds.")
@click.option("--once", is_flag=True, help="Evaluate once and exit (1 if the webhook failed).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Seconds to wait for the webhook.")
@_threshold_options
@click.pass_context
def alerts(ctx: click.Context, db: Optional[str], webhook: Optional[str],
           alertmanager: Optional[str], webhook_token: Optional[str],
           interval: float, window: float, once: bool, timeout: float, max_psi: float,
           min_rows: int, max_error_rate: float, max_p99_ms: Optional[float],
           max_accuracy_drop: float, min_feedback: int) -> None:
    """Send firing/resolved alerts when thresholds are breached: to a webhook (Alertmanager's
    notification format) or to an Alertmanager (state kept in the collector database, so a
    restart does not fire again)."""
    import time

    from collector import Alerter, Thresholds

    from ..errors import AlertDeliveryError

    t = Thresholds(max_psi=max_psi, min_rows=min_rows, max_error_rate=max_error_rate,
                   max_p99_ms=max_p99_ms, max_accuracy_drop=max_accuracy_drop,
                   min_feedback=min_feedback)
    if (webhook is None) == (alertmanager is None):
        raise click.UsageError("give one of --webhook URL or --alertmanager URL")
    try:
        alerter = Alerter(_sqlite_path(ctx, db), webhook or alertmanager or "", thresholds=t,
                          window_s=window, timeout_s=timeout, token=webhook_token,
                          to="webhook" if webhook else "alertmanager", resend_s=interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--webhook" if webhook else "--alertmanager") from None
    try:
        while True:
            try:
                r = alerter.evaluate()
                click.echo(json.dumps({"fired": [a.labels for a in r.fired],
                                       "resolved": [a.labels for a in r.resolved],
                                       "active": r.active}))
            except AlertDeliveryError as exc:
                click.echo(f"alerts: {exc} (retried next round)", err=True)
                if once:
                    sys.exit(1)
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        alerter.close()


def _ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v * 1e6:.3g}us" if v < 1e-3 else f"{v * 1000:.3g}ms"


def _print_report(rep: dict) -> None:
    click.echo(f"devices: {rep['devices']}  dropped windows: {rep['dropped']['segments']} "
               f"({rep['dropped']['calls']} calls)")
    for v in rep["versions"]:
        lat = v["latency_s"]
        fb = v["feedback"]
        acc = "-" if fb["accuracy"] is None else f"{fb['accuracy']:.2%} of {fb['n']}"
        kinds = "".join(f", {k} {n}" for k, n in sorted(v["errors_by_kind"].items()))
        click.echo(f"{v['model']}@{v['version']}: calls {v['calls']} rows {v['rows']} "
                   f"errors {v['errors']} ({v['error_rate']:.2%}{kinds}) lost {v['lost']} "
                   f"p50 {_ms(lat['p50'])} p90 {_ms(lat['p90'])} p99 {_ms(lat['p99'])} "
                   f"accuracy {acc}")
        for cand, s in v["shadow"].items():
            click.echo(f"  shadow {cand}: agreement {s['agreement']:.2%} of {s['n']}")
        if v["drift"]:
            drifted = [k for k, d in v["drift"].items() if d["drift"]]
            click.echo(f"  drift: {', '.join(drifted) if drifted else 'none'} "
                       f"({len(v['drift'])} features checked; PSI per feature, ! = drifted)")
            cells = [f"{k}={'-' if d['psi'] is None else format(d['psi'], '.3f')}"
                     f"{'!' if d['drift'] else ''}" for k, d in v["drift"].items()]
            for i in range(0, len(cells), 4):
                click.echo("    " + "  ".join(cells[i:i + 4]))
