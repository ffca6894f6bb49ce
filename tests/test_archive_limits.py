"""Archive bombs are refused from their header blocks: bounded memory and time, whatever a
header or the gzip stream claims.

Before the bounded reader, a 3 GB PAX header in a 3 MB ``.tar.gz`` took 3.1 GB and 62 s and then
unpacked and served, a GNU long name did the same before being refused, two zero-filled members
just under the size cap took 3.1 GB, and an unreferenced member was written into the version
directory. Peak memory is the child process's own ``VmHWM`` (a bound the code enforces).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

import edge_runtime
from edge_runtime.bundle import MANIFEST_NAME, MAX_ARTIFACT_BYTES, open_bundle, pack_bundle, unpack_bundle
from edge_runtime.errors import BundleError, IntegrityError, UnsafeArchiveError

MiB = 1 << 20
GB3 = 3 * 1000**3 // MiB * MiB  # "3 GB", in whole MiB so the zeros are cheap to build

CHILD = r"""
import json, sys, time
from edge_runtime.bundle import open_bundle, unpack_bundle
from edge_runtime.errors import BundleError
t0 = time.perf_counter()
try:
    (unpack_bundle(sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else open_bundle(sys.argv[1]))
    error = None
except BundleError as exc:
    error = [type(exc).__name__, str(exc)]
seconds = time.perf_counter() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"error": error, "seconds": seconds, "peak_mib": hwm / 1024}))
"""


def _gzip(parts: list) -> bytes:
    """A gzip file of ``parts`` (bytes, or an int: that many zero bytes, a multiple of 1 MiB).
    A run of zeros is one deflate block repeated (each ends in a full flush, so it needs no
    history): a 3 GB run is 3 MB on disk and built in about a second (the CRC)."""
    zero = bytes(MiB)
    block_of = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero_block = block_of.compress(zero) + block_of.flush(zlib.Z_FULL_FLUSH)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]
    crc = size = 0
    for part in parts:
        if isinstance(part, int):
            assert part % MiB == 0
            out.append(c.flush(zlib.Z_FULL_FLUSH))
            out.append(zero_block * (part // MiB))
            for _ in range(part // MiB):
                crc = zlib.crc32(zero, crc)
            size += part
        else:
            out.append(c.compress(part))
            crc, size = zlib.crc32(part, crc), size + len(part)
    out.append(c.flush(zlib.Z_FINISH))
    out.append(crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little"))
    return b"".join(out)


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, 0o644
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _member(name: str, data: bytes) -> bytes:
    return _header(name, len(data)) + data + bytes(-len(data) % 512)


END = bytes(1024)


pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """The zoo's logistic-binary bundle, committed (a private copy)."""
    from committed import copy_bundle

    return copy_bundle("logistic-binary", tmp_path_factory.mktemp("good") / "logistic-binary")


def _child(cli_env, *args) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True,
                       text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _refused_small_and_fast(cli_env, path: Path, error: str, message: str, tmp_path: Path) -> None:
    for args in ((path,), (path, tmp_path / "out")):  # open_bundle, unpack_bundle
        got = _child(cli_env, *args)
        print(f"{path.name} ({path.stat().st_size / MiB:.1f} MiB): {got}")
        assert got["error"] is not None and got["error"][0] == error, got
        assert message in got["error"][1]
        assert got["seconds"] < 10.0  # measured well under 0.1 s (before: 62 s for the PAX case)
        assert got["peak_mib"] < 100.0  # before: 3.1 GB
    assert not (tmp_path / "out").exists()


def test_3gb_pax_header_is_refused_from_its_header(good, tmp_path, cli_env):
    manifest = (good / MANIFEST_NAME).read_bytes()
    path = tmp_path / "pax-bomb.tar.gz"
    path.write_bytes(_gzip([_member(MANIFEST_NAME, manifest), _header("././@PaxHeader", GB3, b"x"),
                            GB3, _member("model.onnx", (good / "model.onnx").read_bytes()), END]))
    assert path.stat().st_size < 4 * MiB
    _refused_small_and_fast(cli_env, path, "UnsafeArchiveError", f"{GB3}-byte PAX header", tmp_path)


def test_3gb_gnu_long_name_is_refused_from_its_header(good, tmp_path, cli_env):
    path = tmp_path / "longname-bomb.tar.gz"
    path.write_bytes(_gzip([_header("././@LongLink", GB3, b"L"), GB3, END]))
    _refused_small_and_fast(cli_env, path, "UnsafeArchiveError", f"{GB3}-byte GNU long name", tmp_path)


def test_zero_filled_pair_under_the_cap_is_refused_unread(good, tmp_path, cli_env):
    manifest = (good / MANIFEST_NAME).read_bytes()
    n = MAX_ARTIFACT_BYTES - MiB
    path = tmp_path / "zero-pair.tar.gz"
    path.write_bytes(_gzip([_member(MANIFEST_NAME, manifest), _header("pad-a.bin", n), n,
                            _header("pad-b.bin", n), n, END]))
    _refused_small_and_fast(cli_env, path, "UnsafeArchiveError",
                            "'pad-a.bin' is not an artifact the manifest lists", tmp_path)


def test_listed_member_of_another_size_is_refused_unread(good, tmp_path, cli_env):
    manifest = (good / MANIFEST_NAME).read_bytes()
    n = MAX_ARTIFACT_BYTES - MiB
    path = tmp_path / "big-model.tar.gz"
    path.write_bytes(_gzip([_member(MANIFEST_NAME, manifest), _header("model.onnx", n), n, END]))
    _refused_small_and_fast(cli_env, path, "IntegrityError", f"'model.onnx' is {n} bytes, manifest says",
                            tmp_path)


def test_more_data_than_the_manifest_declares_is_refused(good, tmp_path, cli_env):
    """Zeros after the last member read as end-of-archive blocks; the reader still drains the
    gzip stream to check its CRC, and stops at the manifest's sizes plus a little."""
    manifest = (good / MANIFEST_NAME).read_bytes()
    path = tmp_path / "trailing.tar.gz"
    path.write_bytes(_gzip([_member(MANIFEST_NAME, manifest),
                            _member("model.onnx", (good / "model.onnx").read_bytes()), END, 256 * MiB]))
    _refused_small_and_fast(cli_env, path, "UnsafeArchiveError", "unpacks to more than", tmp_path)


def test_unreferenced_member_is_refused_with_its_name(good, tmp_path):
    manifest = (good / MANIFEST_NAME).read_bytes()
    path = tmp_path / "extra.tar.gz"
    path.write_bytes(_gzip([_member(MANIFEST_NAME, manifest),
                            _member("model.onnx", (good / "model.onnx").read_bytes()),
                            _member("notes.txt", b"x" * 1000), END]))
    for call in (lambda: open_bundle(path), lambda: unpack_bundle(path, tmp_path / "v1")):
        with pytest.raises(UnsafeArchiveError, match="'notes.txt' is not an artifact the manifest lists"):
            call()
    assert not (tmp_path / "v1").exists() and not list(tmp_path.glob(".v1.*"))


def test_manifest_must_come_first(good, tmp_path):
    path = tmp_path / "late.tar.gz"
    path.write_bytes(_gzip([_member("model.onnx", (good / "model.onnx").read_bytes()),
                            _member(MANIFEST_NAME, (good / MANIFEST_NAME).read_bytes()), END]))
    with pytest.raises(BundleError, match="first member is 'model.onnx'; manifest.json must come first"):
        open_bundle(path)


def test_tampered_member_is_refused_while_streaming(good, tmp_path):
    data = bytearray((good / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    path = tmp_path / "tampered.tar.gz"
    path.write_bytes(_gzip([_member(MANIFEST_NAME, (good / MANIFEST_NAME).read_bytes()),
                            _member("model.onnx", bytes(data)), END]))
    with pytest.raises(IntegrityError, match="sha256"):
        unpack_bundle(path, tmp_path / "v1")
    assert not (tmp_path / "v1").exists()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_archives_from_other_tar_writers_load(good, tmp_path, fmt):
    """PAX records (here a fractional mtime and a comment, as bsdtar writes), a leading './'
    directory and './' prefixes are what other tools produce; they are read, not refused."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        top = tarfile.TarInfo(".")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        for name in (MANIFEST_NAME, "model.onnx"):
            data = (good / name).read_bytes()
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mtime = len(data), 1.5
            if fmt == tarfile.PAX_FORMAT:
                info.pax_headers = {"comment": "é" * 300}
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "other.tar.gz"
    path.write_bytes(buf.getvalue())
    model = edge_runtime.load(path)
    assert model.manifest.name == open_bundle(good).manifest.name
    out = unpack_bundle(path, tmp_path / "v1")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "model.onnx"]
    again = pack_bundle(out, tmp_path / "again.tar.gz").read_bytes()
    assert again == pack_bundle(good, tmp_path / "b.tar.gz").read_bytes()
