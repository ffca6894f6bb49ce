"""What the numpy-backend suites share: the comparison with onnxruntime, random tree ensembles,
onnxruntime sessions, and rows drawn from a bundle's reference statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

TOL = 1e-5


def assert_same(want: Any, got: Any, what: str, tol: float = TOL, floor: float = 1.0) -> None:
    """Same shape; floats within ``tol`` (relative past magnitude ``floor``), NaN and
    infinities in the same places; everything else identical."""
    want, got = np.asarray(want), np.asarray(got)
    assert want.shape == got.shape, (what, want.shape, got.shape)
    if want.dtype.kind == "f":
        nan = np.isnan(want)
        assert np.array_equal(nan, np.isnan(got)), (what, "NaN in different places")
        want, got = np.where(nan, 0, want), np.where(nan, 0, got)
        inf = np.isinf(want)
        assert np.array_equal(want[inf], got[inf]), (what, "infinities differ")
        want, got = np.where(inf, 0, want), np.where(inf, 0, got)
        err = np.abs(want.astype(np.float64) - got.astype(np.float64))
        scale = np.maximum(floor, np.abs(want.astype(np.float64)))  # relative past floor
        assert err.size == 0 or np.max(err / scale) <= tol, (what, float(np.max(err / scale)))
    else:
        assert np.array_equal(want, got), what


def assert_same_topk(want_vals: Any, want_idx: Any, got_vals: Any, got_idx: Any, what: str,
                     tol: float = TOL) -> None:
    """TopK's values within ``tol``; its indices identical except where two candidates' values
    are within a float32 rounding of each other (computed in a different order, they may
    swap places: a near tie, not a different answer)."""
    assert_same(want_vals, got_vals, what, tol)
    want_vals, want_idx, got_vals, got_idx = (np.asarray(a) for a in
                                              (want_vals, want_idx, got_vals, got_idx))

    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))

    for r, j in zip(*np.nonzero(want_idx != got_idx)):
        row = list(want_idx[r])
        if got_idx[r, j] in row:  # two of the k swapped places
            a, b = float(want_vals[r, j]), float(want_vals[r, row.index(got_idx[r, j])])
        else:  # a candidate just outside ORT's k: it ties with ORT's k-th value
            a, b = float(want_vals[r, -1]), float(got_vals[r, j])
        assert near(a, b), (what, "indices differ", r, j, a, b)


def ort_session(model: bytes) -> Any:
    """A one-thread CPU onnxruntime session (the reference every differential test uses)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def random_trees(rng, n_trees, depth, n_features, modes, n_out, kind):
    """A random ensemble in ai.onnx.ml attribute form (complete trees of ``depth``)."""
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                             "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                             "nodes_missing_value_tracks_true")}
    w = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
    for t in range(n_trees):
        n_inner = 2 ** depth - 1
        for i in range(2 ** (depth + 1) - 1):
            leaf = i >= n_inner
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(i)
            attrs["nodes_featureids"].append(0 if leaf else int(rng.integers(n_features)))
            attrs["nodes_values"].append(0.0 if leaf else float(np.float32(rng.normal())))
            attrs["nodes_modes"].append("LEAF" if leaf else str(rng.choice(modes)))
            attrs["nodes_truenodeids"].append(0 if leaf else 2 * i + 1)
            attrs["nodes_falsenodeids"].append(0 if leaf else 2 * i + 2)
            attrs["nodes_missing_value_tracks_true"].append(int(rng.integers(2)) if not leaf else 0)
            if leaf:
                for k in range(n_out):
                    w["treeids"].append(t)
                    w["nodeids"].append(i)
                    w["ids"].append(k)
                    w["weights"].append(float(np.float32(rng.normal())))
    prefix = "class" if kind == "classifier" else "target"
    attrs.update({f"{prefix}_{k}": v for k, v in w.items()})
    return attrs


def reference_rows(reference: dict, n: int, rng: np.random.Generator,
                   outside: float) -> np.ndarray:
    """``n`` finite float32 rows drawn from a manifest's ``reference`` statistics: per feature a
    decile bin by its training count, then uniformly within the bin. A share ``outside`` of
    the cells is instead put beyond the training range, up to 10 ranges away on either side
    (values the model never saw: where a kernel's rounding or branch choice would show)."""
    feats = reference["features"]
    out = np.empty((n, len(feats)), dtype=np.float64)
    for j, f in enumerate(feats):
        lo_all, hi_all = float(f["min"]), float(f["max"])
        bounds = [lo_all, *[float(e) for e in f["edges"]], hi_all]
        counts = np.asarray(f["counts"], dtype=np.float64)
        p = counts / counts.sum() if counts.sum() else np.full(len(counts), 1 / len(counts))
        b = rng.choice(len(counts), size=n, p=p)
        lo, hi = np.asarray(bounds)[b], np.asarray(bounds)[b + 1]
        out[:, j] = lo + rng.random(n) * (hi - lo)
        far = rng.random(n) < outside
        if far.any():
            span = max(hi_all - lo_all, 1.0)
            away = rng.random(far.sum()) * 10 * span
            out[far, j] = np.where(rng.random(far.sum()) < 0.5, lo_all - away, hi_all + away)
    return out.astype(np.float32)
