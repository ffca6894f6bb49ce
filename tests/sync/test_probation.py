"""Probation judges predictions, not only exceptions: real breast_cancer / diabetes bundles
(converted with ``converters.convert``), the previous version answering in shadow, signed
expectations through a real publish and ``SyncAgent.sync_once`` (127.0.0.1 HTTP and a file
source), delayed labels through ``HotSwapModel.feedback``."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge_runtime
from converters import publish as pub
from converters.publish import PublishError
from edge_runtime.hotswap import HotSwapModel
from edge_runtime.sync.agent import SyncAgent
from edge_runtime.sync.probation import ProbationMonitor, decode_expectations, encode_expectations
from edge_runtime.sync.probation.settings import SIGNED
from edge_runtime.sync.store import VersionStore

MAX_CALLS = 500  # issue 13: a bad version is rolled back within 500 served predictions


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass



def _mon(hot: HotSwapModel) -> Optional[ProbationMonitor]:
    """The monitor judging the version ``hot`` serves, if it is on probation."""
    return hot._monitor_for(hot.version) if hot.version else None  # noqa: SLF001

@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """breast_cancer logistic bundles (committed; probation_bundles.VERSIONS says what each is),
    and live traffic: every row once, shuffled, with its true label."""
    import probation_bundles

    rows, truth = probation_bundles.live_rows("cancer")
    return {"paths": probation_bundles.committed("cancer", tmp_path_factory.mktemp("cancer")),
            "rows": rows, "truth": truth}


@pytest.fixture()
def http_repo(tmp_path):
    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(repo)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield keys, repo, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _agent(source: str, keys: Path, state: Path) -> SyncAgent:
    return SyncAgent(source, (keys / "root.json").read_bytes(), state, device_id="device-1")


def _serve_until(hot: HotSwapModel, rows: np.ndarray, done, *, ids: bool = False) -> int:
    """Serve single-row calls until ``done()``; returns how many it took (at most MAX_CALLS).
    Every 10 calls the shadow may catch up, as it does at a device's request rate (this loop
    calls far faster than any device is asked)."""
    hot.refresh(force=True)  # the agent just activated a version: pick it up now
    for i in range(MAX_CALLS):
        if done():
            return i
        hot.predict(rows[i % len(rows)][None, :], ids=[i] if ids else None)
        if i % 10 == 9 and _mon(hot) is not None:  # noqa: SLF001
            _mon(hot).drain()  # noqa: SLF001
    hot._monitor and _mon(hot).drain()  # noqa: SLF001 - let the last samples be judged
    hot.predict(rows[0][None, :])
    assert done(), (_mon(hot) and _mon(hot).verdict(), VersionStore(hot.store.root).read_active())  # noqa: SLF001
    return MAX_CALLS


def _committed(state: Path, version: str):
    return lambda: (lambda r: r["current"] == version and r["probation"] is None)(VersionStore(state).read_active())


def _rolled_back_from(state: Path, version: str):
    return lambda: version in VersionStore(state).read_active()["known_bad"]


@pytest.mark.device
def test_shuffled_labels_rolled_back_and_retrain_commits(cancer, http_repo, tmp_path):
    keys, repo, url = http_repo
    state, paths, rows = tmp_path / "state", cancer["paths"], cancer["rows"]
    pub.publish(paths["1.0.0"], repo, keys)
    assert _agent(url, keys, state).sync_once().version == "1.0.0"
    hot = HotSwapModel(state)  # default probation: 200 predictions
    try:
        _serve_until(hot, rows, _committed(state, "1.0.0"))
        pub.publish(paths["1.1.0"], repo, keys)
        assert _agent(url, keys, state).sync_once().version == "1.1.0"
        n = _serve_until(hot, rows, _rolled_back_from(state, "1.1.0"))
        rec = VersionStore(state).read_active()
        assert rec["current"] == "1.0.0" and hot.version == "1.0.0" and n < MAX_CALLS
        why = rec["known_bad"]["1.1.0"]
        assert "failed probation: label agreement 0." in why and "< 0.9 with previous 1.0.0" in why, why
        agreement = float(why.split("label agreement ")[1].split()[0])
        assert agreement < 0.7  # the shuffled model agrees on about half the rows
        assert {"version": "1.1.0", "state": "bad", "reason": why}.items() <= next(  # edgert versions
            r for r in VersionStore(state).describe() if r["version"] == "1.1.0").items()

        pub.publish(paths["1.2.0"], repo, keys)
        assert _agent(url, keys, state).sync_once().version == "1.2.0"
        _serve_until(hot, rows, _committed(state, "1.2.0"))
        commit = [h for h in VersionStore(state).read_active()["history"] if h["event"] == "commit"][-1]
        assert commit["version"] == "1.2.0" and "label agreement 0.9" in commit["reason"], commit
        assert "class shares: total variation" in commit["reason"]
    finally:
        hot.close()


def _first_install(bundle: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A file-source repository (a USB stick) publishing ``bundle``, synced onto a new device."""
    keys, repo, state = tmp_path / "keys", tmp_path / "repo", tmp_path / "state"
    pub.init_keys(keys, repo)
    pub.publish(bundle, repo, keys)
    assert _agent(str(repo), keys, state).sync_once().changed
    return keys, repo, state


@pytest.fixture()
def usb_device(cancer, tmp_path):
    """A device that committed 1.0.0 from a file source."""
    keys, repo, state = _first_install(cancer["paths"]["1.0.0"], tmp_path)
    hot = HotSwapModel(state)
    try:
        _serve_until(hot, cancer["rows"], _committed(state, "1.0.0"))
        yield keys, repo, state, hot
    finally:
        hot.close()


@pytest.mark.device
def test_signed_min_agreement_overrides_the_default(cancer, usb_device):
    """File source (USB stick): a strict signed bar rolls back the honest retrain that the
    default commits; a lenient one lets the shuffled model through. Both reach the device
    only as signed target metadata."""
    keys, repo, state, hot = usb_device
    paths, rows = cancer["paths"], cancer["rows"]
    pub.publish(paths["1.2.0"], repo, keys, min_agreement=0.999)
    assert _agent(str(repo), keys, state).sync_once().version == "1.2.0"
    assert VersionStore(state).read_active()["probation"]["expect"] == {"min_agreement": 0.999}
    _serve_until(hot, rows, _rolled_back_from(state, "1.2.0"))
    assert "< 0.999 with previous 1.0.0" in VersionStore(state).read_active()["known_bad"]["1.2.0"]

    pub.publish(paths["1.1.0"], repo, keys, min_agreement=0.3, probation={"max_class_shift": 0.6})
    assert _agent(str(repo), keys, state).sync_once().version == "1.1.0"
    _serve_until(hot, rows, _committed(state, "1.1.0"))
    commit = [h for h in VersionStore(state).read_active()["history"] if h["event"] == "commit"][-1]
    assert "≥ 0.3 with previous 1.0.0" in commit["reason"], commit


def _monitor(candidate_path: Path, previous=None, **settings) -> tuple[ProbationMonitor, object]:
    model = edge_runtime.load(candidate_path)  # every call shadowed: these tests count rows
    return ProbationMonitor({"predictions": 10_000, "shadow_share": 1.0, **settings}, candidate=model,
                            previous=previous), model


def _feed(monitor: ProbationMonitor, model, rows: np.ndarray, n: int, ids: bool = False) -> None:
    for i in range(n):
        X = rows[i % len(rows)][None, :]
        monitor.observe(0.0)
        monitor.observe_call("predict", X, model.predict(X), [i] if ids else None)
    assert monitor.drain()


@pytest.mark.device
def test_class_share_drift_is_caught(cancer, tmp_path):
    paths, rows = cancer["paths"], cancer["rows"]
    const, model = _monitor(paths["1.3.0"], paths["1.0.0"], min_agreement=0.0)
    try:
        _feed(const, model, rows, 150)
        verdict, why = const.verdict()
        assert verdict == "fail" and "class shares depart from the training labels" in why, why
        tv = float(why.split("total variation ")[1].split()[0])
        assert 0.3 < tv < 0.45 and "over 150 predictions" in why  # predicts 1 always; 63% of labels are 1
    finally:
        const.close(timeout=10)
        model.close()
    honest, model = _monitor(paths["1.2.0"], paths["1.0.0"])
    try:
        _feed(honest, model, rows, 150)
        assert honest.verdict()[0] == "pending"  # same traffic, an honest model: no verdict yet
        only_ones = rows[cancer["truth"] == 1]  # traffic unlike training: the previous departs too
        _feed(honest, model, only_ones, 300)
        assert honest.verdict()[0] == "pending", honest.verdict()
    finally:
        honest.close()
        model.close()


@pytest.mark.device
def test_a_bad_first_version_keeps_serving_and_says_so(cancer, tmp_path):
    """Nothing to roll back to: never no model; the failed verdict is recorded, not hidden."""
    _, _, state = _first_install(cancer["paths"]["1.3.0"], tmp_path)
    hot = HotSwapModel(state)
    try:
        _serve_until(hot, cancer["rows"], lambda: VersionStore(state).read_active()["probation"] is None)
        rec = VersionStore(state).read_active()
        event = rec["history"][-1]
        # marked bad with the figure, and still the one serving until a replacement installs
        assert rec["current"] == "1.3.0" and hot.version == "1.3.0" and event["event"] == "reject"
        assert "class shares depart" in rec["known_bad"]["1.3.0"], rec["known_bad"]
    finally:
        hot.close()


@pytest.mark.device
def test_delayed_label_accuracy_drop_is_caught(cancer, usb_device):
    """Through the real hot-swap: ids on predict, truths later via feedback. Agreement and
    class shares are switched off by the signed expectations, so only feedback can decide."""
    keys, repo, state, hot = usb_device
    paths, rows, truth = cancer["paths"], cancer["rows"], cancer["truth"]
    lenient = {"max_class_shift": 1.0, "predictions": 100_000}
    pub.publish(paths["1.1.0"], repo, keys, min_agreement=0.0, probation=lenient)
    assert _agent(str(repo), keys, state).sync_once().version == "1.1.0"
    hot.refresh(force=True)
    for i in range(200):
        hot.predict(rows[i][None, :], ids=[f"call-{i}"])
    assert VersionStore(state).read_active()["current"] == "1.1.0"  # nothing decided yet
    _mon(hot).drain()  # noqa: SLF001 - every call sampled before its label arrives
    monitor = _mon(hot)  # noqa: SLF001
    for i in range(200):
        hot.feedback(f"call-{i}", int(truth[i]))
    monitor.drain()  # the labels are counted off the caller's path; the next call judges
    hot.predict(rows[0][None, :])
    assert hot.version == "1.0.0", (monitor.verdict(), monitor.figures())
    why = VersionStore(state).read_active()["known_bad"]["1.1.0"]
    assert "feedback accuracy 0." in why and "< previous version's 0.9" in why, why


@pytest.mark.device
def test_feedback_does_not_fail_an_honest_retrain(cancer):
    paths, rows, truth = cancer["paths"], cancer["rows"], cancer["truth"]
    mon, model = _monitor(paths["1.2.0"], paths["1.0.0"])
    try:
        _feed(mon, model, rows, 200, ids=True)
        for i in range(200):
            mon.feedback(i, truth[i])
        assert mon.drain() and mon.figures()["fb_paired"] == 200
        assert mon.verdict()[0] == "pending", mon.verdict()
    finally:
        mon.close()
        model.close()


class _Stalled:
    """A real previous version whose predict waits until released: the slowest shadow."""

    def __init__(self, model):
        self.model, self.release, self.calls = model, threading.Event(), 0

    def predict(self, X):
        self.calls += 1
        self.release.wait(60)
        return self.model.predict(X)

    def close(self):
        self.model.close()


@pytest.mark.device
def test_full_shadow_queue_drops_samples_instead_of_blocking(cancer):
    paths, rows = cancer["paths"], cancer["rows"]
    stalled = _Stalled(edge_runtime.load(paths["1.0.0"]))
    model = edge_runtime.load(paths["1.2.0"])
    mon = ProbationMonitor({"predictions": 300, "shadow_queue": 8, "shadow_share": 1.0}, candidate=model,
                           previous=lambda: stalled)
    try:
        for i in range(300):  # every call returns although the shadow answers none of them
            X = rows[i][None, :]
            mon.observe(0.0)
            mon.observe_call("predict", X, model.predict(X))
        figs = mon.figures()  # accepted: at most one batch the worker holds + a full buffer
        assert figs["submitted"] <= 2 * 8 and figs["dropped"] == 300 - figs["submitted"]
        assert figs["compared"] == 0
        verdict, why = mon.verdict()
        assert verdict == "pending" and "waiting for the shadow" in why  # no pass without evidence
        stalled.release.set()
        assert mon.drain()
        assert mon.figures()["compared"] == figs["submitted"]  # everything accepted is answered
    finally:
        stalled.release.set()
        mon.close(timeout=10)
        model.close()
    assert not mon._worker.alive  # noqa: SLF001 - close stops the worker thread


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    """diabetes ridge bundles 1.0.0 (half the data), 1.1.0 (all), 1.2.0 (shuffled; committed)."""
    import probation_bundles

    return (probation_bundles.committed("diabetes", tmp_path_factory.mktemp("diabetes")),
            probation_bundles.live_rows("diabetes")[0])


@pytest.mark.device
def test_regression_judged_on_relative_error(diabetes):
    paths, rows = diabetes
    shuffled, model = _monitor(paths["1.2.0"], paths["1.0.0"], predictions=100)
    try:
        _feed(shuffled, model, rows, 100)
        verdict, why = shuffled.verdict()
        assert verdict == "fail" and why.startswith("relative error 0.") and "> 0.1 against previous 1.0.0" in why
        assert float(why.split()[2]) > 0.2
    finally:
        shuffled.close()
        model.close()
    honest, model = _monitor(paths["1.1.0"], paths["1.0.0"], predictions=100)
    try:
        _feed(honest, model, rows, 100)
        verdict, why = honest.verdict()
        assert verdict == "pass" and "relative error 0.0" in why and "≤ 0.1" in why, why
    finally:
        honest.close()
        model.close()


@pytest.mark.device
def test_a_previous_version_that_does_not_load_is_reported(cancer, tmp_path):
    mon, model = _monitor(cancer["paths"]["1.2.0"], tmp_path / "gone", predictions=20)
    try:
        _feed(mon, model, cancer["rows"], 20)
        verdict, why = mon.verdict()
        assert verdict == "pass" and "no shadow (previous gone failed:" in why, why
    finally:
        mon.close()
        model.close()


# --- the signed fields ---------------------------------------------------------------------
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                     max_leaves=10)


@pytest.mark.device
@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, st.dictionaries(st.sampled_from(sorted(SIGNED)) | st.text(max_size=6), _json, max_size=6)))
def test_decoding_signed_fields_never_raises_and_keeps_only_valid_values(raw):
    out, warnings = decode_expectations(raw)
    for wire, (setting, kind, lo, hi) in SIGNED.items():
        if setting in out:
            v = raw[wire]
            assert isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
            assert out[setting] == (v / 10_000 if kind == "bp" else v)
    ignored = len(raw) - len(out) if isinstance(raw, dict) else int(raw is not None)
    assert len(warnings) == ignored


@pytest.mark.device
@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1), st.integers(1, 10_000_000), st.integers(1, 10_080))
def test_signed_fields_round_trip(agreement, predictions, minutes):
    wire = encode_expectations({"min_agreement": agreement, "predictions": predictions, "minutes": minutes})
    assert all(isinstance(v, int) for v in wire.values())  # canonical JSON has no floats
    back, warnings = decode_expectations(wire)
    assert not warnings and back["predictions"] == predictions and back["minutes"] == minutes
    assert abs(back["min_agreement"] - agreement) <= 0.5e-4


@pytest.mark.device
def test_publish_refuses_bad_expectations(cancer, tmp_path):
    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    with pytest.raises(PublishError, match=r"min_agreement = 1.5 is outside \[0, 1\]"):
        pub.publish(cancer["paths"]["1.0.0"], repo, keys, min_agreement=1.5)
    with pytest.raises(PublishError, match="'max_agreement' is unknown"):
        pub.publish(cancer["paths"]["1.0.0"], repo, keys, probation={"max_agreement": 0.5})
    with pytest.raises(PublishError, match="predictions must be a whole number"):
        pub.publish(cancer["paths"]["1.0.0"], repo, keys, probation={"predictions": 2.5})


@pytest.mark.device
def test_probabilities_are_judged_by_their_labels_and_bad_profile_values_are_ignored(cancer, caplog):
    """predict_proba calls count by their argmax class; a profile typo falls back to the
    default bar (logged) instead of stopping the model from serving."""
    paths, rows = cancer["paths"], cancer["rows"]
    model = edge_runtime.load(paths["1.1.0"])
    with caplog.at_level("WARNING", logger="edge_runtime.sync"):
        mon = ProbationMonitor({"predictions": 60, "min_agreement": "high", "shadow_share": 1.0},
                               candidate=model, previous=paths["1.0.0"])
    assert "min_agreement = 'high' is not a non-negative number: ignored" in caplog.text
    try:
        for i in range(60):
            X = rows[i][None, :]
            mon.observe(0.0)
            mon.observe_call("predict_proba", X, model.predict_proba(X))
        assert mon.drain()
        verdict, why = mon.verdict()
        assert verdict == "fail" and why.startswith("label agreement 0.") and "< 0.9 with previous 1.0.0" in why
        assert mon.figures()["compared"] == 60
    finally:
        mon.close()
        model.close()


def test_cli_convert_stores_training_class_shares_from_the_target_column(tmp_path, cli_env):
    import csv
    import json
    import subprocess
    import sys

    import joblib
    from probation_bundles import lr_pipeline
    from zoo import dataset

    X, y, _, _ = dataset("binary")
    joblib.dump(lr_pipeline().fit(X, y), tmp_path / "lr.joblib")
    with open(tmp_path / "sample.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", *(f"f{i}" for i in range(X.shape[1]))])
        w.writerows([int(lab), *map(repr, row.tolist())] for lab, row in zip(y, X))
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(tmp_path / "lr.joblib"), "--sample",
                        str(tmp_path / "sample.csv"), "--target", "label", "-o", str(tmp_path / "b")],
                       capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr
    ref = json.loads((tmp_path / "b" / "manifest.json").read_text())["reference"]["classes"]
    assert ref == {"labels": [0, 1], "counts": [int((y == 0).sum()), int((y == 1).sum())], "source": "labels"}


@pytest.mark.device
def test_a_window_ended_by_time_says_what_it_could_not_judge(cancer):
    import time

    paths, rows = cancer["paths"], cancer["rows"]
    model = edge_runtime.load(paths["1.2.0"])
    mon = ProbationMonitor({"predictions": 1000, "minutes": 60, "shadow_share": 1.0}, started=time.time() - 3601,
                           candidate=model, previous=paths["1.0.0"])
    try:
        _feed(mon, model, rows, 10)
        verdict, why = mon.verdict()
        assert verdict == "pass" and why.startswith("60 minutes within limits"), why
        assert "agreement not judged: 10 of 50 shadowed predictions" in why
        assert "class shares not judged: 10 of 100 predictions" in why
    finally:
        mon.close()
        model.close()


@pytest.mark.device
def test_ids_that_are_not_a_sequence_never_fail_the_served_call(cancer):
    paths, rows = cancer["paths"], cancer["rows"]
    model = edge_runtime.load(paths["1.2.0"])
    mon = ProbationMonitor({"predictions": 100, "shadow_share": 1.0}, candidate=model, previous=paths["1.0.0"])
    try:
        X = rows[:3]
        assert mon.served(0.001, "predict", X, model.predict(X), ids=5) in (True, False)
        mon.feedback(5, 1)
        assert mon.drain()
        figs = mon.figures()
        assert figs["compared"] == 3 and figs["fb_unmatched"] == 1  # sampled without ids; the label unmatched
    finally:
        mon.close()
        model.close()


def test_cli_publish_signs_the_probation_expectations(cancer, tmp_path, cli_env):
    import json
    import subprocess
    import sys

    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "publish", str(cancer["paths"]["1.0.0"]), "--repo",
                        str(repo), "--keys", str(keys), "--min-agreement", "0.8", "--probation-predictions", "500"],
                       capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 0, r.stderr
    latest = max(repo.glob("metadata/*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    custom = json.loads(latest.read_text())["signed"]["targets"]["cancer/cancer-1.0.0.tar.gz"]["custom"]
    assert custom["edge_runtime"]["probation"] == {"min_agreement_bp": 8000, "predictions": 500}


def test_anomaly_labels_are_judged_by_agreement(tmp_path):
    """An IsolationForest's -1/1 flags are labels: the shadow counts agreements for them (it
    compared them as regression values, so an honest anomaly retrain read as 0 % agreement)."""
    import warnings

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import IsolationForest

    from converters import convert

    X, _ = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v, seed in (("1.0.0", 0), ("1.1.0", 0)):
            est = IsolationForest(n_estimators=20, random_state=seed).fit(X)
            paths[v] = convert(est, X, tmp_path / v, name="outliers", version=v)
    mon, model = _monitor(paths["1.1.0"], paths["1.0.0"], predictions=100)
    try:
        _feed(mon, model, X, 100)
        verdict, why = mon.verdict()
        assert verdict == "pass" and "label agreement 1.000" in why, why
    finally:
        mon.close()
        model.close()
