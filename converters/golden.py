"""Golden rows that prove the model: which rows the converter stores for the device's smoke test.

Eight rows taken from the top of the hold-out set were sometimes all of one class, so a swapped
model that kept that class passed. The rows are now stratified: every class the model predicts
on the pool appears (round robin over classes), or, for a regressor, the rows at the minimum,
the maximum and evenly spaced quantiles of its predictions. At least
:data:`edge_runtime.golden.MIN_GOLDEN_ROWS` rows, taken from the hold-out rows first and topped
up from the sample; fewer only when both together have fewer, and the manifest says so.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from edge_runtime import golden as device_golden
from edge_runtime.bundle import LABEL_TASKS, Artifact, json_safe
from edge_runtime.errors import GoldenMismatchError
from edge_runtime.golden import MIN_GOLDEN_ROWS

from .errors import ConversionError
from .onnx_export import Exported


def _pool(H: np.ndarray, X: Optional[np.ndarray], n: int,
          allow_nan: Optional[Sequence[bool]]) -> tuple[np.ndarray, int]:
    """Hold-out rows, topped up (when fewer than ``n``) with sample rows not already among them;
    and how many came from ``H``. Rows with NaN where the device refuses it are left out: the
    device would refuse them at load."""
    def usable(rows: np.ndarray) -> np.ndarray:
        if allow_nan is None:
            return rows
        refused = ~np.asarray(allow_nan, dtype=bool)
        return rows[~_isnan(rows[:, refused]).any(axis=1)]

    H = usable(H)
    if X is None or H.shape[0] >= n:
        return H, H.shape[0]
    seen = {_key(r) for r in np.ascontiguousarray(H)}
    extra = [r for r in np.ascontiguousarray(usable(X)) if _key(r) not in seen]
    return (np.vstack([H, np.asarray(extra)]) if extra else H), H.shape[0]


def _isnan(rows: np.ndarray) -> np.ndarray:
    """NaN (and None) cells, also in object tables (string columns are never NaN)."""
    if rows.dtype != object:
        return np.isnan(rows)
    return np.array([[v is None or (isinstance(v, float) and v != v) for v in r] for r in rows.tolist()],
                    dtype=bool).reshape(rows.shape)


def _key(row: np.ndarray) -> Any:
    """A row's identity: its bytes, or for an object row (strings) its values."""
    return tuple(row.tolist()) if row.dtype == object else row.tobytes()


def _by_class(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Round robin over the predicted classes (each in a seeded random order) until ``n`` rows."""
    keys = labels.astype(str)
    queues = [list(rng.permutation(np.flatnonzero(keys == k))) for k in sorted(set(keys.tolist()))]
    picked: list[int] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(int(q.pop(0)))
    return np.asarray(picked, dtype=np.intp)


def _by_quantile(pred: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The rows at evenly spaced quantiles of the predictions (min and max included), then
    seeded random others where quantiles fall on the same row."""
    order = np.argsort(pred.reshape(pred.shape[0], -1)[:, 0], kind="stable")
    at = np.unique(np.round(np.linspace(0, order.size - 1, min(n, order.size))).astype(np.intp))
    picked = [int(i) for i in order[at]]
    taken = set(picked)
    rest = [int(i) for i in rng.permutation(order.size) if int(i) not in taken]
    picked += rest[: n - len(picked)]
    return np.asarray(picked, dtype=np.intp)


def select_golden_rows(H: np.ndarray, X: Optional[np.ndarray], predict: Callable[[np.ndarray], Any],
                       task: str, n: int = MIN_GOLDEN_ROWS, source: str = "holdout",
                       allow_nan: Optional[Sequence[bool]] = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Pick ``n`` golden rows from the hold-out rows ``H`` (topped up from ``X``).

    ``predict(rows)`` gives the model's labels (classification) or predictions (regression) for
    the pool, which drive the stratification; ``source`` says where ``H`` came from;
    ``allow_nan`` (per feature) leaves out rows the device would refuse. Returns the rows, in
    pool order, and what the manifest records about them (``golden.selection``).

    Raises:
        ConversionError: no row is usable (each has NaN where the model cannot take it).
    """
    pool, from_holdout = _pool(H, X, n, allow_nan)
    if pool.shape[0] == 0:
        raise ConversionError("no golden rows: every hold-out and sample row has NaN in a feature "
                              "the converted model cannot take NaN in")
    rng = np.random.default_rng(0)
    out = np.asarray(predict(pool))
    idx = _by_class(out, n, rng) if task in LABEL_TASKS else _by_quantile(out, n, rng)
    idx = np.sort(idx)
    info: dict[str, Any] = {
        "rows": int(idx.size),
        "stratified_by": "predicted class" if task in LABEL_TASKS else "prediction quantiles",
        "from_holdout": int(np.sum(idx < from_holdout)),
        "source": source,
    }
    if task in LABEL_TASKS:
        info["classes_covered"] = len(set(out[idx].astype(str).tolist()))
        info["classes_predicted"] = len(set(out.astype(str).tolist()))
    if idx.size < n:
        info["note"] = (f"only {idx.size} golden rows: the hold-out and sample rows together have "
                        f"{pool.shape[0]} distinct rows (the converter aims for {n})")
    return pool[idx], info


def golden_block(outputs: dict[str, np.ndarray], g: np.ndarray, task: str, tolerance: float,
                 selection: dict[str, Any]) -> dict[str, Any]:
    """The manifest's golden block: the framework's ``outputs`` on the chosen rows ``g``, at
    ``tolerance`` capped as the device will cap it."""
    tol = min(tolerance, device_golden.PROBA_ATOL_CAP)
    golden: dict[str, Any] = {"inputs": json_safe(g.tolist()), "atol": tol}
    if task in LABEL_TASKS:
        golden["label"] = outputs["label"].tolist()
        if "probabilities" in outputs:
            golden["probabilities"] = outputs["probabilities"].tolist()
    else:
        golden["prediction"] = outputs["prediction"].reshape(-1).tolist()
        golden["rtol"] = tol
    golden["selection"] = selection
    return json_safe(golden)


def _as_golden(got: dict[str, np.ndarray], n: int) -> dict[str, Any]:
    return {role: np.asarray(v).reshape(n, -1).tolist() if role == "probabilities"
            else np.asarray(v).reshape(-1).tolist() for role, v in got.items()}


def artifact_golden(exported: Exported, parity: dict[str, Any], g: np.ndarray, golden: dict[str, Any],
                    run: Callable[[np.ndarray, bool], dict[str, np.ndarray]]) -> Optional[dict[str, Any]]:
    """Golden outputs of the artifact's own, where the device could not prove it on the
    framework's: fp16/int8 artifacts (their figures never match to 1e-3), and any artifact whose
    outputs, all rows at once or one row at a time, miss the device's capped tolerance (a forced
    conversion). Outputs that depend on the batch (dynamic int8 quantizes activations per call)
    are stored for both runs. ``run(rows, by_row)`` runs the artifact on the device's engine."""
    at_once, by_row = run(g, False), run(g, True)
    probe = Artifact(path="model", format=exported.format, precision=exported.precision, sha256="0" * 64,
                     size=0, input_name=exported.input_name, input_dtype=exported.input_dtype,
                     outputs=exported.outputs, opset=exported.opset, parity=json_safe(parity),
                     inputs=exported.inputs)
    if exported.precision in device_golden.QUANTIZED:
        source = "the artifact's own outputs (quantized)"
    else:
        try:
            for got in (at_once, by_row):
                device_golden.compare(golden, {k: v for k, v in got.items() if k in golden}, "check", probe)
            return None
        except GoldenMismatchError as exc:
            source = f"the artifact's own outputs (the framework's miss the device's tolerance: {exc})"
    own: dict[str, Any] = {**_as_golden(at_once, g.shape[0]), "atol": 1e-4, "rtol": 1e-4,
                           "min_label_agreement": 1.0, "source": source}
    if any(not np.array_equal(np.asarray(at_once[k]).astype(str), np.asarray(by_row[k]).astype(str))
           for k in at_once):
        own["by_row"] = _as_golden(by_row, g.shape[0])
    return json_safe(own)
