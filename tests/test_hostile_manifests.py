"""Mutated manifests of real converted bundles: every one either loads and passes its golden check
on the numpy and onnxruntime backends, or is refused with a BundleError naming the field.

Before this check 32 of 200 mutants raised raw ValueError/RecursionError/TypeError/onnxruntime
errors and 50 loaded, among them ``allow_nan: "false"`` (read as true) and ranges ``[NaN, NaN]``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge_runtime
from edge_runtime.bundle import MANIFEST_NAME, Bundle, Manifest
from edge_runtime.errors import BundleError, GoldenMismatchError

CASES = ("logistic-multiclass", "ridge-regression")
BACKENDS = ("numpy", "onnxruntime")
DEEP, BIG_FLOAT, BIG_INT = "@@deep@@", "@@bigfloat@@", "@@bigint@@"
RAW = {f'"{DEEP}"': "[" * 50_000 + "]" * 50_000, f'"{BIG_FLOAT}"': "1e400",
       f'"{BIG_INT}"': "9" * 5000}
HOSTILE = [None, True, False, "false", "true", "", "0", "1.5", 0, 1, -1, 2, 2**31, 10**30, -0.0,
           1e-300, 1e308, -1e308, math.nan, math.inf, -math.inf, [], {}, [None], [[]], [math.nan, math.nan],
           [1.0, -1.0], [0, 1, 2], {"": None}, "é", "\u202e\u0000", "\ud800", "x" * 1_000_000,
           DEEP, BIG_FLOAT, BIG_INT]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out.extend(_paths(child, prefix + (key,)))
    return out


def _fields(paths: list[tuple]) -> dict[tuple, list[tuple]]:
    """Paths grouped by field (list indices as '*'), so every field is mutated as often as any
    other: 8 golden rows x 13 columns must not drown ``allow_nan`` or ``atol``."""
    out: dict[tuple, list[tuple]] = {}
    for p in paths:
        out.setdefault(tuple("*" if isinstance(k, int) else k for k in p), []).append(p)
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _swap(value: Any) -> Any:
    """The same content as another JSON type."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, str):
        return [value]
    return str(value) if not isinstance(value, bool) else int(value)


def _mutate(doc: dict, path: tuple, op: str, hostile: Any, scale: float) -> None:
    parent, key = _parent(doc, path), path[-1]
    value = parent[key]
    if op == "delete":
        del parent[key]
    elif op == "replace":
        parent[key] = hostile
    elif op == "swap":
        parent[key] = _swap(value)
    elif op == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = value * scale
    elif op == "grow" and isinstance(value, list):
        value.extend(value[-1:] or [None])
    elif op == "shrink" and isinstance(value, list):
        del value[len(value) // 2:]
    elif op == "reverse" and isinstance(value, list):
        value.reverse()
    else:
        parent[key] = hostile


def _to_bytes(doc: dict) -> bytes:
    text = json.dumps(doc)
    for sentinel, raw in RAW.items():
        text = text.replace(sentinel, raw)
    return text.encode("utf-8", "surrogatepass")


pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def originals():
    """case id -> (manifest, its fields, artifact bytes) of the committed zoo bundles."""
    from committed import bundle

    out = {}
    for case_id in CASES:
        path = bundle(case_id)
        raw = (path / MANIFEST_NAME).read_bytes()
        files = {p.name: p.read_bytes() for p in path.iterdir() if p.name != MANIFEST_NAME}
        out[case_id] = (json.loads(raw), _fields(_paths(json.loads(raw))), files)
    assert sorted(out) == sorted(CASES)
    return out


@pytest.fixture(scope="module")
def outcomes():
    seen: Counter[str] = Counter()
    yield seen
    print(f"\nhostile manifests: {seen['manifests']} mutants, {seen['refused']} refused as manifests; "
          f"loads on {'/'.join(BACKENDS)}: {seen['loaded']} passed the golden check, "
          f"{seen['load_refused']} BundleError, {seen['golden']} GoldenMismatchError")
    assert seen["loaded"] and seen["refused"], seen  # the mutations reach both outcomes


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_manifest_loads_or_is_a_bundle_error(originals, outcomes, data):
    case = data.draw(st.sampled_from(CASES))
    base, fields, files = originals[case]
    doc = json.loads(json.dumps(base))
    for _ in range(data.draw(st.integers(1, 3))):
        live = [p for p in fields[data.draw(st.sampled_from(sorted(fields, key=repr)))]
                if _reachable(doc, p)]
        if not live:
            continue
        path = data.draw(st.sampled_from(live))
        op = data.draw(st.sampled_from(["delete", "replace", "replace", "swap", "scale", "grow",
                                        "shrink", "reverse"]))
        _mutate(doc, path, op, data.draw(st.sampled_from(HOSTILE)),
                data.draw(st.sampled_from([-1.0, 0.0, 1e-30, 1e30, 1e300])))
    raw = _to_bytes(doc)
    if data.draw(st.integers(0, 30)) == 0:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    outcomes["manifests"] += 1
    t0 = time.perf_counter()
    try:
        manifest = Manifest.from_bytes(raw)
    except BundleError as exc:
        assert "Traceback" not in str(exc)
        outcomes["refused"] += 1
        return
    finally:
        assert time.perf_counter() - t0 < 10.0  # bounded work (a 50k-deep nest is milliseconds)
    for backend in BACKENDS:
        try:
            model = edge_runtime.load(Bundle(manifest, files, "mutant"), backend=backend)
        except GoldenMismatchError:  # well-formed, but the golden rows disprove the model
            outcomes["golden"] += 1
        except BundleError:
            outcomes["load_refused"] += 1
        else:
            outcomes["loaded"] += 1
            model.close()


def _reachable(doc: Any, path: tuple) -> bool:
    for key in path:
        if isinstance(doc, dict) and key in doc or isinstance(doc, list) and \
                isinstance(key, int) and key < len(doc):
            doc = doc[key]
        else:
            return False
    return True


def _edit(doc: dict, path: tuple, value: Any) -> dict:
    doc = json.loads(json.dumps(doc))
    _parent(doc, path)[path[-1]] = value
    return doc


@pytest.mark.parametrize("path,value,message", [
    (("inputs", "features", 0, "allow_nan"), "false", r"features\[0\].allow_nan' must be true or false"),
    (("inputs", "features", 1, "range"), [math.nan, math.nan], "NaN"),
    (("inputs", "features", 1, "range"), [2.0, 1.0], r"features\[1\].range' is \[2.0, 1.0\]: low is above"),
    (("inputs", "features", 1, "range"), [0, "9"], r"features\[1\].range\[1\]' must be a number"),
    (("outputs", "classes"), [], "'outputs.classes' is empty"),
    (("outputs", "classes"), [0, 1, 1], "duplicate classes"),
    (("outputs", "classes"), [0, 1, "2"], r"classes\[2\]' is a string"),
    (("outputs", "classes"), [2, 1, 0], "not the probabilities' column order"),
    (("outputs", "classes"), [0, 1, 2, 3], r"golden.probabilities\[0\]' has 3 entries, expected 4"),
    (("golden", "rtol"), BIG_FLOAT, "1e400"),
    (("golden", "atol"), -1e-4, r"golden.atol' is -0.0001, outside"),
    (("golden", "atol"), None, r"golden.atol' must be a number, not null"),
    (("golden", "inputs"), [], "'golden.inputs' is empty"),
    (("golden", "inputs", 0, 2), None, r"inputs\[0\]\[2\]' is null \(NaN\) but feature"),
    (("golden", "label"), [0] * 3, "'golden.label' has 3 entries, expected"),
    (("golden", "probabilities", 0, 0), "0.5", r"probabilities\[0\]\[0\]' must be a number"),
    (("artifacts", 0, "input", "dtype"), "float16", r"artifacts\[0\].input.dtype' a string 'float16'"),
    (("artifacts", 0, "size"), 10**30, r"artifacts\[0\].size' is 10+, outside"),
    (("artifacts", 0, "outputs"), {"scores": "label"}, "no label or probabilities output"),
    (("artifacts", 0, "opset"), "17", r"artifacts\[0\].opset' must be an object"),
    (("provenance",), "abc", "'provenance' must be an object"),
    (("reference", "features", 0, "edges"), [2.0, 1.0], "edges' is not sorted"),
    (("name",), "x" * 100_000, "'name' is 100000 characters"),
    (("name",), "a\x00b", "'name' holds a control character"),
    (("inputs", "features", 0, "name"), DEEP, "nests deeper than 32 levels"),
    (("version",), BIG_INT, "integer of 5000 digits"),
])
def test_malformed_field_is_named(originals, path, value, message):
    doc = _edit(originals["logistic-multiclass"][0], path, value)
    with pytest.raises(BundleError, match=message):
        Manifest.from_bytes(_to_bytes(doc))


def test_deep_nesting_is_refused_in_milliseconds():
    raw = b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    t0 = time.process_time()
    with pytest.raises(BundleError, match="deeper than"):
        Manifest.from_bytes(raw)
    assert time.process_time() - t0 < 2.0  # measured ~40 ms; json.loads would raise RecursionError


def test_duplicate_keys_are_refused(originals):
    raw = json.dumps(originals["logistic-multiclass"][0])
    with pytest.raises(BundleError, match="key 'task' twice"):
        Manifest.from_bytes(raw.replace('"task":', '"task": "regression", "task":', 1).encode())


def test_without_golden_rows_only_an_unverified_load(originals):
    doc, _, files = originals["logistic-multiclass"]
    for golden in (None, "missing"):
        changed = _edit(doc, ("golden",), golden)
        if golden == "missing":
            del changed["golden"]
        bundle = Bundle(Manifest.from_bytes(_to_bytes(changed)), files, "no-golden")
        with pytest.raises(BundleError, match="'golden' is missing or null.*verify=False"):
            edge_runtime.load(bundle, backend="onnxruntime")
        model = edge_runtime.load(bundle, backend="numpy", verify=False)
        assert model.predict(doc["golden"]["inputs"]).tolist() == doc["golden"]["label"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path,value,message", [
    (("artifacts", 0, "input", "name"), "features", "input 'features' is not an input of the model"),
    (("artifacts", 0, "outputs", "probabilities"), "proba", "probabilities 'proba' is not an output"),
])
def test_tensor_names_must_be_the_artifacts(originals, backend, path, value, message):
    doc, _, files = originals["logistic-multiclass"]
    bundle = Bundle(Manifest.from_bytes(_to_bytes(_edit(doc, path, value))), files, "renamed")
    with pytest.raises(BundleError, match=message):
        edge_runtime.load(bundle, backend=backend)


def test_input_dtype_must_be_the_artifacts(originals):
    doc, _, files = originals["logistic-multiclass"]
    bundle = Bundle(Manifest.from_bytes(_to_bytes(_edit(doc, ("artifacts", 0, "input", "dtype"), "float64"))),
                    files, "retyped")
    with pytest.raises(BundleError, match="input dtype float64 but the model takes float32"):
        edge_runtime.load(bundle, backend="onnxruntime")


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_count_must_be_the_artifacts(originals, backend):
    """One feature fewer, consistently everywhere in the manifest: only the artifact can tell."""
    doc, _, files = originals["logistic-multiclass"]
    doc = json.loads(json.dumps(doc))
    for key in ("inputs", "reference"):
        doc[key]["features"].pop()
    doc["golden"]["inputs"] = [row[:-1] for row in doc["golden"]["inputs"]]
    bundle = Bundle(Manifest.from_bytes(_to_bytes(doc)), files, "narrowed")
    n = len(doc["inputs"]["features"])
    with pytest.raises(BundleError, match=f"{n} features, but the model takes {n + 1}"):
        edge_runtime.load(bundle, backend=backend)


@pytest.fixture(scope="module")
def with_tflite():
    """The zoo's logistic-multiclass as ONNX and TFLite (committed)."""
    from committed import bundle

    path = bundle("logistic-multiclass-tflite")
    doc = json.loads((path / MANIFEST_NAME).read_bytes())
    return doc, {p.name: p.read_bytes() for p in path.iterdir() if p.name != MANIFEST_NAME}


@pytest.mark.parametrize("field,value,message", [
    ("input", {"name": "features", "dtype": "float32"}, "input 'features' is not an input"),
    ("outputs", {"label": "label", "probabilities": "proba"}, "probabilities 'proba' is not an output"),
])
def test_litert_tensor_names_must_be_the_artifacts(with_tflite, field, value, message):
    doc, files = with_tflite
    i = next(i for i, a in enumerate(doc["artifacts"]) if a["format"] == "tflite")
    bundle = Bundle(Manifest.from_bytes(_to_bytes(_edit(doc, ("artifacts", i, field), value))), files, "t")
    with pytest.raises(BundleError, match=message):
        edge_runtime.load(bundle, backend="litert")
    assert edge_runtime.load(Bundle(Manifest.from_bytes(_to_bytes(doc)), files, "t"), backend="litert")
