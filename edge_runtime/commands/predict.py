"""Device-side commands: predict (streaming), inspect, verify."""

from __future__ import annotations

from typing import Optional

import click

from ._util import apply_trust, echo_json, output_option, require_extra, trust_option

#: Shown by every command that takes --backend; tests/test_cli_grammar.py checks it names
#: every registered backend.
BACKEND_HELP = ("Engine: auto (the fastest installed one that reproduces the golden rows), "
                "native (compiled C, signed bundles only), onnxruntime, litert, numpy, pyodide.")


def register(cli: click.Group) -> None:
    cli.add_command(predict)
    cli.add_command(inspect)
    cli.add_command(verify)


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("input", type=str)
@output_option(default=None, help="Output file ('-' or absent: stdout); written to a temporary "
               "name and renamed, so a failure leaves nothing.")
@click.option("--proba", is_flag=True, help="Also write class probabilities.")
@click.option("--backend", default="auto", show_default=True, help=BACKEND_HELP)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default=None,
              help="Input format (default: from the file name; stdin is CSV).")
@click.option("--output-format", "out_fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default=None,
              help="Output format (default: from the output name, else the input's; stdout: CSV "
                   "for Parquet input).")
@click.option("--id-column", default=None, help="Column passed through to the output unchanged.")
@click.option("--chunk-rows", default=4096, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Rows read, scored and written at a time (memory stays flat).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="Bad rows: stop with the row number, or leave them out and write them to the "
                   "reject file.")
@click.option("--reject-file", default=None,
              help="Where skipped rows go (JSON lines: row, reason, input). Default: OUTPUT.rejects.jsonl.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Processes scoring chunks in parallel (each loads the bundle once); pass the "
                   "core count to use all cores.")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="Engine threads per process (default: the backend's). --threads 1, like every "
                   "--workers process, gives results that do not depend on the chunk size.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: only when stderr is a terminal; needs tqdm).")
@click.option("--strict", is_flag=True,
              help="Also refuse values outside each feature's training min/max (a bad row).")
@trust_option
def predict(bundle: str, input: str, output: Optional[str], proba: bool, backend: str,
            fmt: Optional[str], out_fmt: Optional[str], id_column: Optional[str], chunk_rows: int,
            on_error: str, reject_file: Optional[str], workers: int, threads: Optional[int],
            progress: Optional[bool], strict: bool, trust: tuple[str, ...]) -> None:
    """Score INPUT (CSV with a header, JSON lines, or Parquet; '-' for stdin) in chunks.

    Memory stays flat: CHUNK_ROWS rows are read, scored and written at a time. Output rows keep
    the input order; with --on-error skip, bad rows are left out and listed in the reject file.
    """
    from ..errors import ScoringOptionError
    from ..scoring import ScoreRequest, score_file

    req = ScoreRequest(bundle, input, output, fmt=fmt, out_fmt=out_fmt, proba=proba, backend=backend,
                       id_column=id_column, chunk_rows=chunk_rows, on_error=on_error,
                       reject_file=reject_file, workers=workers, threads=threads, progress=progress,
                       strict=strict)
    if "parquet" in req.formats:  # before the bundle is loaded, not after the first chunk
        require_extra("pyarrow", "parquet")
    try:
        req.check()
        apply_trust(trust)
        done = score_file(req)
    except ScoringOptionError as exc:
        raise click.UsageError(str(exc)) from None
    if done.rejected is not None:
        click.echo(f"edgert: scored {done.rows} of {done.seen} rows; {done.rejected} bad row(s) skipped "
                   f"-> {done.reject_file}", err=True)
    if output not in (None, "-"):
        click.echo(f"wrote {done.rows} rows to {output}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
@trust_option
def inspect(bundle: str, as_json: bool, trust: tuple[str, ...]) -> None:
    """Show a bundle's manifest: schema, parity, artifacts, sizes, opsets, signature."""
    from ..bundle import open_bundle
    from ..signing import describe

    apply_trust(trust)
    b = open_bundle(bundle)
    m = b.manifest
    if as_json:
        echo_json(m.to_json())
        return
    click.echo(f"{m.name} {m.version}  ({m.task}, schema {m.data['schema_version']}, "
               f"created {m.data.get('created', '?')})")
    click.echo(f"estimator: {m.provenance.get('estimator', '?')}")
    nan_ok = [f.name for f in m.features if f.allow_nan]
    click.echo(f"inputs: {len(m.features)} features ({', '.join(m.feature_names[:8])}"
               f"{', …' if len(m.features) > 8 else ''}); NaN allowed in {len(nan_ok)}")
    if m.classes is not None:
        click.echo(f"classes: {m.classes}")
    click.echo("artifacts:")
    for a in m.artifacts:
        p = a.parity
        figs = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in p.items() if k in ("label_agreement", "probabilities_max_abs_diff",
                                                         "prediction_max_abs_diff", "prediction_r2", "rows",
                                                         "passed"))
        opset = ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in sorted(a.opset.items()))
        click.echo(f"  {a.path:<20} {a.format}/{a.precision:<5} {a.size:>9} B  sha256 {a.sha256[:12]}…"
                   f"  opset [{opset}]")
        click.echo(f"    parity: {figs or 'n/a'}")
        how = [f"{k}: {a.extra[k]}" for k in ("strategy", "quantization") if a.extra.get(k)]
        if how:
            click.echo(f"    build: {'; '.join(how)}")
    golden = m.golden or {}
    click.echo(f"golden rows: {len(golden.get('inputs', []))} (atol {golden.get('atol', 'n/a')})")
    versions = m.provenance.get("versions", {})
    if versions:
        click.echo("built with: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    sig = describe(b)
    if not sig["signed"]:
        click.echo("signature: none (unsigned)")
    else:
        verdict = {True: "verifies here", False: "DOES NOT VERIFY", None: "not checked"}[sig["verified"]]
        click.echo(f"signature: model.sig by key {(sig['key'] or '?')[:16]}…; {verdict}: {sig['reason']}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--backend", default="auto", show_default=True,
              help="Also load it on this engine and check the golden rows. " + BACKEND_HELP)
@trust_option
def verify(bundle: str, backend: str, trust: tuple[str, ...]) -> None:
    """Check digests and sizes of every artifact, the signature (with --trust or the device
    policy), then the golden rows on a backend."""
    from ..loader import open_trusted
    from ..signing import describe
    from ..verify import verify_bundle

    apply_trust(trust)
    b = open_trusted(bundle)  # a required signature is checked before the manifest is parsed
    signed = b.signature
    v = verify_bundle(b, backend=backend)
    click.echo(f"ok: {v.artifacts} artifact(s) match their sha256 and size")
    if signed is not None:
        click.echo(f"ok: signature by trusted key {signed.key.short}… ({signed.key.source}) covers "
                   f"{len(signed.digests)} files: {', '.join(sorted(signed.digests))}")
    else:
        sig = describe(b)
        click.echo("signature: " + ("present, not checked (no --trust / EDGERT_TRUST)" if sig["signed"]
                                    else "none (unsigned; not required here)"))
    shown = ", ".join(f"{k}={x:.3g}" for k, x in v.figures.items())
    click.echo(f"ok: golden rows reproduced on {v.backend} ({v.artifact_path}): {shown}")
