"""The runtime core (load, golden check, predict, async twins, input validation) runs with
numpy, onnxruntime and click blocked, as inside Pyodide: a pure-Python backend registered just
for this test computes a real logistic regression from the estimator's coefficients, so wrong
plumbing (rows, order, labels, golden rows) gives wrong answers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from blocking import blocker

BLOCKED = ["numpy", "onnxruntime", "click", "pandas", "scipy", "sklearn", "skl2onnx", "onnx",
           "converters", "ai_edge_litert"]

SCRIPT = textwrap.dedent("""
    import sys, json, math, asyncio

    import edge_runtime
    from edge_runtime.backends import Backend, register
    from edge_runtime.errors import GoldenMismatchError, InputError, BackendError

    COEF, INTERCEPT = {coef!r}, {intercept!r}

    class PureLogistic(Backend):
        name = "pure-logistic"
        bias = 0.0
        def run(self, x, outputs):
            assert type(x).__name__ == "Rows", type(x)  # not an ndarray: numpy is blocked
            proba = []
            for row in x.tolist():
                z = [sum(w * v for w, v in zip(ws, row)) + b + self.bias * k
                     for k, (ws, b) in enumerate(zip(COEF, INTERCEPT))]
                top = max(z)
                e = [math.exp(v - top) for v in z]
                proba.append([v / sum(e) for v in e])
            roles = {{t: r for r, t in self.artifact.outputs.items()}}
            return [proba if roles[o] == "probabilities" else
                    [max(range(len(p)), key=p.__getitem__) for p in proba] for o in outputs]

    @register
    class Good(PureLogistic):
        name = "pure-logistic"

    @register
    class Wrong(PureLogistic):
        name = "pure-logistic-wrong"
        bias = 3.0

    m = edge_runtime.load({bundle!r}, backend="pure-logistic")   # golden rows checked
    rows = {rows!r}
    out = {{"class": type(m).__name__, "labels": m.predict(rows), "proba": m.predict_proba(rows),
           "async": asyncio.run(m.predict_async(rows)),
           "async_proba": asyncio.run(m.predict_proba_async(rows)),
           "one_dict": m.predict(dict(zip(m.feature_names, rows[0]))),
           "golden": m.check_golden(), "golden_async": asyncio.run(m.check_golden_async()),
           "model_async": type(asyncio.run(
               edge_runtime.load_async({bundle!r}, backend="pure-logistic"))).__name__}}
    errors = {{}}
    for key, bad in {{"text": [[1.0, "abc", 2.0, 3.0]], "width": [[1.0, 2.0]], "nan": [[1.0, None, 2.0, 3.0]],
                     "unknown": [{{"colour": 1}}], "empty": []}}.items():
        try:
            m.predict(bad)
        except InputError as exc:
            errors[key] = str(exc)
    try:
        edge_runtime.load({bundle!r}, backend="pure-logistic-wrong")
    except GoldenMismatchError as exc:
        errors["golden"] = str(exc)
    out["errors"] = errors
    out["loaded"] = sorted(k for k in sys.modules if k.split(".")[0] in BLOCKED)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def logistic(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    est = LogisticRegression(max_iter=1000).fit(X, y)
    bundle = converters.convert(est, X, tmp_path_factory.mktemp("iris"), holdout=X_te,
                                feature_names=["sepal_length", "sepal_width", "petal_length",
                                               "petal_width"])
    return est, bundle, X_te[:12]


def test_load_predict_and_validate_without_numpy_onnxruntime_click(logistic, cli_env):
    import numpy as np

    import edge_runtime

    est, bundle, X = logistic
    script = blocker(BLOCKED) + SCRIPT.format(coef=est.coef_.tolist(), intercept=est.intercept_.tolist(),
                           bundle=str(bundle), rows=X.tolist())
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["class"] == "ListModel" and out["model_async"] == "ListModel"
    reference = edge_runtime.load(bundle)  # onnxruntime, numpy
    want = reference.predict(X).tolist()
    assert out["labels"] == want == out["async"] == est.predict(X).tolist()
    assert out["one_dict"] == want[:1]
    np.testing.assert_allclose(out["proba"], reference.predict_proba(X), atol=1e-5)
    assert out["async_proba"] == out["proba"]
    assert out["golden"]["label_agreement"] == 1.0 and out["golden"]["probabilities_max_abs_diff"] < 1e-4
    assert out["golden_async"] == out["golden"]
    errors = out["errors"]
    assert errors["text"] == "row 1, feature 'sepal_width': 'abc' is not a number"
    assert errors["width"].startswith("wrong number of features: expected 4")
    assert errors["unknown"].startswith("row 1: unknown feature name(s) ['colour']")
    assert errors["empty"] == "no rows to predict (got an empty input)"
    assert "golden" in errors and "pure-logistic-wrong" in errors["golden"]
    if not reference.manifest.features[1].allow_nan:
        assert errors["nan"].startswith("row 1, feature 'sepal_width': NaN")


def test_auto_backend_without_numpy_picks_one_engine_instead_of_routing(logistic, cli_env, tmp_path):
    """``backend="auto"`` with two engines that both pass the golden rows: routing would time
    them on numpy rows (it failed with ImportError before); the plain loop takes the first."""
    est, bundle, _ = logistic
    engines = ("COEF, INTERCEPT" + SCRIPT.split("\nm = edge_runtime.load(")[0].split("COEF, INTERCEPT", 1)[1]
               ).format(coef=est.coef_.tolist(), intercept=est.intercept_.tolist())
    script = blocker(BLOCKED) + textwrap.dedent("""
        import json, math, sys
        import edge_runtime
        from edge_runtime.backends import Backend, register
    """) + engines + textwrap.dedent(f"""
        @register
        class Twin(PureLogistic):
            name = "pure-logistic-twin"

        m = edge_runtime.load({str(bundle)!r})
        print(json.dumps({{"class": type(m).__name__, "backend": m.backend.name}}))
    """)
    env = {**cli_env, "EDGERT_CACHE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["class"] == "ListModel" and out["backend"].startswith("pure-logistic")
