"""Acceptance: shadow agreement and A/B split figures equal a direct computation on the same
inputs; ensembles; feature flags (local and Ed25519-signed) switch strategies live."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import numpy as np
import pytest
from telemetry_helpers import deliver, version

from edge_runtime import load
from edge_runtime.errors import IntegrityError
from edge_runtime.strategies import (
    ABSplit,
    Ensemble,
    FeatureFlags,
    Shadow,
    StrategyError,
    StrategySwitch,
)
from edge_runtime.telemetry import MonitoredModel, Recorder

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def inputs(cancer_data):
    X_tr, _, X_te, _, _ = cancer_data
    rng = np.random.default_rng(7)
    # holdout rows plus noisy training rows, so the two models disagree on some of them
    noisy = X_tr[rng.integers(0, len(X_tr), 600)] * rng.normal(1.0, 0.15, (600, X_tr.shape[1]))
    return np.vstack([X_te, noisy])


def test_shadow_agreement_matches_direct(cancer_bundles, inputs, tmp_path):
    primary_model, candidate = load(cancer_bundles["1.0.0"]), load(cancer_bundles["1.1.0"])
    rec = Recorder(tmp_path / "state")
    shadow = Shadow(MonitoredModel(primary_model, rec), candidate)
    served = np.concatenate([shadow.predict(inputs[i:i + 1]) for i in range(len(inputs))])
    shadow.close()
    rec.close()
    # the same single-row calls, directly (a batch can differ in the last float bit)
    want_primary = np.concatenate([primary_model.predict(inputs[i:i + 1]) for i in range(len(inputs))])
    want_candidate = np.concatenate([candidate.predict(inputs[i:i + 1]) for i in range(len(inputs))])
    assert np.array_equal(served, want_primary)  # the candidate's outputs are never returned
    direct_agree = int(np.sum(want_primary == want_candidate))
    assert 0 < direct_agree < len(inputs)  # a real mix of agreement and disagreement
    s = version(deliver(tmp_path / "state", tmp_path / "c.db"), "1.0.0")["shadow"]["1.1.0"]
    assert (s["n"], s["agree"]) == (len(inputs), direct_agree)
    assert s["agreement"] == direct_agree / len(inputs)


def _arm_direct(key: str, salt: str, weights: list[tuple[str, float]]) -> str:
    f = int.from_bytes(hashlib.sha256(f"{salt}\0{key}".encode()).digest()[:8], "big") / 2 ** 64
    total, acc = sum(w for _, w in weights), 0.0
    for label, w in weights:
        acc += w / total
        if f < acc:
            return label
    return weights[-1][0]


def test_ab_split_matches_direct(cancer_bundles, inputs, tmp_path):
    rec = Recorder(tmp_path / "state")
    a = MonitoredModel(load(cancer_bundles["1.0.0"]), rec)
    b = MonitoredModel(load(cancer_bundles["1.1.0"]), rec)
    weights = [("1.0.0", 0.3), ("1.1.0", 0.7)]
    split = ABSplit({"1.0.0": (a, 0.3), "1.1.0": (b, 0.7)}, salt="exp-42")
    keys = [f"user-{i}" for i in range(len(inputs))]
    for i, key in enumerate(keys):
        split.predict(inputs[i:i + 1], key=key)
    assert all(split.arm_for(k) == split.arm_for(k) for k in keys[:50])  # sticky per key
    rec.close()
    rep = deliver(tmp_path / "state", tmp_path / "c.db")
    direct = {"1.0.0": 0, "1.1.0": 0}
    for k in keys:
        direct[_arm_direct(k, "exp-42", weights)] += 1
    got = {v: version(rep, v)["calls"] for v in direct}
    assert got == direct
    assert 0.2 < direct["1.0.0"] / len(keys) < 0.4
    with pytest.raises(StrategyError, match="key"):
        split.predict(inputs[:1])


def test_ensembles_average_and_vote(cancer_bundles, inputs, tmp_path):
    models = [load(cancer_bundles[v]) for v in ("1.0.0", "1.1.0", "2.0.0")]
    avg = Ensemble(models[:2], "average")
    p = (models[0].predict_proba(inputs) + models[1].predict_proba(inputs)) / 2
    assert np.allclose(avg.predict_proba(inputs), p)
    assert np.array_equal(avg.predict(inputs), models[0].classes[p.argmax(axis=1)])
    vote = Ensemble(models, "vote")
    labels = np.stack([m.predict(inputs) for m in models])
    majority = (labels == 1).sum(axis=0) >= 2
    assert np.array_equal(vote.predict(inputs), np.where(majority, 1, 0))
    rec = Recorder(tmp_path / "state")
    mon = MonitoredModel(avg, rec)
    mon.predict(inputs[:50])
    rec.close()
    v = version(deliver(tmp_path / "state", tmp_path / "c.db"), "1.0.0+1.1.0")
    assert v["rows"] == 50 and len(v["drift"]) == 30
    with pytest.raises(StrategyError, match="method"):
        Ensemble(models, "median")


def test_feature_flags_switch_without_redeploy(cancer_bundles, inputs, tmp_path):
    rec = Recorder(tmp_path / "state")
    models = {v: MonitoredModel(load(cancer_bundles[v]), rec) for v in ("1.0.0", "1.1.0")}
    flags_file = tmp_path / "flags.json"
    flags_file.write_text(json.dumps({"strategy": "single", "version": "1.0.0"}))
    flags = FeatureFlags(flags_file, poll_s=0.0)
    router = StrategySwitch(models, flags, device_id="dev-1")
    router.predict(inputs[:10])
    flags_file.write_text(json.dumps({"strategy": "ab", "arms": {"1.0.0": 0, "1.1.0": 1}}))
    os.utime(flags_file, ns=(1, 1))  # a new mtime even on coarse file systems
    router.predict(inputs[:20], key="anyone")
    flags_file.write_text(json.dumps({"strategy": "shadow", "primary": "1.1.0",
                                      "candidate": "9.9.9"}))  # names no loaded version
    os.utime(flags_file, ns=(2, 2))
    router.predict(inputs[:5], key="anyone")  # invalid config: the last good one stays
    assert "candidate" in flags.last_error and isinstance(router.active, ABSplit)
    rec.close()
    rep = deliver(tmp_path / "state", tmp_path / "c.db")
    assert version(rep, "1.0.0")["rows"] == 10
    assert version(rep, "1.1.0")["rows"] == 25


def test_signed_flags(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    f = tmp_path / "flags.json"
    body = json.dumps({"strategy": "single", "version": "1.0.0"}).encode()
    f.write_bytes(body)
    (tmp_path / "flags.json.sig").write_bytes(key.sign(body))
    flags = FeatureFlags(f, public_key=pub, poll_s=0.0, versions=["1.0.0", "1.1.0"])
    assert flags.config["version"] == "1.0.0"
    f.write_bytes(json.dumps({"strategy": "single", "version": "1.1.0"}).encode())  # unsigned
    os.utime(f, ns=(5, 5))
    assert not flags.poll() and "does not verify" in flags.last_error
    assert flags.config["version"] == "1.0.0"
    (tmp_path / "flags.json.sig").write_bytes(base64.b64encode(key.sign(f.read_bytes())) + b"\n")
    os.utime(f, ns=(6, 6))
    assert flags.poll() and flags.config["version"] == "1.1.0"
    (tmp_path / "flags.json.sig").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        FeatureFlags(f, public_key=pub)
    with pytest.raises(StrategyError, match="'arms'"):
        FeatureFlags({"strategy": "ab", "arms": []})
