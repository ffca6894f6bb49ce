"""``edgert bench`` (latency, cold start, throughput, memory) and ``edgert profiles``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from ._util import AliasedOption, require_extra


def register(cli: click.Group) -> None:
    cli.add_command(bench)
    cli.add_command(profiles)


def _ints(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected comma-separated row counts") from None
    if not out or min(out) < 1:
        raise click.BadParameter("batch sizes must be ≥ 1")
    return out


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--backend", "backends", default="all", show_default=True,
              help="Comma-separated engines (native, onnxruntime, litert, numpy, pyodide) or 'all' "
                   "(every one installed, or the profile's).")
@click.option("--batch", "batches", default="1,32,1024", show_default=True,
              help="Comma-separated batch sizes (rows) for the throughput runs.")
@click.option("--profile", default=None,
              help="Device profile name or .toml path: threads, backends, budgets (exit 3 when one "
                   "is missed; a warning when this machine is not that device).")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Engine threads (default: the profile's, else the engine's).")
@click.option("--cold-runs", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Fresh processes timed for cold start (import + load + first prediction).")
@click.option("--seconds", type=click.FloatRange(0.05, 60), default=2.0, show_default=True,
              help="Time box for the warm single-row loop of each backend.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV rows to use instead of the bundle's golden rows.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False), default=None,
              help="MODEL.joblib: also time scikit-learn's own predict (trusted files only).")
@click.option("--tune", is_flag=True,
              help="Also tune row-count routing for backend=auto and cache it for this bundle + profile.")
@click.option("--json-output", "--json", "json_out", type=click.Path(dir_okay=False), default=None,
              cls=AliasedOption, hidden_names=("--json",),
              help="Also write the report as JSON (schema edgert-bench/1) to this file.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Also draw latency, throughput, cold start and memory (with the profile's "
                   "budgets) to this PNG (needs the plot extra).")
def bench(bundle: str, backends: str, batches: str, profile: Optional[str], threads: Optional[int],
          cold_runs: int, seconds: float, data: Optional[str], baseline: Optional[str],
          tune: bool, json_out: Optional[str], plot_out: Optional[str]) -> None:
    """Measure cold start, warm latency percentiles, throughput and memory of BUNDLE."""
    from ..latency.render import plot_report, print_report
    from ..latency.runner import BenchConfig, machine_info, machine_mismatch, run_bench, write_json
    from ..profiles import load_profile

    if plot_out:  # before minutes of benchmarking, not after
        require_extra("matplotlib", "plot")
    estimator = None
    if baseline:
        require_extra(("joblib", "sklearn"), "convert")
        from converters.boosting import load_model_file

        estimator = load_model_file(baseline)
    batch_sizes = _ints(batches)
    prof = load_profile(profile) if profile else None
    if prof is not None:
        mismatch = machine_mismatch(prof, machine_info())
        if mismatch:
            click.echo(f"edgert: warning: {mismatch}", err=True)
    rows = None
    if data:
        from ..bundle import open_bundle
        from ..scoring import read_csv_rows

        rows = read_csv_rows(data, open_bundle(bundle).manifest.feature_names)
    progress, stop = _progress()
    cfg = BenchConfig(backends=[b.strip() for b in backends.split(",") if b.strip()],
                      batches=batch_sizes, cold_runs=cold_runs, warm_seconds=seconds,
                      threads=threads, profile=prof, data=rows, baseline=estimator, progress=progress)
    try:
        report = run_bench(bundle, cfg)
    finally:
        stop()
    print_report(report, click.echo)
    if tune:
        report["routing"] = _tune(bundle, prof)
    if json_out:
        write_json(report, Path(json_out))
        click.echo(f"wrote {json_out}")
    if plot_out:
        plot_report(report, Path(plot_out))
        click.echo(f"wrote {plot_out}")
    if any(not (b["latency_ok"] and b["memory_ok"]) for b in report.get("budgets") or []):
        sys.exit(3)


def _tune(bundle: str, prof) -> dict:
    from ..backends import candidates
    from ..bundle import open_bundle
    from ..routing import cache_path, tune

    b = open_bundle(bundle)
    first = next(iter(candidates(b, prof)), None)  # the primary artifact, as load() picks it
    if first is None:
        raise click.UsageError("--tune: no engine installed here runs this bundle")
    table = tune(b, first.artifact, profile=prof)
    click.echo("routing for backend=auto (fastest engine:threads per row count, median time):")
    for n, key in table["best"].items():
        click.echo(f"  {int(n):>6} rows → {key:<16} {table['timings_s'][key][n] * 1e3:.3f} ms")
    click.echo(f"cached in {cache_path(b, prof.name if prof else None)}")
    return table


def _progress():
    """A rich status line on a terminal, plain lines on stderr otherwise."""
    if sys.stderr.isatty():
        try:
            from rich.console import Console

            status = Console(stderr=True).status("benchmarking…")
            status.start()
            return (lambda msg: status.update(msg)), status.stop
        except ImportError:
            pass
    return (lambda msg: click.echo(f"… {msg}", err=True)), (lambda: None)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def profiles(as_json: bool) -> None:
    """List device profiles (built-in and yours in $EDGERT_PROFILES_DIR)."""
    from ..profiles import list_profiles

    items = list_profiles()
    if as_json:
        from dataclasses import asdict

        from ._util import echo_json

        echo_json([asdict(p) for p in items])
        return
    for p in items:
        click.echo(f"{p.name:<22} {p.arch:<8} {p.cores} cores {p.memory_mb:>6} MB  threads={p.threads} "
                   f"{p.precision:<5} backends={','.join(p.backends)}  p99≤{p.latency_budget_ms:g} ms "
                   f"mem≤{p.memory_budget_mb:g} MB")
