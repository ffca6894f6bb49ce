"""Signed bundles through the sync path: `edgert publish --sign-key` signs the bundle besides
TUF, and a device whose bundle trust is the model owner's key (not a TUF role key) installs only
bundles that owner signed, checked at install and again at activation (real CLI, file source)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from converters import publish as pub
from edge_runtime.errors import IntegrityError
from edge_runtime.sync.agent import SyncAgent
from edge_runtime.sync.client import RepoClient
from edge_runtime.sync.store import VersionStore

pytest.importorskip("model_signing")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    d = tmp_path_factory.mktemp("bundles")
    return {v: converters.convert(LogisticRegression(C=1.0 + i, max_iter=1000).fit(X, y), X, d / v,
                                  name="iris", version=v, holdout=X_te)
            for i, v in enumerate(["1.0.0", "1.1.0"])}


def _edgert(cli_env, *args):
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True, text=True,
                          env=cli_env, timeout=180)


def test_publish_signs_and_the_device_trusts_the_owner_key_not_the_tuf_keys(bundles, tmp_path, cli_env):
    keys, repo = tmp_path / "tuf-keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    owner = tmp_path / "owner"
    assert _edgert(cli_env, "keys", "init-signing", str(owner)).returncode == 0
    b1 = Path(shutil.copytree(bundles["1.0.0"], tmp_path / "b1"))
    r = _edgert(cli_env, "publish", str(b1), "--repo", str(repo), "--keys", str(keys),
                "--sign-key", str(owner / "signing-key.pem"))
    assert r.returncode == 0 and "signed" in r.stdout, r.stderr
    state = tmp_path / "state"
    r = _edgert(cli_env, "sync", "--once", "--repo", str(repo), "--root", str(keys / "root.json"),
                "--state", str(state), "--trust", str(owner / "signing-key.pub.pem"))
    assert r.returncode == 0 and "current version 1.0.0 (updated)" in r.stdout, r.stdout + r.stderr
    assert (VersionStore(state).path("1.0.0") / "model.sig").is_file()

    # 1.1.0 is published with valid TUF metadata but without the owner's signature: refused
    pub.publish(bundles["1.1.0"], repo, keys)
    agent = SyncAgent(str(repo), (keys / "root.json").read_bytes(), state, device_id="d",
                      trust=owner / "signing-key.pub.pem")
    result = agent.sync_once()
    assert result.version == "1.0.0" and not result.changed
    rec = VersionStore(state).read_active()
    assert "not signed" in rec["known_bad"]["1.1.0"] and "1.1.0" not in VersionStore(state).installed()


def test_a_signed_version_tampered_after_install_is_never_activated(bundles, tmp_path):
    from converters.signing import init_signing_key, sign_bundle

    priv, pubkey = init_signing_key(tmp_path / "owner")
    keys, repo = tmp_path / "tuf-keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    b = Path(shutil.copytree(bundles["1.0.0"], tmp_path / "b"))
    sign_bundle(b, priv)
    pub.publish(b, repo, keys)
    store = VersionStore(tmp_path / "state", trust=pubkey)
    client = RepoClient(str(repo), (keys / "root.json").read_bytes(), store.root / "tuf")
    client.refresh()
    offer = client.offers("iris")[0]
    store.install("1.0.0", client.download(offer))
    m = json.loads((store.path("1.0.0") / "manifest.json").read_text())
    m["golden"]["atol"] = 1e9  # at rest, after install: digests still agree, the signature does not
    (store.path("1.0.0") / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="signature check failed at rest: .*'manifest.json' changed"):
        store.activate("1.0.0")
    assert store.read_active()["current"] is None
