"""Device-side commands: predict (streaming), inspect, verify."""

from __future__ import annotations

from typing import Optional

import click

from ._util import echo_json


def register(cli: click.Group) -> None:
    cli.add_command(predict)
    cli.add_command(inspect)
    cli.add_command(verify)


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("input", type=str)
@click.option("-o", "--output", default=None, help="Output file ('-' or absent: stdout).")
@click.option("--proba", is_flag=True, help="Also write class probabilities.")
@click.option("--backend", default="auto", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None,
              help="Input/output format (default: from the file name; stdin is CSV).")
@click.option("--id-column", default=None, help="Column passed through to the output unchanged.")
@click.option("--chunk-rows", default=4096, show_default=True, type=click.IntRange(1, 1_000_000))
def predict(bundle: str, input: str, output: Optional[str], proba: bool, backend: str,
            fmt: Optional[str], id_column: Optional[str], chunk_rows: int) -> None:
    """Score INPUT (CSV with a header, or JSON lines; '-' for stdin) in chunks."""
    from .. import load
    from ..errors import InputError
    from ..scoring import (
        ResultWriter,
        detect_format,
        open_text_in,
        open_text_out,
        read_csv_chunks,
        read_jsonl_chunks,
    )

    model = load(bundle, backend=backend)
    fmt = detect_format(input, fmt)
    features = model.feature_names
    if proba and model.task != "classification":
        raise click.UsageError("--proba needs a classification model")
    fin = open_text_in(input)
    fout = open_text_out(output)
    try:
        chunks = (read_csv_chunks(fin, features, id_column=id_column, chunk_rows=chunk_rows)
                  if fmt == "csv" else read_jsonl_chunks(fin, id_column=id_column, chunk_rows=chunk_rows))
        writer = ResultWriter(fout, fmt, classes=model.manifest.classes, proba=proba,
                              task=model.task, id_column=id_column)
        for chunk in chunks:
            try:
                values = model.predict(chunk.rows)
                probs = model.predict_proba(chunk.rows) if proba else None
            except InputError as exc:
                raise InputError(f"input rows {chunk.first_row + 1}–{chunk.first_row + len(chunk.rows)}"
                                 f": {exc}") from None
            writer.write(chunk, values, probs)
    finally:
        if fin is not click.get_text_stream("stdin"):
            fin.close()
        if output not in (None, "-"):
            fout.close()


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
def inspect(bundle: str, as_json: bool) -> None:
    """Show a bundle's manifest: schema, parity, artifacts, sizes, opsets."""
    from ..bundle import open_bundle

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
                                                         "prediction_max_abs_diff", "rows", "passed"))
        opset = ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in sorted(a.opset.items()))
        click.echo(f"  {a.path:<20} {a.format}/{a.precision:<5} {a.size:>9} B  sha256 {a.sha256[:12]}…"
                   f"  opset [{opset}]")
        click.echo(f"    parity: {figs or 'n/a'}")
    golden = m.golden or {}
    click.echo(f"golden rows: {len(golden.get('inputs', []))} (atol {golden.get('atol', 'n/a')})")
    versions = m.provenance.get("versions", {})
    if versions:
        click.echo("built with: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--backend", default="auto", show_default=True,
              help="Also load it on this backend and check the golden rows.")
def verify(bundle: str, backend: str) -> None:
    """Check digests and sizes of every artifact, then the golden rows on a backend."""
    from .. import load
    from ..bundle import open_bundle

    b = open_bundle(bundle)
    b.verify()
    click.echo(f"ok: {len(b.manifest.artifacts)} artifact(s) match their sha256 and size")
    model = load(b, backend=backend, verify=False)
    figures = model.check_golden()
    shown = ", ".join(f"{k}={v:.3g}" for k, v in figures.items())
    click.echo(f"ok: golden rows reproduced on {model.backend.name} ({model.artifact.path}): {shown}")
