"""Typed input schemas (issue 16, part 3): string categories and text, end to end.

Conversion of OneHot, Ordinal, mixed numeric/categorical and Tf-idf text pipelines on tables
with string columns; the bundles load and reproduce scikit-learn on onnxruntime and on the
numpy backend; unknown categories follow the encoder's handle_unknown; ``edgert predict``
scores a CSV with string columns; category shares drive drift; the manifest refuses
malformed typed fields.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import converters
import edge_runtime
from edge_runtime.bundle import Manifest
from edge_runtime.errors import BundleError, InputError

BACKENDS = ("onnxruntime", "numpy")
COLORS = ["red", "green", "blue"]
SIZES = ["S", "M", "L", "XL"]
WORDS = ["good", "great", "nice", "bad", "awful", "terrible", "plot", "acting", "movie", "film"]


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"color": rng.choice(COLORS, n), "size": rng.choice(SIZES, n),
                         "weight": rng.normal(size=n) * 3 + 1})


def _texts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"review": [" ".join(rng.choice(WORDS, int(rng.integers(1, 8)))) for _ in range(n)],
                         "stars": rng.integers(1, 6, n).astype(float)})


def _target(df: pd.DataFrame) -> np.ndarray:
    return (((df["color"] == "red") ^ (df["weight"] > 1)) | (df["size"] == "XL")).to_numpy().astype(int)


def _text_target(df: pd.DataFrame) -> np.ndarray:
    good = df["review"].str.count("good|great|nice")
    bad = df["review"].str.count("bad|awful|terrible")
    return np.where(good > bad, "pos", np.where(good < bad, "neg", "mixed"))


def _pipelines() -> dict[str, tuple[Any, pd.DataFrame, pd.DataFrame]]:
    train, test = _table(600, 0), _table(300, 1)
    y = _target(train)
    cats = ["color", "size"]
    onehot = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(train[cats], y)
    ordinal = make_pipeline(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                            LogisticRegression()).fit(train[cats], y)
    mixed = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(handle_unknown="error"), cats),
                                             ("num", StandardScaler(), ["weight"])]),
                          LogisticRegression()).fit(train, y)
    regression = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                                                  ("num", StandardScaler(), ["weight"])]),
                               Ridge()).fit(train[["color", "weight"]], train["weight"] * 2 + (train["color"] == "red"))
    ttrain, ttest = _texts(600, 2), _texts(300, 3)
    text = make_pipeline(ColumnTransformer([("t", TfidfVectorizer(ngram_range=(1, 2)), "review"),
                                            ("n", StandardScaler(), ["stars"])]),
                         LogisticRegression(max_iter=500)).fit(ttrain, _text_target(ttrain))
    counts = make_pipeline(ColumnTransformer([("t", CountVectorizer(), "review")]),
                           LogisticRegression(max_iter=500)).fit(ttrain[["review"]], _text_target(ttrain))
    return {"onehot": (onehot, train[cats], test[cats]), "ordinal": (ordinal, train[cats], test[cats]),
            "mixed": (mixed, train, test), "regression": (regression, train[["color", "weight"]],
                                                          test[["color", "weight"]]),
            "tfidf": (text, ttrain, ttest), "counts": (counts, ttrain[["review"]], ttest[["review"]])}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, tuple[Any, Path, pd.DataFrame]]:
    out = {}
    root = tmp_path_factory.mktemp("typed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (est, train, test) in _pipelines().items():
            out[name] = (est, converters.convert(est, train, root / name, name=name, formats=("onnx", "tflite")), test)
    return out


@pytest.mark.parametrize("name", ["onehot", "ordinal", "mixed", "regression", "tfidf", "counts"])
def test_string_pipelines_convert_and_match_sklearn_on_every_backend(converted, name):
    est, path, test = converted[name]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["schema_version"] == "1.1"
    assert [a["format"] for a in manifest["artifacts"]] == ["onnx"]  # LiteRT has no strings
    assert any("no tflite artifact" in n for n in manifest["provenance"]["notes"])
    art = manifest["artifacts"][0]
    assert [i["name"] for i in art["inputs"]] == list(test.columns)
    kinds = {f["name"]: f.get("kind", "numeric") for f in manifest["inputs"]["features"]}
    assert {n: ("numeric" if test[n].dtype.kind == "f" else kinds[n]) for n in test.columns} == kinds
    assert manifest["parity"]["onnx/fp32"]["passed"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = est.predict(test)
        want_p = est.predict_proba(test) if hasattr(est, "predict_proba") else None
    for backend in BACKENDS:
        model = edge_runtime.load(path, backend=backend)  # verifies the golden rows (strings in them)
        assert model.backend.name == backend
        got = model.predict(test)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        else:
            assert (got.astype(str) == want.astype(str)).all()
        if want_p is not None:
            np.testing.assert_allclose(model.predict_proba(test), want_p, atol=1e-4)
        records = test.head(7).to_dict("records")  # records, and rows in feature order
        assert (np.asarray(model.predict(records)).astype(str) == np.asarray(got[:7]).astype(str)).all()
        rows = test.head(7).to_numpy(dtype=object).tolist()
        assert (np.asarray(model.predict(rows)).astype(str) == np.asarray(got[:7]).astype(str)).all()


def test_categorical_reference_counts_category_shares(converted):
    _, path, _ = converted["mixed"]
    manifest = json.loads((path / "manifest.json").read_text())
    color = manifest["reference"]["features"][0]
    train = _pipelines()["mixed"][1]
    assert color["categories"] == sorted(COLORS)
    assert color["counts"] == [int((train["color"] == c).sum()) for c in sorted(COLORS)] + [0]
    assert color["edges"] == [0.5, 1.5, 2.5]
    golden = manifest["golden"]["inputs"]
    assert all(isinstance(r[0], str) and isinstance(r[2], float) for r in golden)


def test_unknown_category_follows_handle_unknown(converted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # ignore: all-zero one-hot, as scikit-learn; encoded: OrdinalEncoder's unknown_value
        for name in ("onehot", "ordinal"):
            est, path, _ = converted[name]
            rows = pd.DataFrame({"color": ["purple", "red"], "size": ["S", "XXL"]})
            want = est.predict_proba(rows)
            for backend in BACKENDS:
                got = edge_runtime.load(path, backend=backend).predict_proba(rows)
                np.testing.assert_allclose(got, want, atol=1e-5)
    _, path, _ = converted["mixed"]
    for backend in BACKENDS:
        model = edge_runtime.load(path, backend=backend)
        rows = [{"color": "red", "size": "M", "weight": 1.0}, {"color": "red", "size": "XXL", "weight": 2.0}]
        with pytest.raises(InputError, match=r"^row 2, feature 'size': unknown category 'XXL'; .*refuses"):
            model.predict(rows)


@pytest.mark.parametrize("value, message", [
    (3, r"row 1, feature 'color': 3 is not a string \(a categorical feature takes text\)"),
    (None, r"row 1, feature 'color': missing value; a categorical feature needs a string"),
    ("x" * 2000, r"row 1, feature 'color': a categorical value of 2000 characters is too long"),
])
def test_bad_categorical_values_are_refused_naming_row_and_feature(converted, value, message):
    model = edge_runtime.load(converted["onehot"][1], backend="numpy")
    with pytest.raises(InputError, match=message):
        model.predict([{"color": value, "size": "M"}])


def test_strings_stay_refused_in_numeric_features(converted):
    model = edge_runtime.load(converted["mixed"][1], backend="onnxruntime")
    with pytest.raises(InputError, match=r"^row 1, feature 'weight': '1.5' is text, not a number"):
        model.predict([{"color": "red", "size": "M", "weight": "1.5"}])
    with pytest.raises(InputError, match=r"unknown feature name\(s\) \['colour'\]"):
        model.predict([{"colour": "red", "size": "M", "weight": 1.5}])


@pytest.mark.slow
def test_edgert_predict_scores_a_csv_with_string_columns(converted, tmp_path, cli_env):
    est, path, test = converted["mixed"]
    rows = test.head(20).copy()
    csv = tmp_path / "in.csv"
    rows.to_csv(csv, index=False)
    run = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", str(path), str(csv), "--proba"],
                         capture_output=True, text=True, env=cli_env, timeout=120)
    assert run.returncode == 0, run.stderr
    out = pd.read_csv(__import__("io").StringIO(run.stdout))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (out["label"].to_numpy() == est.predict(rows)).all()
        np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), est.predict_proba(rows), atol=1e-4)
    # an unknown category: the mixed pipeline's encoder refuses it -> one clear error
    bad = rows.copy()
    bad.loc[bad.index[4], "size"] = "XXL"
    bad.to_csv(csv, index=False)
    run = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", str(path), str(csv)],
                         capture_output=True, text=True, env=cli_env, timeout=120)
    assert run.returncode != 0
    assert "row 5, feature 'size': unknown category 'XXL'" in run.stderr
    # ...and the ignoring encoder scores it (all-zero one-hot), as scikit-learn does
    est1, path1, _ = converted["onehot"]
    bad[["color", "size"]].to_csv(csv, index=False)
    run = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", str(path1), str(csv)],
                         capture_output=True, text=True, env=cli_env, timeout=120)
    assert run.returncode == 0, run.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [int(v) for v in run.stdout.split()[1:]] == est1.predict(bad[["color", "size"]]).tolist()


def _segment(model: Any, X: Any, state: Path) -> dict:
    from edge_runtime.telemetry import MonitoredModel, Outbox, Recorder

    rec = Recorder(state)
    mm = MonitoredModel(model, rec)
    for i in range(0, len(X), 100):
        mm.predict(X.iloc[i:i + 100])
    rec.close()
    ob = Outbox(state)
    seg = ob.next_batch().body["segments"][0]
    ob.close()
    return seg


def test_category_drift_psi_counts_unseen_categories_as_other(converted, tmp_path):
    from edge_runtime.inputs.arrays import FeedAdapter

    model = edge_runtime.load(converted["mixed"][1], backend="onnxruntime")
    same = _table(400, 7)
    seg = _segment(model, same, tmp_path / "same")
    bins = dict(zip(seg["features"]["names"], seg["features"]["bins"]))
    assert bins["color"] == [int((same["color"] == c).sum()) for c in sorted(COLORS)] + [0]
    assert seg["psi"]["color"] < 0.05 and "color" not in seg["drifted"]
    # a category the encoder ignores, never seen in training: counted as "other", and it drifts
    onehot = edge_runtime.load(converted["onehot"][1], backend="numpy")
    shifted = pd.DataFrame({"color": ["purple"] * 300 + ["red"] * 100, "size": ["S"] * 400})
    assert isinstance(onehot._adapt, FeedAdapter)
    assert onehot._adapt.codes(shifted)[:, 0].tolist() == [3.0] * 300 + [2.0] * 100
    seg = _segment(onehot, shifted, tmp_path / "shifted")
    assert dict(zip(seg["features"]["names"], seg["features"]["bins"]))["color"] == [0, 0, 100, 300]
    assert seg["psi"]["color"] > 1 and "color" in seg["drifted"]


# --- the manifest ------------------------------------------------------------------------------
def _manifest(converted) -> dict:
    return json.loads((converted["mixed"][1] / "manifest.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["inputs"]["features"][0].update(kind="colour"), r"inputs.features\[0\].kind' a string 'colour'"),
    (lambda m: m["inputs"]["features"][0].pop("categories"), r"missing field 'inputs.features\[0\].categories'"),
    (lambda m: m["inputs"]["features"][0].update(categories=["a", "a"]), "duplicate categories"),
    (lambda m: m["inputs"]["features"][0].update(categories=[1, 2]), r"categories\[0\]' must be a string"),
    (lambda m: m["inputs"]["features"][0].update(categories=[str(i) for i in range(70_000)]),
     r"categories' has 70000 entries \(at most 65536\)"),
    (lambda m: m["inputs"]["features"][0].update(categories=["x" * 1025]), r"is 1025 characters long \(at most 1024\)"),
    (lambda m: m["inputs"]["features"][0].update(kind=["text"]), r"kind' a list"),
    (lambda m: m["inputs"]["features"][2].update(categories=["a"]), "only a categorical feature has categories"),
    (lambda m: m["inputs"]["features"][0].update(unknown="maybe"), r"unknown' is 'maybe'"),
    (lambda m: m["inputs"]["features"][0].update(allow_nan=True), "must be false for a categorical"),
    (lambda m: m["inputs"]["features"][0].update(range=[0, 1]), "a categorical feature takes strings"),
    (lambda m: m["artifacts"][0]["inputs"][0].update(dtype="float32"), r"inputs\[0\].dtype' is float32, but "
                                                                       "feature 'color' is categorical"),
    (lambda m: m["artifacts"][0]["inputs"].pop(), r"carry no input for feature\(s\) \['weight'\]"),
    (lambda m: m["artifacts"][0]["inputs"][1]["features"].append("color"), "repeats feature 'color'"),
    (lambda m: m["artifacts"][0]["inputs"][1].update(dtype="int8"), r"dtype' a string 'int8' is not one of"),
    (lambda m: m["artifacts"][0].update(input={"name": "x", "dtype": "float32"}) or m["artifacts"][0].pop("inputs"),
     "is one float matrix, but feature 'color' is categorical"),
    (lambda m: m["golden"]["inputs"][0].__setitem__(0, 1.0), r"golden.inputs\[0\]\[0\]' must be a string"),
    (lambda m: m["reference"]["features"][0].update(edges=[0.0, 1.0, 2.0]), "half-integers"),
    (lambda m: m["reference"]["features"][0]["counts"].pop(), r"counts' has 3 entries, expected 4"),
])
def test_malformed_typed_manifests_are_refused_naming_the_field(converted, edit, message):
    data = copy.deepcopy(_manifest(converted))
    edit(data)
    with pytest.raises(BundleError, match=message):
        Manifest(data)


def test_a_numeric_1_0_manifest_still_loads(converted):
    data = _manifest(converted)
    Manifest(data)  # the typed one is valid
    old = {"schema_version": "1.0", "name": "m", "version": "1.0.0", "task": "regression",
           "inputs": {"features": [{"name": "a"}]},
           "artifacts": [{"path": "m.onnx", "format": "onnx", "precision": "fp32", "sha256": "0" * 64,
                          "size": 1, "input": {"name": "input", "dtype": "float32"},
                          "outputs": {"prediction": "y"}}]}
    m = Manifest(old)
    assert m.features[0].kind == "numeric" and m.artifacts[0].inputs == ()
    assert "kind" not in m.features[0].to_json()


def test_served_openapi_describes_string_features(converted):
    from edge_runtime.server.openapi import base_document, openapi_for_model

    manifest = edge_runtime.load(converted["mixed"][1], backend="numpy").manifest
    row = openapi_for_model(base_document(), manifest, 100)["components"]["schemas"]["Row"]["oneOf"][1]["properties"]
    assert row["color"] == {"type": "string", "maxLength": 1024, "enum": sorted(COLORS)}
    assert row["weight"]["type"] == ["number", "boolean"] or row["weight"]["type"][0] == "number"


def test_a_text_pipeline_fitted_on_a_list_of_strings(tmp_path):
    """make_pipeline(TfidfVectorizer(), ...) fitted on plain texts: one text feature, and the
    model takes a plain list of texts, one per row."""
    texts = _texts(500, 4)["review"].tolist()
    y = _text_target(pd.DataFrame({"review": texts}))
    est = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500)).fit(texts, y)
    path = converters.convert(est, texts, tmp_path / "raw")
    probe = ["good movie", "awful awful plot", "great", ""]
    for backend in BACKENDS:
        model = edge_runtime.load(path, backend=backend)
        assert model.feature_names == ["text"]
        assert model.predict(probe).tolist() == est.predict(probe).tolist()
        assert model.predict("nice film").tolist() == est.predict(["nice film"]).tolist()
        assert (model.predict(pd.Series(texts)) == est.predict(texts)).all()


def test_non_ascii_text_that_misses_parity_says_why(tmp_path):
    rng = np.random.default_rng(5)
    words = ["café", "crème", "très", "bon", "mauvais", "école", "élan"]
    texts = [" ".join(rng.choice(words, 4)) for _ in range(300)]
    y = np.array([int(t.count("café") > t.count("bon")) for t in texts])
    est = make_pipeline(ColumnTransformer([("t", CountVectorizer(), "review")]),
                        LogisticRegression()).fit(pd.DataFrame({"review": texts}), y)
    with pytest.raises(converters.ParityError, match=r"holds non-ASCII characters, which the ONNX tokenizer"):
        converters.convert(est, pd.DataFrame({"review": texts}), tmp_path / "accents")


def test_tuner_and_bench_time_a_typed_bundle_on_its_golden_rows(converted, tmp_path, monkeypatch):
    from edge_runtime import routing
    from edge_runtime.bundle import open_bundle
    from edge_runtime.latency.runner import BenchConfig, _rows_and_source

    monkeypatch.setenv("EDGERT_CACHE_DIR", str(tmp_path / "cache"))
    bundle = open_bundle(converted["mixed"][1])
    table = routing.tune(bundle, bundle.manifest.artifacts[0], backends=["onnxruntime", "numpy"],
                         row_counts=(1, 40), budget_s=0.02)
    assert set(table["best"]) == {"1", "40"}
    assert {k.split(":")[0] for k in table["timings_s"]} == {"onnxruntime", "numpy"}
    rows, source = _rows_and_source(bundle, BenchConfig(), 70)
    assert rows.shape == (70, 3) and rows.dtype == object and source.startswith("golden rows")
    model = edge_runtime.load(converted["mixed"][1], backend="numpy")
    assert len(model.predict(rows)) == 70 and len(model.predict(rows[:1])) == 1
    routed = edge_runtime.load(converted["mixed"][1])  # auto: the table just tuned routes by rows
    from edge_runtime.routing import RoutedBackend

    assert isinstance(routed.backend, RoutedBackend)
    assert routed.predict(rows).tolist() == model.predict(rows).tolist()
    assert routed.predict(rows[:1]).tolist() == model.predict(rows[:1]).tolist()


@pytest.mark.slow
def test_edgert_convert_reads_a_csv_with_string_columns(tmp_path, cli_env):
    import joblib

    est, train, test = _pipelines()["mixed"]
    joblib.dump(est, tmp_path / "model.joblib")
    sample = train.assign(y=_target(train))
    sample.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    run = subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(tmp_path / "model.joblib"),
                          "--sample", str(tmp_path / "train.csv"), "--target", "y", "-o", str(tmp_path / "b")],
                         capture_output=True, text=True, env=cli_env, timeout=300)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [f.get("kind", "numeric") for f in manifest["inputs"]["features"]] == ["categorical", "categorical",
                                                                                   "numeric"]
    assert manifest["reference"]["classes"]["source"] == "labels"
    run = subprocess.run([sys.executable, "-m", "edge_runtime", "predict", str(tmp_path / "b"),
                          str(tmp_path / "test.csv")], capture_output=True, text=True, env=cli_env, timeout=120)
    assert run.returncode == 0, run.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [int(v) for v in run.stdout.split()[1:]] == est.predict(test).tolist()


def test_string_columns_the_model_cannot_read_are_refused_naming_them(tmp_path):
    train = _table(200, 8)
    est = LogisticRegression().fit(train[["weight"]].assign(w2=train["weight"] * 2), _target(train))
    typo = train[["weight"]].assign(w2=train["weight"] * 2).astype(object)
    typo.iloc[3, 1] = "n/a"
    with pytest.raises(converters.ConversionError, match=r"column 'w2' mixes strings and numbers"):
        converters.convert(est, typo, tmp_path / "typo")
    words = train[["weight"]].assign(w2=["a"] * len(train))
    with pytest.raises(converters.ConversionError,
                       match=r"column 'w2' holds text \('a'\), but no OneHotEncoder, OrdinalEncoder"):
        converters.convert(est, words, tmp_path / "words")


def test_serve_takes_string_features_and_names_an_unknown_category(converted):
    from test_server_app import call

    from edge_runtime.server import make_app
    from edge_runtime.server.app import single_model_slot

    est, path, test = converted["mixed"]
    model = edge_runtime.load(path, backend="onnxruntime")
    app = make_app(single_model_slot(model), max_body=64 * 1024, max_rows=100)
    records = test.head(5).to_dict("records")
    code, _, body = call(app, "POST", "/predict", json.dumps({"rows": records}).encode(), "proba=1")
    assert code == 200, body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert json.loads(body)["labels"] == est.predict(test.head(5)).tolist()
    rows = test.head(2).to_numpy(dtype=object).tolist()
    rows[1][1] = "XXL"
    code, _, body = call(app, "POST", "/predict", json.dumps({"rows": rows}).encode())
    assert code == 422
    assert json.loads(body)["error"].startswith("row 2, feature 'size': unknown category 'XXL'")


def _random_records(model: Any, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Rows drawn from each feature's kind: categories plus some never seen, texts from the
    vocabulary plus empty ones and unknown words, numbers at several scales."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for f in model.manifest.features:
        if f.kind == "categorical":
            pool = list(f.categories) + ([] if f.unknown == "error" else ["never-seen", ""])
            vals = [pool[i] for i in rng.integers(0, len(pool), n)]
        elif f.kind == "text":
            vocab = WORDS + ["zebra", "the", "a"]
            vals = [" ".join(rng.choice(vocab, int(rng.integers(0, 9))).tolist()) for _ in range(n)]
        else:
            vals = (rng.normal(size=n) * rng.choice([0.5, 3.0, 50.0])).tolist()
        for rec, v in zip(out, vals):
            rec[f.name] = v
    return out


@pytest.mark.parametrize("name", ["onehot", "ordinal", "mixed", "tfidf", "counts"])
def test_numpy_backend_matches_onnxruntime_on_typed_bundles_at_every_size(converted, name):
    _, path, _ = converted[name]
    ort = edge_runtime.load(path, backend="onnxruntime")
    npy = edge_runtime.load(path, backend="numpy")
    rng = np.random.default_rng(len(name))
    for n in (1, 2, 7, 32, 33, 65, 1000, 10_000):
        x = _random_records(ort, n, rng)
        np.testing.assert_allclose(npy.predict_proba(x), ort.predict_proba(x), atol=1e-5, rtol=1e-5,
                                   err_msg=f"{name} rows={n}")
        assert (npy.predict(x).astype(str) == ort.predict(x).astype(str)).all()


def test_object_columns_of_numbers_keep_the_one_matrix_layout(tmp_path):
    train = _table(200, 9)[["weight"]].assign(w2=lambda d: d["weight"] ** 2)
    est = LogisticRegression().fit(train, _target(_table(200, 9)))
    path = converters.convert(est, train.astype(object), tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    assert "inputs" not in manifest["artifacts"][0] and manifest["artifacts"][0]["input"]["dtype"] == "float32"
    assert all("kind" not in f for f in manifest["inputs"]["features"])


def test_parquet_with_string_columns_is_scored(converted, tmp_path):
    pytest.importorskip("pyarrow")
    from edge_runtime.scoring import read_parquet_chunks, score_chunk

    est, path, test = converted["mixed"]
    model = edge_runtime.load(path, backend="numpy")
    test.head(50).to_parquet(tmp_path / "in.parquet")
    chunks = list(read_parquet_chunks(str(tmp_path / "in.parquet"), model.feature_names, chunk_rows=20,
                                      schema=model.input_schema))
    got = np.concatenate([score_chunk(model, c).values for c in chunks])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got.tolist() == est.predict(test.head(50)).tolist()


def test_warn_policy_is_refused_at_the_input_as_its_graph_would_fail(tmp_path):
    """skl2onnx's OneHotEncoder gives zeros only for handle_unknown='ignore'; with 'warn' the
    engine fails on an unknown value, so the device refuses it by name before the engine runs."""
    train = _table(300, 10)
    est = make_pipeline(OneHotEncoder(handle_unknown="warn"), LogisticRegression()).fit(train[["color"]],
                                                                                      _target(train))
    path = converters.convert(est, train[["color"]], tmp_path / "warn")
    model = edge_runtime.load(path, backend="onnxruntime")
    assert model.manifest.features[0].unknown == "error"
    with pytest.raises(InputError, match=r"^row 1, feature 'color': unknown category 'teal'"):
        model.predict([["teal"]])
