"""The collector's dashboard: one offline page and the JSON report it draws.

``GET /`` or ``/dashboard`` returns a single HTML file (package data
``collector/static/dashboard.html``: inline JS and hand-drawn SVG, no build step, no external
asset, so it works on an air-gapped network); the page fetches ``GET /v1/report`` (the
report with each version's series over time; ``?window=SECONDS`` keeps only batches
received in that window) and redraws every 30 s.

:func:`route` is the whole HTTP surface, independent of the server that calls it.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from importlib import resources
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from edge_runtime.telemetry.histograms import PSI_THRESHOLD

from .core import CollectorStore

HTML = "text/html; charset=utf-8"
JSON = "application/json"


@lru_cache(maxsize=1)
def page() -> bytes:
    """The dashboard page (read once from the package)."""
    return resources.files("collector").joinpath("static/dashboard.html").read_bytes()


def route(target: str, store: CollectorStore) -> Optional[tuple[int, str, bytes]]:
    """``(status, content type, body)`` for a GET of ``target`` (path and query), or None
    when the path is not the dashboard's."""
    url = urlsplit(target)
    if url.path in ("/", "/dashboard"):
        return 200, HTML, page()
    if url.path != "/v1/report":
        return None
    since = None
    window = parse_qs(url.query).get("window")
    if window:
        try:
            seconds = float(window[0])
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            return 400, JSON, json.dumps({"error": "window must be a positive number of "
                                                   "seconds"}).encode()
        since = time.time() - seconds
    rep: dict[str, Any] = store.report(since=since, series=True)
    rep["generated"] = time.time()
    rep["psi_threshold"] = PSI_THRESHOLD  # the drift bars' dashed line (the report's default)
    return 200, JSON, json.dumps(rep).encode()
