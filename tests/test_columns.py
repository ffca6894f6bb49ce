"""Column identity: ``convert`` matches sample and hold-out columns by name (the real CLI in a
subprocess, and the API); names in any order build the same bundle, and reversed-without-names,
renamed, missing or extra columns are errors naming them."""

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
from zoo import dataset

import converters
import edge_runtime


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """A model fitted on a named wine DataFrame (it has ``feature_names_in_``), its files."""
    import pandas as pd
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = list(load_wine().feature_names)
    X, y, X_te, _ = dataset("multiclass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
            pd.DataFrame(X, columns=names), y)
    d = tmp_path_factory.mktemp("wine")
    joblib.dump(est, d / "model.joblib")
    return d, est, names, X, X_te, y


def _csv(path: Path, X: np.ndarray, names: list[str], order: list[int], extra: dict | None = None) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([names[i] for i in order] + list(extra or {}))
        for k, row in enumerate(X):
            w.writerow([repr(float(row[i])) for i in order] + [v[k] for v in (extra or {}).values()])
    return path


def _convert(d: Path, sample: Path, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(d / "model.joblib"),
                           "--sample", str(sample), "-o", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def _same_bundle(a: Path, b: Path, X: np.ndarray, names: list[str]) -> None:
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert [f["name"] for f in ma["inputs"]["features"]] == [f["name"] for f in mb["inputs"]["features"]] == names
    assert ma["golden"] == mb["golden"]
    assert ma["reference"] == mb["reference"]
    assert ma["inputs"]["matched_by"] == mb["inputs"]["matched_by"] == "name"
    records = [dict(zip(names, map(float, r))) for r in X]
    pa, pb = edge_runtime.load(a), edge_runtime.load(b)
    assert pa.predict(records).tolist() == pb.predict(records).tolist()
    assert np.array_equal(pa.predict_proba(records), pb.predict_proba(records))


def test_names_in_any_order_build_the_same_bundle_as_training_order(wine, cli_env):
    d, est, names, X, X_te, _ = wine
    n = len(names)
    straight = _csv(d / "straight.csv", X, names, list(range(n)))
    reversed_ = _csv(d / "reversed.csv", X, names, list(range(n))[::-1])
    shuffled = list(np.random.default_rng(1).permutation(n))
    hold = _csv(d / "hold-shuffled.csv", X_te, names, shuffled)
    hold_straight = _csv(d / "hold.csv", X_te, names, list(range(n)))
    r = _convert(d, straight, d / "a", cli_env, "--holdout", str(hold_straight))
    assert r.returncode == 0, r.stderr
    r = _convert(d, reversed_, d / "b", cli_env, "--holdout", str(hold))
    assert r.returncode == 0, r.stderr
    assert "columns matched by name" in r.stdout and "golden rows: 32" in r.stdout
    _same_bundle(d / "a", d / "b", X_te, names)
    ref = json.loads((d / "b" / "manifest.json").read_text())["reference"]["features"]
    proline = next(f for f in ref if f["name"] == "proline")
    assert proline["min"] == pytest.approx(X[:, names.index("proline")].min())  # not alcohol's values
    got = edge_runtime.load(d / "b").predict([dict(zip(names, map(float, r_))) for r_ in X_te])
    assert got.tolist() == est.predict(__import__("pandas").DataFrame(X_te, columns=names)).tolist()


@pytest.mark.parametrize("change,named", [
    ("rename", ["'alcohol'", "'alcohl'", "renamed columns?"]),
    ("missing", ["missing ['proline']"]),
    ("extra", ["not features of the model ['target']", "--target target"]),
])
def test_renamed_missing_or_extra_columns_are_refused_by_name(wine, cli_env, change, named):
    d, _, names, X, _, y = wine
    cols, order, extra = list(names), list(range(len(names))), None
    if change == "rename":
        cols[0] = "alcohl"
    elif change == "missing":
        order = [i for i in order if names[i] != "proline"]
    else:
        extra = {"target": y.tolist()}
    sample = _csv(d / f"{change}.csv", X, cols, order, extra)
    out = d / f"out-{change}"
    r = _convert(d, sample, out, cli_env)
    assert r.returncode != 0 and not out.exists()
    assert "Traceback" not in r.stderr
    for text in named:
        assert text in r.stderr, r.stderr
    if change == "extra":
        r = _convert(d, sample, out, cli_env, "--target", "target")
        assert r.returncode == 0, r.stderr


def test_holdout_columns_are_matched_too(wine, cli_env):
    d, _, names, X, X_te, _ = wine
    sample = _csv(d / "s.csv", X, names, list(range(len(names))))
    hold = _csv(d / "h-missing.csv", X_te, names, list(range(1, len(names))))
    r = _convert(d, sample, d / "out-h", cli_env, "--holdout", str(hold))
    assert r.returncode != 0 and "holdout columns" in r.stderr and "missing ['alcohol']" in r.stderr


def test_api_matches_dataframes_by_name_and_refuses_unnamed_rows_for_a_named_model(wine, tmp_path):
    import pandas as pd

    _, est, names, X, X_te, _ = wine
    df = pd.DataFrame(X, columns=names)
    a = converters.convert(est, df, tmp_path / "a", holdout=pd.DataFrame(X_te, columns=names))
    b = converters.convert(est, df[names[::-1]], tmp_path / "b", holdout=pd.DataFrame(X_te, columns=names))
    _same_bundle(a, b, X_te, names)
    with pytest.raises(converters.ConversionError, match="no column names.*fitted on named columns"):
        converters.convert(est, X, tmp_path / "c")
    with pytest.raises(converters.ConversionError, match="differ from sample's own column names"):
        converters.convert(est, df, tmp_path / "c", feature_names=names[::-1])
    c = converters.convert(est, X[:, ::-1], tmp_path / "c", feature_names=names[::-1],
                           holdout=X_te[:, ::-1])
    _same_bundle(a, c, X_te, names)


def test_position_only_where_the_model_has_no_names(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y, X_te, _ = dataset("iris")
    est = LogisticRegression(max_iter=1000).fit(X, y)  # bare array: no feature_names_in_
    names = ["sl", "sw", "pl", "pw"]
    b = converters.convert(est, X, tmp_path / "b", feature_names=names, holdout=X_te)
    m = json.loads((b / "manifest.json").read_text())
    assert m["inputs"]["matched_by"] == "position"
    assert [f["name"] for f in m["inputs"]["features"]] == names
    with pytest.raises(converters.ConversionError, match="fitted on 4 features, sample has 3"):
        converters.convert(est, X[:, :3], tmp_path / "c")
