"""Two collectors in one MQTT 5 shared-subscription group on a real Mosquitto split one topic:
each batch reaches one of them, both get a share, and the totals are exact."""

from __future__ import annotations

import random
import threading

from fleet_data import reference, totals, window

from collector import Collector
from edge_runtime.telemetry import MqttSink, Outbox, Uploader


def test_shared_subscription_splits_the_topic(mosquitto, tmp_path):
    db = tmp_path / "c.db"
    colls = [Collector(db, http=False, mqtt=("127.0.0.1", mosquitto), mqtt_group="fleet",
                       mqtt_client_id=f"collector-{name}").start() for name in "ab"]
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
        shares = [c._mqtt.received for c in colls]
        assert all(n > 0 for n in shares) and sum(shares) >= 60, shares
        (want,) = totals(segments).values()
        (v,) = colls[0].store.report()["versions"]
        assert (v["calls"], v["segments"], v["errors_by_kind"]) == (want["calls"], 60, dict(want["errors"]))
        assert colls[1].store.counts()["segments"] == 60
    finally:
        for c in colls:
            c.stop()
