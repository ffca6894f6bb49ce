"""What the converter stores besides the model: golden rows, reference statistics, NaN probes."""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import numpy as np

from edge_runtime.bundle import json_safe

N_BINS = 10


def reference_statistics(X: np.ndarray, names: Sequence[str], n_bins: int = N_BINS,
                         features: Sequence[Any] = ()) -> dict[str, Any]:
    """Per-feature bins (quantile cut points) and counts of the training sample, for drift checks.

    A value v falls in bin ``searchsorted(edges, v, side="right")`` (0 … len(edges)); NaN is
    counted apart as ``missing``. The device computes the same bins to compare distributions.
    A categorical feature (of ``features``) counts its category shares instead, see
    :func:`category_reference`; a text feature only how many values were present.
    """
    feats = []
    kinds = {f.name: f for f in features}
    for j, name in enumerate(names):
        feat = kinds.get(name)
        if feat is not None and feat.kind != "numeric":
            feats.append(category_reference(X[:, j].tolist(), name, feat.categories))
            continue
        col = X[:, j].astype(np.float64)
        present = col[~np.isnan(col)]
        if present.size:
            qs = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
            edges = np.unique(qs)
            counts = np.bincount(np.searchsorted(edges, present, side="right"),
                                 minlength=edges.size + 1)
            summary: dict[str, Optional[float]] = {"mean": float(present.mean()), "std": float(present.std()),
                       "min": float(present.min()), "max": float(present.max())}
        else:
            edges, counts = np.array([]), np.array([0])
            summary = {"mean": None, "std": None, "min": None, "max": None}
        feats.append({"name": name, "edges": edges.tolist(), "counts": counts.tolist(),
                      "missing": int(np.isnan(col).sum()), **summary})
    return json_safe({"n_rows": int(X.shape[0]), "binning": "searchsorted-right",
                      "features": feats})


def category_reference(values: Sequence[Any], name: str,
                       categories: Optional[Sequence[str]]) -> dict[str, Any]:
    """A categorical feature's reference: its categories, and their counts with one more bin,
    "other", for values outside them. The device bins category *codes* (index in
    ``categories``, ``len(categories)`` for any other) with the numeric binning rule, so the
    edges are the half-integers between codes and drift (PSI), merging and the collector work
    unchanged. A text feature (``categories`` None) has one bin: present values."""
    present = [v for v in values if isinstance(v, str)]
    missing = len(values) - len(present)
    if categories is None:
        return {"name": name, "kind": "text", "edges": [], "counts": [len(present)], "missing": missing}
    index = {c: i for i, c in enumerate(categories)}
    counts = [0] * (len(categories) + 1)
    for v in present:
        counts[index.get(v, len(categories))] += 1
    return {"name": name, "kind": "categorical", "categories": list(categories),
            "edges": [i + 0.5 for i in range(len(categories))], "counts": counts, "missing": missing}


def training_bounds(X: np.ndarray, dtype: str = "float32",
                    columns: Optional[Sequence[int]] = None) -> list[Optional[tuple[float, float]]]:
    """Each feature's min and max over the finite training values (None for a column with
    none, or not among ``columns``), rounded to the artifact's input ``dtype`` as the device
    compares them: the input schema's training range, which ``predict(strict=True)`` enforces."""
    out: list[Optional[tuple[float, float]]] = []
    for j in range(X.shape[1]):
        if columns is not None and j not in columns:
            out.append(None)
            continue
        with np.errstate(over="ignore"):
            col = X[:, j].astype(dtype).astype(np.float64)
        col = col[np.isfinite(col)]
        out.append((float(col.min()), float(col.max())) if col.size else None)
    return out


def class_reference(labels: Any, classes: Sequence[Any], source: str) -> dict[str, Any]:
    """Class counts for the manifest's ``reference.classes``: the device's probation compares
    the new version's predicted class shares with them. ``source`` says what was counted:
    "labels" (the training labels: catches a model that predicts one class for everything) or
    "predicted" (the model's own answers on the sample, when no labels were given)."""
    y = np.asarray(labels).reshape(-1)
    counts = [int(np.sum(y == c)) for c in classes]
    return json_safe({"labels": list(classes), "counts": counts, "source": source})


def nan_tolerant_features(expected: Any, artifact_runs: Sequence[Any], X: np.ndarray,
                          quantized: Sequence[bool] = (), min_agreement: float = 0.99,
                          columns: Optional[Sequence[int]] = None) -> list[bool]:
    """Which features may be NaN: blank each column and see whether the estimator accepts it
    *and* every artifact gives the same outputs on those rows.

    Exact for any pipeline (imputers, HistGradientBoosting's or trees' native missing-value
    handling) without knowing each estimator's rules, and it catches converters that route NaN
    differently from scikit-learn (then NaN is refused on the device rather than mispredicted).
    ``expected(rows)`` and each ``artifact_runs[i](rows)`` return {role: array}. A quantized
    artifact (``quantized[i]``) is held to its own bar: ``min_agreement`` of the labels, or R² of
    the predictions, since its probabilities never match to 1e-4. Only ``columns`` (all by
    default) are probed; the others (strings) never take NaN.
    """
    rows = X[: min(256, X.shape[0])].copy()
    out = []
    for j in range(X.shape[1]):
        if columns is not None and j not in columns:
            out.append(False)
            continue
        probe = rows.copy()
        probe[:, j] = np.nan
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = expected(probe)
        except (ValueError, TypeError):
            out.append(False)
            continue
        ok = all(v.dtype.kind not in "fc" or not np.isnan(v).any() for v in want.values())
        for i, run in enumerate(artifact_runs if ok else ()):
            try:
                got = run(probe)
            except Exception:  # noqa: BLE001 - an engine that fails on NaN does not accept it
                ok = False
                break
            lossy = i < len(quantized) and quantized[i]
            for role, w in want.items():
                if role not in got or (lossy and role == "probabilities"):
                    continue
                g = np.asarray(got[role])
                if lossy:
                    ok = ok and _kept(w, g, min_agreement)
                elif w.dtype.kind in "fc":
                    ok = ok and bool(np.allclose(g.astype(np.float64).reshape(w.shape), w,
                                                 atol=1e-4, rtol=1e-4))
                else:
                    ok = ok and bool(np.all(g.astype(str).reshape(-1) == w.astype(str).reshape(-1)))
        out.append(bool(ok))
    return out


def r2_score(want: np.ndarray, got: np.ndarray) -> float:
    """1 - SSE / SST over all outputs; a constant target counts as kept only when matched."""
    sse = float(np.sum((got - want) ** 2))
    sst = float(np.sum((want - want.mean(axis=0)) ** 2))
    if not np.isfinite(sse):
        return float("-inf")
    return 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else float("-inf"))


def _kept(want: np.ndarray, got: np.ndarray, bar: float) -> bool:
    if want.dtype.kind in "fc":  # a regressor: R² of the artifact against the estimator
        return r2_score(want.astype(np.float64), got.astype(np.float64).reshape(want.shape)) >= bar
    return float(np.mean(got.astype(str).reshape(-1) == want.astype(str).reshape(-1))) >= bar
