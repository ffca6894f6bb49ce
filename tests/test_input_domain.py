"""The input domain: non-finite values and values beyond the artifact's float type are refused
with one message naming row and feature, by the numpy and the numpy-free back ends alike;
``strict`` refuses values outside the training min/max; the manifest carries those bounds."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.bundle import Artifact, Feature, Manifest, new_manifest
from edge_runtime.errors import BundleError, InputError
from edge_runtime.inputs import InputAdapter, ListInputAdapter
from edge_runtime.inputs.schema import text_value

NAMES = ["a", "b", "c"]
TRAINED = [Feature("a", train_min=-1.0, train_max=1.0), Feature("b", train_min=0.0, train_max=10.0),
           Feature("c", allow_nan=True, train_min=2.5, train_max=2.5)]
NOT_FINITE = "infinite, or beyond the float32 range (|x| ≤ 3.4028235e+38); the model cannot take it"


def both(features: list[Feature], dtype: str = "float32") -> list:
    return [InputAdapter(features, dtype), ListInputAdapter(features, dtype)]


def verdict(adapter, X, strict: bool = False):
    try:
        return "ok", np.asarray(adapter(X, strict).tolist()).tolist()
    except InputError as exc:
        return "error", str(exc), exc.row, exc.reason


@pytest.mark.parametrize("value", [math.inf, -math.inf, float("1e999"), 1e39, -1e39, 3.5e38, 3.4028235e38,
                                   10**400, -(10**400), 10**300, np.float64(1e39), np.inf])
def test_non_finite_and_beyond_float32_refused_naming_row_and_feature(value):
    rows = [[0.0, 1.0, 2.5], [0.0, value, 2.5]]
    for adapter in both(TRAINED):
        with pytest.raises(InputError) as info:
            adapter(rows)
        assert str(info.value) == f"row 2, feature 'b': {NOT_FINITE}"
        assert info.value.row == 1 and info.value.reason == f"feature 'b': {NOT_FINITE}"


def test_refused_in_arrays_and_frames_too():
    adapter = InputAdapter(TRAINED)
    message = f"row 1, feature 'c': {NOT_FINITE}"
    for X in (np.array([[0.0, 1.0, np.inf]], dtype=np.float32), np.array([[0.0, 1.0, 1e39]]),
              pd.DataFrame([{"a": 0.0, "b": 1.0, "c": -np.inf}]), pd.DataFrame([{"a": 0, "b": 1, "c": 10**400}]),
              np.array([[0, 1, 10**400]], dtype=object)):
        with pytest.raises(InputError) as info:
            adapter(X)
        assert str(info.value) == message


def test_the_float32_edge_is_its_largest_value_not_where_the_cast_overflows():
    edge = float(np.finfo(np.float32).max)
    above = float(np.nextafter(edge, math.inf))  # a float32 cast rounds it down to the edge
    for adapter in both(TRAINED):
        assert verdict(adapter, [[0.0, edge, -edge]])[0] == "ok"
        assert verdict(adapter, [[0.0, 1.0, above]])[1] == f"row 1, feature 'c': {NOT_FINITE}"
        assert verdict(adapter, [[-above, 1.0, 0.0]])[1] == f"row 1, feature 'a': {NOT_FINITE}"
    assert verdict(InputAdapter(TRAINED), np.array([[0.0, 1.0, above]]))[0] == "error"


def test_text_is_refused_in_typed_paths_and_read_from_csv_cells_by_one_rule():
    for adapter in both(TRAINED):
        assert verdict(adapter, [[0.0, "1", 2.5]])[1] == (
            "row 1, feature 'b': '1' is text, not a number: send numbers (only CSV cells are read as text)")
        assert verdict(adapter, [[0.0, "n/a", 2.5]])[1] == "row 1, feature 'b': 'n/a' is not a number"
        assert verdict(adapter, [[0.0, b"1", 2.5]])[1] == "row 1, feature 'b': b'1' is not a number"
    cells = {" 14.0 ": 14.0, "1e39": 1e39, "-Infinity": -math.inf, "": None, " NA ": None, "null": None,
             "NaN": None, "abc": "abc", "0x10": "0x10"}
    assert {k: text_value(k) for k in cells} == cells


def test_float64_artifacts_take_values_beyond_float32_but_not_infinity():
    for adapter in both(TRAINED, "float64"):
        assert verdict(adapter, [[1e39, 1e300, 0.0]]) == ("ok", [[1e39, 1e300, 0.0]])
        got = verdict(adapter, [[0.0, math.inf, 0.0]])
        assert got[0] == "error" and "beyond the float64 range" in got[1]
        assert verdict(adapter, [[0.0, 10**400, 0.0]])[0] == "error"


def test_nan_is_still_governed_by_allow_nan_and_checked_before_infinity():
    for adapter in both(TRAINED):
        assert verdict(adapter, [[0.0, 1.0, math.nan]])[0] == "ok"  # 'c' has an imputer
        assert verdict(adapter, [[0.0, 1.0, None]])[0] == "ok"
        got = verdict(adapter, [[math.inf, 1.0, 2.5], [0.0, None, 2.5]])
        assert got[1] == "row 2, feature 'b': NaN/missing value, and this model has no imputer for it"


def test_strict_refuses_values_outside_the_training_range_naming_value_and_range():
    rows = [[0.5, 10.0, 2.5], [-1.0, 10.5, 2.5]]
    for adapter in both(TRAINED):
        assert verdict(adapter, rows)[0] == "ok"  # not strict: the training range is advice
        assert verdict(adapter, rows, strict=True) == (
            "error", "row 2, feature 'b': 10.5 is outside the training range [0.0, 10.0] (strict)",
            1, "feature 'b': 10.5 is outside the training range [0.0, 10.0] (strict)")
        assert verdict(adapter, [[0.1, 0.0, 2.5]], strict=True)[0] == "ok"
        assert verdict(adapter, [[1.0, 0.0, math.nan]], strict=True)[0] == "ok"  # NaN: allow_nan's call
        got = verdict(adapter, [[1.1, 0.0, 2.5]], strict=True)
        assert got[1] == "row 1, feature 'a': 1.1 is outside the training range [-1.0, 1.0] (strict)"


def test_strict_without_training_bounds_says_so():
    old = [Feature("a"), Feature("b"), Feature("c")]
    for adapter in both(old):
        assert verdict(adapter, [[0.0, 0.0, 0.0]])[0] == "ok"
        with pytest.raises(InputError, match="strict: feature 'a' has no training min/max"):
            adapter([[0.0, 0.0, 0.0]], strict=True)


_value = st.one_of(st.floats(), st.floats(-12, 12, width=32), st.none(), st.integers(-3, 12), st.booleans(),
                   st.sampled_from([1e39, -(10**400), 3.4028235e38, "Infinity", "nan", "", "7.5", "x"]))


@given(st.lists(st.lists(_value, min_size=3, max_size=3), min_size=1, max_size=4), st.booleans())
def test_both_back_ends_give_the_same_verdict_and_message(rows, strict):
    numpy_side, pure_side = both(TRAINED)

    def norm(v):
        return v if v[0] == "error" else ("ok", [[None if x != x else x for x in r] for r in v[1]])

    assert norm(verdict(pure_side, rows, strict)) == norm(verdict(numpy_side, rows, strict))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 2, 30, 255, 256, 257])
def test_the_finite_check_on_bits_agrees_with_isfinite_without_warnings(dtype, count):
    from edge_runtime.inputs.arrays import _FiniteCheck

    info = np.finfo(dtype)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
    width = 8 * np.dtype(dtype).itemsize
    sign, exponent = 1 << (width - 1), (1 << (width - 1)) - (1 << (info.nmant))
    # the edges of the exponent field, by bit pattern: inf, NaNs, the largest finite, subnormals, zeros
    patterns = [exponent, exponent | 1, exponent | (1 << (info.nmant - 1)), sign | exponent,
                exponent - 1, sign | (exponent - 1), 1, sign, 0, (exponent >> 1)]
    check = _FiniteCheck(np.dtype(dtype)).check
    rng = np.random.default_rng(count)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a huge finite value must not warn (a dot of squares would)
        for trial in range(60):
            arr = (rng.standard_normal(count) * rng.choice([1e-3, 1.0, 1e4])).astype(dtype)
            view = arr.view(bits)
            for _ in range(trial % 3):  # 0, 1 or 2 planted patterns anywhere, also the first and last value
                view[int(rng.integers(0, count))] = patterns[int(rng.integers(0, len(patterns)))]
            arr = arr.reshape(1, count) if trial % 2 else arr
            assert check(arr) == bool(np.isfinite(arr).all()), (arr.view(bits), trial)


# --- the manifest's training bounds ------------------------------------------------------------
def _manifest(**feature):
    """A valid manifest (as the converter writes it) whose one feature gets ``feature``'s fields."""
    data = new_manifest(name="m", version="1.0.0", task="regression",
                        features=[Feature("a", train_min=-1.5, train_max=2)])
    data["artifacts"] = [Artifact("model.onnx", "onnx", "fp32", "0" * 64, 1, "X", "float32",
                                  {"prediction": "y"}).to_json()]
    data["inputs"]["features"][0].update(feature)
    return data


def test_manifest_training_bounds_round_trip_and_old_manifests_load():
    m = Manifest(_manifest())
    assert (m.features[0].train_min, m.features[0].train_max) == (-1.5, 2.0)
    assert Manifest(_manifest()).features[0].to_json()["train_max"] == 2.0
    old = _manifest()
    del old["inputs"]["features"][0]["train_min"], old["inputs"]["features"][0]["train_max"]
    f = Manifest(old).features[0]
    assert f.train_min is None and "train_min" not in f.to_json()


@pytest.mark.parametrize("fields,words", [
    ({"train_min": float("nan")}, "'inputs.features[0].train_min' must be a finite number"),
    ({"train_max": float("inf")}, "'inputs.features[0].train_max' must be a finite number"),
    ({"train_min": "0"}, "must be a finite number"),
    ({"train_min": True}, "must be a finite number"),
    ({"train_min": 10**400}, "must be a finite number"),
    ({"train_min": None}, "must be a finite number"),
    ({"train_min": 3.0}, "'inputs.features[0].train_min' 3.0 is above 'train_max' 2"),
])
def test_bad_training_bounds_are_a_bundle_error_naming_the_field(fields, words):
    with pytest.raises(BundleError) as info:
        Manifest(_manifest(**fields))
    assert words in str(info.value)
