"""Property: the typed input schema parses any records (strings, numbers, bools, None, nested
junk) either into exactly the arrays an oracle written here expects, or into one InputError
naming the first offending row (row-major) and feature with the schema's reason, never another
exception. The same records as rows in feature order give the same answer."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.bundle import Feature, InputSpec
from edge_runtime.errors import InputError
from edge_runtime.inputs.arrays import FeedAdapter

pytestmark = pytest.mark.device

FEATURES = [Feature("num"), Feature("closed", kind="categorical", categories=("a", "b", "c"), unknown="error"),
            Feature("open", kind="categorical", categories=("x", "y"), unknown="ignore"),
            Feature("txt", kind="text"), Feature("num2", allow_nan=True, range=(-10.0, 10.0))]
SPECS = [InputSpec("num", "float32", ("num", "num2")), InputSpec("closed", "string", ("closed",)),
         InputSpec("open", "string", ("open",)), InputSpec("txt", "string", ("txt",))]
ADAPT = FeedAdapter(FEATURES, SPECS)

values = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                   st.floats(-20, 20, allow_nan=False, width=32), st.just(float("nan")),
                   st.sampled_from(["a", "b", "c", "x", "y", "d", "", " a", "1.5", "nan", "ünï"]),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2))


def _parse_error(name: str, v: Any) -> Optional[str]:
    """The schema's reason for refusing ``v`` while parsing feature ``name``, or None."""
    if name in ("num", "num2"):
        if v is None or isinstance(v, (bool, int, float)):
            return None
        return "is text, not a number" if isinstance(v, str) and _numeric(v) else "is not a number"
    if not isinstance(v, str):
        return "missing value" if v is None or (isinstance(v, float) and math.isnan(v)) else "is not a string"
    if name == "closed" and v not in ("a", "b", "c"):
        return "unknown category"
    return None


def _numeric(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return text.strip().lower() in ("", "na", "nan", "null")
    return True


def _domain_error(name: str, v: Any) -> Optional[str]:
    if name not in ("num", "num2"):  # the string features have no numeric domain
        return None
    x = math.nan if v is None else float(v)
    if name == "num" and math.isnan(x):
        return "NaN/missing value"
    if name == "num2" and not math.isnan(x) and not -10 <= x <= 10:
        return "outside the allowed range"
    return None


def _expect(records: list[dict[str, Any]]) -> tuple[Optional[tuple[int, str, str]], dict]:
    names = [f.name for f in FEATURES]
    for r, rec in enumerate(records):  # the input's shape first: a nested value is a 3-D input
        if any(isinstance(rec[n], list) for n in names):
            return (r, "", f"row {r + 1}: input must be 2-D"), {}
    for check in (_parse_error, _domain_error):
        for r, rec in enumerate(records):  # row-major: the first bad row, then the first feature
            for name in names:
                why = check(name, rec[name])
                if why:
                    return (r, name, why), {}
    num = np.array([[math.nan if rec[n] is None else float(rec[n]) for n in ("num", "num2")]
                    for rec in records], dtype=np.float32)
    feeds = {"num": num}
    for n in ("closed", "open", "txt"):
        feeds[n] = np.array([[rec[n]] for rec in records], dtype=object)
    return None, feeds


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({f.name: values for f in FEATURES}), min_size=1, max_size=6))
def test_records_parse_or_fail_naming_row_and_feature(records):
    problem, want = _expect(records)
    as_rows = [[rec[f.name] for f in FEATURES] for rec in records]
    for given_input in (records, as_rows):
        if problem is None:
            got = ADAPT(given_input)
            assert sorted(got) == sorted(want)
            for k in want:
                assert got[k].shape == want[k].shape
                if want[k].dtype == object:
                    assert got[k].tolist() == want[k].tolist()
                    assert all(type(v) is str for v in got[k].reshape(-1).tolist())
                else:
                    np.testing.assert_array_equal(got[k], want[k])
            continue
        r, name, why = problem
        with pytest.raises(InputError) as info:
            ADAPT(given_input)
        msg = str(info.value)
        if name:
            assert msg.startswith(f"row {r + 1}, feature '{name}': "), (msg, problem)
        assert why in msg, (msg, problem)
