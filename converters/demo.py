"""The demo behind ``edgert demo``: train on a dataset that ships with scikit-learn, convert,
load with the device runtime, predict, and compare latency, all offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _median_us(fn: Callable[[], Any], budget_s: float = 0.5, min_iter: int = 200) -> float:
    for _ in range(20):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_iter or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 100_000:
            break
    return float(np.median(times) * 1e6)


def train_demo_model(kind: str = "logistic") -> tuple[Any, np.ndarray, np.ndarray, list[str]]:
    """breast_cancer (30 features, ships with scikit-learn): a scaler + logistic pipeline or a
    100-tree forest. Returns (model, X_train, X_test, feature names)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    X_tr, X_te, y_tr, _ = train_test_split(data.data, data.target, test_size=0.25, random_state=0,
                                           stratify=data.target)
    if kind == "forest":
        model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1)
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_tr, y_tr)
    return model, X_tr, X_te, names


def run_demo(out_dir: Path, kind: str = "logistic", echo: Callable[[str], None] = print) -> Path:
    from edge_runtime import load

    from .core import convert

    t0 = time.perf_counter()
    model, X_tr, X_te, names = train_demo_model(kind)
    echo(f"trained  {type(model).__name__} on breast_cancer: {X_tr.shape[0]} rows × {X_tr.shape[1]} "
         f"features ({time.perf_counter() - t0:.2f} s)")
    t0 = time.perf_counter()
    bundle = convert(model, X_tr, out_dir, name=f"breast-cancer-{kind}", version="1.0.0",
                     holdout=X_te, feature_names=names)
    echo(f"converted → {bundle} ({time.perf_counter() - t0:.2f} s)")
    t0 = time.perf_counter()
    m = load(bundle)
    echo(f"loaded   {m!r} ({(time.perf_counter() - t0) * 1e3:.1f} ms, golden rows checked)")
    p = m.artifact.parity
    echo(f"parity   on {p['rows']} held-out rows: label agreement {p['label_agreement']:.2%}, "
         f"max |Δp| {p['probabilities_max_abs_diff']:.2e}")
    pred = m.predict(X_te[:5])
    echo(f"predict  first 5 held-out rows → {pred.tolist()} (scikit-learn: "
         f"{model.predict(X_te[:5]).tolist()})")
    row = np.ascontiguousarray(X_te[:1], dtype=np.float32)
    row64 = X_te[:1]
    ours = _median_us(lambda: m.predict_proba(row))
    theirs = _median_us(lambda: model.predict_proba(row64))
    echo(f"latency  single row predict_proba: edge-runtime {ours:.1f} µs vs scikit-learn "
         f"{theirs:.1f} µs ({theirs / ours:.0f}× faster)")
    return bundle
