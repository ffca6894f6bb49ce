"""The real CLI end to end (``python -m edge_runtime`` in a subprocess), and the parity sweep
through ``edgert convert`` for every estimator of the zoo (in-process, same click command)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from zoo import CASES, dataset, fitted

import edge_runtime
from edge_runtime.cli import cli


def edgert(args: list[str], env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True,
                          text=True, env=env, input=stdin, timeout=300)


def write_csv(path: Path, X: np.ndarray, names: list[str], extra: dict | None = None) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(extra or {}) + names)
        for i, row in enumerate(X):
            w.writerow([v[i] for v in (extra or {}).values()]
                       + ["" if np.isnan(v) else repr(float(v)) for v in row])
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def forest_files(workdir):
    from sklearn.ensemble import RandomForestClassifier

    X, y, X_te, _ = dataset("binary")
    est = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    names = [f"f{i}" for i in range(X.shape[1])]
    joblib.dump(est, workdir / "forest.joblib")
    write_csv(workdir / "sample.csv", X, names)
    write_csv(workdir / "holdout.csv", X_te, names)
    return est, X_te, names


def test_convert_inspect_verify_predict(forest_files, workdir, cli_env):
    est, X_te, names = forest_files
    out = workdir / "bundle"
    r = edgert(["convert", str(workdir / "forest.joblib"), "--sample", str(workdir / "sample.csv"),
                "--holdout", str(workdir / "holdout.csv"), "-o", str(out), "--name", "forest",
                "--version", "2.1.0"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "parity on 171 rows: labels 100.00%" in r.stdout
    r = edgert(["inspect", str(out)], cli_env)
    assert r.returncode == 0 and "forest 2.1.0" in r.stdout and "opset [ai.onnx=17" in r.stdout
    r = edgert(["inspect", "--json", str(out)], cli_env)
    assert json.loads(r.stdout)["artifacts"][0]["parity"]["passed"] is True
    r = edgert(["verify", str(out)], cli_env)
    assert r.returncode == 0 and "golden rows reproduced on onnxruntime" in r.stdout

    ids = {"row_id": [f"r{i}" for i in range(len(X_te))]}
    write_csv(workdir / "score.csv", X_te, names[::-1] and names, ids)
    r = edgert(["predict", str(out), str(workdir / "score.csv"), "--proba", "--id-column", "row_id",
                "-o", str(workdir / "pred.csv"), "--chunk-rows", "50"], cli_env)
    assert r.returncode == 0, r.stderr
    with open(workdir / "pred.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r_["row_id"] for r_ in rows] == ids["row_id"]
    assert [int(r_["label"]) for r_ in rows] == est.predict(X_te).tolist()
    proba = np.array([[float(r_["proba_0"]), float(r_["proba_1"])] for r_ in rows])
    assert np.max(np.abs(proba - est.predict_proba(X_te))) < 1e-4


def test_predict_jsonl_stdin_stdout(forest_files, workdir, cli_env):
    est, X_te, names = forest_files
    out = workdir / "bundle-jsonl"
    converted = edge_runtime.load if False else None  # noqa: F841 - keep the CLI the only writer
    r = edgert(["convert", str(workdir / "forest.joblib"), "--sample", str(workdir / "sample.csv"),
                "-o", str(out)], cli_env)
    assert r.returncode == 0, r.stderr
    lines = "\n".join(json.dumps(dict(zip(names, map(float, row)))) for row in X_te[:20])
    r = edgert(["predict", str(out), "-", "--format", "jsonl"], cli_env, stdin=lines)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line)["label"] for line in r.stdout.splitlines()]
    assert got == est.predict(X_te[:20]).tolist()


@pytest.mark.parametrize("args,message", [
    (["predict", "{bundle}", "{bad_csv}"], "unknown column(s) ['colour']"),
    (["predict", "{bundle}", "{nan_csv}"], "row 1, feature 'f3': NaN"),
    (["inspect", "{missing}"], "does not exist"),
    (["verify", "{not_bundle}"], "no manifest.json"),
    (["predict", "{bundle}", "{bundle}/manifest.json", "--format", "jsonl"], "JSON line"),
])
def test_errors_are_one_line(forest_files, workdir, cli_env, args, message):
    bundle = workdir / "bundle"
    if not bundle.exists():
        pytest.skip("needs test_convert_inspect_verify_predict")
    (workdir / "bad.csv").write_text("colour," + ",".join(f"f{i}" for i in range(30)) + "\n")
    (workdir / "nan.csv").write_text(",".join(f"f{i}" for i in range(30)) + "\n"
                                     + ",".join("" if i == 3 else "1" for i in range(30)) + "\n")
    (workdir / "notbundle").mkdir(exist_ok=True)
    fmt = dict(bundle=bundle, bad_csv=workdir / "bad.csv", nan_csv=workdir / "nan.csv",
               missing=workdir / "nope", not_bundle=workdir / "notbundle")
    r = edgert([a.format(**fmt) for a in args], cli_env)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = edgert(["--debug", *[a.format(**fmt) for a in args]], cli_env)
    if "does not exist" not in message:
        assert "Traceback" in r.stderr


def test_parity_failure_writes_nothing_unless_forced(workdir, cli_env):
    from sklearn.linear_model import LogisticRegression

    X, y, _, _ = dataset("iris")
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), workdir / "lr.joblib")
    write_csv(workdir / "iris.csv", X, [f"x{i}" for i in range(4)])
    out = workdir / "strict"
    r = edgert(["convert", str(workdir / "lr.joblib"), "--sample", str(workdir / "iris.csv"), "-o",
                str(out), "--tolerance", "1e-30"], cli_env)
    assert r.returncode == 1 and "ParityError" in r.stderr and "probabilities max abs diff" in r.stderr
    assert not out.exists()
    r = edgert(["convert", str(workdir / "lr.joblib"), "--sample", str(workdir / "iris.csv"), "-o",
                str(out), "--tolerance", "1e-30", "--force"], cli_env)
    assert r.returncode == 0 and "[FAILED, forced]" in r.stdout
    assert edge_runtime.load(out).artifact.parity["passed"] is False


def test_demo(workdir, cli_env):
    r = edgert(["demo", "-o", str(workdir / "demo")], cli_env)
    assert r.returncode == 0, r.stderr
    assert "label agreement 100.00%" in r.stdout and "faster" in r.stdout


def test_wrap_foreign_onnx(workdir, cli_env):
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingRegressor

    X, y, X_te, _ = dataset("regression")
    est = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, y)
    (workdir / "gbr.onnx").write_bytes(to_onnx(est, X[:1].astype(np.float32)).SerializeToString())
    write_csv(workdir / "reg.csv", X_te, [f"c{i}" for i in range(X.shape[1])])
    out = workdir / "wrapped"
    r = edgert(["wrap", str(workdir / "gbr.onnx"), "--sample", str(workdir / "reg.csv"), "-o", str(out)],
               cli_env)
    assert r.returncode == 0, r.stderr
    m = edge_runtime.load(out)
    assert m.task == "regression" and m.feature_names[0] == "c0"
    assert np.allclose(m.predict(X_te), est.predict(X_te), atol=1e-3)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_parity_through_cli(case, tmp_path):
    X, _, X_te, _ = dataset(case.data)
    joblib.dump(fitted(case.id), tmp_path / "m.joblib")
    names = [f"x{i}" for i in range(X.shape[1])]
    write_csv(tmp_path / "s.csv", X, names)
    write_csv(tmp_path / "h.csv", X_te, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.joblib"), "--sample",
                                       str(tmp_path / "s.csv"), "--holdout", str(tmp_path / "h.csv"),
                                       "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "columns taken by position" in res.output  # the zoo is fitted on bare arrays
    model = edge_runtime.load(tmp_path / "b")
    assert model.artifact.parity["passed"] and model.artifact.parity["rows"] == len(X_te)
    want = fitted(case.id).predict(X_te)
    got = model.predict(X_te)
    if case.task == "classification":
        assert np.array_equal(got.astype(str), want.astype(str))
    else:
        assert np.allclose(got, want, atol=1e-4 * (1 + np.abs(want).max()), rtol=0)
