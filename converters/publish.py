"""Publish bundles into a TUF repository of static files (workstation side).

Layout of ``--repo``: ``metadata/`` (``1.root.json``, ``root.json``, ``targets.json``,
``snapshot.json``, ``timestamp.json``) and ``targets/`` (packed bundles). Any web server serves
it, or it is copied to a USB stick. Keys live in ``--keys`` as PEM files, one per role.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from edge_runtime.bundle import open_bundle, pack_bundle, parse_semver
from edge_runtime.fsutil import atomic_write_bytes

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}


class PublishError(Exception):
    """The repository or keys are missing or inconsistent."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _expiry(role: str, days: Optional[float] = None) -> datetime:
    return _now() + timedelta(days=EXPIRY_DAYS[role] if days is None else days)


def _write_key(keys_dir: Path, role: str, signer: CryptoSigner, index: int = 0) -> None:
    name = f"{role}.pem" if index == 0 else f"{role}.{index}.pem"
    atomic_write_bytes(keys_dir / name, signer.private_bytes, mode=0o600)


def load_signers(keys_dir: os.PathLike[str] | str, role: str) -> list[CryptoSigner]:
    """All private keys for ``role`` in ``keys_dir`` (``role.pem``, ``role.1.pem`` ...)."""
    out = []
    for path in sorted(Path(keys_dir).glob(f"{role}*.pem")):
        if path.name.split(".")[0] != role:
            continue
        out.append(CryptoSigner(load_pem_private_key(path.read_bytes(), None)))
    if not out:
        raise PublishError(f"no key for role '{role}' in {keys_dir}")
    return out


def _save(repo: Path, md: Metadata[Any], signers: list[CryptoSigner], name: str) -> None:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    data = md.to_bytes(JSONSerializer(compact=False))
    atomic_write_bytes(repo / "metadata" / name, data)


def keys_init(keys_dir: os.PathLike[str] | str, repo_dir: os.PathLike[str] | str, *,
              thresholds: Optional[dict[str, int]] = None) -> Path:
    """Generate Ed25519 keys for the four roles and write version 1 of every metadata file.

    ``thresholds`` maps role -> signatures needed (default 1); that many keys are generated.
    Returns the path of ``root.json`` to ship with the app as its trusted root.
    """
    keys, repo = Path(keys_dir), Path(repo_dir)
    if any(keys.glob("*.pem")):
        raise PublishError(f"{keys} already holds keys; refusing to overwrite them")
    keys.mkdir(parents=True, exist_ok=True)
    (repo / "targets").mkdir(parents=True, exist_ok=True)
    thresholds = {r: 1 for r in ROLES} | dict(thresholds or {})
    root = Root(expires=_expiry("root"), consistent_snapshot=False)
    signers: dict[str, list[CryptoSigner]] = {}
    for role in ROLES:
        n = int(thresholds[role])
        if n < 1:
            raise PublishError(f"threshold for {role} must be >= 1, got {n}")
        signers[role] = [CryptoSigner.generate_ed25519() for _ in range(n)]
        for i, s in enumerate(signers[role]):
            root.add_key(s.public_key, role)
            _write_key(keys, role, s, i)
        root.roles[role].threshold = n
    root_md = Metadata(root)
    _save(repo, root_md, signers["root"], "1.root.json")
    _save(repo, root_md, signers["root"], "root.json")
    targets_md = Metadata(Targets(expires=_expiry("targets")))
    _save(repo, targets_md, signers["targets"], "targets.json")
    _resign_online(repo, keys, bump_targets=False)
    return repo / "metadata" / "root.json"


def _resign_online(repo: Path, keys: Path, *, bump_targets: bool = True,
                   targets_md: Optional[Metadata[Targets]] = None,
                   timestamp_days: Optional[float] = None) -> None:
    """Re-sign targets (if changed), then snapshot and timestamp with fresh versions."""
    meta = repo / "metadata"
    if targets_md is not None:
        if bump_targets:
            targets_md.signed.version += 1
        targets_md.signed.expires = _expiry("targets")
        _save(repo, targets_md, load_signers(keys, "targets"), "targets.json")
    tversion = Metadata.from_file(str(meta / "targets.json")).signed.version
    snap_path = meta / "snapshot.json"
    if snap_path.exists():
        snap_md = Metadata.from_file(str(snap_path))
        snap_md.signed.version += 1
    else:
        snap_md = Metadata(Snapshot(expires=_expiry("snapshot")))
    snap_md.signed.meta["targets.json"] = MetaFile(version=tversion)
    snap_md.signed.expires = _expiry("snapshot")
    _save(repo, snap_md, load_signers(keys, "snapshot"), "snapshot.json")
    ts_path = meta / "timestamp.json"
    if ts_path.exists():
        ts_md = Metadata.from_file(str(ts_path))
        ts_md.signed.version += 1
    else:
        ts_md = Metadata(Timestamp(expires=_expiry("timestamp")))
    ts_md.signed.snapshot_meta = MetaFile(version=snap_md.signed.version)
    ts_md.signed.expires = _expiry("timestamp", timestamp_days)
    _save(repo, ts_md, load_signers(keys, "timestamp"), "timestamp.json")


def parse_share(text: str | float | int) -> float:
    """'10%' / '0.1' / 10 -> 0.1 (share of devices in [0, 1])."""
    s = str(text).strip()
    value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    if not s.endswith("%") and value > 1:
        value /= 100
    if not 0.0 <= value <= 1.0:
        raise PublishError(f"rollout share must be between 0% and 100%, got {text!r}")
    return value


def publish(bundle: os.PathLike[str] | str, repo_dir: os.PathLike[str] | str,
            keys_dir: os.PathLike[str] | str, *, channel: str = "stable",
            rollout: str | float = "100%", min_runtime: str = "0.0.0",
            pin_hint: Optional[str] = None) -> str:
    """Add a bundle (dir or .tar.gz) as a TUF target with rollout metadata; returns its path.

    The rollout share is stored in basis points (canonical JSON has no floats).
    """
    repo, keys = Path(repo_dir), Path(keys_dir)
    b = open_bundle(bundle)
    b.verify()
    m = b.manifest
    parse_semver(m.data["version"])
    target_name = f"{m.data['name']}-{m.data['version']}.tar.gz"
    out = repo / "targets" / target_name
    src = Path(bundle)
    if src.is_dir():
        pack_bundle(src, out)
    else:
        atomic_write_bytes(out, src.read_bytes())
    custom = {"edge_runtime": {
        "name": m.data["name"], "version": m.data["version"], "channel": channel,
        "rollout_bp": round(parse_share(rollout) * 10000), "min_runtime": min_runtime,
    }}
    if pin_hint:
        custom["edge_runtime"]["note"] = pin_hint
    tf = TargetFile.from_file(target_name, str(out))
    tf.unrecognized_fields["custom"] = custom
    targets_md = Metadata[Targets].from_file(str(repo / "metadata" / "targets.json"))
    targets_md.signed.targets[target_name] = tf
    _resign_online(repo, keys, targets_md=targets_md)
    return target_name


def revoke(version: str, repo_dir: os.PathLike[str] | str, keys_dir: os.PathLike[str] | str,
           *, name: Optional[str] = None) -> list[str]:
    """Remove every target of ``version`` (optionally only model ``name``); devices drop it."""
    repo, keys = Path(repo_dir), Path(keys_dir)
    targets_md = Metadata[Targets].from_file(str(repo / "metadata" / "targets.json"))
    gone = []
    for path, tf in list(targets_md.signed.targets.items()):
        info = (tf.unrecognized_fields.get("custom") or {}).get("edge_runtime") or {}
        if info.get("version") == version and (name is None or info.get("name") == name):
            del targets_md.signed.targets[path]
            gone.append(path)
    if not gone:
        raise PublishError(f"no published target has version {version}")
    revoked = targets_md.signed.unrecognized_fields.setdefault("custom", {}).setdefault(
        "revoked", [])
    revoked.append(version)
    _resign_online(repo, keys, targets_md=targets_md)
    return gone


def refresh(repo_dir: os.PathLike[str] | str, keys_dir: os.PathLike[str] | str, *,
            timestamp_days: Optional[float] = None) -> None:
    """Re-sign snapshot and timestamp (run often: timestamp expires in a day)."""
    _resign_online(Path(repo_dir), Path(keys_dir), timestamp_days=timestamp_days)


def rotate_key(role: str, repo_dir: os.PathLike[str] | str,
               keys_dir: os.PathLike[str] | str) -> str:
    """Replace the key of an online role (targets/snapshot/timestamp) with a new one.

    Writes root version N+1 signed by the root keys, then re-signs the online metadata with
    the new key. Devices follow the root chain, so old keys stop being trusted. Returns the
    new key id.
    """
    if role not in ("targets", "snapshot", "timestamp"):
        raise PublishError(f"only online roles rotate here, not '{role}'")
    repo, keys = Path(repo_dir), Path(keys_dir)
    root_md = Metadata[Root].from_file(str(repo / "metadata" / "root.json"))
    for keyid in list(root_md.signed.roles[role].keyids):
        root_md.signed.revoke_key(keyid, role)
    new = CryptoSigner.generate_ed25519()
    root_md.signed.add_key(new.public_key, role)
    root_md.signed.roles[role].threshold = 1
    root_md.signed.version += 1
    root_md.signed.expires = _expiry("root")
    root_signers = load_signers(keys, "root")
    _save(repo, root_md, root_signers, f"{root_md.signed.version}.root.json")
    _save(repo, root_md, root_signers, "root.json")
    for old in Path(keys).glob(f"{role}*.pem"):
        if old.name.split(".")[0] == role:
            old.unlink()
    _write_key(keys, role, new)
    targets_md = Metadata[Targets].from_file(str(repo / "metadata" / "targets.json"))
    _resign_online(repo, keys, targets_md=targets_md)
    return new.public_key.keyid
