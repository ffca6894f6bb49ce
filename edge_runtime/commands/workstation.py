"""Workstation commands: convert, wrap, demo. They need ``pip install 'edge-runtime[convert]'``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import click

from ._util import output_option, require_converters, require_extra


def register(cli: click.Group) -> None:
    cli.add_command(convert)
    cli.add_command(wrap)
    cli.add_command(demo)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--sample", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with a header: rows like the model's input (stats, golden rows, parity); "
              "columns are matched by name to the model's features when it has names.")
@output_option("out_dir", required=True, type=click.Path(file_okay=False),
               help="Bundle directory to write.")
@click.option("--name", default=None, help="Model name in the manifest (default: from the estimator).")
@click.option("--version", "version", default="1.0.0", show_default=True,
              help="Model version in the manifest (semver).")
@click.option("--format", "formats", default="onnx", show_default=True,
              help="Comma-separated artifact formats (onnx, tflite, native).")
@click.option("--precision", "precisions", default="fp32", show_default=True,
              help="Comma-separated precisions (fp32, fp16, int8); a pair this model cannot have "
                   "(ONNX int8 of a forest) is skipped with a note.")
@click.option("--holdout", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV of held-out rows for parity (default: 25% of --sample).")
@click.option("--target", default=None,
              help="Column of the CSVs that holds the label: not a feature; its class shares go into the bundle. "
              "With --format native, a list of architectures that is no column of --sample means --arch.")
@click.option("--arch", "arches", default=None,
              help="native: comma-separated architectures to build a library for (x86_64, aarch64, armv7; "
              "default: this machine's).")
@click.option("--tolerance", default=1e-4, show_default=True, type=float,
              help="Largest |Δ| of probabilities/predictions against the estimator on held-out rows.")
@click.option("--min-quantized-agreement", "quantized_agreement", default=0.99, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="fp16/int8 artifacts are refused below this label agreement (R² for regressors).")
@click.option("--quantization", type=click.Choice(["dynamic", "static"]), default="dynamic", show_default=True,
              help="int8 scheme: dynamic (int8 weights) or static (integer layers, ranges calibrated on --sample).")
@click.option("--force", is_flag=True, help="Write the bundle even when parity is missed.")
@click.option("--sign-key", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM private key (ECDSA) that signs the bundle (same as `edgert sign`).")
def convert(model: str, sample: str, out_dir: str, name: Optional[str], version: str, formats: str,
            precisions: str, holdout: Optional[str], target: Optional[str], arches: Optional[str],
            tolerance: float, quantized_agreement: float, quantization: str, force: bool,
            sign_key: Optional[str]) -> None:
    """Convert a fitted MODEL into a bundle: scikit-learn (.joblib/.pkl, trusted files only),
    LightGBM (model.txt), XGBoost (.json/.ubj) or CatBoost (.cbm)."""
    conv = require_converters()
    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    if "tflite" in fmts:
        require_extra("flatbuffers", "litert")
    from converters.boosting import load_model_file
    from converters.tabular import read_csv_labels, read_csv_table

    if arches is None and target and "native" in fmts and _names_architectures(target, sample):
        arches, target = target, None  # `--format native --target x86_64,aarch64` (issue 17's spelling)
    estimator = load_model_file(model)
    # Named tables: columns are matched by name against the model's features (any order).
    X = read_csv_table(sample, target=target)
    y = read_csv_labels(sample, target) if target else None  # training class shares
    H = read_csv_table(holdout, target=target) if holdout else None
    out = conv.convert(estimator, X, out_dir, name=name, version=version,
                       formats=fmts, targets=arches,
                       precisions=tuple(p.strip() for p in precisions.split(",") if p.strip()),
                       holdout=H, tolerance=tolerance, quantized_agreement=quantized_agreement,
                       quantization=quantization, force=force, sign_with=sign_key, sample_y=y)
    _summary(out)


def _names_architectures(value: str, sample: str) -> bool:
    """``value`` lists only architecture names and none is a column of the ``sample`` CSV."""
    import csv

    from ..native_abi import ARCHES

    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names or any(n not in ARCHES for n in names):
        return False
    with open(sample, newline="", encoding="utf-8") as fh:
        header = {h.strip() for h in next(csv.reader(fh), [])}
    return not header.intersection(names)


def _summary(out: Path) -> None:
    from ..bundle import open_bundle

    m = open_bundle(out).manifest
    click.echo(f"wrote {out}: {m.name} {m.version} ({m.task}, {len(m.features)} features)")
    for a in m.artifacts:
        p = a.parity
        figs = [f"labels {p['label_agreement']:.2%}" if "label_agreement" in p else None,
                f"max |Δp| {p['probabilities_max_abs_diff']:.2e}" if "probabilities_max_abs_diff" in p
                else None,
                f"max |Δy| {p['prediction_max_abs_diff']:.2e}" if "prediction_max_abs_diff" in p else None,
                f"R² {p['prediction_r2']:.4f}" if "prediction_r2" in p else None]
        arch = f" [{a.extra['arch']}, {p.get('backend', '')}]" if a.format == "native" else ""
        click.echo(f"  {a.path} {a.format}/{a.precision}{arch} {a.size} B: parity on {p.get('rows', '?')} rows: "
                   + ", ".join(f for f in figs if f)
                   + ("" if p.get("passed", True) else "  [FAILED, forced]"))
    matched = (m.data.get("inputs") or {}).get("matched_by")
    if matched == "name":
        click.echo("  columns matched by name to the model's features")
    elif matched == "position":
        click.echo("  columns taken by position: the estimator was fitted without column names, so "
                   "--sample must list them in training order")
    for skip in m.provenance.get("skipped") or []:
        click.echo(f"  skipped {skip.get('artifact')}: {skip.get('reason')}")
    golden = m.golden or {}
    note = (golden.get("selection") or {}).get("note")
    click.echo(f"  golden rows: {len(golden.get('inputs') or [])}" + (f" ({note})" if note else ""))


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--sample", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with a header: rows like the model's input (golden rows, statistics).")
@output_option("out_dir", required=True, type=click.Path(file_okay=False),
               help="Bundle directory to write.")
@click.option("--name", default=None, help="Model name in the manifest (default: the file's name).")
@click.option("--version", "version", default="1.0.0", show_default=True,
              help="Model version in the manifest (semver).")
@click.option("--classes", default=None, help="Comma-separated class labels, in output order.")
@click.option("--target", default=None, help="Column of the CSV that holds the label: not a feature.")
def wrap(model: str, sample: str, out_dir: str, name: Optional[str], version: str,
         classes: Optional[str], target: Optional[str]) -> None:
    """Bundle a MODEL.onnx exported by another tool (schema and golden rows from the model)."""
    require_converters()
    from converters.tabular import read_csv_matrix
    from converters.wrap import wrap as do_wrap

    X, names = read_csv_matrix(sample, target=target)
    cls: Optional[list[Union[int, str]]] = None
    if classes:  # integer-looking labels are the model's integer classes
        cls = [int(c) if c.lstrip("-").isdigit() else c for c in (c.strip() for c in classes.split(","))]
    _summary(do_wrap(model, X, out_dir, name=name, version=version, feature_names=names, classes=cls))


@click.command()
@output_option("out_dir", default="demo-bundle", show_default=True, type=click.Path(file_okay=False),
               help="Bundle directory to write.")
@click.option("--model", "kind", type=click.Choice(["logistic", "forest"]), default="logistic",
              show_default=True, help="Which estimator the demo trains.")
def demo(out_dir: str, kind: str) -> None:
    """Train on breast_cancer (ships with scikit-learn), convert, load, predict, time it."""
    require_converters()
    from converters.demo import run_demo

    run_demo(Path(out_dir), kind=kind, echo=click.echo)
