"""Alerts from the collector: ``check`` breaches sent to a webhook as Alertmanager JSON.

An alert *fires* when a breach appears and is *resolved* when its model version reports
again without it. Which alerts fire is kept in the collector database (table
``alert_state``), written only after the webhook acknowledged, so a restarted evaluator
neither fires twice nor forgets to resolve, and a failed delivery is retried next round.

Figures are judged over the batches received in the last ``window_s`` seconds (all history
never heals: a drift that stopped would keep firing). A version, or a drifting feature, with
no data (or fewer than ``min_rows`` rows) in the window keeps its alert as it is: no data
is no verdict.

Two targets: a *webhook* gets Alertmanager's webhook format (version "4"), one notification
per change, so anything that takes Alertmanager notifications (chat bridges, PagerDuty
adapters, ticket hooks) takes ours; an *Alertmanager* gets the alerts through its own API
(``POST /api/v2/alerts``, as Prometheus sends them): every round re-sends what is firing
with an ``endsAt`` a few rounds ahead (so Alertmanager resolves them by itself if this
evaluator dies) and what cleared with ``endsAt`` = now; routing, grouping, silences and
repeats are then Alertmanager's.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from edge_runtime.errors import AlertDeliveryError
from edge_runtime.health import Breach

from .core import CollectorStore
from .report import Thresholds, breaches

#: Alertmanager's alert name per breach kind, and how urgent it is.
ALERTNAMES = {"drift": "EdgertFeatureDrift", "error_rate": "EdgertHighErrorRate",
              "latency": "EdgertHighLatencyP99", "accuracy": "EdgertAccuracyDrop",
              "dropped": "EdgertTelemetryDropped"}
SEVERITY = {"drift": "warning", "error_rate": "critical", "latency": "warning",
            "accuracy": "critical", "dropped": "warning"}
#: Alertmanager's "zero time": endsAt of an alert still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_WINDOW_S = 3600.0
MAX_RESPONSE_BYTES = 64 * 1024

_SCHEMA = """CREATE TABLE IF NOT EXISTS alert_state (fingerprint TEXT PRIMARY KEY,
    labels TEXT NOT NULL, annotations TEXT NOT NULL, starts_at REAL NOT NULL)"""


def rfc3339(t: float) -> str:
    """UTC time with millisecond precision and a ``Z``, as Alertmanager writes it."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def alert_labels(b: Breach) -> dict[str, str]:
    """The labels that identify an alert (its fingerprint): same breach, same labels."""
    labels = {"alertname": ALERTNAMES[b.kind], "severity": SEVERITY[b.kind]}
    if b.model:
        labels.update(model=b.model, version=b.version)
    if b.feature is not None:
        labels["feature"] = b.feature
    return labels


def fingerprint(labels: dict[str, str]) -> str:
    """16 hex digits over the sorted labels (stable across processes and restarts)."""
    text = "\n".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    """One alert as it is sent: labels, annotations, start (and end once resolved)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: Optional[float] = None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.labels)

    def to_json(self, generator_url: str = "") -> dict[str, Any]:
        return {"status": "firing" if self.ends_at is None else "resolved",
                "labels": dict(self.labels), "annotations": dict(self.annotations),
                "startsAt": rfc3339(self.starts_at),
                "endsAt": ZERO_TIME if self.ends_at is None else rfc3339(self.ends_at),
                "generatorURL": generator_url, "fingerprint": self.fingerprint}


def webhook_payload(alerts: list[Alert], *, receiver: str = "edgert",
                    external_url: str = "") -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for one group of alerts."""
    status = "firing" if any(a.ends_at is None for a in alerts) else "resolved"
    common = dict(alerts[0].labels) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    common_ann = dict(alerts[0].annotations) if alerts else {}
    for a in alerts[1:]:
        common_ann = {k: v for k, v in common_ann.items() if a.annotations.get(k) == v}
    group = {"alertname": common["alertname"]} if "alertname" in common else {}
    return {"version": "4", "groupKey": "{}:" + json.dumps(group, sort_keys=True),
            "truncatedAlerts": 0, "status": status, "receiver": receiver,
            "groupLabels": group, "commonLabels": common, "commonAnnotations": common_ann,
            "externalURL": external_url,
            "alerts": [a.to_json(external_url) for a in alerts]}


class AlertState:
    """Which alerts are firing, in the collector's database (survives restarts)."""

    def __init__(self, db: Union[str, Path]):
        self._db = sqlite3.connect(str(db), timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute(_SCHEMA)

    def firing(self) -> dict[str, Alert]:
        with self._lock:
            rows = self._db.execute(
                "SELECT labels, annotations, starts_at FROM alert_state").fetchall()
        alerts = (Alert(json.loads(lab), json.loads(ann), float(t)) for lab, ann, t in rows)
        return {a.fingerprint: a for a in alerts}

    def fired(self, alerts: list[Alert]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO alert_state VALUES(?, ?, ?, ?)",
                [(a.fingerprint, json.dumps(a.labels, sort_keys=True),
                  json.dumps(a.annotations, sort_keys=True), a.starts_at) for a in alerts])

    def resolved(self, alerts: list[Alert]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM alert_state WHERE fingerprint=?",
                                 [(a.fingerprint,) for a in alerts])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def post_json(url: str, body: Any, *, timeout_s: float = 10.0,
              token: Optional[str] = None, name: str = "webhook") -> int:
    """POST ``body`` to ``url``; returns the HTTP status (2xx).

    Raises:
        AlertDeliveryError: not reachable, no answer within ``timeout_s``, or not 2xx.
    """
    headers = {"Content-Type": "application/json", "User-Agent": "edgert-collector-alerts"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers,
                                 method="POST")
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            resp.read(MAX_RESPONSE_BYTES)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(f"{name} {_safe(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertDeliveryError(f"{name} {_safe(url)} unreachable: {reason}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib would turn the POST into a body-less GET, whose 2xx
    would then count as delivered."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _safe(url: str) -> str:
    """The URL without credentials (it goes to logs)."""
    p = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((p.scheme, p.hostname or "", p.path, "", "")) if p.port is None \
        else urllib.parse.urlunsplit((p.scheme, f"{p.hostname}:{p.port}", p.path, "", ""))


def check_webhook_url(url: str) -> str:
    """The URL if it is http(s) with a host, else ValueError naming what is wrong."""
    p = urllib.parse.urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise ValueError(f"webhook URL must be http(s)://host[:port]/path, got {url!r}")
    return url


@dataclass
class Round:
    """What one evaluation sent, and what is firing after it."""

    fired: list[Alert]
    resolved: list[Alert]
    active: int


def alertmanager_body(alerts: list[Alert], valid_until: float,
                      generator_url: str = "") -> list[dict[str, Any]]:
    """Alertmanager's ``POST /api/v2/alerts`` body: firing alerts end at ``valid_until``
    unless re-sent, resolved ones carry their own end."""
    return [{"labels": dict(a.labels), "annotations": dict(a.annotations),
             "startsAt": rfc3339(a.starts_at),
             "endsAt": rfc3339(valid_until if a.ends_at is None else a.ends_at),
             "generatorURL": generator_url} for a in alerts]


class Alerter:
    """Evaluates the thresholds over the collector database and notifies ``url``: a webhook
    (``to="webhook"``) or an Alertmanager (``to="alertmanager"``, its base URL)."""

    def __init__(self, db: Union[str, Path], url: str, *,
                 thresholds: Optional[Thresholds] = None,
                 window_s: Optional[float] = DEFAULT_WINDOW_S, timeout_s: float = 10.0,
                 token: Optional[str] = None, receiver: str = "edgert",
                 external_url: str = "", to: str = "webhook", resend_s: float = 60.0):
        if window_s is not None and window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if to not in ("webhook", "alertmanager"):
            raise ValueError(f"alerts go to 'webhook' or 'alertmanager', not {to!r}")
        self.to = to
        self.resend_s = float(resend_s)
        self.webhook = check_webhook_url(url if to == "webhook" else
                                         url.rstrip("/") + "/api/v2/alerts")
        self.thresholds = thresholds or Thresholds()
        self.window_s = window_s
        self.timeout_s = timeout_s
        self.token = token
        self.receiver = receiver
        self.external_url = external_url
        self.store = CollectorStore(db)
        self.state = AlertState(db)

    def evaluate(self, now: Optional[float] = None) -> Round:
        """One round: fire new breaches, resolve cleared ones, remember what was delivered.

        Raises:
            AlertDeliveryError: the webhook failed; what it did not take is sent next round.
        """
        now = time.time() if now is None else now
        t = self.thresholds
        since = None if self.window_s is None else now - self.window_s
        rep = self.store.report(psi_threshold=t.max_psi, min_rows=t.min_rows, since=since)
        current: dict[str, Alert] = {}
        for b in breaches(rep, t):
            a = Alert(alert_labels(b), {"summary": b.message, "value": f"{b.value:.6g}",
                                        "threshold": f"{b.limit:.6g}"}, now)
            current[a.fingerprint] = a
        firing = self.state.firing()
        new = [a for fp, a in current.items() if fp not in firing]
        gone = [a for fp, a in firing.items() if fp not in current and _judged(a, rep, t)]
        for a in gone:
            a.ends_at = now
        if self.to == "alertmanager":
            ended = {a.fingerprint for a in gone}
            still = [a for a in firing.values() if a.fingerprint not in ended]
            for a in still:  # the latest figures, the original start
                if a.fingerprint in current:
                    a.annotations = current[a.fingerprint].annotations
            if still or new or gone:
                self._post(alertmanager_body(still + new + gone, now + 4 * self.resend_s,
                                             self.external_url))
            self.state.fired(new)
            self.state.resolved(gone)
        else:
            if new:
                self._post(webhook_payload(new, receiver=self.receiver,
                                           external_url=self.external_url))
                self.state.fired(new)
            if gone:
                self._post(webhook_payload(gone, receiver=self.receiver,
                                           external_url=self.external_url))
                self.state.resolved(gone)
        return Round(new, gone, len(firing) + len(new) - len(gone))

    def _post(self, body: Any) -> None:
        post_json(self.webhook, body, timeout_s=self.timeout_s, token=self.token, name=self.to)

    def close(self) -> None:
        self.state.close()
        self.store.close()


def _judged(alert: Alert, rep: dict[str, Any], t: Thresholds) -> bool:
    """Whether the window holds enough data to say this alert's breach has cleared."""
    labels = alert.labels
    if "model" not in labels:  # fleet-wide (dropped windows): the window itself is the verdict
        return True
    v = next((v for v in rep["versions"]
              if v["model"] == labels["model"] and v["version"] == labels["version"]), None)
    if v is None:
        return False
    if "feature" in labels:
        d = v["drift"].get(labels["feature"])
        return d is not None and d["psi"] is not None and d["rows"] >= t.min_rows
    if labels["alertname"] == ALERTNAMES["accuracy"]:
        return v["feedback"]["n"] >= t.min_feedback
    return bool(v["calls"] + v["errors"])
