"""Publishing signed model updates: a TUF repository of plain static files (python-tuf's
Metadata API), served by any web server or copied onto a USB stick.

Layout: ``metadata/{N.root.json, N.targets.json, N.snapshot.json, timestamp.json}`` and
``targets/<model>/<sha256>.<model>-<version>.tar.gz`` (consistent snapshots, hash-prefixed
targets), plus a signed target ``index.json`` listing the model targets so devices can
enumerate them without reading TUF internals. Rollout rules live in each target's signed
``custom`` field, never in unsigned files (the share in basis points: canonical JSON has no
floats).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from edge_runtime.bundle import open_bundle, pack_bundle, parse_semver
from edge_runtime.fsutil import atomic_write_bytes

from .errors import PublishError as PublishError  # defined in errors.py; importable from here too

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY = {"root": timedelta(days=365), "targets": timedelta(days=90), "snapshot": timedelta(days=30),
          "timestamp": timedelta(days=7)}
INDEX = "index.json"
#: Model names become a directory and file names in the repository and on every device.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _signer_from_pem(path: Path) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    return CryptoSigner(load_pem_private_key(path.read_bytes(), password=None))


def _new_key(keys_dir: Path, name: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner.generate_ed25519()
    pem = signer._private_key.private_bytes(  # noqa: SLF001 - the only way to persist it
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    atomic_write_bytes(keys_dir / f"{name}.pem", pem, mode=0o600)
    return signer


def _signers(keys_dir: Path, role: str) -> list[Any]:
    files = sorted(keys_dir.glob(f"{role}-*.pem"))
    if not files:
        raise PublishError(f"{keys_dir}: no {role} keys ({role}-*.pem); run `edgert keys init`")
    return [_signer_from_pem(f) for f in files]


def _write(repo: Path, md: Any, name: str) -> None:
    from tuf.api.serialization.json import JSONSerializer

    atomic_write_bytes(repo / "metadata" / name, md.to_bytes(JSONSerializer(compact=False)))


def _sign(md: Any, signers: list[Any]) -> None:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)


def init_keys(keys_dir: Path, repo: Path, *, thresholds: Optional[dict[str, int]] = None,
              expiry: Optional[dict[str, timedelta]] = None) -> Path:
    """Create Ed25519 keys for the four top-level roles (``threshold`` keys each) and an empty,
    signed repository. Returns the trusted ``root.json`` to ship with the app."""
    from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

    keys_dir, repo = Path(keys_dir), Path(repo)
    if any(keys_dir.glob("*.pem")):
        raise PublishError(f"{keys_dir} already holds keys; refusing to overwrite them")
    keys_dir.mkdir(parents=True, exist_ok=True)
    thresholds = {r: 1 for r in ROLES} | (thresholds or {})
    expiry = EXPIRY | (expiry or {})
    root = Root(expires=_now() + expiry["root"], consistent_snapshot=True)
    for role in ROLES:
        for i in range(thresholds[role]):
            root.add_key(_new_key(keys_dir, f"{role}-{i}").public_key, role)
        root.roles[role].threshold = thresholds[role]
    md_root = Metadata(root)
    _sign(md_root, _signers(keys_dir, "root"))
    _write(repo, md_root, "1.root.json")
    targets = Metadata(Targets(expires=_now() + expiry["targets"]))
    _commit(repo, keys_dir, targets, expiry, snapshot=Metadata(Snapshot(expires=_now())),
            timestamp=Metadata(Timestamp(expires=_now())))
    (keys_dir / "expiry.json").write_text(json.dumps({k: v.total_seconds() for k, v in expiry.items()}))
    trusted = keys_dir / "root.json"
    atomic_write_bytes(trusted, (repo / "metadata" / "1.root.json").read_bytes())
    return trusted


def _expiry(keys_dir: Path) -> dict[str, timedelta]:
    try:
        saved = json.loads((keys_dir / "expiry.json").read_text())
    except (OSError, ValueError):
        return dict(EXPIRY)
    return {k: timedelta(seconds=v) for k, v in saved.items()}


def _latest(repo: Path, role: str) -> tuple[Any, int]:
    from tuf.api.metadata import Metadata

    meta = repo / "metadata"
    if role == "timestamp":
        return Metadata.from_file(str(meta / "timestamp.json")), 0
    versions = sorted(int(p.name.split(".")[0]) for p in meta.glob(f"*.{role}.json"))
    if not versions:
        raise PublishError(f"{repo}: no {role} metadata; run `edgert keys init` first")
    return Metadata.from_file(str(meta / f"{versions[-1]}.{role}.json")), versions[-1]


def _commit(repo: Path, keys_dir: Path, targets: Any, expiry: dict[str, timedelta], *,
            snapshot: Any = None, timestamp: Any = None) -> None:
    """Sign and write a new targets version, then snapshot and timestamp pointing at it
    (targets first, timestamp last: a client never sees a timestamp for files not yet there)."""
    from tuf.api.metadata import MetaFile

    keys_dir = Path(keys_dir)
    if snapshot is None:
        snapshot, _ = _latest(repo, "snapshot")
    if timestamp is None:
        timestamp, _ = _latest(repo, "timestamp")
    targets.signed.expires = _now() + expiry["targets"]
    _sign(targets, _signers(keys_dir, "targets"))
    _write(repo, targets, f"{targets.signed.version}.targets.json")
    snap = snapshot.signed
    snap.meta["targets.json"] = MetaFile(version=targets.signed.version)
    snap.version += 1 if (repo / "metadata" / f"{snap.version}.snapshot.json").exists() else 0
    snap.expires = _now() + expiry["snapshot"]
    _sign(snapshot, _signers(keys_dir, "snapshot"))
    _write(repo, snapshot, f"{snap.version}.snapshot.json")
    ts = timestamp.signed
    ts.snapshot_meta = MetaFile(version=snap.version)
    ts.version += 1 if (repo / "metadata" / "timestamp.json").exists() else 0
    ts.expires = _now() + expiry["timestamp"]
    _sign(timestamp, _signers(keys_dir, "timestamp"))
    _write(repo, timestamp, "timestamp.json")


def _add_target(repo: Path, targets: Any, path: str, data: bytes, custom: Optional[dict] = None) -> None:
    from tuf.api.metadata import TargetFile

    tf = TargetFile.from_data(path, data, ["sha256"])
    if custom is not None:
        tf.unrecognized_fields["custom"] = custom
    digest = tf.hashes["sha256"]
    dirname, _, base = path.rpartition("/")
    atomic_write_bytes(repo / "targets" / dirname / f"{digest}.{base}", data)
    targets.signed.targets[path] = tf


def _index(repo: Path, targets: Any, revoke: Optional[tuple[str, str, str]] = None) -> bytes:
    """The signed catalogue: model -> target paths, and the revocation list carried over from
    the previous index (plus ``revoke`` = (name, version, reason)), which devices act on."""
    models: dict[str, list[str]] = {}
    for path, tf in targets.signed.targets.items():
        info = (tf.unrecognized_fields.get("custom") or {}).get("edge_runtime")
        if info:
            models.setdefault(info["name"], []).append(path)
    revoked = _previous_index(repo, targets).get("revoked", {})
    if revoke:
        revoked.setdefault(revoke[0], {})[revoke[1]] = revoke[2]
    return json.dumps({"models": {k: sorted(v) for k, v in sorted(models.items())}, "revoked": revoked},
                      sort_keys=True).encode()


def _previous_index(repo: Path, targets: Any) -> dict:
    tf = targets.signed.targets.get(INDEX)
    if tf is None:
        return {}
    try:
        return json.loads((repo / "targets" / f"{tf.hashes['sha256']}.{INDEX}").read_bytes())
    except (OSError, ValueError) as exc:
        raise PublishError(f"cannot read the current {INDEX} of {repo}: {exc}") from None


def publish(bundle: Any, repo: Path, keys_dir: Path, *, channel: str = "stable", rollout: float = 1.0,
            min_runtime: Optional[str] = None, expiry: Optional[dict[str, timedelta]] = None,
            backend: str = "auto", verify: bool = True, min_agreement: Optional[float] = None,
            probation: Optional[dict[str, Any]] = None) -> str:
    """Add a bundle (directory or .tar.gz) as a signed target; returns its target path.

    The exact archive that will be signed is verified first as ``edgert verify`` does (manifest
    schema, safe members, digests, golden rows on ``backend``): a bundle a device would refuse is
    never signed. ``verify=False`` (no CLI option) exists for tests of the devices' own refusals:
    it signs what a buggy or compromised publisher would; the name is checked either way.
    ``min_agreement`` (share of labels the new version must give as the device's previous
    version does during probation) and ``probation`` (any of ``predictions``, ``minutes``,
    ``max_relative_error``, ``max_class_shift``, ``min_accuracy``) are signed with the target;
    devices use them instead of their own probation settings.

    Raises:
        PublishError: the bundle fails verification or its name is not a plain file name, bad
            rollout share or probation expectation, missing keys/metadata, or that version
            already published.
    """
    import tempfile

    from edge_runtime.sync.probation.settings import encode_expectations

    repo, keys_dir = Path(repo), Path(keys_dir)
    if not 0.0 < rollout <= 1.0:
        raise PublishError(f"rollout must be in (0, 1], got {rollout}")
    try:
        expect = encode_expectations({**(probation or {}), **({} if min_agreement is None else
                                                               {"min_agreement": min_agreement})})
    except ValueError as exc:
        raise PublishError(str(exc)) from None
    src = Path(bundle)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "b.tar.gz"
        m = _verified_archive(src, archive, backend if verify else None)
        data = archive.read_bytes()
    if min_runtime is not None:
        parse_semver(min_runtime)
    path = f"{m.name}/{m.name}-{m.version}.tar.gz"
    targets, _ = _latest(repo, "targets")
    if path in targets.signed.targets:
        raise PublishError(f"{m.name} {m.version} is already published; bump the version")
    targets.signed.version += 1
    custom = {"edge_runtime": {"name": m.name, "version": m.version, "channel": channel,
                               "rollout_bp": round(rollout * 10_000), "min_runtime": min_runtime,
                               "published": _now().isoformat()}}
    if expect:
        custom["edge_runtime"]["probation"] = expect
    _add_target(repo, targets, path, data, custom)
    _add_target(repo, targets, INDEX, _index(repo, targets))
    _commit(repo, keys_dir, targets, _expiry(keys_dir) | (expiry or {}))
    return path


def _verified_archive(src: Path, archive: Path, backend: Optional[str]) -> Any:
    """Write ``src`` (directory or archive) as the archive to sign; return its manifest once it
    passes ``edgert verify`` on ``backend`` (None: only opened) and names a plain file name.

    Raises:
        PublishError: verification failed (the message names the check) or a bad name.
    """
    from edge_runtime.verify import verify_bundle

    if backend is None:
        return _unverified_archive(src, archive)
    try:
        if src.is_dir():
            pack_bundle(src, archive)
        else:
            archive.write_bytes(src.read_bytes())
        b = open_bundle(archive)
        if backend is not None:
            verify_bundle(b, backend=backend)
    except Exception as exc:  # any failure a device would also hit: refuse, say which check
        raise PublishError(f"{src}: not published: `edgert verify` fails: {type(exc).__name__}: {exc}"
                           ) from exc
    _check_name(b.manifest.name, "model name")
    return b.manifest


def _unverified_archive(src: Path, archive: Path) -> Any:
    """``publish(verify=False)``, for tests of the devices' own refusals: pack the files as they
    are, manifest first, reading only its name and version (a hostile manifest that the device's
    parser refuses must still reach the device, as a compromised publisher would send it)."""
    import json
    import sys
    import tarfile
    from types import SimpleNamespace

    if src.is_dir():
        pack_bundle(src, archive, verify=False)
        raw = (src / "manifest.json").read_bytes()
    else:
        archive.write_bytes(src.read_bytes())
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            raw = member.read() if member else b"{}"
    limit = sys.getrecursionlimit()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise PublishError(f"{src}: manifest nests too deep to read its name (raise the "
                           f"recursion limit above {limit} to sign it unverified)") from None
    m = SimpleNamespace(name=str(data.get("name")), version=str(data.get("version")))
    _check_name(m.name, "model name")
    return m


def _check_name(name: str, what: str) -> None:
    """Raises PublishError unless ``name`` is one plain file name (no ``/``, ``..``, spaces)."""
    if not _PLAIN_NAME.match(name):
        raise PublishError(f"{what} {name!r} is not a plain file name (letters, digits, '.', '_', '-'; "
                           "starting with a letter or digit): it names a directory in the repository")


def revoke(name: str, version: str, repo: Path, keys_dir: Path, reason: str = "revoked by the publisher") -> None:
    """Withdraw a version: its target leaves the signed metadata, so no device installs it, and
    the signed index lists it as revoked, so devices running it roll back and never return to it.

    Raises:
        PublishError: that version is not published, or the repository cannot be read.
    """
    repo, keys_dir = Path(repo), Path(keys_dir)
    _check_name(name, "model name")
    targets, _ = _latest(repo, "targets")
    path = f"{name}/{name}-{version}.tar.gz"
    if path not in targets.signed.targets:
        raise PublishError(f"{name} {version} is not published")
    del targets.signed.targets[path]
    targets.signed.version += 1
    _add_target(repo, targets, INDEX, _index(repo, targets, (name, version, reason)))
    _commit(repo, keys_dir, targets, _expiry(keys_dir))


def refresh_timestamp(repo: Path, keys_dir: Path, *, expires_in: Optional[timedelta] = None) -> None:
    """Re-sign the timestamp (it expires first: run this from cron on the online signer)."""
    repo, keys_dir = Path(repo), Path(keys_dir)
    ts, _ = _latest(repo, "timestamp")
    ts.signed.version += 1
    ts.signed.expires = _now() + (expires_in if expires_in is not None else _expiry(keys_dir)["timestamp"])
    _sign(ts, _signers(keys_dir, "timestamp"))
    _write(repo, ts, "timestamp.json")


def rotate_key(role: str, repo: Path, keys_dir: Path) -> None:
    """Replace an online role's keys (snapshot, timestamp or targets) by a fresh one: a new root
    version, signed by the root keys, names the new key; the role's metadata is re-signed."""
    if role not in ("targets", "snapshot", "timestamp"):
        raise PublishError(f"rotate_key handles online roles; {role!r} is not one")
    repo, keys_dir = Path(repo), Path(keys_dir)
    root, version = _latest(repo, "root")
    for keyid in list(root.signed.roles[role].keyids):
        root.signed.revoke_key(keyid, role)
    for old in keys_dir.glob(f"{role}-*.pem"):
        old.rename(old.with_suffix(".pem.retired"))
    root.signed.add_key(_new_key(keys_dir, f"{role}-0").public_key, role)
    root.signed.roles[role].threshold = 1
    root.signed.version = version + 1
    _sign(root, _signers(keys_dir, "root"))
    _write(repo, root, f"{version + 1}.root.json")
    targets, _ = _latest(repo, "targets")
    targets.signed.version += 1
    _commit(repo, keys_dir, targets, _expiry(keys_dir))
