"""ONNX's own node tests on the numpy backend: every generated case whose operators the backend
registers, against the case's expected outputs, and again with its 2-D inputs tiled to many
rows against onnxruntime (see ``onnx_node_cases``). A case is skipped only when it uses a data
type the converters never emit and the backend refuses it; the skip names the type. The counts
are printed at the end of the run (``tests/conftest.py``)."""

from __future__ import annotations

import pytest
from onnx_node_cases import (
    arrays,
    assert_close,
    cases,
    never_emitted,
    run_tiled,
    tileable,
    tiling,
)

from edge_runtime.errors import UnsupportedModelError
from edge_runtime.onnx_numpy.plan import load_plan

CASES = cases()
#: cases with a 2-D input that the reference accepts tiled (the others have no row axis)
TILED = [c for c in CASES if tileable(c) and tiling(c.name) is not None]
NOT_TILED = [c.name for c in CASES if tileable(c) and c not in TILED]


def _skip_or_raise(case, exc: Exception) -> None:
    """A refusal is a skip only for a type the converters never emit; anything else fails."""
    types = never_emitted(case)
    if not types:
        raise exc
    msg = str(exc).upper().replace("_", "")
    named = [t for t in types if t in msg or t.replace("FN", "").replace("E", "") in msg]
    pytest.skip(f"data type {(named or types)[0]} is never emitted by the converters "
                f"({', '.join(types)}): {exc}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnx_node_case(case):
    try:
        plan, _ = load_plan(case.model.SerializeToString())
    except UnsupportedModelError as exc:
        _skip_or_raise(case, exc)
    inputs, outputs = (arrays(vs) for vs in case.data_sets[0])
    try:
        got = plan.run(dict(zip(plan.inputs, inputs)))
    except UnsupportedModelError as exc:
        _skip_or_raise(case, exc)
    assert len(got) == len(outputs)
    for j, (val, want) in enumerate(zip(got, outputs)):
        assert_close(val, want, case, f"output {j}")


@pytest.mark.parametrize("case", TILED, ids=[c.name for c in TILED])
def test_onnx_node_case_tiled(case, record_property):
    """The same case at >= 64 rows (above every row switch), against onnxruntime."""
    result = run_tiled(case.name)
    if result.refused is not None:
        _skip_or_raise(case, UnsupportedModelError(result.refused))
    assert result.error is None, result.error
    record_property("reference", result.engine)


def test_node_cases_are_generated(record_property):
    """The onnx package still generates its cases, and enough of them run tiled: a silent
    empty parametrisation would pass while testing nothing."""
    record_property("not_tiled", len(NOT_TILED))
    assert len(CASES) > 500 and len(TILED) > 500, (len(CASES), len(TILED))
    assert len(NOT_TILED) < len(TILED) / 5, NOT_TILED
