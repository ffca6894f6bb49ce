"""LightGBM, XGBoost and CatBoost through `convert` and `edgert convert` (their own saved files),
the float32 threshold floor that gives LightGBM exact parity, and the refusals that remain."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_cli import write_csv
from zoo import dataset

import converters
import edge_runtime
from converters import ConversionError, ParityError
from converters.boosting import load_native
from converters.float32 import down32

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")
catboost = pytest.importorskip("catboost")
pytest.importorskip("onnxmltools")


def test_float32_floor_decides_every_float32_like_the_double_threshold():
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.normal(0, 100, 2000), rng.normal(0, 1e-3, 500), [0.0, -0.0, 1.0, 765.0000000000001]])
    for th in t:
        f = float(down32(np.array([th]))[0])
        assert np.float32(f) == f and f <= th
        # the float32 values around the threshold: the only ones the rounding could move
        near = np.float32(th)
        xs = [np.nextafter(near, np.float32(-np.inf)), near, np.nextafter(near, np.float32(np.inf))]
        for x in xs:
            assert (float(x) <= th) == (float(x) <= f), (th, x)


def test_lightgbm_regression_keeps_exact_branches(tmp_path):
    """Rounding LightGBM's double thresholds to the nearest float32 moved diabetes rows to the
    other branch (0.8 % relative); floored, the graph matches to float32 leaf sums."""
    X, y, X_te, _ = dataset("regression")
    est = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=8, verbose=-1, random_state=0).fit(X, y)
    model = edge_runtime.load(converters.convert(est, X, tmp_path / "b", holdout=X_te), backend="onnxruntime")
    want = est.predict(X_te)
    assert np.max(np.abs(model.predict(X_te) - want)) <= 1e-4 * (1 + np.abs(want).max())
    assert model.manifest.provenance["framework"] == "lightgbm"
    assert "lightgbm" in model.manifest.provenance["versions"]
    assert model.check_golden()


def _saved(kind: str, tmp_path: Path) -> tuple[Path, object]:
    X, y, _, _ = dataset("binary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "txt":
            est = lightgbm.LGBMClassifier(n_estimators=15, num_leaves=8, verbose=-1).fit(X, y)
            path = tmp_path / "model.txt"
            est.booster_.save_model(str(path))
        elif kind in ("json", "ubj"):
            est = xgboost.XGBClassifier(n_estimators=15, max_depth=3).fit(X, y)
            path = tmp_path / f"model.{kind}"
            est.save_model(str(path))
        else:
            est = catboost.CatBoostClassifier(iterations=15, depth=3, verbose=0, random_seed=0,
                                              allow_writing_files=False).fit(X, y)
            path = tmp_path / "model.cbm"
            est.save_model(str(path))
    return path, est


@pytest.mark.parametrize("kind", ["txt", "json", "ubj", "cbm"])
def test_edgert_convert_takes_the_libraries_own_files(kind, tmp_path, cli_env):
    path, est = _saved(kind, tmp_path)
    X, _, X_te, _ = dataset("binary")
    names = [f"f{i}" for i in range(X.shape[1])]
    sample = write_csv(tmp_path / "sample.csv", X, names)
    holdout = write_csv(tmp_path / "holdout.csv", X_te, names)
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(path), "--sample", str(sample),
                        "--holdout", str(holdout), "-o", str(tmp_path / "b")],
                       capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr
    model = edge_runtime.load(tmp_path / "b", backend="onnxruntime")
    assert np.array_equal(model.predict(X_te).astype(int), np.asarray(est.predict(X_te)).reshape(-1).astype(int))
    assert np.max(np.abs(model.predict_proba(X_te) - est.predict_proba(X_te))) <= 1e-4


def test_unknown_or_broken_model_files_are_named(tmp_path):
    bad = tmp_path / "model.cbm"
    bad.write_bytes(b"not a catboost model")
    with pytest.raises(ConversionError, match="model.cbm: not a model file its library can read"):
        load_native(bad)
    with pytest.raises(ConversionError, match="unknown model file type '.bin'"):
        load_native(tmp_path / "model.bin")


def test_bare_boosters_convert(tmp_path):
    X, y, X_te, _ = dataset("multiclass")
    booster = lightgbm.train({"objective": "multiclass", "num_class": 3, "num_leaves": 8, "verbose": -1},
                             lightgbm.Dataset(X, y), num_boost_round=10)
    model = edge_runtime.load(converters.convert(booster, X, tmp_path / "lgb", holdout=X_te))
    assert np.max(np.abs(model.predict_proba(X_te) - booster.predict(X_te))) <= 1e-4
    assert model.classes.tolist() == [0, 1, 2]
    dtrain = xgboost.DMatrix(X, y)
    xb = xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, dtrain, 10)
    model = edge_runtime.load(converters.convert(xb, X, tmp_path / "xgb", holdout=X_te))
    assert np.max(np.abs(model.predict_proba(X_te) - xb.predict(xgboost.DMatrix(X_te)))) <= 1e-4


def test_catboost_closes_a_pipeline_on_the_numpy_backend(tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    X, y, X_te, _ = dataset("mixed")
    pipe = make_pipeline(SimpleImputer(strategy="median"), catboost.CatBoostClassifier(
        iterations=15, depth=3, verbose=0, random_seed=0, allow_writing_files=False)).fit(X, y)
    model = edge_runtime.load(converters.convert(pipe, X, tmp_path / "b", holdout=X_te), backend="numpy")
    assert np.max(np.abs(model.predict_proba(X_te) - pipe.predict_proba(X_te))) <= 1e-4
    assert model.manifest.provenance["framework"] == "catboost, scikit-learn"


def test_categorical_histgradientboosting_is_refused_with_figure_and_cause(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, X_te, _ = dataset("mixed")
    est = HistGradientBoostingClassifier(max_iter=20, random_state=0, categorical_features=[8, 9]).fit(X, y)
    with pytest.raises(ParityError) as err:
        converters.convert(est, X, tmp_path / "b", holdout=X_te)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("cannot convert HistGradientBoostingClassifier: parity missed on ")
    assert "label agreement" in msg and "category bitsets" in msg and "edgert wrap" in msg
    assert not (tmp_path / "b").exists()


def test_a_model_that_predicts_nothing_is_refused_in_one_line(tmp_path):
    from sklearn.preprocessing import StandardScaler

    X, _, _, _ = dataset("binary")
    with pytest.raises(ConversionError) as err:
        converters.convert(StandardScaler().fit(X), X, tmp_path / "b")
    assert "\n" not in str(err.value) and str(err.value).startswith("cannot convert StandardScaler: ")


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_boosting_with_missing_values_compiles_to_tflite(tmp_path, library):
    """NaN follows each split's learned direction in the TFLite trees too (LightGBM's
    missing_type NaN, XGBoost's missing child, CatBoost's nan_mode); XGBoost's strict x < t
    and CatBoost's x > border stay exact."""
    pytest.importorskip("ai_edge_litert")
    X, y, X_te, _ = dataset("mixed")  # 5 % NaN in the numeric columns, no imputer
    est = {"lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1, random_state=0),
           "xgboost": lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0),
           "catboost": lambda: catboost.CatBoostClassifier(iterations=20, depth=3, verbose=0, random_seed=0,
                                                           allow_writing_files=False)}[library]().fit(X, y)
    bundle = converters.convert(est, X, tmp_path / "b", holdout=X_te, formats=("onnx", "tflite"))
    model = edge_runtime.load(bundle, backend="litert")
    assert model.artifact.format == "tflite"
    assert np.isnan(X_te).any()
    assert np.array_equal(model.predict(X_te), est.predict(X_te))
    assert np.max(np.abs(model.predict_proba(X_te) - est.predict_proba(X_te))) <= 1e-4


def test_lightgbm_categorical_splits_are_refused_for_tflite_only(tmp_path):
    from converters import UnsupportedEstimatorError

    X, y, X_te, _ = dataset("mixed")
    est = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1, min_data_per_group=5,
                                  cat_smooth=1.0).fit(X, y, categorical_feature=[8, 9])
    with pytest.raises(UnsupportedEstimatorError, match="categorical splits have no TFLite compilation"):
        converters.convert(est, X, tmp_path / "t", holdout=X_te, formats=("tflite",))
