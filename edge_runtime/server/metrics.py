"""Prometheus text-format metrics without a client library (the device install stays small):
request counts by path and status, predict errors, rows and a latency histogram per model
version, and model swap counters. One lock; an update is a few dict operations."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from typing import Iterable

#: Upper bounds (seconds) of the predict latency histogram: 250 µs … 2.5 s.
LATENCY_BUCKETS: tuple[float, ...] = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1, 0.25, 0.5, 1.0, 2.5)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in kv.items()) + "}"


class Metrics:
    """Thread-safe counters rendered by :meth:`render` in the Prometheus exposition format 0.0.4."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS):
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._http: dict[tuple[str, str, int], int] = defaultdict(int)  # (method, path, code)
        self._predict: dict[tuple[str, int], int] = defaultdict(int)  # (version, code)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)  # (version, kind)
        self._rows: dict[str, int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._hist_sum: dict[str, float] = defaultdict(float)
        self._swaps = 0
        self._swap_failures = 0

    def http(self, method: str, path: str, code: int) -> None:
        with self._lock:
            self._http[(method, path, code)] += 1

    def predict(self, version: str, code: int, seconds: float, rows: int = 0,
                error_kind: str | None = None) -> None:
        """One /predict request on ``version``: status, latency, rows scored, error kind if any."""
        i = bisect_left(self.buckets, seconds)
        with self._lock:
            self._predict[(version, code)] += 1
            self._rows[version] += rows
            counts = self._hist.get(version)
            if counts is None:
                counts = self._hist[version] = [0] * (len(self.buckets) + 1)
            counts[i] += 1
            self._hist_sum[version] += seconds
            if error_kind:
                self._errors[(version, error_kind)] += 1

    def swap(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._swaps += 1
            else:
                self._swap_failures += 1

    def render(self, model_info: dict[str, str] | None = None) -> str:
        """The exposition text. ``model_info`` (name, version, backend) becomes ``edgert_model_info``."""
        out: list[str] = []
        with self._lock:
            out += ["# HELP edgert_http_requests_total HTTP requests by method, path and status.",
                    "# TYPE edgert_http_requests_total counter"]
            for (method, path, code), n in sorted(self._http.items()):
                labels = _labels(method=method, path=path, code=str(code))
                out.append(f"edgert_http_requests_total{labels} {n}")
            out += ["# HELP edgert_predict_requests_total /predict requests by model version and status.",
                    "# TYPE edgert_predict_requests_total counter"]
            for (version, code), n in sorted(self._predict.items()):
                out.append(f"edgert_predict_requests_total{_labels(version=version, code=str(code))} {n}")
            out += ["# HELP edgert_predict_errors_total Failed /predict requests by model version and kind "
                    "(input = the client's fault, internal = ours).",
                    "# TYPE edgert_predict_errors_total counter"]
            for (version, kind), n in sorted(self._errors.items()):
                out.append(f"edgert_predict_errors_total{_labels(version=version, kind=kind)} {n}")
            out += ["# HELP edgert_predict_rows_total Rows scored by model version.",
                    "# TYPE edgert_predict_rows_total counter"]
            for version, n in sorted(self._rows.items()):
                out.append(f"edgert_predict_rows_total{_labels(version=version)} {n}")
            out += ["# HELP edgert_predict_latency_seconds /predict latency (parse, predict, encode).",
                    "# TYPE edgert_predict_latency_seconds histogram"]
            for version, counts in sorted(self._hist.items()):
                cum = 0
                for bound, n in zip(self.buckets, counts):
                    cum += n
                    out.append(f"edgert_predict_latency_seconds_bucket"
                               f"{_labels(version=version, le=repr(bound))} {cum}")
                cum += counts[-1]
                inf = _labels(version=version, le="+Inf")
                out.append(f"edgert_predict_latency_seconds_bucket{inf} {cum}")
                out.append(f"edgert_predict_latency_seconds_sum{_labels(version=version)} "
                           f"{self._hist_sum[version]!r}")
                out.append(f"edgert_predict_latency_seconds_count{_labels(version=version)} {cum}")
            out += ["# HELP edgert_model_swaps_total Versions swapped in after load and golden check.",
                    "# TYPE edgert_model_swaps_total counter",
                    f"edgert_model_swaps_total {self._swaps}",
                    "# HELP edgert_model_swap_failures_total Activated versions refused (load or golden "
                    "check failed); the previous model kept serving.",
                    "# TYPE edgert_model_swap_failures_total counter",
                    f"edgert_model_swap_failures_total {self._swap_failures}"]
        if model_info:
            out += ["# HELP edgert_model_info The model being served.", "# TYPE edgert_model_info gauge",
                    f"edgert_model_info{_labels(**model_info)} 1"]
        return "\n".join(out) + "\n"
