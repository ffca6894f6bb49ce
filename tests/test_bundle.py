"""Corrupt, tampered, incomplete or unsafe bundles are refused before any engine parses them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge_runtime
from edge_runtime.bundle import (
    MANIFEST_NAME,
    Manifest,
    open_bundle,
    pack_bundle,
    parse_semver,
    read_archive,
    unpack_bundle,
)
from edge_runtime.errors import (
    BundleError,
    EdgeRuntimeError,
    IntegrityError,
    SchemaVersionError,
    UnsafeArchiveError,
)

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """The committed iris LogisticRegression bundle (a private copy)."""
    from committed import copy_bundle

    return copy_bundle("iris", tmp_path_factory.mktemp("good") / "iris")


def copy_of(good: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(good, dst)
    return dst


def manifest_of(path: Path) -> dict:
    return json.loads((path / MANIFEST_NAME).read_text())


def test_roundtrip_dir_and_archive(good, tmp_path):
    m = edge_runtime.load(good)
    tar = pack_bundle(good, tmp_path / "b.tar.gz")
    assert tar.read_bytes() == pack_bundle(good, tmp_path / "again.tar.gz").read_bytes()  # reproducible
    m2 = edge_runtime.load(tar)
    x = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    assert np.array_equal(m.predict(x), m2.predict(x))
    out = unpack_bundle(tar, tmp_path / "unpacked")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in good.iterdir())
    with pytest.raises(BundleError, match="already exists"):
        unpack_bundle(tar, out)


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "random", "append"])
def test_damaged_artifact_refused_before_parsing(good, tmp_path, damage):
    b = copy_of(good, tmp_path)
    art = b / "model.onnx"
    data = bytearray(art.read_bytes())
    rng = random.Random(damage)
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "bitflip":
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    elif damage == "random":
        i = rng.randrange(len(data) - 8)
        data[i: i + 8] = bytes(rng.randrange(256) for _ in range(8))
    else:
        data += b"\x00"
    art.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.onnx"):
        edge_runtime.load(b)
    with pytest.raises(IntegrityError):
        open_bundle(b).verify()


def test_engine_never_sees_tampered_bytes(good, tmp_path, monkeypatch):
    from edge_runtime.backends import onnxruntime_backend

    b = copy_of(good, tmp_path)
    data = bytearray((b / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    seen = []
    monkeypatch.setattr(onnxruntime_backend.OnnxRuntimeBackend, "__init__",
                        lambda self, *a, **k: seen.append(a))
    with pytest.raises(IntegrityError):
        edge_runtime.load(b, backend="onnxruntime")
    assert seen == []


def test_manifest_digest_mismatch(good, tmp_path):
    b = copy_of(good, tmp_path)
    m = manifest_of(b)
    m["artifacts"][0]["sha256"] = "0" * 64
    (b / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="sha256"):
        edge_runtime.load(b)


def test_missing_artifact(good, tmp_path):
    b = copy_of(good, tmp_path)
    (b / "model.onnx").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        edge_runtime.load(b)


def test_newer_major_schema_refused(good, tmp_path):
    b = copy_of(good, tmp_path)
    m = manifest_of(b)
    m["schema_version"] = "2.0"
    (b / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(SchemaVersionError, match="upgrade edge-runtime"):
        edge_runtime.load(b)


def test_newer_minor_schema_accepted(good, tmp_path):
    b = copy_of(good, tmp_path)
    m = manifest_of(b)
    m["schema_version"] = "1.7"
    m["some_future_field"] = {"x": 1}
    (b / MANIFEST_NAME).write_text(json.dumps(m))
    assert edge_runtime.load(b).predict([[5.1, 3.5, 1.4, 0.2]]).shape == (1,)


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "'name' is empty"),
    ("version", "1.0", "semver"),
    ("task", "ranking", "'task'"),
    ("artifacts", [], "'artifacts' is empty"),
])
def test_invalid_manifest_fields_are_named(good, tmp_path, field, value, message):
    b = copy_of(good, tmp_path)
    m = manifest_of(b)
    m[field] = value
    (b / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=message):
        open_bundle(b)


def test_artifact_path_cannot_escape(good, tmp_path):
    b = copy_of(good, tmp_path)
    m = manifest_of(b)
    m["artifacts"][0]["path"] = "../model.onnx"
    (b / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="plain file name"):
        open_bundle(b)


def test_manifest_not_json(good, tmp_path):
    b = copy_of(good, tmp_path)
    (b / MANIFEST_NAME).write_bytes(b"\xff{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        edge_runtime.load(b)


def _tar(tmp_path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes]) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = payloads.get(info.name)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device", "subdir",
                                  "duplicate"])
def test_unsafe_archive_members(good, tmp_path, kind):
    manifest = (good / MANIFEST_NAME).read_bytes()
    members = [_file(MANIFEST_NAME, manifest)]
    payloads = {MANIFEST_NAME: manifest}
    if kind == "dotdot":
        members.append(_file("../evil.onnx", b"x"))
        payloads["../evil.onnx"] = b"x"
    elif kind == "absolute":
        members.append(_file("/tmp/evil.onnx", b"x"))
        payloads["/tmp/evil.onnx"] = b"x"
    elif kind in ("symlink", "hardlink"):
        info = tarfile.TarInfo("model.onnx")
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname = "/etc/passwd"
        members.append(info)
    elif kind == "device":
        info = tarfile.TarInfo("model.onnx")
        info.type = tarfile.CHRTYPE
        members.append(info)
    elif kind == "subdir":
        members.append(_file("sub/model.onnx", b"x"))
        payloads["sub/model.onnx"] = b"x"
    else:
        members.append(_file(MANIFEST_NAME, manifest))
    tar = _tar(tmp_path, members, payloads)
    with pytest.raises(UnsafeArchiveError):
        edge_runtime.load(tar)
    with pytest.raises(UnsafeArchiveError):
        unpack_bundle(tar, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "evil.onnx").exists()


def test_oversize_member_refused(good, tmp_path):
    tar = pack_bundle(good, tmp_path / "b.tar.gz")
    with pytest.raises(UnsafeArchiveError, match="limit"):
        read_archive(tar, max_member_bytes=100)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_archives_never_crash(good, tmp_path, data):
    blob = bytearray(pack_bundle(good, tmp_path / "f.tar.gz").read_bytes())
    op = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if op == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif op == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path / "fuzz.tar.gz"
    path.write_bytes(bytes(blob))
    try:
        model = edge_runtime.load(path)
    except EdgeRuntimeError:
        return
    # gzip/tar can survive some damage (e.g. in padding); then the digests proved the artifact
    assert model.predict([[5.1, 3.5, 1.4, 0.2]]).shape == (1,)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=6),
                    max_leaves=30))
def test_arbitrary_json_manifest_is_a_bundle_error(obj):
    with contextlib.suppress(BundleError):
        Manifest(obj)


def test_semver_order():
    vs = ["1.0.0-alpha", "1.0.0", "1.0.1", "1.2.0-rc.1", "1.2.0", "1.10.0", "2.0.0"]
    assert sorted(vs, key=parse_semver) == vs
    with pytest.raises(BundleError):
        parse_semver("v1")


def test_corrupt_bundle_does_not_crash_cli(good, tmp_path, cli_env):
    b = copy_of(good, tmp_path)
    (b / "model.onnx").write_bytes(os.urandom(200))
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "verify", str(b)], capture_output=True,
                       text=True, env=cli_env, timeout=120)
    assert r.returncode == 1
    assert r.stderr.startswith("edgert: error: IntegrityError:") and "Traceback" not in r.stderr
