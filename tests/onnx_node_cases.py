"""ONNX's own node test cases for the numpy backend, built from the installed ``onnx`` package
(its wheels no longer ship the data files), and the same cases tiled to many rows.

The node tests use tiny inputs (2-5 rows), below every size switch of the kernels
(``edge_runtime/onnx_numpy/switches.py``): ArgMin's wrong column loop from 32 rows passed them
all. So each case whose inputs include a 2-D array runs again with that array tiled to at least
:data:`TILE_ROWS` rows, against onnxruntime (``onnx.reference`` where onnxruntime cannot run
the case's opset or type).

Used by ``tests/test_numpy_node_tests.py`` (the runs), ``tests/test_numpy_differential.py``
(which operators the tiled runs cover) and the summary line in ``tests/conftest.py``.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from edge_runtime.errors import UnsupportedModelError
from edge_runtime.onnx_numpy.ops import supported
from edge_runtime.onnx_numpy.plan import load_plan
from edge_runtime.onnx_numpy.switches import ROW_SWITCHES

#: data types the converters never emit: a case using one may be skipped when the numpy
#: backend refuses it (the skip names the type); every other refusal or difference fails
NEVER_EMITTED = ("FLOAT16", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
                 "FLOAT8E5M2FNUZ", "FLOAT8E8M0", "UINT4", "INT4", "FLOAT4E2M1", "UINT2", "INT2",
                 "COMPLEX64", "COMPLEX128")
#: numpy / ml_dtypes dtype name -> ONNX type name, for the inputs a case feeds
_DTYPE_NAMES = {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float8_e4m3fn": "FLOAT8E4M3FN",
                "float8_e4m3fnuz": "FLOAT8E4M3FNUZ", "float8_e5m2": "FLOAT8E5M2",
                "float8_e5m2fnuz": "FLOAT8E5M2FNUZ", "float8_e8m0fnu": "FLOAT8E8M0",
                "int4": "INT4", "uint4": "UINT4", "float4_e2m1fn": "FLOAT4E2M1", "int2": "INT2",
                "uint2": "UINT2", "complex64": "COMPLEX64", "complex128": "COMPLEX128"}
#: tiled inputs get at least this many rows: above every row switch (and >= 64)
TILE_ROWS = max(64, *ROW_SWITCHES.values())
#: the file whose reports the summary line counts
TEST_FILE = "test_numpy_node_tests.py"


def _ops(graph: Any) -> set[tuple[str, str]]:
    return {("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in graph.node}


@functools.lru_cache(maxsize=1)
def cases() -> tuple:
    """The generated node cases whose operators all have a numpy kernel, by name."""
    from onnx.backend.test.case.node import collect_testcases

    ops = set(supported())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators cast out-of-range values on purpose
        found = collect_testcases(None)
    return tuple(c for c in found if _ops(c.model.graph) and _ops(c.model.graph) <= ops)


def arrays(values: list) -> list:
    from onnx import TensorProto, numpy_helper

    return [numpy_helper.to_array(v) if isinstance(v, TensorProto) else v for v in values]


def type_names(case: Any) -> set[str]:
    """Names of every data type the case declares or feeds (graphs, attributes, inputs)."""
    from onnx import TensorProto

    codes: set[int] = set()
    stack = [case.model.graph]
    while stack:
        g = stack.pop()
        for v in (*g.input, *g.output, *g.value_info):
            if v.type.HasField("tensor_type"):
                codes.add(v.type.tensor_type.elem_type)
        codes.update(t.data_type for t in g.initializer)
        for n in g.node:
            for a in n.attribute:
                if a.name == "to" and a.type == a.INT:
                    codes.add(a.i)
                if a.HasField("t"):
                    codes.add(a.t.data_type)
                if a.HasField("g"):
                    stack.append(a.g)
                stack.extend(a.graphs)
    names = {TensorProto.DataType.Name(c) for c in codes if c}
    for arr in arrays(case.data_sets[0][0]):
        name = _DTYPE_NAMES.get(getattr(getattr(arr, "dtype", None), "name", ""))
        if name:
            names.add(name)
    return names


def never_emitted(case: Any) -> list[str]:
    return sorted(set(NEVER_EMITTED) & type_names(case))


def assert_close(got: Any, want: Any, case: Any, what: str) -> None:
    """Outputs equal: floats within the case's tolerance (at least 1e-5 / 1e-6), NaN where
    NaN is expected; every other type exactly, type included."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if want.dtype.kind == "f" or want.dtype.kind == "V":
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6),
                                   err_msg=what)
    else:
        assert got.dtype == want.dtype or want.dtype.kind == "O", (what, got.dtype, want.dtype)
        np.testing.assert_array_equal(got, want, err_msg=what)


# --- tiling -----------------------------------------------------------------------------------

def _lead(inputs: list) -> Optional[int]:
    """The input to tile: the first 2-D numeric one (a batch of rows), else the first of more
    dimensions (tiled along its first axis all the same)."""
    batch = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.ndim >= 2
             and a.dtype.kind in "fiub" and a.size]
    two_d = [i for i in batch if inputs[i].ndim == 2]
    return (two_d or batch or [None])[0]


def tileable(case: Any) -> bool:
    """True when some input is a numeric array of 2 or more dimensions."""
    return _lead(arrays(case.data_sets[0][0])) is not None


def _tiled_model(case: Any, tiled: set[int]) -> bytes:
    """The case's model with the tiled inputs' first dimension and all output shapes left open
    (node tests declare exact shapes, which onnxruntime enforces)."""
    from onnx import ModelProto

    model = ModelProto()
    model.CopyFrom(case.model)
    g = model.graph
    inits = {t.name for t in g.initializer}
    real = [v for v in g.input if v.name not in inits]
    for i in tiled:
        dims = real[i].type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "rows"
    for v in (*g.output, *g.value_info):
        if v.type.HasField("tensor_type"):
            v.type.tensor_type.ClearField("shape")
    return model.SerializeToString()


def _reference(model: bytes, feeds: dict) -> tuple[str, list]:
    """onnxruntime's outputs, or onnx.reference's where onnxruntime cannot run the model."""
    import onnxruntime as ort

    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return "onnxruntime", sess.run(None, feeds)
    except Exception as ort_error:  # opset/type onnxruntime lacks, or a shape it refuses
        from onnx.reference import ReferenceEvaluator

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return "onnx.reference", ReferenceEvaluator(model).run(None, feeds)
        except Exception:
            raise ort_error from None


@dataclass
class Tiled:
    """One tiled run: the reference's outputs and, after :func:`run_tiled`, the verdict."""

    engine: str  # "onnxruntime" / "onnx.reference"
    rows: int
    model: bytes
    feeds: list
    want: list
    ops: frozenset = frozenset()
    refused: Optional[str] = None  # the numpy backend refused the model (load or run)
    error: Optional[str] = None  # the numpy backend differs from the reference or failed


def _candidates(inputs: list) -> list[set[int]]:
    """Which inputs to tile, most natural first: every input whose first axis has the lead
    input's length (features and their per-row targets), the inputs of the lead's shape, the
    lead alone (:func:`_lead`)."""
    lead = _lead(inputs)
    assert lead is not None
    shape = inputs[lead].shape
    arrs = [(i, a) for i, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.ndim]
    out: list[set[int]] = []
    # (a first axis of length 1 matches by chance: Squeeze's axes input is not per row)
    by_rows = {i for i, a in arrs if a.shape[0] == shape[0]} if shape[0] > 1 else {lead}
    for tiled in (by_rows, {i for i, a in arrs if a.shape == shape}, {lead}):
        if tiled not in out:
            out.append(tiled)
    return out


@functools.cache
def tiling(name: str) -> Optional[Tiled]:
    """The case's inputs tiled along their first axis to >= TILE_ROWS rows, with the
    reference's outputs; the first choice of :func:`_candidates` the reference accepts. None
    where it accepts none (no input has a row axis: a 2-D operand broadcast against a 3-D one,
    a transposed Gemm operand)."""
    case = next(c for c in cases() if c.name == name)
    inputs = arrays(case.data_sets[0][0])
    inits = {t.name for t in case.model.graph.initializer}
    names = [v.name for v in case.model.graph.input if v.name not in inits]
    for tiled in _candidates(inputs):
        rows = max(inputs[i].shape[0] for i in tiled)
        reps = -(-TILE_ROWS // rows)
        feeds = [np.concatenate([a] * reps, axis=0) if i in tiled else a
                 for i, a in enumerate(inputs)]
        model = _tiled_model(case, {i for i in tiled if inputs[i].ndim})
        try:
            engine, want = _reference(model, dict(zip(names, feeds)))
        except Exception:  # the reference refuses this tiling: try the next
            continue
        return Tiled(engine, rows * reps, model, feeds, want)
    return None


@functools.cache
def run_tiled(name: str) -> Tiled:
    """The tiled case (:func:`tiling`, which must exist) run on the numpy backend and compared
    with the reference."""
    case = next(c for c in cases() if c.name == name)
    t = tiling(name)
    assert t is not None, name
    try:
        plan, _ = load_plan(t.model)
        got = plan.run(dict(zip(plan.inputs, t.feeds)))
    except UnsupportedModelError as exc:
        t.refused = str(exc)
        return t
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        t.error = f"{type(exc).__name__}: {exc}"
        return t
    try:
        assert len(got) == len(t.want)
        for j, (g, w) in enumerate(zip(got, t.want)):
            w = np.asarray(w)
            if g.dtype.kind == "V" and w.dtype == np.uint8:  # onnxruntime hands float 8 as bytes
                w = w.view(g.dtype)
            assert_close(g, w, case, f"{name} output {j} at {t.rows} rows")
    except AssertionError as exc:
        t.error = f"AssertionError: {exc}"
        return t
    t.ops = frozenset(_ops(case.model.graph))
    return t


def summary(stats: dict) -> list[str]:
    """The summary lines (node-test counts, kernel coverage) from pytest's report lists."""
    counts: dict[str, dict[str, int]] = {"plain": {}, "tiled": {}}
    skipped_by: dict[str, int] = {}
    not_tiled = "?"
    for outcome in ("passed", "skipped", "failed"):
        for rep in stats.get(outcome, []):
            nodeid = getattr(rep, "nodeid", None) or ""
            if TEST_FILE not in nodeid or getattr(rep, "when", "call") == "teardown":
                continue
            kind = "tiled" if "test_onnx_node_case_tiled[" in nodeid else \
                "plain" if "test_onnx_node_case[" in nodeid else None
            if "test_node_cases_are_generated" in nodeid and rep.when == "call":
                not_tiled = str(dict(rep.user_properties).get("not_tiled", "?"))
            if kind is None:
                continue
            label = outcome
            if outcome == "passed" and kind == "tiled":
                label = dict(rep.user_properties).get("reference", "passed")
            counts[kind][label] = counts[kind].get(label, 0) + 1
            if outcome == "skipped":
                reason = str(rep.longrepr[2] if isinstance(rep.longrepr, tuple) else rep.longrepr)
                found = re.search(r"data type (\w+)", reason)
                t = found.group(1) if found else "other"
                skipped_by[t] = skipped_by.get(t, 0) + 1
    coverage = [f"numpy kernels run by differential tests: {dict(rep.user_properties)['coverage']}"
                for rep in stats.get("passed", []) if "test_every_registered_kernel_is_covered"
                in (getattr(rep, "nodeid", None) or "") and rep.when == "call"]
    if not any(counts.values()):
        return coverage
    plain, tiled = counts["plain"], counts["tiled"]
    by_type = ", ".join(f"{t} {n}" for t, n in sorted(skipped_by.items()))
    return [
        f"ONNX node tests on the numpy backend: {plain.get('passed', 0)} passed, "
        f"{plain.get('skipped', 0)} skipped by type ({by_type or 'none'}), "
        f"{plain.get('failed', 0)} failed",
        f"  tiled to >= {TILE_ROWS} rows: {tiled.get('onnxruntime', 0)} passed against "
        f"onnxruntime, {tiled.get('onnx.reference', 0)} against onnx.reference, "
        f"{tiled.get('skipped', 0)} skipped by type, {tiled.get('failed', 0)} failed; "
        f"{not_tiled} cases have no input with a row axis",
    ] + coverage
