"""Device-side commands: predict (streaming), inspect, verify."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional

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
    from .. import load
    from ..errors import InputError
    from ..fsutil import atomic_output
    from ..scoring import detect_format, open_text_in, open_text_out

    fmt = detect_format(input, fmt)
    if out_fmt is None:
        out_fmt = detect_format(output, None) if output not in (None, "-") else fmt
        if out_fmt == "parquet" and output in (None, "-"):
            out_fmt = "csv"
    if "parquet" in (fmt, out_fmt):  # before the bundle is loaded, not after the first chunk
        require_extra("pyarrow", "parquet")
    if fmt == "parquet" and input == "-":
        raise click.UsageError("Parquet input must be a file, not stdin")
    if out_fmt == "parquet" and output in (None, "-"):
        raise click.UsageError("Parquet output needs a file (-o out.parquet)")
    if on_error == "skip" and reject_file is None:
        if output in (None, "-"):
            raise click.UsageError("--on-error skip writing to stdout needs --reject-file")
        reject_file = f"{output}.rejects.jsonl"
    apply_trust(trust)
    model = load(bundle, backend=backend, threads=1 if workers > 1 else threads)
    if strict:  # a bundle without training min/max would refuse every row: say so once, up front
        from ..inputs import InputSchema

        InputSchema(model.manifest.features).require_training()
    if proba and model.task != "classification":
        raise click.UsageError("--proba needs a classification model")
    features = model.feature_names
    with contextlib.ExitStack() as files:
        # files are written under a temporary name and renamed only when every row is scored
        fin = None if fmt == "parquet" else open_text_in(input)
        if fin is not None and input != "-":
            files.callback(fin.close)
        fout = (open_text_out(None) if output in (None, "-")
                else files.enter_context(atomic_output(output, binary=out_fmt == "parquet")))
        frej = (files.enter_context(atomic_output(reject_file, binary=False)) if reject_file else None)
        rows, seen, rejected = _score(
            model, bundle, backend, input, fmt, out_fmt, fin, fout, frej, id_column, chunk_rows,
            on_error, workers, proba, strict, progress, features)
        if seen == 0:
            raise InputError(f"{input}: no data rows (an empty input is refused, not scored)")
    if rejected is not None:
        click.echo(f"edgert: scored {rows} of {seen} rows; {rejected} bad row(s) skipped "
                   f"-> {reject_file}", err=True)
    if output not in (None, "-"):
        click.echo(f"wrote {rows} rows to {output}")


def _score(model: Any, bundle: str, backend: str, input: str, fmt: str, out_fmt: str, fin: Any,
           fout: Any, frej: Any, id_column: Optional[str], chunk_rows: int, on_error: str,
           workers: int, proba: bool, strict: bool, progress: Optional[bool],
           features: list[str]) -> tuple[int, int, Optional[int]]:
    """Score the open input into the open output: (rows written, rows read, rows rejected or
    None without a reject file)."""
    from ..scoring import (
        RejectWriter,
        ResultWriter,
        TextJob,
        parquet_row_count,
        position_reader,
        progress_bar,
        read_csv_chunks,
        read_jsonl_chunks,
        read_parquet_chunks,
        score_stream,
        score_text_parallel,
    )

    bar = None
    writer = None
    try:
        if fin is None:
            chunks = read_parquet_chunks(input, features, id_column=id_column, chunk_rows=chunk_rows,
                                         schema=model.input_schema)
            bar = progress_bar(progress, total=parquet_row_count(input), unit="row")
            pos = None
        else:
            chunks = (read_csv_chunks(fin, features, id_column=id_column, chunk_rows=chunk_rows,
                                      schema=model.input_schema)
                      if fmt == "csv" else
                      read_jsonl_chunks(fin, id_column=id_column, chunk_rows=chunk_rows))
            size = Path(input).stat().st_size if input != "-" else None
            bar = progress_bar(progress, total=size, unit="B")
            pos = position_reader(fin)
        writer = ResultWriter(fout, out_fmt, classes=model.manifest.classes, proba=proba,
                              task=model.task, id_column=id_column)
        rejects = RejectWriter(frej) if frej else None
        if workers > 1 and fin is not None:
            # text input: workers parse, score and format; this process splits lines and writes
            job = TextJob(bundle=bundle, backend=backend, fmt=fmt, out_fmt=out_fmt, header_line="",
                          features=features, id_column=id_column, proba=proba, on_error=on_error,
                          strict=strict)
            results: Iterator[tuple[Any, list[Any], int, int]] = score_text_parallel(
                fin, job, workers=workers, chunk_rows=chunk_rows)
        else:
            results = ((sc, sc.rejects, sc.rows_in, len(sc.values)) for sc in score_stream(
                chunks, model=model, bundle=bundle, backend=backend, workers=workers, proba=proba,
                on_error=on_error, strict=strict))
        seen = 0
        for result, bad, rows_in, rows_out in results:
            if isinstance(result, str):
                writer.write_text(result, rows_out)
            elif rows_out:
                writer.write(result, result.values, result.probabilities)
            if rejects is not None and bad:
                rejects.write(bad)
            seen += rows_in
            if bar is not None:
                if pos is None:
                    bar.update(rows_in)
                else:
                    at = pos()
                    if at is not None:
                        bar.update(max(0, min(at, bar.total or at) - bar.n))
                bar.set_postfix(rows=seen, refresh=False)
        writer.close()
        return writer.rows, seen, rejects.count if rejects is not None else None
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()



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
    from ..bundle import open_bundle
    from ..signing import describe, enforce
    from ..verify import verify_bundle

    apply_trust(trust)
    b = open_bundle(bundle)
    signed = enforce(b)  # a required signature is checked before any engine sees a byte
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
