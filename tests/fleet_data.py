"""Telemetry windows for the fleet tests, made by the device's own accumulator (so they are
exactly what a device sends), plus their expected sums."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np

from converters.training_stats import reference_statistics
from edge_runtime.telemetry.aggregate import WindowAccumulator

FEATURES = ["a", "b", "c"]


def reference(seed: int = 0) -> dict[str, Any]:
    X = np.random.default_rng(seed).normal(size=(2000, len(FEATURES)))
    return reference_statistics(X, FEATURES)


def window(model: str, version: str, rng: random.Random, ref: dict[str, Any], *,
           start: float = 1000.0, shift: float = 0.0) -> dict[str, Any]:
    """One window: calls with latencies, a few errors, classes, inputs (``shift`` moves
    feature 'a' for drift), delayed labels, shadow agreement."""
    acc = WindowAccumulator(model, version, start, 10.0, ref)
    n = rng.randint(5, 60)
    nprng = np.random.default_rng(rng.randrange(2**32))
    acc.add_calls(nprng.lognormal(-9, 1, size=n), rows=n)
    X = nprng.normal(size=(n, len(FEATURES)))
    X[:, 0] += shift
    acc.add_inputs(X)
    y = nprng.integers(0, 2, size=n)
    acc.add_outputs(y, classification=True)
    kinds = [rng.choice(["InputError", "BackendError", "TimeoutError"]) for _ in range(rng.randint(0, 3))]
    acc.add_errors(kinds, nprng.lognormal(-8, 1, size=len(kinds)))
    for p in y[: rng.randint(0, n)].tolist():
        acc.add_feedback(p, p if rng.random() < 0.9 else 1 - p, classification=True)
    acc.add_shadow("2.0.0", n, n - rng.randint(0, 3))
    return acc.to_segment()


def totals(segments: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Expected per-version sums of what was generated."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for s in segments:
        t = out.setdefault((s["model"], s["version"]),
                           {"calls": 0, "rows": 0, "errors": Counter(), "classes": Counter(),
                            "feedback": 0, "segments": 0})
        t["calls"] += s["calls"]
        t["rows"] += s["rows"]
        t["errors"].update(s["errors"])
        t["classes"].update(s["classes"])
        t["feedback"] += s["feedback"]["n"]
        t["segments"] += 1
    return out
