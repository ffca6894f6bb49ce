"""Our wheel inside Pyodide (npm ``pyodide``, Node, offline): installed by unpacking the wheel
(micropip when Pyodide has it), bundles loaded with ``load_async`` and run by onnxruntime-web
through the JS bridge, without numpy, onnxruntime or click; predictions match the Python
runtime (onnxruntime) on the same rows."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from js_harness import JS_DIR, build_wheel, demo_bundle, require_node_modules

import edge_runtime

KINDS = ("logistic", "iris-strings", "regression")


#: one bad value per case, in the first feature: text, and two beyond float32 (JSON carries them
#: to JS and back; Infinity or 10**400 would not survive JSON.stringify, which writes null)
BAD_VALUES = ["n/a", 1e39, -3.5e38]


@pytest.fixture(scope="module")
def pyodide_run(tmp_path_factory):
    node = require_node_modules()
    tmp = tmp_path_factory.mktemp("pyodide")
    wheel = build_wheel(tmp / "wheel")
    cases, expected = [], {}
    for kind, bad_value in zip(KINDS, BAD_VALUES):
        bundle, rows = demo_bundle(tmp / "bundles", kind)
        bad = [dict(zip(edge_runtime.load(bundle).feature_names, rows[0]))]
        bad[0][next(iter(bad[0]))] = bad_value
        cases.append({"bundle": str(bundle), "rows": rows, "bad_rows": bad})
        expected[kind] = (edge_runtime.load(bundle, backend="onnxruntime"), rows, bad)
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"wheel": str(wheel), "cases": cases}))
    r = subprocess.run([node, str(JS_DIR / "run_pyodide.mjs"), str(spec)], capture_output=True,
                       text=True, timeout=180, cwd=JS_DIR)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print("pyodide timings:", json.dumps(out["timings"]), "import_ms", round(out["import_ms"], 1),
          [c["timings"] for c in out["cases"]])
    return out, expected


def test_runs_offline_in_pyodide_without_numpy_onnxruntime_or_click(pyodide_run):
    out, _ = pyodide_run
    assert out["platform"] == "emscripten"
    assert out["loaded"] == []
    assert out["installed_with"] in ("micropip", "unpackArchive")
    for case in out["cases"]:
        assert case["backend"] == "pyodide"
        assert case["model_class"] == "ListModel"


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_match_the_python_runtime(pyodide_run, kind):
    out, expected = pyodide_run
    case = out["cases"][KINDS.index(kind)]
    model, rows, _ = expected[kind]
    want = model.predict(rows)
    if model.task == "classification":
        assert case["labels"] == want.tolist()
        np.testing.assert_allclose(np.array(case["proba"]), model.predict_proba(rows), atol=1e-5)
    else:
        np.testing.assert_allclose(np.array(case["labels"]), want, rtol=1e-5, atol=1e-4)
    assert case["timings"]["batch_rows"] == len(rows)


def test_sync_predict_says_to_await_and_bad_input_gets_the_apis_message(pyodide_run):
    out, expected = pyodide_run
    for kind, case in zip(KINDS, out["cases"]):
        assert "BackendError" in case["errors"]["sync"]
        assert "await model.predict_async(rows)" in case["errors"]["sync"]
        model, _, bad = expected[kind]
        with pytest.raises(edge_runtime.InputError) as info:
            model.predict(bad)
        assert case["errors"]["bad_rows"] == f"InputError: {info.value}"
        assert case["errors"]["bad_rows"].startswith("InputError: row 1, feature '")
    assert "'n/a' is not a number" in out["cases"][0]["errors"]["bad_rows"]
    assert all("beyond the float32 range" in c["errors"]["bad_rows"] for c in out["cases"][1:])
