"""One model version's figures over one time window, as an accumulator and as plain JSON.

The JSON form (a *segment*) is what the outbox stores, the uploader sends and the collector
sums. Every field is a count or a sum, so :func:`merge_segments` is exact and order-free:
``merge(a, b)`` reports what one window holding both would have.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Optional

import numpy as np

from .histograms import (
    N_LATENCY_BUCKETS,
    PSI_MIN_ROWS,
    PSI_THRESHOLD,
    feature_drift,
    latency_bucket_counts,
    output_bucket_keys,
)

SEGMENT_SCHEMA = 1
MAX_SAMPLES_PER_WINDOW = 100


def _add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + int(v)
    return out


class WindowAccumulator:
    """Figures of one (model, version, window) while the recorder's drain thread fills them."""

    def __init__(self, model: str, version: str, window_start: float, window_s: float,
                 reference: Optional[dict[str, Any]]):
        self.model = model
        self.version = version
        self.window_start = window_start
        self.window_end = window_start + window_s
        self.calls = 0
        self.rows = 0
        self.lost = 0  # calls not recorded because the in-memory queue was full
        self.errors: Counter[str] = Counter()
        self.latency = np.zeros(N_LATENCY_BUCKETS, dtype=np.int64)
        self.classes: Counter[str] = Counter()
        self.outputs: Counter[str] = Counter()
        self.feedback = {"n": 0, "correct": 0, "abs_err": 0.0, "sq_err": 0.0}
        self.feedback_true: Counter[str] = Counter()
        self.unmatched_feedback = 0
        self.shadow: dict[str, dict[str, int]] = {}
        self.samples: list[list[Any]] = []
        feats = (reference or {}).get("features") or []
        self._ref_feats = feats
        self.feature_names = [f.get("name") for f in feats]
        self._edges = [np.asarray(f.get("edges") or [], dtype=np.float64) for f in feats]
        width = max((e.size for e in self._edges), default=0)
        self._padded: Optional[np.ndarray] = None
        if self._edges:
            self._padded = np.full((len(self._edges), max(width, 1)), np.nan)  # v >= NaN is never true
            for j, e in enumerate(self._edges):
                self._padded[j, :e.size] = e
        self._padded32: Optional[np.ndarray] = None
        if self._padded is not None:
            with np.errstate(over="ignore"):
                up = self._padded.astype(np.float32)
            low = up.astype(np.float64) < self._padded  # rounded down: take the next float32
            up[low] = np.nextafter(up[low], np.float32(np.inf))
            self._padded32 = up
        self._sizes = [int(e.size) for e in self._edges]
        sizes = [e.size + 1 for e in self._edges]
        self._offsets = np.cumsum([0] + sizes[:-1]).astype(np.int64) if sizes else np.zeros(0, np.int64)
        self._total = int(sum(sizes))
        self._flat_bins = np.zeros(self._total, dtype=np.int64)
        self.missing = np.zeros(len(feats), dtype=np.int64)
        self.first_seen: Optional[float] = None
        self.last_seen: Optional[float] = None

    def touched(self, t: float) -> None:
        self.first_seen = t if self.first_seen is None else min(self.first_seen, t)
        self.last_seen = t if self.last_seen is None else max(self.last_seen, t)

    def add_calls(self, latencies: np.ndarray, rows: int) -> None:
        self.calls += int(latencies.size)
        self.rows += int(rows)
        self.latency += latency_bucket_counts(latencies)

    def add_errors(self, kinds: Iterable[str], latencies: np.ndarray) -> None:
        self.errors.update(kinds)
        self.latency += latency_bucket_counts(latencies)

    def add_inputs(self, x: np.ndarray) -> None:
        """Bin a 2-D block of inputs exactly as ``searchsorted(edges, v, side="right")``.

        That index is the number of edges <= v, so per edge k we count the values >= e_k
        (one vectorised comparison per edge over all features; edge rows are NaN-padded and
        v >= NaN is never true) and take differences. float32 inputs are compared in float32
        against each edge rounded *up* to float32, which for float32 v is the same test as
        against the float64 edge (and halves the work). NaN counts as missing, never as a bin.
        """
        padded, padded32 = self._padded, self._padded32
        if padded is None or padded32 is None or x.ndim != 2 or x.shape[1] != padded.shape[0]:
            return
        if x.dtype == np.float32:
            edges = padded32
        else:
            x = x.astype(np.float64, copy=False)
            edges = padded
        xt = np.ascontiguousarray(x.T)
        n = xt.shape[1]
        tmp = np.empty(xt.shape, dtype=bool)
        cum = np.empty(edges.shape, dtype=np.int64)
        for k in range(edges.shape[1]):
            np.greater_equal(xt, edges[:, k:k + 1], out=tmp)
            cum[:, k] = np.count_nonzero(tmp, axis=1)
        np.isnan(xt, out=tmp)
        nan = np.count_nonzero(tmp, axis=1)
        self.missing += nan
        present = n - nan
        flat = self._flat_bins
        for j, (o, m) in enumerate(zip(self._offsets.tolist(), self._sizes)):
            if m == 0:
                flat[o] += present[j]
                continue
            c = cum[j, :m]
            flat[o] += present[j] - c[0]
            flat[o + 1:o + m] += c[:-1] - c[1:]
            flat[o + m] += c[-1]

    @property
    def bins(self) -> list[np.ndarray]:
        return [self._flat_bins[o:o + e.size + 1] for o, e in zip(self._offsets.tolist(), self._edges)]

    def add_outputs(self, y: np.ndarray, classification: bool) -> None:
        if classification:
            labels, counts = np.unique(np.asarray(y).reshape(-1), return_counts=True)
            for label, n in zip(labels.tolist(), counts.tolist()):
                self.classes[str(label)] += int(n)
        else:
            self.outputs.update(output_bucket_keys(y))

    def add_feedback(self, predicted: Any, truth: Any, classification: bool) -> None:
        self.feedback["n"] += 1
        self.feedback_true[str(truth)] += 1
        if classification:
            self.feedback["correct"] += int(str(predicted) == str(truth))
        else:
            err = float(predicted) - float(truth)
            self.feedback["abs_err"] += abs(err)
            self.feedback["sq_err"] += err * err

    def add_shadow(self, candidate: str, n: int, agree: int) -> None:
        s = self.shadow.setdefault(candidate, {"n": 0, "agree": 0})
        s["n"] += int(n)
        s["agree"] += int(agree)

    def add_samples(self, rows: list[list[Any]]) -> None:
        room = MAX_SAMPLES_PER_WINDOW - len(self.samples)
        if room > 0:
            self.samples.extend(rows[:room])

    def empty(self) -> bool:
        return (self.calls == 0 and not self.errors and self.feedback["n"] == 0
                and not self.shadow and not self.lost and not self.unmatched_feedback)

    def drift(self, threshold: float = PSI_THRESHOLD, min_rows: int = PSI_MIN_ROWS
              ) -> dict[str, dict[str, Any]]:
        """Per feature: PSI of this window against the reference, rows seen, drift flag."""
        return {name: feature_drift(ref, b, int(miss), threshold=threshold, min_rows=min_rows)
                for name, ref, b, miss in zip(self.feature_names, self._ref_feats, self.bins,
                                              self.missing.tolist())}

    def to_segment(self) -> dict[str, Any]:
        lat = {str(i): int(c) for i, c in enumerate(self.latency.tolist()) if c}
        seg: dict[str, Any] = {
            "schema": SEGMENT_SCHEMA, "model": self.model, "version": self.version,
            "window_start": self.window_start, "window_end": self.window_end,
            "calls": self.calls, "rows": self.rows, "lost": self.lost,
            "errors": dict(self.errors),
            "latency": lat, "classes": dict(self.classes), "outputs": dict(self.outputs),
            "feedback": {**self.feedback, "unmatched": self.unmatched_feedback,
                         "true": dict(self.feedback_true)},
            "shadow": {k: dict(v) for k, v in self.shadow.items()},
        }
        if self.feature_names:
            bins = self.bins
            seg["features"] = {"names": list(self.feature_names),
                               "bins": [b.tolist() for b in bins],
                               "missing": self.missing.tolist()}
            # this window's own PSI and drift flags (informational: PSI does not add up, so
            # merging drops them and the collector recomputes from the summed bins)
            drift = self.drift()
            seg["psi"] = {k: d["psi"] for k, d in drift.items()}
            seg["drifted"] = [k for k, d in drift.items() if d["drift"]]
        if self.samples:
            seg["samples"] = list(self.samples)
        return seg


def merge_segments(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Exact sum of two segments of the same model version (the window widens to cover both)."""
    if (a["model"], a["version"]) != (b["model"], b["version"]):
        raise ValueError("only segments of the same model version merge")
    out = dict(a)
    out["window_start"] = min(a["window_start"], b["window_start"])
    out["window_end"] = max(a["window_end"], b["window_end"])
    for key in ("calls", "rows", "lost"):
        out[key] = int(a.get(key, 0)) + int(b.get(key, 0))
    for key in ("errors", "latency", "classes", "outputs"):
        out[key] = _add_counts(a.get(key) or {}, b.get(key) or {})
    fa, fb = a.get("feedback") or {}, b.get("feedback") or {}
    out["feedback"] = {k: fa.get(k, 0) + fb.get(k, 0)
                       for k in ("n", "correct", "abs_err", "sq_err", "unmatched")}
    out["feedback"]["true"] = _add_counts(fa.get("true") or {}, fb.get("true") or {})
    shadow = {k: dict(v) for k, v in (a.get("shadow") or {}).items()}
    for cand, s in (b.get("shadow") or {}).items():
        cur = shadow.setdefault(cand, {"n": 0, "agree": 0})
        cur["n"] += int(s.get("n", 0))
        cur["agree"] += int(s.get("agree", 0))
    out["shadow"] = shadow
    ga, gb = a.get("features"), b.get("features")
    if ga and gb and ga["names"] == gb["names"] and all(
            len(x) == len(y) for x, y in zip(ga["bins"], gb["bins"])):
        out["features"] = {"names": list(ga["names"]),
                           "bins": [[p + q for p, q in zip(x, y)] for x, y in zip(ga["bins"], gb["bins"])],
                           "missing": [p + q for p, q in zip(ga["missing"], gb["missing"])]}
    else:
        out["features"] = ga or gb
        if not out["features"]:
            out.pop("features", None)
    out.pop("psi", None)
    out.pop("drifted", None)
    samples = list(a.get("samples") or []) + list(b.get("samples") or [])
    if samples:
        out["samples"] = samples[:MAX_SAMPLES_PER_WINDOW]
    else:
        out.pop("samples", None)
    return out


def validate_segment(seg: Any) -> dict[str, Any]:
    """Check an untrusted segment's shape (the collector's input) and return it.

    Raises:
        ValueError: naming the first field that is missing or of the wrong type.
    """
    if not isinstance(seg, dict):
        raise ValueError("segment is not an object")
    for key, kind in (("segment_id", str), ("model", str), ("version", str),
                      ("window_start", (int, float)), ("window_end", (int, float)),
                      ("calls", int), ("rows", int), ("errors", dict), ("latency", dict),
                      ("classes", dict), ("outputs", dict), ("feedback", dict), ("shadow", dict)):
        if not isinstance(seg.get(key), kind) or isinstance(seg.get(key), bool):
            raise ValueError(f"segment field '{key}' is missing or not {getattr(kind, '__name__', kind)}")
    for key in ("errors", "latency", "classes", "outputs"):
        for k, v in seg[key].items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"segment field '{key}.{k}' is not a count")
    for k in seg["latency"]:
        if not k.isdigit() or int(k) >= N_LATENCY_BUCKETS:
            raise ValueError(f"segment field 'latency.{k}' is not a latency bucket")
    if "state" in seg:
        from ..sync.store import STATES

        if seg["state"] not in STATES:
            raise ValueError(f"segment field 'state' is not one of {', '.join(STATES)}")
    feats = seg.get("features")
    if feats is not None and not _features_well_formed(feats):
        raise ValueError("segment field 'features' is malformed")
    return seg


def _features_well_formed(feats: Any) -> bool:
    """A segment's ``features``: names, bins and missing counts, three lists of one length."""
    return (isinstance(feats, dict) and isinstance(feats.get("names"), list)
            and isinstance(feats.get("bins"), list) and isinstance(feats.get("missing"), list)
            and len(feats["names"]) == len(feats["bins"]) == len(feats["missing"]))
