"""What the CLI grammar promises for single commands (docs/cli.md): files appear whole or not at
all, success says what was written, a left-in label column is named, an impossible artifact is
skipped with a note, and bench says when this machine is not the profile's device."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from zoo import dataset

from edge_runtime.cli import cli
from edge_runtime.latency.render import fold_table
from edge_runtime.latency.runner import machine_mismatch
from edge_runtime.profiles import load_profile


def write_csv(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _lines(path: Path) -> int:
    with open(path) as fh:
        return sum(1 for _ in fh)


@pytest.fixture(scope="module")
def logistic(tmp_path_factory):
    """A bundle (by the real convert command) and its training table with a label column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = tmp_path_factory.mktemp("behaviour")
    X, y, _, _ = dataset("binary")
    names = [f"f{i}" for i in range(X.shape[1])]
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y),
                d / "bare.joblib")  # fitted on a bare array: columns by position
    write_csv(d / "sample.csv", names, X.tolist())
    write_csv(d / "with-label.csv", [*names, "target"], [[*r, int(t)] for r, t in zip(X.tolist(), y)])
    r = CliRunner().invoke(cli, ["convert", str(d / "bare.joblib"), "--sample", str(d / "sample.csv"),
                                 "--output", str(d / "bundle")])
    assert r.exit_code == 0, r.output
    return d, X, names


def test_a_label_column_left_in_the_sample_is_named(logistic):
    d, _, _ = logistic
    r = CliRunner().invoke(cli, ["convert", str(d / "bare.joblib"), "--sample", str(d / "with-label.csv"),
                                 "-o", str(d / "never")])
    assert r.exit_code == 1
    assert "'target' looks like one: pass --target target" in r.stderr
    assert not (d / "never").exists()
    r = CliRunner().invoke(cli, ["convert", str(d / "bare.joblib"), "--sample", str(d / "with-label.csv"),
                                 "-o", str(d / "labelled"), "--target", "target"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"wrote {d / 'labelled'}: ")


def test_predict_says_what_it_wrote_and_a_failure_leaves_nothing(logistic):
    d, X, names = logistic
    rows = np.tile(X, (4, 1)).tolist()
    good = write_csv(d / "good.csv", names, rows)
    r = CliRunner().invoke(cli, ["predict", str(d / "bundle"), str(good), "-o", str(d / "out.csv")])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"wrote {len(rows)} rows to {d / 'out.csv'}\n"
    assert _lines(d / "out.csv") == len(rows) + 1
    bad_rows = [list(map(str, r_)) for r_ in rows]
    bad_rows[len(rows) - 3][2] = "abc"  # late in the file: several chunks were written already
    bad = write_csv(d / "bad.csv", names, bad_rows)
    before = sorted(p.name for p in d.iterdir())
    r = CliRunner().invoke(cli, ["predict", str(d / "bundle"), str(bad), "-o", str(d / "fail.csv"),
                                 "--chunk-rows", "50"])
    assert r.exit_code == 2
    assert f"row {len(rows) - 2}, feature 'f2'" in r.stderr
    assert sorted(p.name for p in d.iterdir()) == before  # no fail.csv, no temporary file
    r = CliRunner().invoke(cli, ["predict", str(d / "bundle"), str(bad), "-o", str(d / "out.csv"),
                                 "--chunk-rows", "50"])
    assert r.exit_code == 2
    assert _lines(d / "out.csv") == len(rows) + 1  # the old output is untouched


def test_an_impossible_format_precision_pair_is_skipped_with_a_note(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y, X_te, _ = dataset("binary")
    names = [f"f{i}" for i in range(X.shape[1])]
    joblib.dump(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y),
                tmp_path / "forest.joblib")
    write_csv(tmp_path / "s.csv", names, X.tolist())
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "forest.joblib"), "--sample",
                                 str(tmp_path / "s.csv"), "-o", str(tmp_path / "b"),
                                 "--format", "onnx,tflite", "--precision", "fp32,int8"])
    assert r.exit_code == 0, r.stderr
    assert "skipped onnx/int8: onnxruntime cannot quantize" in r.stdout
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    built = {f"{a['format']}/{a['precision']}" for a in m["artifacts"]}
    assert "onnx/int8" not in built and {"onnx/fp32", "tflite/fp32", "tflite/int8"} <= built
    assert [s["artifact"] for s in m["provenance"]["skipped"]] == ["onnx/int8"]
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "forest.joblib"), "--sample",
                                 str(tmp_path / "s.csv"), "-o", str(tmp_path / "only"),
                                 "--precision", "int8"])
    assert r.exit_code == 1 and "cannot quantize" in r.stderr  # the only pair asked: an error
    assert not (tmp_path / "only").exists()


def test_bench_knows_when_this_machine_is_not_the_profiles_device():
    pi = load_profile("rpi4-aarch64")
    laptop = machine_mismatch(pi, {"machine": "x86_64", "cpu_count": 2})
    assert laptop is not None and "x86_64 (profile: aarch64)" in laptop and "2 cores (profile: 4)" in laptop
    assert machine_mismatch(pi, {"machine": "arm64", "cpu_count": 4}) is None  # macOS spelling
    assert "cores" in (machine_mismatch(pi, {"machine": "aarch64", "cpu_count": 8}) or "")


def test_wide_tables_fold_to_the_width():
    head = ["backend"] + [f"column {i}" for i in range(16)]
    rows = [["onnxruntime"] + [f"{i * 1000:,} rows/s" for i in range(16)], ["numpy"] + ["1"] * 16]
    lines = fold_table(head, rows, 60)
    assert max(map(len, lines)) <= 60
    text = "\n".join(lines)
    assert all(h in text for h in head) and all(c in text for r in rows for c in r)
    assert sum(line.startswith("onnxruntime") for line in lines) > 1  # the name repeats per group
