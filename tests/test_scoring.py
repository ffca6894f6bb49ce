"""Batch scoring through the real CLI: streamed chunks match row-by-row predictions, ids pass
through, bad rows fail with their row number or go to a reject file, worker processes give the
same output, JSON lines and Parquet work, the progress bar shows only when asked, and memory
stays flat as the file grows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_support import (  # noqa: F401
    breast_cancer_rows,
    cli_env,
    forest_bundle,
    serve_bench,
    two_bundles,
    write_csv,
)

from edge_runtime import load

pytestmark = pytest.mark.device


def edgert(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"edgert {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Any]:
    names, X = breast_cancer_rows(3000)
    return write_csv(tmp_path_factory.mktemp("scoring") / "in.csv", names, X), names, X


def read_out(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_streamed_scores_match_row_by_row_exactly_and_ids_pass_through(
        tmp_path: Path, data: tuple[Path, list[str], Any], forest_bundle: Path) -> None:  # noqa: F811
    src, _, X = data
    out = tmp_path / "out.csv"
    edgert("predict", forest_bundle, src, "-o", out, "--proba", "--id-column", "id", "--chunk-rows", 256,
           "--threads", 1)
    rows = read_out(out)
    assert rows[0] == ["id", "label", "proba_0", "proba_1"]
    assert [r[0] for r in rows[1:]] == [f"r{i}" for i in range(len(X))]
    model = load(forest_bundle, threads=1)
    for i in range(len(X)):
        one = X[i:i + 1]
        assert rows[i + 1][1] == str(model.predict(one)[0])
        assert rows[i + 1][2:] == [repr(float(p)) for p in model.predict_proba(one)[0]]


def test_default_threads_labels_match_row_by_row(tmp_path: Path, data: tuple[Path, list[str], Any],
                                                 forest_bundle: Path) -> None:  # noqa: F811
    src, _, X = data
    out = tmp_path / "out.csv"
    edgert("predict", forest_bundle, src, "-o", out, "--proba", "--chunk-rows", 700, "--id-column", "id")
    rows = [r[1:] for r in read_out(out)[1:]]
    model = load(forest_bundle)
    single = np.vstack([model.predict_proba(X[i:i + 1]) for i in range(len(X))])
    assert [r[0] for r in rows] == [str(model.predict(X[i:i + 1])[0]) for i in range(len(X))]
    # several engine threads sum the trees in another order: the last float32 ulp may differ
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    assert np.max(np.abs(got - single)) <= 4 * np.finfo(np.float32).eps


def test_linear_model_labels_match_row_by_row(tmp_path: Path, data: tuple[Path, list[str], Any],
                                              two_bundles: tuple[Path, Path]) -> None:  # noqa: F811
    src, _, X = data
    out = tmp_path / "out.csv"
    edgert("predict", two_bundles[0], src, "-o", out, "--proba", "--chunk-rows", 500, "--threads", 1,
           "--id-column", "id")
    rows = [r[1:] for r in read_out(out)[1:]]
    model = load(two_bundles[0], threads=1)
    single = np.vstack([model.predict_proba(X[i:i + 1]) for i in range(len(X))])
    assert [r[0] for r in rows] == [str(model.predict(X[i:i + 1])[0]) for i in range(len(X))]
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    # a one-row MatMul takes onnxruntime's vector path, a batch its matrix path: the last float32
    # ulp may differ from row-by-row, but never with the chunk size (same as one in-memory batch)
    assert np.max(np.abs(got - single)) <= 4 * np.finfo(np.float32).eps
    assert np.array_equal(got, model.predict_proba(X).astype(np.float64))


def _with_bad_rows(src: Path, dst: Path) -> Path:
    lines = src.read_text().splitlines()
    # data row n is lines[n]: row 3 not a number, row 700 short, row 1500 missing value (no imputer)
    cells = lines[3].split(",")
    cells[2] = "abc"
    lines[3] = ",".join(cells)
    lines[700] = ",".join(lines[700].split(",")[:5])
    cells = lines[1500].split(",")
    cells[4] = ""
    lines[1500] = ",".join(cells)
    dst.write_text("\n".join(lines) + "\n")
    return dst


def test_on_error_fail_stops_with_the_row_number(tmp_path: Path, data: tuple[Path, list[str], Any],
                                                 forest_bundle: Path) -> None:  # noqa: F811
    src = _with_bad_rows(data[0], tmp_path / "bad.csv")
    proc = edgert("predict", forest_bundle, src, "-o", tmp_path / "o.csv", "--id-column", "id", check=False)
    assert proc.returncode == 2
    assert "row 3, feature 'mean_texture': 'abc' is not a number" in proc.stderr


def test_on_error_skip_writes_rejects_with_row_and_reason(
        tmp_path: Path, data: tuple[Path, list[str], Any], forest_bundle: Path) -> None:  # noqa: F811
    src = _with_bad_rows(data[0], tmp_path / "bad.csv")
    out = tmp_path / "o.csv"
    proc = edgert("predict", forest_bundle, src, "-o", out, "--id-column", "id", "--on-error", "skip",
                  "--chunk-rows", 256)
    assert "scored 2997 of 3000 rows; 3 bad row(s) skipped" in proc.stderr
    rejects = [json.loads(x) for x in (tmp_path / "o.csv.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [3, 700, 1500]
    assert "'abc' is not a number" in rejects[0]["reason"] and rejects[0]["id"] == "r2"
    assert "5 fields, the header has 31" in rejects[1]["reason"]
    assert "mean_area" in rejects[2]["reason"] and "NaN" in rejects[2]["reason"]
    ids = [r[0] for r in read_out(out)[1:]]
    assert len(ids) == 2997 and {"r2", "r699", "r1499"}.isdisjoint(ids)
    # the good rows score exactly as in a clean run
    clean = tmp_path / "clean.csv"
    edgert("predict", forest_bundle, data[0], "-o", clean, "--id-column", "id")
    good = {r[0]: r for r in read_out(clean)[1:]}
    assert all(good[r[0]] == r for r in read_out(out)[1:])


def test_workers_give_identical_output(tmp_path: Path, data: tuple[Path, list[str], Any],
                                       forest_bundle: Path) -> None:  # noqa: F811
    src = _with_bad_rows(data[0], tmp_path / "bad.csv")
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    common = ("--proba", "--id-column", "id", "--on-error", "skip", "--chunk-rows", 200)
    edgert("predict", forest_bundle, src, "-o", one, "--threads", 1, *common)
    edgert("predict", forest_bundle, src, "-o", two, "--workers", 2, *common)
    assert one.read_bytes() == two.read_bytes()
    rejects = [(tmp_path / f"{n}.csv.rejects.jsonl").read_text() for n in ("one", "two")]
    assert rejects[0] == rejects[1] and rejects[0].count("\n") == 3


def test_jsonl_records_arrays_and_bad_lines(tmp_path: Path, data: tuple[Path, list[str], Any],
                                            forest_bundle: Path) -> None:  # noqa: F811
    _, names, X = data
    src = tmp_path / "in.jsonl"
    with open(src, "w") as fh:
        for i in range(50):
            rec = dict(zip(names, map(float, X[i])))
            fh.write(json.dumps({"key": i, **rec} if i % 2 else [float(v) for v in X[i]]) + "\n")
            if i == 10:
                fh.write("{oops\n\n")
    out = tmp_path / "out.jsonl"
    edgert("predict", forest_bundle, src, "-o", out, "--id-column", "key", "--on-error", "skip")
    got = [json.loads(x) for x in out.read_text().splitlines()]
    model = load(forest_bundle)
    assert [g["label"] for g in got] == model.predict(X[:50]).tolist()
    assert [g["key"] for g in got] == [i if i % 2 else None for i in range(50)]
    rejects = [json.loads(x) for x in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [12] and "not valid JSON" in rejects[0]["reason"]


def test_parquet_in_and_out(tmp_path: Path, data: tuple[Path, list[str], Any],
                            forest_bundle: Path) -> None:  # noqa: F811
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    _, names, X = data
    n = 1000
    cols = {"id": [f"r{i}" for i in range(n)], **{nm: X[:n, j] for j, nm in enumerate(names)}}
    cols[names[3]] = pa.array([None if i == 17 else float(X[i, 3]) for i in range(n)])
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table(cols), src, row_group_size=300)
    out = tmp_path / "out.parquet"
    edgert("predict", forest_bundle, src, "-o", out, "--proba", "--id-column", "id", "--on-error", "skip",
           "--chunk-rows", 128, "--threads", 1)
    table = pq.read_table(out)
    assert table.num_rows == n - 1 and "r17" not in table.column("id").to_pylist()
    model = load(forest_bundle, threads=1)
    keep = [i for i in range(n) if i != 17]
    assert table.column("label").to_pylist() == model.predict(X[keep]).tolist()
    probs = np.column_stack([table.column(c).to_numpy() for c in ("proba_0", "proba_1")])
    assert np.array_equal(probs, model.predict_proba(X[keep]))
    rejects = [json.loads(x) for x in (tmp_path / "out.parquet.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [18] and rejects[0]["id"] == "r17"
    # worker processes write the same table
    out2 = tmp_path / "out2.parquet"
    edgert("predict", forest_bundle, src, "-o", out2, "--proba", "--id-column", "id", "--on-error", "skip",
           "--chunk-rows", 128, "--workers", 2)
    assert pq.read_table(out2).equals(table)
    # Parquet in, CSV out
    csv_out = tmp_path / "out.csv"
    edgert("predict", forest_bundle, src, "-o", csv_out, "--on-error", "skip", "--id-column", "id")
    assert [r[1] for r in read_out(csv_out)[1:]] == [str(v) for v in table.column("label").to_pylist()]


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path: Path, data: tuple[Path, list[str], Any],
                                                       forest_bundle: Path) -> None:  # noqa: F811
    pytest.importorskip("tqdm")
    quiet = edgert("predict", forest_bundle, data[0], "-o", tmp_path / "a.csv", "--id-column", "id")
    assert "scoring" not in quiet.stderr  # stderr is a pipe here: no bar by default
    loud = edgert("predict", forest_bundle, data[0], "-o", tmp_path / "b.csv", "--progress",
                  "--id-column", "id")
    assert "scoring" in loud.stderr and "100%" in loud.stderr


def test_usage_errors(tmp_path: Path, data: tuple[Path, list[str], Any], forest_bundle: Path) -> None:  # noqa: F811
    proc = edgert("predict", forest_bundle, data[0], "--on-error", "skip", "--id-column", "id", check=False)
    assert proc.returncode != 0 and "--reject-file" in proc.stderr
    proc = edgert("predict", forest_bundle, data[0], "--id-column", "nope", check=False)
    assert proc.returncode == 2 and "unknown column(s) ['id']" in proc.stderr


def _peak_rss_mb(args: list[str]) -> float:
    # VmHWM, the process's own peak: ru_maxrss would include pytest's RSS at fork (kept across exec)
    code = ("import sys\n"
            "def _peak_mb():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM:'):\n"
            "            return int(line.split()[1]) / 1024\n"
            "from edge_runtime.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(_peak_mb(), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return float(proc.stderr.strip().splitlines()[-1])


def test_peak_memory_stays_flat_as_the_file_grows(tmp_path: Path, forest_bundle: Path) -> None:  # noqa: F811
    names, X = breast_cancer_rows(4000, seed=1)
    small = write_csv(tmp_path / "small.csv", names, X[:4000])
    big = tmp_path / "big.csv"  # 40 000 rows (~9 MB): ten times the small file
    with open(big, "w") as fh:
        fh.write(small.read_text())
        body = "".join(small.read_text().splitlines(keepends=True)[1:])
        for _ in range(9):
            fh.write(body)
    common = ["--chunk-rows", "1024", "--proba", "--id-column", "id"]
    bundle = str(forest_bundle)
    rss_small = _peak_rss_mb(["predict", bundle, str(small), "-o", str(tmp_path / "s.out"), *common])
    rss_big = _peak_rss_mb(["predict", bundle, str(big), "-o", str(tmp_path / "b.out"), *common])
    # holding the big file's rows would take tens of MB more (40k rows x 31 Python strings)
    assert rss_big - rss_small < 12, (rss_small, rss_big)
    with open(tmp_path / "b.out") as fh:
        assert sum(1 for _ in fh) == 40_001


def test_text_blocks_keep_quoted_newlines_and_drop_blank_lines() -> None:
    import io

    from edge_runtime.scoring import read_text_blocks

    text = 'a,1\n\n"multi\nline",2\n"say ""hi""",3\nb,4\n'
    blocks = list(read_text_blocks(io.StringIO(text), 2, quoted=True))
    assert blocks == [(0, 'a,1\n"multi\nline",2\n'), (2, '"say ""hi""",3\nb,4\n')]
    assert [r for _, t in blocks for r in csv.reader(io.StringIO(t))] == [
        ["a", "1"], ["multi\nline", "2"], ['say "hi"', "3"], ["b", "4"]]


def test_workers_on_json_lines_match_one_process(tmp_path: Path, data: tuple[Path, list[str], Any],
                                                 forest_bundle: Path) -> None:  # noqa: F811
    _, names, X = data
    src = tmp_path / "in.jsonl"
    with open(src, "w") as fh:
        for i in range(600):
            fh.write(json.dumps({"key": f"k{i}", **dict(zip(names, map(float, X[i])))}) + "\n")
            if i == 250:
                fh.write("[1, 2]\n")
    outs = []
    for extra in (("--threads", 1), ("--workers", 2)):
        out = tmp_path / f"out{extra[0]}.jsonl"
        edgert("predict", forest_bundle, src, "-o", out, "--id-column", "key", "--on-error", "skip",
               "--proba", "--chunk-rows", 100, *extra)
        outs.append((out.read_text(), (tmp_path / f"{out.name}.rejects.jsonl").read_text()))
    assert outs[0] == outs[1]
    assert json.loads(outs[1][1])["row"] == 252 and outs[1][0].count("\n") == 600


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.just("ROW"), st.just(""), st.text(alphabet=',"0123456789.-e nNaA\n', max_size=40)), max_size=25),
       chunk=st.integers(1, 7))
def test_fuzzed_csv_rows_are_scored_or_rejected_never_crash(lines: list[str], chunk: int,
                                                            scoring_model: Any) -> None:
    """Untrusted CSV text: every record is either scored or rejected with its row number; the
    only error that can escape is InputError (under --on-error fail)."""
    import io

    from edge_runtime.errors import InputError
    from edge_runtime.scoring import read_csv_chunks, score_chunk

    model, names, good = scoring_model
    text = "id," + ",".join(names) + "\n" + "\n".join(good if x == "ROW" else x for x in lines) + "\n"
    records = sum(1 for r in csv.reader(io.StringIO(text)) if r) - 1
    kept = bad = 0
    numbers: list[int] = []
    for c in read_csv_chunks(io.StringIO(text), names, id_column="id", chunk_rows=chunk):
        sc = score_chunk(model, c, on_error="skip")
        kept += len(sc.values)
        bad += len(sc.rejects)
        numbers += [r.row for r in sc.rejects]
        assert sc.rows_in == len(c.rows) + len(c.rejects)
    assert kept + bad == records and len(set(numbers)) == len(numbers)
    assert all(1 <= n <= records for n in numbers)
    try:
        for c in read_csv_chunks(io.StringIO(text), names, id_column="id", chunk_rows=chunk):
            score_chunk(model, c, on_error="fail")
    except InputError as exc:
        assert str(exc).startswith("row ")


@pytest.fixture(scope="module")
def scoring_model(forest_bundle: Path, data: tuple[Path, list[str], Any]) -> Any:  # noqa: F811
    _, names, X = data
    return load(forest_bundle), names, "r0," + ",".join(repr(float(v)) for v in X[0])
