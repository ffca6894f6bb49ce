"""``edgert publish`` signs only what a device would accept: a bundle that fails ``edgert verify``
(golden rows, digests) or whose name is not a plain file name is refused with a PublishError and
the repository is left as it was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from device_support import iris_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters import publish as pub


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return iris_bundle(tmp_path_factory.mktemp("b") / "iris")


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, Path]:
    keys, repo = tmp_path / "keys", tmp_path / "repo"
    pub.init_keys(keys, repo)
    return keys, repo


def _variant(good: Path, dest: Path, **manifest: object) -> Path:
    shutil.copytree(good, dest)
    m = json.loads((dest / "manifest.json").read_text())
    m.update(manifest)
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _publish_cli(bundle: Path, repo: tuple[Path, Path], env: dict) -> subprocess.CompletedProcess:
    keys, path = repo
    return subprocess.run([sys.executable, "-m", "edge_runtime", "publish", str(bundle), "--repo", str(path),
                           "--keys", str(keys)], capture_output=True, text=True, env=env, timeout=120)


def test_cli_refuses_a_bundle_whose_golden_rows_fail(good, repo, tmp_path, cli_env):
    m = json.loads((good / "manifest.json").read_text())
    # probabilities reversed and labels still their top class: well formed, disproved by the model
    golden = dict(m["golden"], label=[2 - lab for lab in m["golden"]["label"]],
                  probabilities=[list(reversed(r)) for r in m["golden"]["probabilities"]])
    bad = _variant(good, tmp_path / "bad", golden=golden)
    before = _snapshot(repo[1])
    r = _publish_cli(bad, repo, cli_env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "PublishError" in r.stderr and "`edgert verify` fails" in r.stderr and "GoldenMismatch" in r.stderr
    assert "Traceback" not in r.stderr
    assert _snapshot(repo[1]) == before  # nothing signed, nothing written
    r = _publish_cli(good, repo, cli_env)  # the good one still publishes
    assert r.returncode == 0 and "published iris/iris-1.0.0.tar.gz" in r.stdout, r.stderr


def test_cli_refuses_a_name_that_is_not_a_plain_file_name(good, repo, tmp_path, cli_env):
    bad = _variant(good, tmp_path / "bad", name="../../../escaped")
    r = _publish_cli(bad, repo, cli_env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "PublishError" in r.stderr and "'../../../escaped' is not a plain file name" in r.stderr
    assert not list(tmp_path.parent.rglob("*escaped*"))  # repo/targets/../../../ = tmp_path's parent


def test_refuses_an_artifact_that_does_not_match_its_digest(good, repo, tmp_path):
    bad = _variant(good, tmp_path / "bad")
    art = bad / json.loads((bad / "manifest.json").read_text())["artifacts"][0]["path"]
    data = bytearray(art.read_bytes())
    data[-1] ^= 0xFF
    art.write_bytes(bytes(data))
    with pytest.raises(pub.PublishError, match="`edgert verify` fails: IntegrityError"):
        pub.publish(bad, repo[1], repo[0])
    packed = tmp_path / "bad.tar.gz"  # the same check for an archive
    with tarfile.open(packed, "w:gz") as tar:
        for f in sorted(bad.iterdir()):
            tar.add(f, arcname=f.name)
    with pytest.raises(pub.PublishError, match="IntegrityError"):
        pub.publish(packed, repo[1], repo[0])


def test_revoke_refuses_a_name_that_is_not_a_plain_file_name(repo):
    with pytest.raises(pub.PublishError, match="not a plain file name"):
        pub.revoke("../x", "1.0.0", repo[1], repo[0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.text(min_size=1, max_size=40),
                      st.text(alphabet="./_-aZ9\\", min_size=1, max_size=12)))
def test_whatever_the_name_nothing_is_written_outside_the_repository(good, tmp_path_factory, name):
    work = tmp_path_factory.mktemp("w")
    keys, repo = work / "keys", work.joinpath(*"abcdefgh") / "repo"  # deep: '..' may climb a bit
    pub.init_keys(keys, repo)
    bundle = _variant(good, work / "b", name=name)
    try:
        path = pub.publish(bundle, repo, keys)
    except pub.PublishError:
        path = None
    except Exception as exc:  # noqa: BLE001 - the manifest itself may refuse the name
        assert type(exc).__name__ == "BundleError", exc
        path = None
    written = {p.resolve() for p in work.rglob("*") if p.is_file()}
    inside = {p for p in written if (repo.resolve() in p.parents or keys.resolve() in p.parents
                                     or (work / "b").resolve() in p.parents)}
    assert written == inside
    if path is not None:
        assert path == f"{name}/{name}-1.0.0.tar.gz" and "/" not in name and name != ".."
