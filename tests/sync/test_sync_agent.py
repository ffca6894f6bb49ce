"""Signed updates end to end: a real repository served by a real HTTP server on 127.0.0.1 (and a
file source), the real CLI, TUF's threat model, kill -9 at every step, rollout buckets."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sync_support import Quiet as _Quiet

import edge_runtime
from converters import publish as pub
from edge_runtime.hotswap import HotSwapModel
from edge_runtime.sync.agent import STEPS, SyncAgent
from edge_runtime.sync.client import Offer, admitted
from edge_runtime.sync.errors import SyncError
from edge_runtime.sync.store import VERDICT_STEPS, VersionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """iris logistic bundles 1.0.0 … 2.0.0 (C = 0.5 + index; committed); 1.2.0's golden rows
    disagree with its model."""
    from committed import copy_bundle

    d = tmp_path_factory.mktemp("bundles")
    out = {v: copy_bundle(f"iris-sync-{v}", d / v) for v in ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"]}
    m = json.loads((out["1.2.0"] / "manifest.json").read_text())
    m["golden"]["probabilities"] = [list(reversed(r)) for r in m["golden"]["probabilities"]]
    # labels still the top class of each (reversed) row: a well-formed manifest the model disproves
    m["golden"]["label"] = [2 - lab for lab in m["golden"]["label"]]
    (out["1.2.0"] / "manifest.json").write_text(json.dumps(m))
    return out


def agent(url: str, keys: Path, state: Path, **kw) -> SyncAgent:
    return SyncAgent(url, (keys / "root.json").read_bytes(), state, device_id="device-1", **kw)


def current(state: Path) -> str:
    return VersionStore(state).read_active()["current"]


def assert_serving(state: Path, version: str) -> None:
    rec = VersionStore(state).read_active()
    assert rec["current"] == version
    m = edge_runtime.load(VersionStore(state).path(version))  # golden rows re-checked
    assert m.predict([[5.1, 3.5, 1.4, 0.2]]).shape == (1,)


@pytest.mark.device
def test_update_path_refusal_and_probation_rollback(bundles, http_repo, tmp_path):
    keys, path, url = http_repo
    state = tmp_path / "state"
    pub.publish(bundles["1.0.0"], path, keys)
    r = agent(url, keys, state).sync_once()
    assert r.changed and r.version == "1.0.0"
    hot = HotSwapModel(state, profile=_profile(tmp_path, predictions=5))
    assert hot.version == "1.0.0"
    for _ in range(5):
        hot.predict([[5.1, 3.5, 1.4, 0.2]])
    assert VersionStore(state).read_active()["probation"] is None  # committed

    pub.publish(bundles["1.1.0"], path, keys, rollout=1.0)
    assert agent(url, keys, state).sync_once().version == "1.1.0"
    hot.refresh(force=True)
    assert hot.version == "1.1.0"  # swapped without restart
    for _ in range(5):
        hot.predict([[5.1, 3.5, 1.4, 0.2]])

    pub.publish(bundles["1.2.0"], path, keys, verify=False)  # signed as a buggy publisher would
    r = agent(url, keys, state).sync_once()
    assert not r.changed and current(state) == "1.1.0"
    assert any("reject 1.2.0" in d and "golden" in d for d in r.decisions)
    assert "1.2.0" in VersionStore(state).read_active()["known_bad"]

    pub.publish(bundles["1.3.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.3.0"
    strict = HotSwapModel(state, profile=_profile(tmp_path, predictions=60, max_p99_ms=1e-6))
    assert strict.version == "1.3.0"
    for _ in range(60):
        strict.predict([[5.1, 3.5, 1.4, 0.2]])
    rec = VersionStore(state).read_active()
    assert rec["current"] == "1.1.0" and "failed probation" in rec["known_bad"]["1.3.0"]
    assert strict.version == "1.1.0"
    r = agent(url, keys, state).sync_once()  # never retried
    assert not r.changed and any("skip iris 1.3.0: marked bad" in d for d in r.decisions)
    assert_serving(state, "1.1.0")


def _profile(tmp_path: Path, **probation):
    from edge_runtime.profiles import load_profile

    base = load_profile("laptop-x86_64")
    return type(base)(**{**base.__dict__, "probation": {"predictions": 5, "max_error_rate": 0.5,
                                                        "max_p99_ms": 1000.0, **probation}})


@pytest.mark.device
def test_file_source_usb_stick(bundles, repo, tmp_path):
    keys, path = repo
    pub.publish(bundles["1.0.0"], path, keys)
    stick = tmp_path / "usb"
    shutil.copytree(path, stick)
    state = tmp_path / "state"
    assert agent(str(stick), keys, state).sync_once().version == "1.0.0"
    pub.refresh_timestamp(path, keys, expires_in=timedelta(seconds=-60))
    shutil.rmtree(stick)
    shutil.copytree(path, stick)
    with pytest.raises(SyncError, match="Expired"):
        agent(str(stick), keys, state).sync_once()  # same expiry checks as HTTP
    assert_serving(state, "1.0.0")


@pytest.fixture()
def installed(bundles, http_repo, tmp_path):
    keys, path, url = http_repo
    state = tmp_path / "state"
    pub.publish(bundles["1.0.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.0.0"
    return keys, path, url, state


@pytest.mark.device
def test_attack_tampered_target(bundles, installed):
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    (target,) = (path / "targets" / "iris").glob("*iris-1.1.0.tar.gz")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(SyncError, match="download of iris/iris-1.1.0.tar.gz rejected"):
        agent(url, keys, state).sync_once()
    assert_serving(state, "1.0.0")
    assert "1.1.0" not in VersionStore(state).read_active()["known_bad"]  # a good mirror may follow


@pytest.mark.device
def test_attack_wrong_signing_key(bundles, installed, tmp_path):
    keys, path, url, state = installed
    evil = tmp_path / "evil-keys"
    pub.init_keys(evil, tmp_path / "evil-repo")
    for role in ("targets", "snapshot", "timestamp"):  # attacker re-signs with keys of their own
        for f in keys.glob(f"{role}-*.pem"):
            shutil.copy(evil / f.name, f)
    pub.publish(bundles["1.1.0"], path, keys)
    with pytest.raises(SyncError, match="rejected"):
        agent(url, keys, state).sync_once()
    assert_serving(state, "1.0.0")


@pytest.mark.device
def test_attack_replayed_metadata(bundles, installed):
    keys, path, url, state = installed
    old_ts = (path / "metadata" / "timestamp.json").read_bytes()
    pub.publish(bundles["1.1.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.1.0"
    (path / "metadata" / "timestamp.json").write_bytes(old_ts)  # mirror replays an old timestamp
    with pytest.raises(SyncError, match="rejected"):
        agent(url, keys, state).sync_once()
    assert_serving(state, "1.1.0")


@pytest.mark.device
def test_attack_freeze_expired_timestamp(bundles, installed):
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    pub.refresh_timestamp(path, keys, expires_in=timedelta(seconds=-1))
    with pytest.raises(SyncError, match="Expired"):
        agent(url, keys, state).sync_once()
    assert_serving(state, "1.0.0")


@pytest.mark.device
def test_attack_endless_data(bundles, installed):
    keys, path, url, state = installed
    (path / "metadata" / "timestamp.json").write_bytes(b"{" + b" " * (5 * 1024 * 1024))
    with pytest.raises(SyncError):
        agent(url, keys, state).sync_once()
    assert_serving(state, "1.0.0")


@pytest.mark.device
def test_attack_oversized_target(bundles, installed):
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    (target,) = (path / "targets" / "iris").glob("*iris-1.1.0.tar.gz")
    with open(target, "ab") as fh:
        fh.write(os.urandom(1 << 20))  # more bytes than the signed length
    with pytest.raises(SyncError):
        agent(url, keys, state).sync_once()
    with pytest.raises(SyncError, match="over the"):
        agent(url, keys, state, max_target_bytes=100).sync_once()
    assert_serving(state, "1.0.0")


@pytest.mark.device
def test_attack_mix_and_match(bundles, installed):
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    meta = path / "metadata"
    versions = sorted(int(p.name.split(".")[0]) for p in meta.glob("*.targets.json"))
    newest, older = versions[-1], versions[-2]
    (meta / f"{newest}.targets.json").write_bytes((meta / f"{older}.targets.json").read_bytes())
    with pytest.raises(SyncError, match="rejected"):
        agent(url, keys, state).sync_once()
    assert_serving(state, "1.0.0")


def test_cli_sync_rollback_versions(bundles, http_repo, tmp_path, cli_env):
    keys, path, url = http_repo
    state = tmp_path / "state"

    def edgert(*args, env=cli_env):
        return subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    for v in ("1.0.0", "1.1.0"):
        r = edgert("publish", str(bundles[v]), "--repo", str(path), "--keys", str(keys))
        assert r.returncode == 0, r.stderr
        r = edgert("sync", "--once", "--repo", url, "--root", str(keys / "root.json"), "--state", str(state))
        assert r.returncode == 0 and f"current version {v} (updated)" in r.stdout, r.stderr
    r = edgert("rollback", "--state", str(state))
    assert r.returncode == 0 and "current version 1.0.0" in r.stdout
    r = edgert("versions", "--state", str(state))
    assert "1.0.0" in r.stdout and "current" in r.stdout and "manual rollback" in r.stdout
    r = edgert("rollback", "--state", str(state), "--to", "9.9.9")
    assert r.returncode != 0 and "9.9.9 is not installed" in r.stderr
    r = edgert("publish", "--repo", str(path), "--keys", str(keys), "--revoke", "iris@1.1.0")
    assert r.returncode == 0
    r = edgert("publish", "--repo", str(path), "--keys", str(keys), "--rotate", "timestamp")
    assert r.returncode == 0
    pub.publish(bundles["1.3.0"], path, keys)
    r = edgert("sync", "--once", "--repo", url, "--root", str(keys / "root.json"), "--state", str(state))
    assert r.returncode == 0 and "current version 1.3.0" in r.stdout, r.stdout + r.stderr  # new root trusted


def _copy_as(bundle: Path, dst: Path, version: str) -> Path:
    """A copy of ``bundle`` at ``dst`` whose manifest says ``version``."""
    shutil.copytree(bundle, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["version"] = version
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _add_version(state: Path, bundle: Path, version: str) -> None:
    """Copy ``bundle`` into the store as ``version`` (as if installed earlier)."""
    _copy_as(bundle, state / "versions" / version, version)


@pytest.mark.device
@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_every_step_leaves_a_loadable_store(bundles, installed, cli_env, step):
    keys, path, url, state = installed
    _add_version(state, bundles["1.0.0"], "0.9.0")  # a bad version left on disk: the pass prunes it
    VersionStore(state).mark_bad("0.9.0", "bad leftover")
    pub.publish(bundles["1.1.0"], path, keys)
    for attempt in range(2):
        env = {**cli_env, "EDGERT_SYNC_KILL_AT": step}
        r = subprocess.run([sys.executable, "-m", "edge_runtime", "sync", "--once", "--repo", url, "--root",
                            str(keys / "root.json"), "--state", str(state), "--device-id", "d"],
                           capture_output=True, text=True, env=env, timeout=120)
        # once the switch happened, the next run has nothing to do and is not killed
        assert r.returncode == -9 or (attempt and current(state) == "1.1.0"), (step, r.stdout, r.stderr)
        rec = VersionStore(state).read_active()  # parses: never half-written
        assert rec["current"] in ("1.0.0", "1.1.0")
        assert_serving(state, rec["current"])
        assert not any(p.name.endswith(".tmp") for p in state.rglob("*") if p.parent == state)
    r = agent(url, keys, state).sync_once()  # and the next run finishes the job
    assert current(state) == "1.1.0"
    assert not [p for p in (state / "versions").iterdir() if p.name.startswith(".")]
    assert VersionStore(state).installed() == ["1.0.0", "1.1.0"]  # the bad one pruned ...
    assert VersionStore(state).read_active()["known_bad"]["0.9.0"] == "bad leftover"  # ... its reason kept


_JUDGE = """
import sys
from edge_runtime.hotswap import HotSwapModel
from edge_runtime.profiles import load_profile
base = load_profile("laptop-x86_64")
rules = {"predictions": 5, "max_error_rate": 0.5, "max_p99_ms": float(sys.argv[2])}
m = HotSwapModel(sys.argv[1], profile=type(base)(**{**base.__dict__, "probation": rules}))
for _ in range(5):
    m.predict([[5.1, 3.5, 1.4, 0.2]])
monitor = m._monitor_for(m.version)
if monitor is not None:  # the previous version answered every sample in shadow: judge on this call
    monitor.drain()
    m.predict([[5.1, 3.5, 1.4, 0.2]])
print(m.version)
m.close()
"""


@pytest.mark.device
@pytest.mark.parametrize("step", VERDICT_STEPS)
def test_kill_9_at_a_probation_verdict_leaves_a_loadable_store(bundles, installed, cli_env, step):
    """A power cut while the judge records commit / rollback: the old record, whole, and the
    verdict is reached again on the next start."""
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.1.0"  # on probation
    p99_ms = "1000" if step == "commit" else "1e-9"  # "rollback": every call is too slow

    def judge(kill: bool) -> subprocess.CompletedProcess:
        env = {**cli_env, "EDGERT_SYNC_KILL_AT": step} if kill else cli_env
        return subprocess.run([sys.executable, "-c", _JUDGE, str(state), p99_ms], capture_output=True,
                              text=True, env=env, timeout=120)

    for _ in range(2):
        r = judge(kill=True)
        assert r.returncode == -9, (r.stdout, r.stderr)
        rec = VersionStore(state).read_active()
        assert rec["current"] == "1.1.0" and rec["probation"]["version"] == "1.1.0"
        assert_serving(state, "1.1.0")
    r = judge(kill=False)
    assert r.returncode == 0, r.stderr
    store = VersionStore(state)
    rec = store.read_active()
    if step == "commit":
        assert r.stdout.strip() == "1.1.0" and rec["probation"] is None
        assert store.state_of("1.1.0") == "good"
    else:
        assert r.stdout.strip() == "1.0.0" and rec["current"] == "1.0.0"
        assert rec["known_bad"]["1.1.0"].startswith("failed probation: p99 latency")
    assert_serving(state, rec["current"])


@pytest.mark.device
def test_rollout_share_is_stable_and_about_right():
    offer = Offer(path="m/m-1.1.0.tar.gz", name="m", version="1.1.0", channel="stable", rollout_bp=1000,
                  min_runtime=None, length=1)
    ids = [f"device-{i:04d}" for i in range(1000)]
    chosen = [d for d in ids if admitted(offer, d)]
    assert 50 <= len(chosen) <= 150
    assert chosen == [d for d in ids if admitted(offer, d)]
    later = Offer(**{**offer.__dict__, "version": "1.2.0"})
    assert {d for d in ids if admitted(later, d)} != set(chosen)  # a new canary per version
    assert np.isclose(len(chosen) / 1000, 0.1, atol=0.05)


@pytest.mark.device
def test_lock_keeps_a_second_agent_out(installed):
    from edge_runtime.sync.agent import store_lock

    keys, path, url, state = installed
    with store_lock(VersionStore(state)), pytest.raises(SyncError, match="another sync agent holds the lock"):
        agent(url, keys, state).sync_once()


@pytest.mark.device
def test_download_policies(bundles, installed):
    import time

    from edge_runtime.sync.policy import DownloadPolicy, open_model

    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    metered = DownloadPolicy(mode="latest", required={"unmetered": True}, probes={"unmetered": lambda: False})
    assert metered.unmet() == ["unmetered"]
    assert open_model(agent(url, keys, state), metered).version == "1.0.0"  # condition unmet: no download
    assert open_model(agent(url, keys, state), DownloadPolicy(mode="local_only")).version == "1.0.0"
    bg = open_model(agent(url, keys, state), DownloadPolicy(mode="background"))
    assert bg.version in ("1.0.0", "1.1.0")  # serves at once
    deadline = time.time() + 30
    while current(state) != "1.1.0" and time.time() < deadline:
        time.sleep(0.05)
    bg.refresh(force=True)
    assert bg.version == "1.1.0"
    pub.publish(bundles["1.3.0"], path, keys)
    charging = DownloadPolicy(mode="latest", required={"charging": True}, probes={"charging": lambda: True})
    assert open_model(agent(url, keys, state), charging).version == "1.3.0"
    with pytest.raises(SyncError, match="not one of"):
        DownloadPolicy(mode="sometimes")


@pytest.mark.device
def test_hot_swap_under_concurrent_predictions(bundles, installed):
    """Threads predicting while the holder swaps versions never hit a closed model."""
    from edge_runtime.hotswap import HotSwapModel

    keys, path, url, state = installed
    holder = HotSwapModel(state, check_every_s=3600)
    errors: list = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                holder.predict([[5.1, 3.5, 1.4, 0.2]])
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in ("1.1.0", "1.3.0"):
            pub.publish(bundles[version], path, keys)
            for _ in range(50):  # the holder may hold the store lock to record a probation verdict
                try:
                    result = agent(url, keys, state).sync_once()
                    break
                except SyncError as exc:
                    assert "holds the lock" in str(exc)
                    time.sleep(0.05)
            assert result.version == version
            assert holder.refresh(force=True) and holder.version == version
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]


def test_revocation_rolls_devices_back_and_keeps_them_off(bundles, installed, cli_env):
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.1.0"
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "publish", "--repo", str(path), "--keys", str(keys),
                        "--revoke", "iris@1.1.0", "--reason", "miscalibrated on site B"],
                       capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 0, r.stderr
    result = agent(url, keys, state).sync_once()
    assert result.version == "1.0.0"
    assert any("revoked iris 1.1.0: miscalibrated on site B; rolled back to 1.0.0" in d for d in result.decisions)
    assert_serving(state, "1.0.0")
    assert "miscalibrated on site B" in VersionStore(state).read_active()["known_bad"]["1.1.0"]
    pub.publish(bundles["1.3.0"], path, keys)  # the revocation survives later publishes
    assert json.loads(_index_bytes(path))["revoked"] == {"iris": {"1.1.0": "miscalibrated on site B"}}
    assert agent(url, keys, state).sync_once().version == "1.3.0"


@pytest.mark.device
def test_revoked_only_version_keeps_serving_until_a_replacement(bundles, installed):
    keys, path, url, state = installed
    pub.revoke("iris", "1.0.0", path, keys, reason="recall")
    result = agent(url, keys, state).sync_once()
    assert result.version == "1.0.0" and not result.changed  # never left without a model
    assert any("nothing else installed" in d for d in result.decisions)
    pub.publish(bundles["1.1.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.1.0"
    assert_serving(state, "1.1.0")


def _index_bytes(repo: Path) -> bytes:
    from tuf.api.metadata import Metadata

    meta = repo / "metadata"
    newest = max(meta.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    digest = Metadata.from_bytes(newest.read_bytes()).signed.targets["index.json"].hashes["sha256"]
    return (repo / "targets" / f"{digest}.index.json").read_bytes()


class _Dripping(_Quiet):
    """A mirror that sends model archives 64 bytes at a time, 10 times a second."""

    def copyfile(self, source, outputfile):
        if not self.path.endswith(".tar.gz"):
            return super().copyfile(source, outputfile)
        try:
            while chunk := source.read(64):
                outputfile.write(chunk)
                outputfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.mark.device
def test_attack_slow_mirror_is_cut_off(bundles, installed):
    keys, path, _, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Dripping, directory=str(path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slow = f"http://127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(SyncError, match="took longer than 1 s"):
            agent(slow, keys, state, download_timeout_s=1.0).sync_once()
        # cut off as the bytes trickle in, not once the whole (~4 s) archive has arrived
        assert time.monotonic() - started < 3.0
        assert_serving(state, "1.0.0")
        assert "1.1.0" not in VersionStore(state).read_active()["known_bad"]  # a faster mirror may follow
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.device
def test_probation_judges_with_the_same_rules_as_live_telemetry():
    from edge_runtime.health import LiveMetrics
    from edge_runtime.sync.probation import ProbationMonitor

    rules = {"predictions": 100, "max_error_rate": 0.05, "max_p99_ms": 50.0}
    m = ProbationMonitor.from_profile(rules)
    for i in range(19):
        m.observe(0.001, error=i % 2 == 0)
    assert m.verdict()[0] == "pending"  # 10 errors in 19 calls: too few calls to judge
    m.observe(0.001, error=True)
    verdict, reason = m.verdict()
    assert verdict == "fail" and reason.startswith("error rate 55.00% > 5.00% over the last 20 calls")
    slow = ProbationMonitor.from_profile(rules)
    for _ in range(49):
        slow.observe(0.2)
    assert slow.verdict()[0] == "pending" and slow.metrics().p99_s is None  # p99 needs 50 latencies
    slow.observe(0.2)
    assert slow.verdict() == ("fail", "p99 latency 200 ms > 50 ms over the last 50 calls")
    assert isinstance(slow.metrics(), LiveMetrics)
    ok = ProbationMonitor.from_profile(rules)
    for _ in range(100):
        ok.observe(0.001)
    assert ok.verdict() == ("pass", "100 predictions within limits")


@pytest.mark.device
def test_five_bad_versions_in_a_row_keep_the_way_back_and_one_download_at_most(
        bundles, installed, cli_env, tmp_path):
    keys, path, url, state = installed
    pub.publish(bundles["1.1.0"], path, keys)
    assert agent(url, keys, state).sync_once().version == "1.1.0"
    cache = state / "tuf" / "targets"
    for i in range(5):  # 1.2.0 … 1.2.4: signed, but their golden rows disagree with their model
        pub.publish(_copy_as(bundles["1.2.0"], tmp_path / f"bad-1.2.{i}", f"1.2.{i}"), path, keys,
                    verify=False)  # signed on purpose: the device must refuse it
        r = agent(url, keys, state).sync_once()
        assert not r.changed and any(f"reject 1.2.{i}" in d for d in r.decisions), r.decisions
        assert len(list(cache.rglob("*.tar.gz"))) <= 1  # installed or refused: deleted
    store = VersionStore(state)
    assert store.installed() == ["1.0.0", "1.1.0"] and current(state) == "1.1.0"
    assert all(f"1.2.{i}" in store.read_active()["known_bad"] for i in range(5))
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "rollback", "--state", str(state)],
                       capture_output=True, text=True, env=cli_env, timeout=60)
    assert r.returncode == 0 and "current version 1.0.0" in r.stdout, r.stderr
    assert_serving(state, "1.0.0")
    assert list(cache.rglob("*.tar.gz")) == []
