"""Signing bundles on the workstation with the OpenSSF ``model-signing`` package (key method).

The signature (``model.sig`` inside the bundle) covers the manifest and every artifact, so
``model_signing verify key BUNDLE --signature BUNDLE/model.sig --public_key pub.pem`` verifies
it, and the device checks it with :mod:`edge_runtime.signing` (``cryptography`` alone). Keys are
ECDSA P-256 in PEM: model-signing 1.1's key method supports elliptic curves only (P-256/384/521).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Union

from edge_runtime.bundle import SIGNATURE_NAME, open_bundle, pack_bundle, unpack_bundle
from edge_runtime.errors import BundleError
from edge_runtime.fsutil import atomic_write_bytes
from edge_runtime.signing import TrustedKeys, verify_bundle

from .errors import SigningError as SigningError  # defined in errors.py; importable from here too

PRIVATE_NAME = "signing-key.pem"
PUBLIC_NAME = "signing-key.pub.pem"
PathLike = Union[str, "Path"]


def init_signing_key(keys_dir: PathLike, *, force: bool = False) -> tuple[Path, Path]:
    """Create a model owner's ECDSA P-256 key pair (PEM): the private key signs bundles on the
    workstation (mode 0600), the public key is what devices trust. Returns (private, public).

    Raises:
        SigningError: a key pair is already there (``force`` replaces it).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out = Path(keys_dir)
    priv, pub = out / PRIVATE_NAME, out / PUBLIC_NAME
    if priv.exists() and not force:
        raise SigningError(f"{priv} already exists; refusing to replace a signing key")
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    atomic_write_bytes(priv, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()), mode=0o600)
    atomic_write_bytes(pub, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def _public_pem(key_path: Path) -> bytes:
    """The public half of a signing key, checked before any file is touched.

    Raises:
        SigningError: unreadable, encrypted, or not an elliptic-curve key model-signing can use.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"{key_path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in (
            "secp256r1", "secp384r1", "secp521r1"):
        raise SigningError(f"{key_path}: a {type(key).__name__.lstrip('_')} cannot sign bundles; "
                           "model-signing's key method needs ECDSA P-256 (or P-384/P-521): "
                           "`edgert keys init-signing`")
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _sign_dir(bundle_dir: Path, key_path: Path) -> None:
    try:
        from model_signing import hashing, signing
    except ImportError as exc:
        raise SigningError(f"signing needs the model-signing package ({exc}): "
                           "pip install 'edge-runtime[convert]'") from None
    with tempfile.TemporaryDirectory() as tmp:
        sig = Path(tmp) / SIGNATURE_NAME
        try:
            (signing.Config().use_elliptic_key_signer(private_key=key_path)
             .set_hashing_config(hashing.Config().set_ignored_paths(paths=[SIGNATURE_NAME],
                                                                    ignore_git_paths=False))
             .sign(bundle_dir, sig))
        except ValueError as exc:
            raise SigningError(f"{key_path}: model-signing could not sign with this key ({exc})") from None
        atomic_write_bytes(bundle_dir / SIGNATURE_NAME, sig.read_bytes())


def sign_bundle(bundle: PathLike, key: PathLike) -> dict[str, Any]:
    """Sign a bundle directory (``model.sig`` written inside it) or a ``.tar.gz`` (repacked with
    its signature), then verify the result as a device would. Returns ``{"key": fingerprint,
    "files": [...]}``.

    Raises:
        SigningError: no model-signing package, unusable key.
        BundleError: not a valid bundle (its digests are checked before signing).
    """
    src, key_path = Path(bundle), Path(key)
    pub = _public_pem(key_path)
    with tempfile.TemporaryDirectory() as tmp:
        trust_file = Path(tmp) / "pub.pem"
        trust_file.write_bytes(pub)
        trust = TrustedKeys.load(trust_file)
        if src.is_dir():
            open_bundle(src).verify()
            _sign_dir(src, key_path)  # an old model.sig is not hashed, then replaced atomically
            signed = verify_bundle(open_bundle(src), trust)
        elif src.is_file():
            work = unpack_bundle(src, Path(tmp) / "bundle")
            (work / SIGNATURE_NAME).unlink(missing_ok=True)
            _sign_dir(work, key_path)
            signed = verify_bundle(open_bundle(work), trust)
            pack_bundle(work, src)
            shutil.rmtree(work, ignore_errors=True)
        else:
            raise BundleError(f"{src}: no such bundle (expected a directory or a .tar.gz)")
    return {"key": signed.key.fingerprint, "files": sorted(signed.digests)}
