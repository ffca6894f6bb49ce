"""Every input path takes the same values and refuses the others with the same message: the API
(rows and records), the numpy-free back end (Pyodide), ``edgert serve``'s JSON body, and
``edgert predict``'s CSV cells and JSON lines. In-process for the property test, then through
the real CLI and a real server for the headline cases (Infinity, 1e39, 10**400, --strict)."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_support import cli_env, serve_bench  # noqa: F401
from test_server_app import call

import edge_runtime
from edge_runtime.errors import InputError
from edge_runtime.inputs import InputAdapter, ListInputAdapter
from edge_runtime.inputs.schema import text_value
from edge_runtime.scoring import read_csv_chunks, read_jsonl_chunks, score_chunk
from edge_runtime.server import make_app
from edge_runtime.server.app import single_model_slot

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = [5.1, 3.5, 1.4, 0.2]
STRICT = "row {row}, feature 'petal_length': {value} is outside the training range [1.0, 6.9] (strict)"
NOT_FINITE = "infinite, or beyond the float32 range (|x| ≤ 3.4028235e+38); the model cannot take it"


pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris LogisticRegression with NAMES and petal_width in [0, 10] (committed)."""
    from committed import copy_bundle

    return copy_bundle("iris-named", tmp_path_factory.mktemp("iris") / "iris")


@pytest.fixture(scope="module")
def model(bundle: Path) -> Any:
    return edge_runtime.load(bundle)


# --- the paths, each answering ("ok", probabilities) or ("error", the API's message) ------------
def _api_rows(model: Any, row: list[Any], strict: bool = False) -> Any:
    return model.predict_proba([row], strict=strict).tolist()


def _api_record(model: Any, row: list[Any], strict: bool = False) -> Any:
    return model.predict_proba([dict(zip(NAMES, row))], strict=strict).tolist()


def _serve(model: Any, row: list[Any], strict: bool = False) -> Any:
    code, _, out = call(make_app(single_model_slot(model), strict=strict), "POST", "/predict",
                        json.dumps({"rows": [row]}).encode(), "proba=1")
    doc = json.loads(out)
    if code == 422:
        raise InputError(doc["error"])
    assert code == 200, doc
    return doc["probabilities"]


def _file(model: Any, chunks: Any, strict: bool) -> Any:
    """Scored as ``edgert predict`` scores a file: its first data row is row 1, as the API's first
    row is, so the messages compare as they are."""
    return [p for c in chunks for p in score_chunk(model, c, proba=True, strict=strict).probabilities.tolist()]


def _jsonl(model: Any, row: list[Any], strict: bool = False) -> Any:
    return _file(model, read_jsonl_chunks(io.StringIO(json.dumps(row) + "\n")), strict)


def _csv(model: Any, cells: list[str], strict: bool = False) -> Any:
    buf = io.StringIO()
    csv.writer(buf).writerows([NAMES, cells])
    return _file(model, read_csv_chunks(io.StringIO(buf.getvalue()), NAMES), strict)


def _verdict(path: Any, model: Any, row: list[Any], strict: bool = False) -> tuple[str, Any]:
    try:
        return "ok", path(model, row, strict)
    except InputError as exc:
        return "error", str(exc)


def _as_text(value: Any) -> str:
    """What a CSV cell holds for a value (CSV has text only; None is an empty cell)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


_text = st.one_of(
    st.text(max_size=6),
    st.from_regex(r"\s?[+-]?[0-9]{1,3}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?\s?", fullmatch=True),
    st.sampled_from(["14.0", " 14.0 ", "Infinity", "-inf", "1e39", "1e999", "NA", "", "null", "NaN",
                     "abc", "1_000", "0x10", "3.4028235e38", "3.5e38", "１４", "1" * 400]))
_values = st.one_of(st.floats(), st.floats(-20, 20), st.integers(-10**400, 10**400), st.integers(-20, 20),
                    st.none(), st.booleans(), _text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(st.integers(0, 3), _values), min_size=1, max_size=2), strict=st.booleans())
def test_every_path_accepts_and_refuses_the_same_values_with_the_same_message(
        model: Any, values: list[tuple[int, Any]], strict: bool) -> None:
    row = list(ROW)
    for col, value in values:
        row[col] = value
    want = _verdict(_api_rows, model, row, strict)
    for path in (_api_record, _serve, _jsonl):  # the typed paths: Python and JSON values
        assert _verdict(path, model, row, strict) == want, path.__name__
    # a CSV cell is the text of a value: it stands for what the one text rule reads in it
    cells = [_as_text(v) for v in row]
    assert _verdict(_csv, model, cells, strict) == _verdict(_api_rows, model, [text_value(c) for c in cells],
                                                            strict)
    if not any(isinstance(v, (str, bool)) for v in row):  # a number and its CSV text are one value
        assert _verdict(_csv, model, cells, strict) == want
    # the numpy-free back end (Pyodide) gives the same float32 matrix, or the same message
    pure = ListInputAdapter(model.manifest.features, model.artifact.input_dtype)
    numpy_side = InputAdapter(model.manifest.features, model.artifact.input_dtype)
    try:
        got: Any = pure([row], strict).tolist()
    except InputError as exc:
        got = str(exc)
    try:
        expected: Any = numpy_side([row], strict).tolist()
    except InputError as exc:
        expected = str(exc)
    assert json.dumps(got) == json.dumps(expected)  # NaN == NaN as text


@pytest.mark.parametrize("value", [math.inf, 1e39, 10**400, np.float32(np.inf), -1e39])
def test_model_predict_refuses_the_headline_values(model: Any, value: Any) -> None:
    with pytest.raises(InputError) as info:
        model.predict([ROW, [5.1, 3.5, value, 0.2]])
    assert str(info.value) == f"row 2, feature 'petal_length': {NOT_FINITE}"


def test_convert_records_the_training_min_max_and_strict_enforces_them(model: Any) -> None:
    from committed import dataset

    X = dataset("iris")[0].astype(np.float32)
    feats = model.manifest.features
    assert [(f.train_min, f.train_max) for f in feats] == [
        (float(X[:, j].min()), float(X[:, j].max())) for j in range(4)]
    inside, outside = [5.1, 3.5, 6.9, 0.2], [5.1, 3.5, 7.4, 0.2]  # iris petal_length: 1.0 to 6.9
    assert model.predict([outside]).shape == (1,)  # not strict: the training range is advice
    assert model.predict([inside], strict=True).shape == (1,)
    with pytest.raises(InputError) as info:
        model.predict_proba([inside, outside], strict=True)
    assert str(info.value) == STRICT.format(row=2, value=7.4)


# --- through the real CLI and a real server -------------------------------------------------------
BAD = [("Infinity", "Infinity"), ("1e39", "1e39"), ("10**400", str(10**400))]


def _edgert(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], env=cli_env(),
                          capture_output=True, text=True, timeout=120)


def _bad_files(tmp: Path) -> tuple[Path, Path]:
    """Row 1 good, then one row per headline value in petal_length (CSV text / JSON literal)."""
    csv_path, jsonl_path = tmp / "in.csv", tmp / "in.jsonl"
    rows = [ROW] + [[5.1, 3.5, literal, 0.2] for _, literal in BAD]
    csv_path.write_text("\n".join(",".join(map(str, r)) for r in [NAMES, *rows]) + "\n")
    jsonl_path.write_text("".join("{" + ", ".join(f'"{n}": {v}' for n, v in zip(NAMES, r)) + "}\n"
                                  for r in rows))
    return csv_path, jsonl_path


def test_edgert_predict_refuses_them_on_csv_and_jsonl_with_the_same_message(bundle: Path,
                                                                           tmp_path: Path) -> None:
    reason = f"feature 'petal_length': {NOT_FINITE}"
    for src in _bad_files(tmp_path):
        proc = _edgert("predict", bundle, src, "-o", tmp_path / "out.csv")
        assert proc.returncode == 2 and f"row 2, {reason}" in proc.stderr, proc.stderr
        rejects = tmp_path / f"{src.name}.rejects.jsonl"
        proc = _edgert("predict", bundle, src, "-o", tmp_path / "out.csv", "--on-error", "skip",
                       "--reject-file", rejects)
        assert proc.returncode == 0, proc.stderr
        got = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [(r["row"], r["reason"]) for r in got] == [(2, reason), (3, reason), (4, reason)]
        assert len((tmp_path / "out.csv").read_text().splitlines()) == 2  # header + the good row


def test_edgert_predict_strict(bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "wide.csv"
    src.write_text(",".join(NAMES) + "\n5.1,3.5,6.9,0.2\n5.1,3.5,7.9,0.2\n")
    assert _edgert("predict", bundle, src).returncode == 0
    proc = _edgert("predict", bundle, src, "--strict")
    assert proc.returncode == 2 and STRICT.format(row=2, value=7.9) in proc.stderr, proc.stderr


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_edgert_serve_refuses_them_with_the_same_message(bundle: Path, model: Any,
                                                         serve_bench: Any) -> None:  # noqa: F811
    pytest.importorskip("waitress")
    with serve_bench.server_process(bundle, threads=2, extra=("--strict",)) as url:
        for _, literal in BAD:
            code, doc = _post(url, f'{{"rows": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, {literal}, 0.2]]}}'.encode())
            assert (code, doc["error"]) == (422, f"row 2, feature 'petal_length': {NOT_FINITE}")
        code, doc = _post(url, json.dumps({"rows": [[5.1, 3.5, "1.4", 0.2]]}).encode())
        assert (code, doc["error"]) == (422, "row 1, feature 'petal_length': '1.4' is text, not a number: "
                                             "send numbers (only CSV cells are read as text)")
        code, doc = _post(url, json.dumps({"rows": [ROW, dict(zip(NAMES, ROW))]}).encode())
        assert code == 200 and doc["labels"] == model.predict([ROW, ROW]).tolist()
        code, doc = _post(url, json.dumps({"rows": [ROW, [5.1, 3.5, 7.9, 0.2]]}).encode())
        assert (code, doc["error"]) == (422, STRICT.format(row=2, value=7.9))


def test_strict_on_a_bundle_without_training_bounds_stops_up_front(bundle: Path, tmp_path: Path) -> None:
    """Bundles written before the training min/max was recorded still load and predict; asking
    them for --strict is one clear error at start, not a refusal of every row."""
    import shutil

    old = shutil.copytree(bundle, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    for f in manifest["inputs"]["features"]:
        del f["train_min"], f["train_max"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    src = tmp_path / "in.csv"
    src.write_text(",".join(NAMES) + "\n" + ",".join(map(str, ROW)) + "\n")
    assert _edgert("predict", old, src).returncode == 0
    for args in (("predict", old, src, "--strict"), ("serve", old, "--port", "0", "--strict")):
        proc = _edgert(*args)
        assert proc.returncode == 2, proc.stderr
        assert "strict: feature 'sepal_length' has no training min/max in this bundle" in proc.stderr
