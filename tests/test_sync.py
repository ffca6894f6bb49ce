"""Sync agent end to end: real TUF repo, real HTTP server on 127.0.0.1, file source, kill -9."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("tuf")
pytest.importorskip("sklearn")

from tuf.api import exceptions as tufx  # noqa: E402

from converters import publish as pub  # noqa: E402
from edge_runtime.sync.agent import STEPS, SyncConfig, sync_once  # noqa: E402
from edge_runtime.sync.client import admitted  # noqa: E402
from edge_runtime.sync.errors import SyncError  # noqa: E402
from edge_runtime.sync.store import VersionStore  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def _bundle(out: Path, version: str, *, bad_golden: bool = False) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from converters import convert
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = convert(model, X, out / f"iris-{version}", name="iris", version=version)
    if bad_golden:  # the model is fine, but its outputs don't match what it promised
        m = json.loads((path / "manifest.json").read_text())
        m["golden"]["probabilities"] = [[1.0, 0.0, 0.0] for _ in m["golden"]["probabilities"]]
        m["golden"]["label"] = [0 for _ in m["golden"]["label"]]
        (path / "manifest.json").write_text(json.dumps(m))
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    b = {v: _bundle(out, v) for v in ("1.0.0", "1.1.0", "1.3.0")}
    b["1.2.0"] = _bundle(out, "1.2.0", bad_golden=True)
    return b


def _new_repo(base: Path) -> tuple[Path, Path, bytes]:
    keys, repo = base / "keys", base / "repo"
    root = pub.keys_init(keys, repo)
    return keys, repo, root.read_bytes()


class _Server:
    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_repo(tmp_path: Path):
    keys, repo, root = _new_repo(tmp_path)
    server = _Server(repo)
    yield keys, repo, root, server.url
    server.close()


def _cfg(source: str, state: Path, root: bytes, **kw: object) -> SyncConfig:
    return SyncConfig(source=source, state_dir=state, trusted_root=root, **kw)  # type: ignore


def _predicts(state: Path) -> str:
    import numpy as np

    from edge_runtime import load
    store = VersionStore(state)
    model = load(store.current_path())
    assert model.predict(np.array([[5.1, 3.5, 1.4, 0.2]])).shape == (1,)
    return store.read()["current"]


@pytest.mark.parametrize("kind", ["http", "file"])
def test_update_lifecycle(kind: str, bundles: dict[str, Path], tmp_path: Path,
                          http_repo: tuple) -> None:
    from edge_runtime.hotswap import HotSwapModel
    keys, repo, root, url = http_repo
    source = url if kind == "http" else str(repo)
    state = tmp_path / "state"
    pub.publish(bundles["1.0.0"], repo, keys)
    assert sync_once(_cfg(source, state, root)).action == "updated"
    assert _predicts(state) == "1.0.0"
    server_model = HotSwapModel(state, probation={"predictions": 20, "max_error_rate": 0.1})
    assert server_model.version == "1.0.0"

    pub.publish(bundles["1.1.0"], repo, keys, rollout="100%")
    assert sync_once(_cfg(source, state, root)).version == "1.1.0"
    assert server_model.refresh() and server_model.version == "1.1.0"
    for _ in range(20):  # 1.1.0 passes its probation
        server_model.predict([[5.1, 3.5, 1.4, 0.2]])
    assert "probation" not in VersionStore(state).read()

    pub.publish(bundles["1.2.0"], repo, keys)  # wrong golden outputs -> refused
    res = sync_once(_cfg(source, state, root))
    assert res.action == "refused" and res.version == "1.1.0"
    assert "1.2.0" in VersionStore(state).read()["known_bad"]
    assert not (state / "versions" / "1.2.0").exists()
    assert _predicts(state) == "1.1.0"

    pub.publish(bundles["1.3.0"], repo, keys)  # loads fine, then fails probation
    assert sync_once(_cfg(source, state, root)).version == "1.3.0"
    assert server_model.refresh() and server_model.version == "1.3.0"
    for _ in range(20):
        with pytest.raises(ValueError):
            server_model.predict([[1.0, 2.0]])  # every call errors -> error rate 100%
        if server_model.version != "1.3.0":
            break
    st = VersionStore(state).read()
    assert st["current"] == "1.1.0" and "error rate" in st["known_bad"]["1.3.0"]
    assert server_model.version == "1.1.0"
    res = sync_once(_cfg(source, state, root))  # never retried
    assert res.version == "1.1.0" and any("marked bad" in line for line in res.log)


def _assert_serving(state: Path, expect: str) -> None:
    assert _predicts(state) == expect


@pytest.fixture()
def served(bundles: dict[str, Path], tmp_path: Path, http_repo: tuple):
    keys, repo, root, url = http_repo
    state = tmp_path / "state"
    pub.publish(bundles["1.0.0"], repo, keys)
    sync_once(_cfg(url, state, root))
    return keys, repo, root, url, state


def test_tampered_target_refused(served: tuple, bundles: dict[str, Path]) -> None:
    keys, repo, root, url, state = served
    name = pub.publish(bundles["1.1.0"], repo, keys)
    data = bytearray((repo / "targets" / name).read_bytes())
    good = bytes(data)
    data[100] ^= 0xFF
    (repo / "targets" / name).write_bytes(bytes(data))
    res = sync_once(_cfg(url, state, root))
    assert res.action == "refused" and any("verification" in line for line in res.log)
    _assert_serving(state, "1.0.0")
    (repo / "targets" / name).write_bytes(good)  # mirror repaired: the signed version installs
    assert sync_once(_cfg(url, state, root)).version == "1.1.0"


def test_wrong_key_refused(served: tuple, bundles: dict[str, Path], tmp_path: Path) -> None:
    keys, repo, root, url, state = served
    other_keys, _, _ = _new_repo(tmp_path / "attacker")
    shutil.copy(other_keys / "targets.pem", keys / "targets.pem")  # attacker's targets key
    pub.publish(bundles["1.1.0"], repo, keys)
    with pytest.raises(SyncError) as err:
        sync_once(_cfg(url, state, root))
    assert isinstance(err.value.__cause__, tufx.UnsignedMetadataError)
    _assert_serving(state, "1.0.0")


def test_rollback_attack_refused(served: tuple, bundles: dict[str, Path]) -> None:
    keys, repo, root, url, state = served
    old = {p.name: p.read_bytes() for p in (repo / "metadata").glob("*.json")}
    pub.publish(bundles["1.1.0"], repo, keys)
    sync_once(_cfg(url, state, root))
    for n, data in old.items():  # mirror replays the old metadata
        (repo / "metadata" / n).write_bytes(data)
    with pytest.raises(SyncError) as err:
        sync_once(_cfg(url, state, root))
    assert isinstance(err.value.__cause__, tufx.BadVersionNumberError)
    _assert_serving(state, "1.1.0")


def test_freeze_attack_refused(served: tuple, bundles: dict[str, Path]) -> None:
    keys, repo, root, url, state = served
    pub.publish(bundles["1.1.0"], repo, keys)
    pub.refresh(repo, keys, timestamp_days=-1)  # validly signed, but expired
    with pytest.raises(SyncError) as err:
        sync_once(_cfg(url, state, root))
    assert isinstance(err.value.__cause__, tufx.ExpiredMetadataError)
    _assert_serving(state, "1.0.0")


def test_endless_data_refused(served: tuple, bundles: dict[str, Path]) -> None:
    keys, repo, root, url, state = served
    name = pub.publish(bundles["1.1.0"], repo, keys)
    with open(repo / "targets" / name, "ab") as fh:
        fh.write(b"\0" * 5_000_000)
    res = sync_once(_cfg(url, state, root))
    assert res.action == "refused"
    _assert_serving(state, "1.0.0")
    ts = repo / "metadata" / "timestamp.json"
    ts.write_bytes(ts.read_bytes() + b" " * 20_000)  # endless metadata
    with pytest.raises(SyncError) as err:
        sync_once(_cfg(url, state, root))
    assert isinstance(err.value.__cause__, tufx.DownloadLengthMismatchError)
    _assert_serving(state, "1.0.0")


def test_mix_and_match_refused(served: tuple, bundles: dict[str, Path]) -> None:
    keys, repo, root, url, state = served
    old_targets = (repo / "metadata" / "targets.json").read_bytes()
    pub.publish(bundles["1.1.0"], repo, keys)
    (repo / "metadata" / "targets.json").write_bytes(old_targets)  # with the new snapshot
    with pytest.raises(SyncError) as err:
        sync_once(_cfg(url, state, root))
    assert isinstance(err.value.__cause__, tufx.RepositoryError)
    _assert_serving(state, "1.0.0")


def test_rollout_share_is_stable() -> None:
    ids = [f"device-{i}" for i in range(1000)]
    first = {d for d in ids if admitted(d, "2.0.0", 0.10)}
    assert 50 <= len(first) <= 150
    assert first == {d for d in ids if admitted(d, "2.0.0", 0.10)}
    assert {d for d in ids if admitted(d, "2.0.0", 0.20)} >= first  # widening keeps the canary


@pytest.mark.parametrize("round_", [1, 2])
def test_kill_at_every_step(bundles: dict[str, Path], tmp_path: Path,
                            http_repo: tuple, round_: int) -> None:
    """Round 1: 1.0.0 -> 1.1.0. Round 2: store already full (keep=2 prunes on the way)."""
    keys, repo, root, url, state0 = (*http_repo, tmp_path / "state")
    root_file = tmp_path / "root.json"
    root_file.write_bytes(root)
    pub.publish(bundles["1.0.0"], repo, keys)
    sync_once(_cfg(url, state0, root, keep=2))
    if round_ == 2:
        pub.publish(bundles["1.3.0"], repo, keys, channel="old")
        sync_once(_cfg(url, state0, root, keep=2, channel="old"))
        back = sync_once(_cfg(url, state0, root, keep=2))  # kept 1.0.0 reused, no download
        assert back.version == "1.0.0" and VersionStore(state0).read()["previous"] == "1.3.0"
    pub.publish(bundles["1.1.0"], repo, keys)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    runs = 0
    for step in STEPS:
        state = tmp_path / f"state-{step}"
        shutil.copytree(state0, state)
        proc = subprocess.run(
            [sys.executable, "-m", "edge_runtime", "sync", "--once", "--source", url,
             "--root", str(root_file), "--state", str(state)],
            env=dict(env, EDGERT_KILL_AT=step), capture_output=True, timeout=60)
        runs += 1
        assert proc.returncode == -signal.SIGKILL, (step, proc.stderr[-500:])
        cur = VersionStore(state).read()["current"]
        assert cur in ("1.0.0", "1.1.0")
        _assert_serving(state, cur)
        assert not list((state).glob("*.tmp")) and not list(state.glob(".active.json.*"))
        # the next run repairs the store and finishes the update
        proc = subprocess.run(
            [sys.executable, "-m", "edge_runtime", "sync", "--once", "--source", url,
             "--root", str(root_file), "--state", str(state)], env=env, capture_output=True,
            timeout=60)
        assert proc.returncode == 0, proc.stderr[-500:]
        _assert_serving(state, "1.1.0")
        assert not [p for p in (state / "versions").iterdir() if p.name.startswith(".")]
    assert runs == len(STEPS)


def test_background_policy_and_threaded_swap(bundles: dict[str, Path], tmp_path: Path,
                                             http_repo: tuple) -> None:
    """Predictions from 4 threads never fail while the holder swaps 1.0.0 -> 1.1.0."""
    from edge_runtime.sync.policy import open_model, required_conditions
    keys, repo, root, url = http_repo
    state = tmp_path / "state"
    pub.publish(bundles["1.0.0"], repo, keys)
    sync_once(_cfg(str(repo), state, root))
    pub.publish(bundles["1.1.0"], repo, keys)
    with pytest.raises(ValueError, match="charging"):
        required_conditions({"charging": True}, {})
    blocked = _cfg(url, state, root, conditions=required_conditions(
        {"unmetered": True}, {"unmetered": lambda: False}))
    assert sync_once(blocked).action == "skipped"
    holder = open_model(_cfg(url, state, root), "local")
    assert holder.version == "1.0.0"
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                assert holder.predict([[5.1, 3.5, 1.4, 0.2]]).shape == (1,)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    bg = open_model(_cfg(url, state, root), "background")
    bg.updater_thread.join(30)
    assert bg.version == "1.1.0"
    assert holder.refresh() and holder.version == "1.1.0"
    stop.set()
    for t in threads:
        t.join()
    assert not errors


def test_rotation_and_revoke_over_file_source(bundles: dict[str, Path], tmp_path: Path) -> None:
    """USB-style file source: device follows a rotated targets key, then a revocation."""
    keys, repo, root = _new_repo(tmp_path)
    state = tmp_path / "state"
    pub.publish(bundles["1.0.0"], repo, keys)
    assert sync_once(_cfg(str(repo), state, root)).version == "1.0.0"
    old_key = (keys / "targets.pem").read_bytes()
    new_id = pub.rotate_key("targets", repo, keys)
    assert (keys / "targets.pem").read_bytes() != old_key
    assert (repo / "metadata" / "2.root.json").exists()
    pub.publish(bundles["1.1.0"], repo, keys)
    assert sync_once(_cfg(str(repo), state, root)).version == "1.1.0"
    trusted = json.loads((state / "tuf" / "metadata" / "root.json").read_text())
    assert trusted["signed"]["version"] == 2
    assert trusted["signed"]["roles"]["targets"]["keyids"] == [new_id]
    assert pub.revoke("1.1.0", repo, keys) == ["iris-1.1.0.tar.gz"]
    res = sync_once(_cfg(str(repo), state, root))
    assert res.version == "1.0.0" and any("revoked" in line for line in res.log)
    assert VersionStore(state).read()["known_bad"]["1.1.0"].startswith("revoked")
    _assert_serving(state, "1.0.0")
    with pytest.raises(pub.PublishError, match="no published target"):
        pub.revoke("7.7.7", repo, keys)


def test_download_time_bound_and_daemon_backoff(served: tuple, bundles: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_runtime.sync import agent
    keys, repo, root, url, state = served
    pub.publish(bundles["1.1.0"], repo, keys)
    with pytest.raises(SyncError, match="took longer"):
        sync_once(_cfg(url, state, root, max_seconds=0))
    _assert_serving(state, "1.0.0")
    sleeps: list[float] = []
    monkeypatch.setattr(agent.time, "sleep", sleeps.append)
    agent.daemon(_cfg("http://127.0.0.1:9", state, root), 3600, iterations=3)
    assert len(sleeps) == 3 and 15 <= sleeps[0] <= 30 and 60 <= sleeps[2] <= 120  # backoff
    assert len(set(sleeps)) == 3
    agent.daemon(_cfg(url, state, root), 60, iterations=1)
    assert sleeps[-1] == 60 and VersionStore(state).read()["current"] == "1.1.0"
