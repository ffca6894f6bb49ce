"""The scoring package as a library: ``score_file`` (what ``edgert predict`` runs) writes the
CLI's bytes, option clashes are refused before any model is loaded, the one engine gives the same
results from parsed chunks and from text blocks, and Dask runs ``score_file`` once per file."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from serve_support import breast_cancer_rows, cli_env, serve_bench, two_bundles, write_csv  # noqa: F401

from edge_runtime import load
from edge_runtime.errors import InputError, ScoringOptionError
from edge_runtime.scoring import (
    ScoreRequest,
    ScoringJob,
    TextBlock,
    output_columns,
    read_csv_chunks,
    score,
    score_file,
)


def test_request_resolves_formats_from_names() -> None:
    assert ScoreRequest("b", "rows.parquet", "out.jsonl").formats == ("parquet", "jsonl")
    assert ScoreRequest("b", "rows.ndjson").formats == ("jsonl", "jsonl")
    assert ScoreRequest("b", "rows.parquet").formats == ("parquet", "csv")  # stdout: CSV for Parquet
    assert ScoreRequest("b", "-", "x.pq", fmt="jsonl").formats == ("jsonl", "parquet")


@pytest.mark.parametrize(("kw", "message"), [
    ({"input": "-", "fmt": "parquet", "output": "o.csv"}, "Parquet input must be a file"),
    ({"input": "in.csv", "out_fmt": "parquet"}, "Parquet output needs a file"),
    ({"input": "in.csv", "on_error": "skip"}, "needs --reject-file"),
])
def test_option_clashes_are_refused_before_loading(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ScoringOptionError, match=message):
        score_file(ScoreRequest("no-such-bundle", **kw))  # the bundle is never opened


def test_skip_defaults_the_reject_file_beside_the_output() -> None:
    assert ScoreRequest("b", "in.csv", "out.csv", on_error="skip").check().reject_file == "out.csv.rejects.jsonl"


def test_output_columns_name_the_target_by_task() -> None:
    assert output_columns("classification", [0, 1], True) == ["label", "proba_0", "proba_1"]
    assert output_columns("anomaly", [-1, 1], False) == ["label"]
    assert output_columns("regression", None, True) == ["prediction"]


def _bad_rows_csv(path: Path, names: list[str], X: Any) -> Path:
    write_csv(path, names, X)
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[3], "abc", 1)  # data row 4: not a number
    lines[9] = ",".join(lines[9].split(",")[:3])  # data row 9: too few fields
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_file_writes_what_the_cli_writes(tmp_path: Path, two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    names, X = breast_cancer_rows(300, seed=5)
    src = _bad_rows_csv(tmp_path / "in.csv", names, X)
    bundle = str(two_bundles[0])
    lib_out, cli_out = tmp_path / "lib.csv", tmp_path / "cli.csv"
    done = score_file(ScoreRequest(bundle, str(src), str(lib_out), proba=True, id_column="id",
                                   on_error="skip", chunk_rows=64, threads=1))
    assert (done.rows, done.seen, done.rejected) == (298, 300, 2)
    proc = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", bundle, str(src), "-o",
                           str(cli_out), "--proba", "--id-column", "id", "--on-error", "skip",
                           "--chunk-rows", "64", "--threads", "1"],
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert lib_out.read_bytes() == cli_out.read_bytes()
    assert (Path(f"{lib_out}.rejects.jsonl").read_text()
            == Path(f"{cli_out}.rejects.jsonl").read_text())


def test_a_bad_row_leaves_no_output(tmp_path: Path, two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    names, X = breast_cancer_rows(50, seed=6)
    src = _bad_rows_csv(tmp_path / "in.csv", names, X)
    out = tmp_path / "out.csv"
    with pytest.raises(InputError, match=r"^row 4, feature '"):
        score_file(ScoreRequest(str(two_bundles[0]), str(src), str(out), id_column="id"))
    assert list(tmp_path.iterdir()) == [src]


def test_proba_of_a_model_that_is_no_classifier_is_refused() -> None:
    from types import SimpleNamespace

    from edge_runtime.scoring import load_for_scoring

    regressor = SimpleNamespace(task="regression")
    with pytest.raises(ScoringOptionError, match="--proba needs a classification model"):
        load_for_scoring(ScoreRequest("b", "in.csv", "o.csv", proba=True), regressor)
    assert load_for_scoring(ScoreRequest("b", "in.csv", "o.csv"), regressor) is regressor


def test_engine_gives_the_same_results_from_chunks_and_text_blocks(two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    names, X = breast_cancer_rows(40, seed=7)
    header = ",".join(["id", *names]) + "\n"
    body = "".join(f"r{i}," + ",".join(repr(float(v)) for v in row) + "\n" for i, row in enumerate(X))
    bundle = str(two_bundles[0])
    model = load(bundle, threads=1)
    job = ScoringJob(bundle=bundle, backend="auto", fmt="csv", out_fmt="csv", features=names,
                     id_column="id", proba=True, on_error="skip")
    lines = body.splitlines(keepends=True)
    blocks = [TextBlock(0, "".join(lines[:25]), header), TextBlock(25, "".join(lines[25:]), header)]
    chunks = read_csv_chunks(io.StringIO(header + body), names, id_column="id", chunk_rows=25,
                             schema=model.input_schema)
    from_chunks = list(score(job, chunks, model=model))
    from_text = list(score(job, blocks, model=model))
    assert [r.rows_in for r in from_chunks] == [r.rows_in for r in from_text] == [25, 15]
    for a, b in zip(from_chunks, from_text):
        assert a.scored is not None and b.scored is not None
        assert a.scored.ids == b.scored.ids
        assert a.scored.values.tolist() == b.scored.values.tolist()
        assert a.scored.probabilities.tolist() == b.scored.probabilities.tolist()


def test_dask_scores_each_file_with_score_file(tmp_path: Path, two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    dask = pytest.importorskip("dask")
    from edge_runtime.scoring.dask_recipe import dask_score_files

    bundle = str(two_bundles[0])
    names, X = breast_cancer_rows(120, seed=8)
    srcs = [write_csv(tmp_path / "a.csv", names, X[:70]), _bad_rows_csv(tmp_path / "b.csv", names, X[70:])]
    tasks = dask_score_files([str(s) for s in srcs], bundle, str(tmp_path / "scored"), proba=True,
                             id_column="id", on_error="skip", threads=1)
    summaries = dask.compute(*tasks, scheduler="sync")
    assert [(s.rows, s.seen, s.rejected) for s in summaries] == [(70, 70, 0), (48, 50, 2)]
    for src in srcs:
        direct = tmp_path / f"direct-{src.name}"
        score_file(ScoreRequest(bundle, str(src), str(direct), proba=True, id_column="id",
                                on_error="skip", threads=1))
        assert (tmp_path / "scored" / src.name).read_bytes() == direct.read_bytes()
    with pytest.raises(ScoringOptionError, match="would both write"):
        dask_score_files([str(srcs[0]), str(srcs[0])], bundle, str(tmp_path / "x"))


def test_read_csv_rows_gives_floats_in_feature_order(tmp_path: Path) -> None:
    from edge_runtime.scoring import read_csv_rows

    src = tmp_path / "rows.csv"
    src.write_text("b,a\n2.5,1\n,3\n")
    got = read_csv_rows(str(src), ["a", "b"])
    assert got[0] == [1.0, 2.5] and got[1][0] == 3.0 and got[1][1] != got[1][1]  # blank: NaN
    with pytest.raises(InputError, match="unknown column"):
        read_csv_rows(str(src), ["a", "c"])
