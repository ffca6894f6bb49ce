"""Fast unit tests of the sync pieces: store, probation, lock, policy helpers, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.sync.agent import parse_interval
from edge_runtime.sync.client import Candidate, choose, rollout_bucket
from edge_runtime.sync.errors import NoVersionError, StoreLockedError
from edge_runtime.sync.probation import ProbationMonitor, ProbationThresholds
from edge_runtime.sync.store import StoreLock, VersionStore

REPO_ROOT = Path(__file__).resolve().parents[1]


def _fake_version(store: VersionStore, v: str) -> None:
    d = store.path_of(v)
    d.mkdir(parents=True)
    (d / "manifest.json").write_text("{}")


def test_store_activate_prune_keeps_current_and_previous(tmp_path: Path) -> None:
    store = VersionStore(tmp_path, keep=3)
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.10.0", "2.0.0"):
        _fake_version(store, v)
    store.activate("1.0.0")
    store.activate("1.1.0")
    (store.versions_dir / ".staging-3.0.0-1").mkdir()
    removed = store.prune()
    assert removed == ["1.2.0", "1.10.0"]
    assert store.installed() == ["1.0.0", "1.1.0", "2.0.0"]
    data = json.loads((tmp_path / "active.json").read_text())
    assert data["current"] == "1.1.0" and data["previous"] == "1.0.0"
    assert [h["event"] for h in data["history"]] == ["activate", "activate"]


def test_mark_bad_rolls_back_and_manual_rollback(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    for v in ("1.0.0", "1.1.0"):
        _fake_version(store, v)
        store.activate(v)
    data = store.mark_bad("1.1.0", "error rate 50%")
    assert data["current"] == "1.0.0" and data["known_bad"] == {"1.1.0": "error rate 50%"}
    data = store.rollback(to="1.1.0", reason="operator")
    assert data["current"] == "1.1.0" and "1.1.0" not in data["known_bad"]
    with pytest.raises(NoVersionError, match="not installed"):
        store.rollback(to="9.9.9")
    with pytest.raises(ValueError):
        store.path_of("../evil")


def test_probation_monitor_verdicts() -> None:
    now = [0.0]
    t = ProbationThresholds.from_profile({"predictions": 10, "max_error_rate": 0.2,
                                         "max_p99_ms": 5})
    m = ProbationMonitor(t, clock=lambda: now[0])
    for _ in range(9):
        m.observe(1.0)
    assert m.verdict() is None
    m.observe(1.0)
    assert m.verdict() == "pass"
    slow = ProbationMonitor(t, clock=lambda: now[0])
    for _ in range(10):
        slow.observe(50.0)
    assert "p99" in slow.verdict()
    bad = ProbationMonitor(t, clock=lambda: now[0])
    for _ in range(3):
        bad.observe(1.0, error=True)
    assert "error rate" in bad.verdict()  # fails early: already beyond the allowance
    timed = ProbationMonitor(ProbationThresholds(predictions=1000, minutes=1),
                             clock=lambda: now[0])
    timed.observe(1.0)
    assert timed.verdict() is None
    now[0] = 61.0
    assert timed.verdict() == "pass"
    with pytest.raises(ValueError, match="unknown key 'bogus'"):
        ProbationThresholds.from_profile({"bogus": 1})


def test_lock_excludes_second_agent(tmp_path: Path) -> None:
    with StoreLock(tmp_path):
        with pytest.raises(StoreLockedError):
            with StoreLock(tmp_path):
                pass
    with StoreLock(tmp_path):
        pass


def _cand(v: str, **kw: object) -> Candidate:
    base = dict(target=f"m-{v}.tar.gz", name="m", version=v, channel="stable", rollout=1.0,
                min_runtime="0.0.0", length=100)
    base.update(kw)
    return Candidate(**base)  # type: ignore[arg-type]


def test_choose_explains_each_decision() -> None:
    cands = [_cand("1.0.0"), _cand("1.1.0", channel="beta"), _cand("1.2.0"),
             _cand("1.3.0", min_runtime="99.0.0"), _cand("1.4.0", length=10**9),
             _cand("1.5.0", rollout=0.0)]
    chosen, lines = choose(cands, device_id="d", channel="stable", known_bad={"1.2.0": "x"},
                           pinned=None, runtime_version="0.1.0", max_bytes=10**6)
    assert chosen is not None and chosen.version == "1.0.0"
    text = "\n".join(lines)
    for why in ("outside the 0% rollout", "exceeds", "needs runtime", "marked bad",
                "channel beta"):
        assert why in text
    pinned, _ = choose(cands, device_id="d", channel="stable", known_bad={}, pinned="1.5.0",
                       runtime_version="0.1.0", max_bytes=10**6)
    assert pinned is not None and pinned.version == "1.5.0"


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=10))
def test_rollout_bucket_in_unit_interval(device: str, version: str) -> None:
    b = rollout_bucket(device, version)
    assert 0.0 <= b < 1.0 and b == rollout_bucket(device, version)


def test_parse_interval() -> None:
    assert parse_interval("1h") == 3600 and parse_interval("90") == 90
    assert parse_interval("15m") == 900
    with pytest.raises(ValueError):
        parse_interval("-1s")


def test_cli_versions_and_rollback(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    for v in ("1.0.0", "1.1.0"):
        _fake_version(store, v)
        store.activate(v)
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "edge_runtime"]
    out = subprocess.run(run + ["versions", "--state", str(tmp_path)], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["current"] == "1.1.0"
    out = subprocess.run(run + ["rollback", "--state", str(tmp_path)], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "active: 1.0.0" in out
    assert store.read()["known_bad"] == {"1.1.0": "manual"}
    bad = subprocess.run(run + ["rollback", "--state", str(tmp_path), "--to", "7.0.0"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "not installed" in bad.stderr
