"""Where batches go: an HTTP JSON endpoint or an MQTT broker (paho-mqtt, QoS 1).

A sink's ``send(batch)`` returns only when the *collector* has acknowledged that batch id;
anything else raises :class:`SinkError` and the batch stays in the outbox. Over MQTT the
broker's PUBACK is not enough by default: the collector publishes ``{"ack": <batch id>}``
on ``<prefix>/acks/<device>`` once it has stored it, or ``{"reject": <batch id>}`` when it
never will (``ack="broker"`` trusts the PUBACK alone).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from typing import Any, Optional, Protocol

from ..errors import BatchRejected, SinkAuthError, SinkError  # defined in errors.py; importable from here too
from .outbox import Batch

DEFAULT_MQTT_PREFIX = "edgert/telemetry"


class Sink(Protocol):
    def send(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


class HttpSink:
    """POST the batch as JSON to ``url``; the answer must be ``{"ack": <batch id>}``."""

    def __init__(self, url: str, *, token: Optional[str] = None, timeout_s: float = 30.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"sink URL {url!r} is not http(s)://host[:port]/path")
        self.url = url
        self._parts = parts
        self._host: str = parts.hostname
        self.token = token
        self.timeout_s = timeout_s

    def send(self, batch: Batch) -> None:
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, p.port, timeout=self.timeout_s)
        headers = {"Content-Type": "application/json", "X-Batch-Id": batch.batch_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        path = p.path or "/v1/batches"
        try:
            conn.request("POST", path + (f"?{p.query}" if p.query else ""), body=batch.encode(),
                         headers=headers)
            resp = conn.getresponse()
            body = resp.read(1024 * 1024)
        except (OSError, http.client.HTTPException) as exc:
            raise SinkError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        if resp.status in (400, 422):
            raise BatchRejected(f"{self.url}: HTTP {resp.status}: {body[:200]!r}")
        if resp.status in (401, 403):
            raise SinkAuthError(f"{self.url}: HTTP {resp.status} {resp.reason}: the collector "
                                f"refuses {'this token' if self.token else 'requests without a token'} "
                                f"(--token / EDGERT_TELEMETRY_TOKEN)")
        if resp.status != 200:
            raise SinkError(f"{self.url}: HTTP {resp.status}: {body[:200]!r}")
        try:
            ack = json.loads(body).get("ack")
        except (ValueError, AttributeError):
            ack = None
        if ack != batch.batch_id:
            raise SinkError(f"{self.url}: answer does not acknowledge batch {batch.batch_id}")

    def close(self) -> None:
        pass


class MqttSink:
    """Publish batches with QoS 1 to ``<prefix>/batches/<device>`` and wait for the ack."""

    def __init__(self, host: str, port: int = 1883, *, prefix: str = DEFAULT_MQTT_PREFIX,
                 ack: str = "collector", timeout_s: float = 30.0,
                 username: Optional[str] = None, password: Optional[str] = None):
        if ack not in ("collector", "broker"):
            raise ValueError("ack must be 'collector' or 'broker'")
        self.host, self.port, self.prefix = host, int(port), prefix.strip("/")
        self.ack, self.timeout_s = ack, timeout_s
        self.username, self.password = username, password
        self._client: Any = None
        self._device: Optional[str] = None
        self._acked: set[str] = set()
        self._rejected: dict[str, str] = {}
        self._cond = threading.Condition()
        self._subscribed = threading.Event()

    def _connect(self, device_id: str) -> Any:
        if self._client is not None and self._device == device_id:
            return self._client
        self.close()
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise SinkError("the MQTT sink needs paho-mqtt: pip install 'edge-runtime[telemetry]'") from None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"edgert-dev-{device_id}", clean_session=True)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.on_message = self._on_message
        client.on_subscribe = lambda *a, **k: self._subscribed.set()
        refused: list[str] = []
        connected = threading.Event()

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
            if getattr(reason, "is_failure", False):
                refused.append(str(reason))
            connected.set()
        client.on_connect = on_connect
        self._subscribed.clear()
        try:
            rc = client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise SinkError(f"mqtt://{self.host}:{self.port}: {exc}") from None
        if rc != 0:
            raise SinkError(f"mqtt://{self.host}:{self.port}: connect failed ({rc})")
        client.loop_start()
        if not connected.wait(self.timeout_s) or refused:
            client.loop_stop()
            client.disconnect()
            why = refused[0] if refused else "no CONNACK"
            cls = SinkAuthError if refused and ("authori" in why.lower() or "password" in why.lower()) \
                else SinkError
            raise cls(f"mqtt://{self.host}:{self.port}: connection refused: {why}")
        if self.ack == "collector":
            client.subscribe(f"{self.prefix}/acks/{device_id}", qos=1)
            if not self._subscribed.wait(self.timeout_s):
                client.loop_stop()
                client.disconnect()
                raise SinkError(f"mqtt://{self.host}:{self.port}: no SUBACK")
        self._client, self._device = client, device_id
        return client

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            doc = json.loads(msg.payload)
            ack, rej = doc.get("ack"), doc.get("reject")
        except (ValueError, AttributeError):
            return
        with self._cond:
            if isinstance(ack, str):
                self._acked.add(ack)
            if isinstance(rej, str):
                self._rejected[rej] = str(doc.get("error", ""))
            self._cond.notify_all()

    def send(self, batch: Batch) -> None:
        device = str(batch.body.get("device_id"))
        client = self._connect(device)
        info = client.publish(f"{self.prefix}/batches/{device}", batch.encode(), qos=1)
        deadline = time.monotonic() + self.timeout_s
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            self.close()
            raise SinkError(f"mqtt://{self.host}:{self.port}: publish failed: {exc}") from None
        if not info.is_published():
            self.close()
            raise SinkError(f"mqtt://{self.host}:{self.port}: no PUBACK for {batch.batch_id}")
        if self.ack == "broker":
            return
        with self._cond:
            while batch.batch_id not in self._acked:
                if batch.batch_id in self._rejected:
                    raise BatchRejected(f"mqtt://{self.host}:{self.port}: collector rejects "
                                        f"batch {batch.batch_id}: "
                                        f"{self._rejected.pop(batch.batch_id)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SinkError(f"mqtt://{self.host}:{self.port}: collector did not "
                                    f"acknowledge batch {batch.batch_id}")
                self._cond.wait(left)
            self._acked.discard(batch.batch_id)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.disconnect()
                self._client.loop_stop()
            finally:
                self._client = None


def sink_from_url(url: str, *, token: Optional[str] = None, timeout_s: float = 30.0) -> Sink:
    """``http(s)://host:port/path`` or ``mqtt://host:port[/prefix]``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https"):
        return HttpSink(url, token=token, timeout_s=timeout_s)
    if parts.scheme == "mqtt":
        if not parts.hostname:
            raise ValueError(f"sink URL {url!r} has no host")
        q = urllib.parse.parse_qs(parts.query)
        return MqttSink(parts.hostname, parts.port or 1883,
                        prefix=parts.path.strip("/") or DEFAULT_MQTT_PREFIX,
                        ack=q.get("ack", ["collector"])[0], timeout_s=timeout_s,
                        username=parts.username, password=parts.password or token)
    raise ValueError(f"sink URL {url!r}: scheme must be http, https or mqtt")
