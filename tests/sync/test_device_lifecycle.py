"""Issue 13's acceptance, through the real CLI processes only, on the two ways a CLI-only device
runs: ``edgert agent --port`` (one process), and ``edgert sync --daemon`` beside
``edgert serve STORE`` (two). A signed repository on 127.0.0.1; live /predict traffic.

1.0.0 serves and commits; 1.1.0, trained on shuffled labels (its own golden rows pass), is rolled
back by probation within 500 served predictions, and ``edgert versions`` says why with the
agreement figure; 1.2.0, retrained on more data of the same task, commits."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from device_support import DirectoryServer, edgert_popen, http_json, wait_until

from converters import publish as pub
from edge_runtime.sync.store import VersionStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lifecycle_bundles(tmp_path_factory) -> dict[str, Path]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    rng = np.random.default_rng(3)
    most = rng.permutation(len(X))[: int(len(X) * 0.8)]
    fits = {"1.0.0": (X[most], y[most]), "1.1.0": (X, rng.permutation(y)), "1.2.0": (X, y)}
    d = tmp_path_factory.mktemp("lifecycle")
    return {v: converters.convert(LogisticRegression(max_iter=2000).fit(Xf, yf), Xf, d / v, name="iris",
                                  version=v, holdout=X_te)
            for v, (Xf, yf) in fits.items()}


def _versions(state: Path, env: dict) -> dict[str, dict]:
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "versions", "--state", str(state), "--json"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {row["version"]: row for row in json.loads(r.stdout)["versions"]}


def _url_from(proc: subprocess.Popen, lines: list[str]) -> str:
    """Read stderr until the serving line names the bound address; keep draining afterwards."""
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if m:
            threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
            return m.group(1)
    raise AssertionError("no serving line:\n" + "".join(lines))


@contextlib.contextmanager
def _device(kind: str, url: str, keys: Path, state: Path, env: dict) -> Iterator[str]:
    sync_args = ["--repo", url, "--root", str(keys / "root.json"), "--state", str(state), "--interval", "1s"]
    procs: list[subprocess.Popen] = []
    lines: list[str] = []
    try:
        if kind == "agent":
            procs.append(edgert_popen(["agent", *sync_args, "--port", "0"], env))
        else:
            procs.append(edgert_popen(["sync", "--daemon", *sync_args], env))
            wait_until(lambda: (state / "active.json").exists()
                       and VersionStore(state).read_active()["current"] is not None, 90,
                       "the first activation", procs[0])
            procs.append(edgert_popen(["serve", str(state), "--port", "0", "--poll-interval", "0.1"], env))
        yield _url_from(procs[-1], lines)
        for p in procs:
            assert p.poll() is None, f"{p.args} exited {p.returncode}:\n" + "".join(lines)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def _serve_until(base: str, rows: list, done, limit: int, why=lambda: "") -> int:
    """POST one row at a time until ``done()``; returns how many predictions were served."""
    for i in range(limit):
        if done():
            return i
        http_json(f"{base}/predict", {"rows": [rows[i % len(rows)]]})
    assert done(), f"not done after {limit} served predictions: {why()}"
    return limit


@pytest.mark.parametrize("kind", ["agent", "sync-daemon+serve"])
def test_a_bad_version_is_rolled_back_and_a_good_one_commits(kind, lifecycle_bundles, tmp_path, cli_env):
    from zoo import dataset

    keys, repo, state = tmp_path / "keys", tmp_path / "repo", tmp_path / "state"
    pub.init_keys(keys, repo)
    server = DirectoryServer(repo)
    rows = dataset("iris")[2].tolist()

    def state_of(version: str) -> str:  # the store's own reading (edgert versions: at the end)
        return VersionStore(state).state_of(version)

    def serving(version: str) -> bool:
        return http_json(f"{base}/model")["version"] == version

    pub.publish(lifecycle_bundles["1.0.0"], repo, keys)
    try:
        with _device(kind, server.url, keys, state, cli_env) as base:
            _serve_until(base, rows, lambda: state_of("1.0.0") == "good", 1000,
                         lambda: _versions(state, cli_env))

            pub.publish(lifecycle_bundles["1.1.0"], repo, keys)
            wait_until(lambda: serving("1.1.0"), 90, "the swap to 1.1.0")
            served = _serve_until(base, rows, lambda: serving("1.0.0"), 500)
            bad = _versions(state, cli_env)["1.1.0"]
            assert bad["state"] == "bad" and "agreement" in bad["reason"], bad
            assert re.search(r"\d\.\d+", bad["reason"]), bad  # the figure that decided it
            assert served <= 500

            pub.publish(lifecycle_bundles["1.2.0"], repo, keys)
            wait_until(lambda: serving("1.2.0"), 90, "the swap to 1.2.0")
            _serve_until(base, rows, lambda: state_of("1.2.0") == "good", 1000,
                         lambda: VersionStore(state).read_active())
            assert serving("1.2.0") and _versions(state, cli_env)["1.2.0"]["current"]
    finally:
        server.close()
