"""`monitor(model, on_alert=cb)`: the callback hears of error-rate, latency and drift breaches of
the live window with the figure, once per breach and again only after it cleared, on its own
thread; a failing callback never reaches predict."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_runtime import load
from edge_runtime.telemetry import Recorder, monitor

pytestmark = pytest.mark.device

SHIFTED = [0, 7, 21]


class Calls:
    def __init__(self, fail_first: bool = False) -> None:
        self.got: list = []
        self.threads: set[str] = set()
        self.fail_first = fail_first
        self.event = threading.Event()

    def __call__(self, breach) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("the app's callback is broken")
        self.got.append(breach)
        self.event.set()


def _errors(mm, X, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ValueError):
            mm.predict(X[:1, :5])  # wrong width: refused by the model


def test_error_rate_fires_once_per_breach(cancer_bundles, cancer_data, tmp_path):
    X = cancer_data[0]
    rec = Recorder(tmp_path / "state", live_n=100, start=False)
    cb = Calls(fail_first=True)
    mm = monitor(load(cancer_bundles["1.0.0"]), rec, on_alert=cb,
                 alert_rules={"max_error_rate": 0.1, "min_predictions": 50})
    _errors(mm, X, 10)
    rec.check_alerts(wait=True)
    assert cb.got == [] and cb.fail_first  # 10 calls < min_predictions: no verdict, no call
    for i in range(90):
        mm.predict(X[i:i + 1])
    rec.check_alerts(wait=True)  # 10 errors in 100 calls: not above 10%
    assert cb.got == []
    _errors(mm, X, 15)  # 15 of the last 100 → fires (into the callback that raises)
    rec.check_alerts(wait=True)
    assert not cb.fail_first
    _errors(mm, X, 5)
    rec.check_alerts(wait=True)
    assert cb.got == []  # still the same breach: not called again
    for i in range(100):
        assert mm.predict(X[i:i + 1]).shape == (1,)  # predict unaffected
    rec.check_alerts(wait=True)  # cleared
    _errors(mm, X, 25)
    rec.check_alerts(wait=True)
    _errors(mm, X, 5)
    rec.check_alerts(wait=True)
    assert [(b.kind, b.model, b.version) for b in cb.got] == [("error_rate", "cancer", "1.0.0")]
    assert cb.got[0].value == 0.25 and cb.got[0].limit == 0.1
    assert "error rate 25.00% > 10.00%" in cb.got[0].message
    assert cb.threads == {"edgert-alerts"}
    rec.close()


def test_drift_and_latency_breaches_carry_the_figure(cancer_bundles, cancer_data, tmp_path):
    X_tr, _, _, _, names = cancer_data
    rec = Recorder(tmp_path / "state", start=False)
    model = load(cancer_bundles["1.0.0"])
    cb = Calls()
    mm = monitor(model, rec, on_alert=cb, alert_rules={
        "min_rows": 200, "max_psi": 0.2, "drift_rows": 300, "max_p99_ms": 1e-9,
        "min_predictions": 5})
    rng = np.random.default_rng(7)

    def rows(n: int, shifted: bool) -> np.ndarray:
        x = X_tr[rng.integers(0, len(X_tr), n)].astype(np.float64)
        if shifted:
            x[:, SHIFTED] += 1.5 * X_tr[:, SHIFTED].std(axis=0)
        return x

    healthy = rows(100, False)
    for i in range(0, 100, 20):
        mm.predict(healthy[i:i + 20])
    rec.check_alerts(wait=True)  # latency judged (5 calls); drift not yet (100 rows < 200)
    assert [b.kind for b in cb.got] == ["latency"]
    assert cb.got[0].value > 0 and cb.got[0].limit == 1e-9
    rec.flush()  # the telemetry windows restart empty: the drift window keeps its rows
    mm.predict(rows(150, True))
    rec.check_alerts(wait=True)
    drift = [b for b in cb.got if b.kind == "drift"]
    expected = sorted(names[j] for j in SHIFTED)
    assert sorted(b.feature for b in drift) == expected
    assert all(b.value > 0.2 and b.limit == 0.2 and "over 250 rows" in b.message for b in drift)
    rec.check_alerts(wait=True)
    assert len(cb.got) == 4  # nothing fires twice
    mm.predict(rows(100, False))  # 350 rows >= drift_rows: judged (still drifted), window ends
    rec.check_alerts(wait=True)
    mm.predict(rows(300, False))  # a whole healthy window: the drift clears
    rec.check_alerts(wait=True)
    assert len(cb.got) == 4
    mm.predict(rows(300, True))  # drifted again: fires again
    rec.check_alerts(wait=True)
    again = [b for b in cb.got[4:] if b.kind == "drift"]
    assert sorted(b.feature for b in again) == expected
    rec.close()


def test_background_drain_calls_back_by_itself(cancer_bundles, cancer_data, tmp_path):
    X = cancer_data[0]
    rec = Recorder(tmp_path / "state", live_n=20, drain_interval_s=0.05)
    cb = Calls()
    mm = monitor(load(cancer_bundles["1.0.0"]), rec, on_alert=cb,
                 alert_rules={"max_error_rate": 0.5, "min_predictions": 20})
    _errors(mm, X, 20)
    assert cb.event.wait(10), "the drain thread never judged the live window"
    assert cb.got[0].kind == "error_rate" and cb.got[0].value == 1.0
    rec.close()


def test_on_alert_must_be_callable(cancer_bundles, tmp_path):
    rec = Recorder(tmp_path / "state", start=False)
    with pytest.raises(TypeError, match="on_alert must be callable"):
        monitor(load(cancer_bundles["1.0.0"]), rec, on_alert="print")
    with pytest.raises(ValueError, match="drift_rows must be at least min_rows"):
        monitor(load(cancer_bundles["1.0.0"]), rec, on_alert=print,
                alert_rules={"min_rows": 500, "drift_rows": 100})
    rec.close()
