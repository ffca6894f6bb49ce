"""Two collectors (one of them a real `edgert collector --mqtt-group` process) in one MQTT 5
shared-subscription group on a real Mosquitto split one topic: each batch reaches one of
them, both get a share, and the totals are exact."""

from __future__ import annotations

import random
import threading

from fleet_cli import scrape_counter, start_cli_collector
from fleet_data import reference, totals, window

from collector import Collector
from edge_runtime.telemetry import MqttSink, Outbox, Uploader


def test_shared_subscription_splits_the_topic(mosquitto, tmp_path):
    db = tmp_path / "c.db"
    coll = Collector(db, http=False, mqtt=("127.0.0.1", mosquitto), mqtt_group="fleet",
                     mqtt_client_id="collector-a").start()
    proc, port = start_cli_collector(str(db), "--mqtt", f"127.0.0.1:{mosquitto}", "--mqtt-group",
                                     "fleet", "--mqtt-client-id", "collector-b")
    ref = reference()
    segments: list = []
    lock = threading.Lock()
    failures: list = []

    def device(i: int) -> None:
        rng = random.Random(i)
        ob = Outbox(tmp_path / f"dev{i}", device_id=f"dev-{i}")
        ob.set_reference("m", "1.0.0", ref)
        segs = [window("m", "1.0.0", rng, ref, start=100.0 + k) for k in range(6)]
        ob.add_segments(segs)
        up = Uploader(ob, MqttSink("127.0.0.1", mosquitto, timeout_s=5), batch_segments=1,
                      base_delay_s=0.001)
        res = up.flush(max_attempts=20, respect_backoff=False)
        ob.close()
        with lock:
            segments.extend(segs)
            if not res.complete:
                failures.append(res.errors)

    try:
        threads = [threading.Thread(target=device, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures, failures
        shares = [coll._mqtt.received, scrape_counter(port, "edgert_collector_mqtt_messages_total")]
        assert all(n > 0 for n in shares) and sum(shares) >= 60, shares
        (want,) = totals(segments).values()
        (v,) = coll.store.report()["versions"]
        assert (v["calls"], v["segments"], v["errors_by_kind"]) == (want["calls"], 60, dict(want["errors"]))
    finally:
        proc.terminate()
        proc.wait(10)
        coll.stop()
