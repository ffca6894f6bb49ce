"""Read the store: per model version figures (merged segments), and thresholds → breaches.

Every figure is a sum over stored segments, so the report does not depend on the order or
the batching in which windows arrived, nor on which collector stored them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from edge_runtime.bundle import parse_semver
from edge_runtime.health import Breach
from edge_runtime.telemetry.aggregate import merge_segments
from edge_runtime.telemetry.histograms import PSI_MIN_ROWS, PSI_THRESHOLD, feature_drift, quantile_from_buckets

from .series import bucket_segments, point, slim
from .storage import Snapshot

QUANTILES = (("p50", .5), ("p90", .9), ("p99", .99))


def build_report(snap: Snapshot, *, psi_threshold: float = PSI_THRESHOLD,
                 min_rows: int = PSI_MIN_ROWS, series: bool = False) -> dict[str, Any]:
    """Per model version: calls, rows, error rate, latency quantiles and buckets, classes,
    drift, feedback accuracy, shadow agreement, devices and their rollout states (each
    device's latest word); plus what devices reported dropped. ``series`` adds each version's
    figures over time (:mod:`collector.series`)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    nseg: dict[tuple[str, str], int] = {}
    raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
    devs: dict[tuple[str, str], dict[str, tuple[float, Optional[str]]]] = {}
    for model, version, text, device, wend in snap.segments:
        seg = json.loads(text)
        key = (model, version)
        merged[key] = merge_segments(merged[key], seg) if key in merged else seg
        nseg[key] = nseg.get(key, 0) + 1
        if series:
            raw.setdefault(key, []).append(slim(seg))
        last = devs.setdefault(key, {}).get(device)
        if last is None or wend >= last[0]:  # the device's latest word on its rollout state
            state = seg.get("state")
            devs[key][device] = (wend, state if isinstance(state, str) else (last[1] if last else None))
    versions = []
    for key in sorted(merged, key=lambda k: (k[0], _semver_key(k[1]))):
        v = _version_report(merged[key], snap.refs.get(key), nseg[key], psi_threshold, min_rows)
        states: dict[str, int] = {}
        for _, state in devs[key].values():
            if state is not None:
                states[state] = states.get(state, 0) + 1
        v["devices"] = len(devs[key])
        v["devices_current"] = snap.current_by_version.get(key, 0)
        v["states"] = states
        if series:
            v["series"] = [point(_version_report(b, None, 1, psi_threshold, min_rows))
                           for b in bucket_segments(raw[key])]
        versions.append(v)
    return {"versions": versions, "devices": snap.devices,
            "dropped": {"segments": snap.dropped_segments, "calls": snap.dropped_calls}}


def _semver_key(v: str) -> tuple[int, Any]:
    try:
        return (0, parse_semver(v))
    except Exception:  # noqa: BLE001 - non-semver versions (ensembles) sort after
        return (1, v)


def latency_counts(seg_latency: dict[str, int]) -> list[int]:
    """A segment's sparse latency buckets ({"17": 3, ...}) as a dense list."""
    lat = [0] * (max((int(k) for k in seg_latency), default=-1) + 1)
    for k, v in seg_latency.items():
        lat[int(k)] = v
    return lat


def _version_report(seg: dict[str, Any], ref: Optional[dict[str, Any]], nseg: int,
                    psi_threshold: float, min_rows: int) -> dict[str, Any]:
    errors = sum(seg["errors"].values())
    calls = seg["calls"]
    lat = latency_counts(seg["latency"])
    q = {name: quantile_from_buckets(lat, p) for name, p in QUANTILES}
    fb = seg.get("feedback") or {}
    n_fb = int(fb.get("n", 0))
    out: dict[str, Any] = {
        "model": seg["model"], "version": seg["version"], "segments": nseg,
        "window_start": seg["window_start"], "window_end": seg["window_end"],
        "calls": calls, "rows": seg["rows"], "lost": int(seg.get("lost", 0)),
        "errors": errors, "errors_by_kind": seg["errors"],
        "error_rate": errors / (calls + errors) if calls + errors else 0.0,
        "latency_s": q, "latency_buckets": lat, "classes": seg["classes"], "outputs": seg["outputs"],
        "feedback": {"n": n_fb, "unmatched": int(fb.get("unmatched", 0)),
                     "accuracy": fb.get("correct", 0) / n_fb if n_fb and seg["classes"] else None,
                     "mae": fb.get("abs_err", 0.0) / n_fb if n_fb and not seg["classes"] else None,
                     "true": fb.get("true", {})},
        "shadow": {c: {"n": s["n"], "agree": s["agree"],
                       "agreement": s["agree"] / s["n"] if s["n"] else None}
                   for c, s in (seg.get("shadow") or {}).items()},
        "drift": {},
    }
    feats = seg.get("features")
    if feats and ref:
        by_name = {f.get("name"): f for f in ref.get("features") or []}
        for name, counts, missing in zip(feats["names"], feats["bins"], feats["missing"]):
            if name in by_name:
                out["drift"][name] = feature_drift(by_name[name], counts, missing,
                                                   threshold=psi_threshold, min_rows=min_rows)
    return out


@dataclass
class Thresholds:
    max_psi: float = PSI_THRESHOLD
    min_rows: int = PSI_MIN_ROWS
    max_error_rate: float = 0.05
    max_p99_ms: Optional[float] = None
    max_accuracy_drop: float = 0.05
    min_feedback: int = 30


def breaches(report: dict[str, Any], t: Thresholds) -> list[Breach]:
    """Every breach of ``t`` in ``report``: drift per feature, error rate (with the error
    kinds), p99 latency, accuracy drop, windows dropped by devices.

    The accuracy drop of a version is measured against the nearest earlier version (by
    semver) of the same model that has at least ``min_feedback`` labelled predictions.
    """
    out = []
    last_acc: dict[str, tuple[str, float]] = {}
    for v in report["versions"]:
        m, ver = v["model"], v["version"]
        tag = f"{m}@{ver}"
        for name, d in v["drift"].items():
            if d["psi"] is not None and d["rows"] >= t.min_rows and d["psi"] > t.max_psi:
                out.append(Breach("drift", m, ver, d["psi"], t.max_psi,
                                  f"{tag}: drift in feature '{name}': PSI {d['psi']:.3f} > {t.max_psi}",
                                  feature=name))
        if v["calls"] + v["errors"] and v["error_rate"] > t.max_error_rate:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(v["errors_by_kind"].items()))
            out.append(Breach("error_rate", m, ver, v["error_rate"], t.max_error_rate,
                              f"{tag}: error rate {v['error_rate']:.2%} > {t.max_error_rate:.2%} "
                              f"({v['errors']} of {v['calls'] + v['errors']}: {kinds})"))
        p99 = v["latency_s"]["p99"]
        if t.max_p99_ms is not None and p99 is not None and p99 * 1000 > t.max_p99_ms:
            out.append(Breach("latency", m, ver, p99 * 1000, t.max_p99_ms,
                              f"{tag}: p99 latency {p99 * 1000:.3g} ms > {t.max_p99_ms} ms"))
        acc, n = v["feedback"]["accuracy"], v["feedback"]["n"]
        if acc is not None and n >= t.min_feedback:
            prev = last_acc.get(m)
            if prev is not None and prev[1] - acc > t.max_accuracy_drop:
                out.append(Breach("accuracy", m, ver, prev[1] - acc, t.max_accuracy_drop,
                                  f"{tag}: accuracy {acc:.2%} dropped {prev[1] - acc:.2%} from "
                                  f"{prev[1]:.2%} ({m}@{prev[0]}) > {t.max_accuracy_drop:.2%}"))
            last_acc[m] = (ver, acc)
    if report["dropped"]["segments"]:
        out.append(Breach("dropped", "", "", report["dropped"]["segments"], 0,
                          f"devices dropped {report['dropped']['segments']} telemetry windows "
                          f"({report['dropped']['calls']} calls) under the outbox size cap"))
    return out


def check(report: dict[str, Any], t: Thresholds) -> list[str]:
    """One line per breach (see :func:`breaches`)."""
    return [b.message for b in breaches(report, t)]
