"""The collector's MQTT side: MQTT 5 shared subscriptions, so several collectors split one
topic on one broker (each batch goes to one member of the group), QoS 1.

A batch is acknowledged twice, both only after its transaction committed: the broker's PUBACK
(manual acks, so a collector that dies mid-batch gets it redelivered to the group) and the
device-facing ``{"ack": <batch id>}`` on ``<prefix>/acks/<device>`` the device waits for.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any, Optional

log = logging.getLogger("collector")
DEFAULT_GROUP = "edgert-collectors"
#: how long the broker keeps a named collector's session (and queues its share) while it is away
SESSION_EXPIRY_S = 7 * 24 * 3600


def default_client_id() -> str:
    """Stable per host, so a restarted collector resumes its session (and what was queued)."""
    return f"edgert-collector-{socket.gethostname()}"[:64]


class MqttReceiver:
    """Subscribes ``$share/<group>/<prefix>/batches/+`` and ingests every message."""

    def __init__(self, collector: Any, host: str, port: int, *, prefix: str,
                 group: str = DEFAULT_GROUP, client_id: Optional[str] = None):
        if not group or any(c in group for c in "/+#"):
            raise ValueError(f"MQTT shared-subscription group {group!r} must be non-empty "
                             "without '/', '+' or '#'")
        self.collector, self.host, self.port = collector, host, int(port)
        self.prefix, self.group = prefix.strip("/"), group
        self.client_id = client_id or default_client_id()
        self.received = 0  # batches this member of the group got (its share of the topic)
        self._client: Any = None

    @property
    def topic(self) -> str:
        return f"$share/{self.group}/{self.prefix}/batches/+"

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe.

        Raises:
            OSError: the broker is unreachable or refused the subscription in time.
        """
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        ready = threading.Event()
        failed: list[str] = []

        def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
            if rc.is_failure:
                failed.append(f"connect refused: {rc}")
                ready.set()
                return
            c.subscribe(self.topic, qos=1)

        def on_subscribe(c: Any, userdata: Any, mid: Any, rcs: Any, props: Any = None) -> None:
            bad = [str(r) for r in rcs if r.is_failure]
            if bad:
                failed.append(f"subscription to {self.topic} refused: {', '.join(bad)}")
            ready.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        except OSError as exc:
            raise OSError(f"mqtt://{self.host}:{self.port}: {exc.strerror or exc}") from None
        client.loop_start()
        if not ready.wait(timeout_s) or failed:
            client.loop_stop()
            client.disconnect()
            raise OSError(f"mqtt://{self.host}:{self.port}: collector could not subscribe"
                          + (f" ({failed[0]})" if failed else ""))
        self._client = client

    def _on_message(self, c: Any, userdata: Any, msg: Any) -> None:
        self.received += 1
        device = msg.topic.rsplit("/", 1)[-1]
        acks = f"{self.prefix}/acks/{device}"
        body: Any = None
        try:
            body = json.loads(msg.payload)
            bid, _ = self.collector.store.ingest(body)
        except ValueError as exc:
            log.warning("rejected MQTT batch on %s: %s", msg.topic, exc)
            bid = body.get("batch_id") if isinstance(body, dict) else None
            if isinstance(bid, str):  # tell the device, so it stops resending it
                c.publish(acks, json.dumps({"reject": bid, "error": str(exc)[:500]}), qos=1)
            c.ack(msg.mid, msg.qos)
            return
        except Exception:  # noqa: BLE001 - the database failed: no ack, the broker redelivers
            log.exception("could not store MQTT batch on %s", msg.topic)
            return
        if self.collector.delay_s:
            time.sleep(self.collector.delay_s)
        c.publish(acks, json.dumps({"ack": bid}), qos=1)
        c.ack(msg.mid, msg.qos)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
