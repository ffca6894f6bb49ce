"""``GET /metrics``: the report in Prometheus text exposition format (version 0.0.4).

Per model and version (labels ``model``, ``version``): devices reporting, calls, rows,
errors by kind, latency (a histogram over the stored buckets, whose edges every device
shares, plus the report's quantile estimates as a summary), PSI per feature, accuracy from delayed
labels, shadow agreement. Counters are the stored sums, so they only grow while batches
arrive, whichever collector stored them: any collector sharing the database serves the
same figures.

Rollout state: ``edgert_version_state{state}`` counts devices per state of the version store
(installed, probation, good = committed, bad = rolled back) from each device's latest window,
for apps that report it (``MonitoredModel.set_rollout_state``); ``edgert_devices_current`` is
which version each device ran last.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from edge_runtime.telemetry.histograms import LATENCY_EDGES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in kv.items()) + "}" if kv else ""


def _num(x: float) -> str:
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


class _Family:
    def __init__(self, name: str, kind: str, help_: str):
        self.name, self.kind, self.help = name, kind, help_
        self.samples: list[str] = []

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append(f"{self.name}{suffix}{_labels(**labels)} {_num(value)}")

    def lines(self) -> Iterable[str]:
        if not self.samples:
            return []
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}", *self.samples]


def render(report: dict[str, Any], *, counts: Optional[dict[str, int]] = None,
           duplicates: Optional[int] = None, mqtt_received: Optional[int] = None) -> str:
    """The exposition text for a :func:`collector.report.build_report` result."""
    f = {name: _Family(name, kind, help_) for name, kind, help_ in (
        ("edgert_devices", "gauge", "Devices that sent telemetry for this model version."),
        ("edgert_devices_current", "gauge",
         "Devices whose most recent telemetry window for this model is on this version."),
        ("edgert_version_state", "gauge",
         "Devices whose latest window reports this version in this rollout state "
         "(installed, probation, good, bad)."),
        ("edgert_predict_calls_total", "counter", "Successful predict calls."),
        ("edgert_predict_rows_total", "counter", "Rows predicted."),
        ("edgert_predict_errors_total", "counter", "Failed predict calls, by error kind."),
        ("edgert_predict_lost_calls_total", "counter",
         "Calls a device could not record (its in-memory queue was full)."),
        ("edgert_predict_latency_seconds", "histogram",
         "Predict call latency (fixed log-spaced buckets shared by every device)."),
        ("edgert_predict_latency_quantile_seconds", "summary",
         "Latency quantiles estimated from the same buckets (the report's p50/p90/p99; "
         "one bucket of resolution, a factor 1.26). No _sum: devices send no latency sum."),
        ("edgert_feature_psi", "gauge",
         "Population stability index of a feature against the bundle's training reference."),
        ("edgert_feature_drifted", "gauge", "1 when the feature's PSI is over the threshold."),
        ("edgert_feedback_labels_total", "counter", "Predictions matched with a delayed label."),
        ("edgert_feedback_accuracy_ratio", "gauge", "Accuracy against delayed labels (0..1)."),
        ("edgert_feedback_mean_absolute_error", "gauge",
         "Mean absolute error against delayed labels (regression, in output units)."),
        ("edgert_shadow_agreement_ratio", "gauge",
         "Share of calls where a shadow candidate agreed with the served version (0..1)."),
        ("edgert_version_last_window_end_timestamp_seconds", "gauge",
         "End of the latest telemetry window received for this model version (Unix time)."),
        ("edgert_telemetry_dropped_windows_total", "counter",
         "Telemetry windows devices dropped under their outbox size cap."),
        ("edgert_telemetry_dropped_calls_total", "counter",
         "Calls inside the windows devices dropped under their outbox size cap."),
        ("edgert_collector_batches_total", "counter", "Batches stored (all collectors)."),
        ("edgert_collector_segments_total", "counter", "Telemetry windows stored (all collectors)."),
        ("edgert_collector_duplicate_batches_total", "counter",
         "Batches this collector process received again and did not store again."),
        ("edgert_collector_mqtt_messages_total", "counter",
         "Batches this collector process got from its MQTT shared subscription (its share)."),
    )}
    edges = [repr(float(e)) for e in LATENCY_EDGES]
    for v in report["versions"]:
        mv = {"model": v["model"], "version": v["version"]}
        f["edgert_devices"].add(v.get("devices", 0), **mv)
        f["edgert_devices_current"].add(v.get("devices_current", 0), **mv)
        for state, n in sorted((v.get("states") or {}).items()):
            f["edgert_version_state"].add(n, **mv, state=state)
        f["edgert_predict_calls_total"].add(v["calls"], **mv)
        f["edgert_predict_rows_total"].add(v["rows"], **mv)
        for kind, n in sorted(v["errors_by_kind"].items()):
            f["edgert_predict_errors_total"].add(n, **mv, kind=kind)
        f["edgert_predict_lost_calls_total"].add(v["lost"], **mv)
        lat = f["edgert_predict_latency_seconds"]
        buckets = v.get("latency_buckets") or []
        running = 0
        for i, le in enumerate(edges):  # bucket i holds edges[i-1] <= t < edges[i]
            running += buckets[i] if i < len(buckets) else 0
            lat.add(running, "_bucket", **mv, le=le)
        total = sum(buckets)
        lat.add(total, "_bucket", **mv, le="+Inf")
        lat.add(total, "_count", **mv)
        summary = f["edgert_predict_latency_quantile_seconds"]
        for name, q in (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99")):
            est = v["latency_s"].get(name)
            summary.add(float("nan") if est is None else est, **mv, quantile=q)
        summary.add(total, "_count", **mv)
        for feat, d in sorted(v["drift"].items()):
            if d.get("psi") is not None:
                f["edgert_feature_psi"].add(d["psi"], **mv, feature=feat)
                f["edgert_feature_drifted"].add(bool(d.get("drift")), **mv, feature=feat)
        fb = v["feedback"]
        f["edgert_feedback_labels_total"].add(fb["n"], **mv)
        if fb["accuracy"] is not None:
            f["edgert_feedback_accuracy_ratio"].add(fb["accuracy"], **mv)
        if fb["mae"] is not None:
            f["edgert_feedback_mean_absolute_error"].add(fb["mae"], **mv)
        for cand, s in sorted(v["shadow"].items()):
            if s["agreement"] is not None:
                f["edgert_shadow_agreement_ratio"].add(s["agreement"], **mv, candidate=cand)
        f["edgert_version_last_window_end_timestamp_seconds"].add(float(v["window_end"]), **mv)
    f["edgert_telemetry_dropped_windows_total"].add(report["dropped"]["segments"])
    f["edgert_telemetry_dropped_calls_total"].add(report["dropped"]["calls"])
    if counts is not None:
        f["edgert_collector_batches_total"].add(counts["batches"])
        f["edgert_collector_segments_total"].add(counts["segments"])
    if duplicates is not None:
        f["edgert_collector_duplicate_batches_total"].add(duplicates)
    if mqtt_received is not None:
        f["edgert_collector_mqtt_messages_total"].add(mqtt_received)
    out = [line for fam in f.values() for line in fam.lines()]
    return "\n".join(out) + "\n"
