"""Bundle signatures checked on the device: the OpenSSF model-signing format, verified with
``cryptography`` alone.

A signed bundle carries ``model.sig``: a Sigstore bundle (``mediaType`` v0.3) whose DSSE
envelope holds an in-toto statement (predicate ``https://model_signing/signature/v1.0``)
listing the sha256 of every file of the bundle: the manifest (schema, feature names, golden
rows, tolerances) and every artifact. ``model_signing verify key`` (sigstore/model-transparency)
verifies our bundles, and we verify theirs.

Why not the ``model-signing`` package itself: it pulls in sigstore, in-toto, blake3, protobuf
and pyOpenSSL (tens of MB, seconds of import) for what, with a key, is one ECDSA check over the
DSSE pre-authentication encoding and a list of sha256 digests. The workstation signs with the
package (``converters.signing``); the device checks the same bytes here, and the tests prove
both directions against the package.

Policy: a signature is **required** when trusted keys are given (``load(..., trust=KEYS)``,
``--trust``) or set for the whole device (``EDGERT_TRUST=key.pem[:other.pem]``, else the device
profile's ``[signing] trust``), or when ``EDGERT_REQUIRE_SIGNATURE=1`` or the profile's
``[signing] require = true`` (then, with no key configured, nothing loads). A required
signature that is missing, by an unknown key, invalid, or that does not match the bundle's
files exactly (one changed, added or removed) is an :class:`IntegrityError` naming the file or
the reason, raised before any engine sees a byte. A signature proves who built the bundle, not
that the model is good (that is the golden rows' and probation's job).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

from .bundle import MANIFEST_NAME, MAX_SIGNATURE_BYTES, SIGNATURE_NAME, ManifestGate
from .errors import BundleError, IntegrityError

if TYPE_CHECKING:
    from .bundle import Bundle

#: an envelope for a bundle of a few files is a few kB; anything this large is not ours
MAX_RESOURCES = 1024
MAX_TRUST_BYTES = 1024 * 1024
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
ENV_TRUST = "EDGERT_TRUST"
ENV_REQUIRE = "EDGERT_REQUIRE_SIGNATURE"
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_PEM_BEGIN = b"-----BEGIN "

TrustSource = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]], "TrustedKeys"]


def fingerprint(public_pem: bytes) -> str:
    """sha256 (hex) of the key's SubjectPublicKeyInfo PEM: model-signing's key "hint"."""
    return hashlib.sha256(public_pem).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise BundleError("checking bundle signatures needs the 'cryptography' package: "
                          "pip install 'edge-runtime[verify]'") from None
    return serialization


@dataclass(frozen=True)
class TrustedKey:
    """One public key the device trusts to sign bundles."""

    fingerprint: str
    key: Any  # cryptography EllipticCurvePublicKey
    source: str

    @property
    def short(self) -> str:
        return self.fingerprint[:16]


class TrustedKeys:
    """The public keys bundles may be signed by (empty: a signature is required, none is trusted).

    Raises (from :meth:`load`):
        BundleError: a trust path is unreadable, not a PEM public key, or of an unsupported type.
    """

    def __init__(self, keys: Iterable[TrustedKey] = ()):
        self.keys = tuple(keys)

    def __bool__(self) -> bool:
        return True  # "no keys" still means "required"

    def describe(self) -> str:
        return ", ".join(f"{k.short}… ({k.source})" for k in self.keys) or "no trusted keys configured"

    def by_fingerprint(self, fp: str) -> Optional[TrustedKey]:
        return next((k for k in self.keys if k.fingerprint == fp), None)

    @classmethod
    def load(cls, source: TrustSource) -> TrustedKeys:
        """Keys from a PEM file (one or more public keys), a directory of ``*.pem``, or a list."""
        if isinstance(source, TrustedKeys):
            return source
        items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        keys: list[TrustedKey] = []
        for item in items:
            p = Path(item)
            files = sorted(p.glob("*.pem")) if p.is_dir() else [p]
            if not files:
                raise BundleError(f"trusted keys {p}: no *.pem public key in this directory")
            for f in files:
                keys.extend(_keys_from_pem(f))
        return cls(keys)


def _keys_from_pem(path: Path) -> list[TrustedKey]:
    ser = _crypto()
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TRUST_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"trusted key {path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_TRUST_BYTES:
        raise BundleError(f"trusted key {path}: larger than {MAX_TRUST_BYTES} bytes")
    if b"PRIVATE KEY" in raw:
        raise BundleError(f"trusted key {path}: is a private key; give the device the public key")
    blocks = [_PEM_BEGIN + b for b in raw.split(_PEM_BEGIN)[1:]]
    if not blocks:
        raise BundleError(f"trusted key {path}: no PEM public key in it")
    out = []
    for block in blocks:
        try:
            key = ser.load_pem_public_key(block)
        except ValueError as exc:
            raise BundleError(f"trusted key {path}: not a PEM public key ({exc})") from None
        _check_key_type(key, str(path))
        pem = key.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
        out.append(TrustedKey(fingerprint(pem), key, str(path)))
    return out


def _check_key_type(key: Any, where: str) -> str:
    """model-signing's key method signs with ECDSA on P-256/384/521 only; so do we.

    Raises:
        BundleError: another key type (e.g. Ed25519: upstream could not verify it).
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        kind = getattr(getattr(key, "curve", None), "name", type(key).__name__)
        raise BundleError(f"{where}: key type {kind} is not supported for bundle signatures "
                          "(ECDSA P-256, P-384 or P-521, as model-signing's key method)")
    return _CURVES[key.curve.name]


# --- the envelope --------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    """A parsed, not yet verified ``model.sig``."""

    hint: Optional[str]
    payload: bytes
    signatures: tuple[bytes, ...]


def _malformed(why: str) -> IntegrityError:
    return IntegrityError(f"{SIGNATURE_NAME} is malformed: {why}")


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise _malformed(f"'{where}{key}' is missing or not a {kind.__name__}")
    return value


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _malformed(f"'{where}' is not base64") from None


def parse_envelope(raw: bytes) -> Envelope:
    """Parse ``model.sig`` (untrusted: bounded in size, every field type-checked).

    Raises:
        IntegrityError: too large, not JSON, not a v0.3 Sigstore bundle with a DSSE in-toto envelope.
    """
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise _malformed(f"larger than {MAX_SIGNATURE_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("not JSON") from None
    if not isinstance(doc, dict):
        raise _malformed("top level is not an object")
    media = _field(doc, "mediaType", str, "")
    if media != BUNDLE_MEDIA_TYPE:
        raise _malformed(f"mediaType {media[:80]!r} is not {BUNDLE_MEDIA_TYPE}")
    material = doc.get("verificationMaterial")
    hint = None
    if isinstance(material, dict) and isinstance(material.get("publicKey"), dict):
        h = material["publicKey"].get("hint")
        hint = h if isinstance(h, str) and h else None
    env = _field(doc, "dsseEnvelope", dict, "")
    ptype = _field(env, "payloadType", str, "dsseEnvelope.")
    if ptype != PAYLOAD_TYPE:
        raise _malformed(f"payloadType {ptype[:80]!r} is not {PAYLOAD_TYPE}")
    payload = _b64(_field(env, "payload", str, "dsseEnvelope."), "dsseEnvelope.payload")
    sigs = _field(env, "signatures", list, "dsseEnvelope.")
    if not sigs or len(sigs) > 16:
        raise _malformed("'dsseEnvelope.signatures' must hold 1 to 16 signatures")
    raw_sigs = tuple(_b64(_field(s, "sig", str, "dsseEnvelope.signatures[]."), "sig") for s in sigs)
    return Envelope(hint, payload, raw_sigs)


@dataclass(frozen=True)
class SignedFiles:
    """What a verified signature says: the signing key and the sha256 of every signed file."""

    key: TrustedKey
    digests: dict[str, str]
    ignored: frozenset[str]


def parse_statement(payload: bytes) -> tuple[dict[str, str], frozenset[str]]:
    """The signed file digests (name -> sha256 hex) and ignored paths of a verified payload.

    Raises:
        IntegrityError: not an in-toto v1 statement of model-signing v1.0 over sha256 files, or its
            root digest does not match its resources.
    """
    try:
        st = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("the signed payload is not JSON") from None
    if _field(st, "_type", str, "payload.") != STATEMENT_TYPE:
        raise _malformed(f"payload is not an in-toto statement ({STATEMENT_TYPE})")
    ptype = _field(st, "predicateType", str, "payload.")
    if ptype != PREDICATE_TYPE:
        raise _malformed(f"predicateType {ptype[:80]!r} is not {PREDICATE_TYPE} "
                         "(re-sign with model-signing >= 1.0)")
    pred = _field(st, "predicate", dict, "payload.")
    ser = _field(pred, "serialization", dict, "predicate.")
    if ser.get("method") != "files" or ser.get("hash_type") != "sha256":
        raise _malformed("only the 'files' serialization with sha256 is supported on the device "
                         f"(got {str(ser.get('method'))[:20]}/{str(ser.get('hash_type'))[:20]})")
    ignore = ser.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise _malformed("'serialization.ignore_paths' is not a list of names")
    resources = _field(pred, "resources", list, "predicate.")
    if len(resources) > MAX_RESOURCES:
        raise _malformed(f"more than {MAX_RESOURCES} resources")
    digests: dict[str, str] = {}
    root = hashlib.sha256()
    for r in resources:
        name = _field(r, "name", str, "resources[].")
        digest = _field(r, "digest", str, "resources[].")
        if r.get("algorithm") != "sha256" or len(digest) != 64 or name in digests:
            raise _malformed(f"resource {name[:80]!r}: not a unique sha256 digest")
        try:
            root.update(bytes.fromhex(digest))
        except ValueError:
            raise _malformed(f"resource {name[:80]!r}: digest is not hex") from None
        digests[name] = digest.lower()
    subjects = _field(st, "subject", list, "payload.")
    if len(subjects) != 1:
        raise _malformed("payload must have exactly one subject")
    want = _field(_field(subjects[0], "digest", dict, "subject[0]."), "sha256", str, "subject[0].digest.")
    if want.lower() != root.hexdigest():
        raise _malformed("the subject's root digest does not match the signed resources")
    return digests, frozenset(ignore)


def verify_envelope(env: Envelope, trust: TrustedKeys) -> SignedFiles:
    """Check the signature with a trusted key, then read the signed digests.

    Raises:
        IntegrityError: unknown key, or the signature does not verify.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if env.hint is not None:
        candidates = [k for k in trust.keys if k.fingerprint == env.hint]
        if not candidates:
            raise IntegrityError(f"{SIGNATURE_NAME} is signed by key {env.hint[:16]}…, which is not "
                                 f"trusted here (trusted: {trust.describe()})")
    else:
        candidates = list(trust.keys)
        if not candidates:
            raise IntegrityError(f"{SIGNATURE_NAME}: a signature is required but {trust.describe()}")
    message = pae(PAYLOAD_TYPE, env.payload)
    algo: dict[int, type[hashes.HashAlgorithm]] = {256: hashes.SHA256, 384: hashes.SHA384, 521: hashes.SHA512}
    for key in candidates:
        for sig in env.signatures:
            try:
                key.key.verify(sig, message, ec.ECDSA(algo[key.key.curve.key_size]()))
            except InvalidSignature:
                continue
            digests, ignored = parse_statement(env.payload)
            return SignedFiles(key, digests, ignored)
    raise IntegrityError(f"{SIGNATURE_NAME}: the signature does not verify with "
                         f"{'key ' + candidates[0].short + '…' if env.hint else 'any trusted key'} "
                         "(the signature or its signed file list was altered)")


# --- the bundle ----------------------------------------------------------------------------
def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bundle_files(bundle: Bundle) -> tuple[Optional[bytes], dict[str, Union[Path, bytes]]]:
    """The signature's bytes (None if absent) and every other file: name -> Path or bytes.

    Raises:
        IntegrityError: the directory holds a link or a non-regular file.
    """
    members = bundle.archive_members()
    if members is not None:
        return members.get(SIGNATURE_NAME), {n: b for n, b in members.items() if n != SIGNATURE_NAME}
    root = Path(bundle.origin)
    files: dict[str, Union[Path, bytes]] = {}
    sig: Optional[bytes] = None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                raise IntegrityError(f"{bundle.origin}: '{rel}' is a link; a signed bundle holds "
                                     "plain files only")
            if name in filenames:
                if not full.is_file():
                    raise IntegrityError(f"{bundle.origin}: '{rel}' is not a regular file")
                if len(files) >= MAX_RESOURCES:
                    raise IntegrityError(f"{bundle.origin}: more than {MAX_RESOURCES} files; not a bundle")
                if rel == SIGNATURE_NAME:
                    with open(full, "rb") as fh:
                        sig = fh.read(MAX_SIGNATURE_BYTES + 1)
                else:
                    files[rel] = full
    return sig, files


def _ignored(rel: str, ignored: frozenset[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in ignored)


def _verified(raw: Optional[bytes], trust: TrustedKeys, where: str) -> SignedFiles:
    """``model.sig``'s bytes (None: absent) verified by a trusted key.

    Raises:
        IntegrityError: unsigned, malformed, unknown key or bad signature.
    """
    if raw is None:
        raise IntegrityError(f"{where}: not signed (no {SIGNATURE_NAME}) and a signature is required "
                             f"(trusted: {trust.describe()})")
    try:
        return verify_envelope(parse_envelope(raw), trust)
    except IntegrityError as exc:
        raise IntegrityError(f"{where}: {exc}") from None


def signed_manifest(manifest: bytes, signature: Optional[bytes], trust: TrustedKeys,
                    where: str) -> SignedFiles:
    """Check ``manifest.json``'s bytes against the signature *before* anything parses them, so
    an unsigned or altered manifest never reaches the JSON parser or the field checks
    (:func:`edge_runtime.bundle.open_bundle` with ``trust``). The other files are checked by
    :func:`verify_bundle` once the manifest says which artifacts there are.

    Raises:
        IntegrityError: unsigned, malformed, unknown key, bad signature, the manifest not signed
            or changed since signing.
    """
    signed = _verified(signature, trust, where)
    want = signed.digests.get(MANIFEST_NAME)
    if want is None:
        raise IntegrityError(f"{where}: '{MANIFEST_NAME}' is not covered by the signature")
    if hashlib.sha256(manifest).hexdigest() != want:
        raise IntegrityError(f"{where}: file '{MANIFEST_NAME}' changed since signing")
    return signed


def manifest_gate(trust: Optional[TrustedKeys]) -> Optional[ManifestGate]:
    """The ``gate`` for :func:`edge_runtime.bundle.open_bundle` and ``unpack_bundle``: the
    manifest's bytes checked with :func:`signed_manifest` before they are parsed; None when no
    signature is required (``trust`` None, as :func:`required_trust` says)."""
    if trust is None:
        return None
    keys = trust

    def gate(manifest: bytes, signature: Optional[bytes], where: str) -> None:
        signed_manifest(manifest, signature, keys, where)
    return gate


def verify_bundle(bundle: Bundle, trust: TrustedKeys) -> SignedFiles:
    """Require a valid signature by a trusted key over exactly the bundle's files.

    Raises:
        IntegrityError: unsigned, malformed, unknown key, bad signature, or a file changed,
            added or removed since signing (named); the manifest or an artifact not signed.
    """
    where = bundle.origin
    raw, files = _bundle_files(bundle)
    signed = _verified(raw, trust, where)
    digests = signed.digests
    present = {n for n in files if not _ignored(n, signed.ignored)}
    added, removed = sorted(present - set(digests)), sorted(set(digests) - present)
    if added:
        raise IntegrityError(f"{where}: file '{added[0]}' is not covered by the signature (added after signing)")
    if removed:
        raise IntegrityError(f"{where}: file '{removed[0]}' is signed but missing (removed after signing)")
    needed = [MANIFEST_NAME] + [a.path for a in bundle.manifest.artifacts]
    for name in needed:
        if name not in digests:
            raise IntegrityError(f"{where}: '{name}' is not covered by the signature")
    for name in sorted(digests):
        src = files[name]
        actual = hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else _file_digest(src)
        if actual != digests[name]:
            raise IntegrityError(f"{where}: file '{name}' changed since signing "
                                 f"(sha256 {actual[:12]}…, signed {digests[name][:12]}…)")
    # the manifest the runtime parsed is the one that was signed (not a copy swapped in since),
    # and each artifact digest it will enforce at read time is the signed one
    parsed = bundle.manifest.raw_sha256
    if parsed is not None and parsed != digests[MANIFEST_NAME]:
        raise IntegrityError(f"{where}: file '{MANIFEST_NAME}' changed since signing")
    for art in bundle.manifest.artifacts:
        if digests[art.path] != art.sha256:
            raise IntegrityError(f"{where}: artifact '{art.path}': the manifest's sha256 is not the signed one")
    return signed


def required_trust(trust: Optional[TrustSource] = None) -> Optional[TrustedKeys]:
    """The keys a signature must come from, or None when no signature is required: ``trust``
    if given, else ``$EDGERT_TRUST`` (paths joined by ``os.pathsep``), else an empty set when
    ``$EDGERT_REQUIRE_SIGNATURE=1``.

    Raises:
        BundleError: a configured key cannot be read or is not a supported public key.
    """
    if trust is not None:
        return TrustedKeys.load(trust)
    env = os.environ.get(ENV_TRUST, "").strip()
    if env:
        return TrustedKeys.load([p for p in env.split(os.pathsep) if p])
    if os.environ.get(ENV_REQUIRE, "").strip().lower() in ("1", "true", "yes", "on"):
        return TrustedKeys()
    return None


def profile_trust(profile: Any) -> Optional[TrustSource]:
    """A device profile's ``[signing]`` policy (``trust = [PEM paths]``, ``require = true``) as a
    ``trust`` argument, or None. ``$EDGERT_TRUST`` (and so ``--trust``) takes precedence."""
    cfg = getattr(profile, "signing", None) or {}
    if os.environ.get(ENV_TRUST, "").strip() or not (cfg.get("trust") or cfg.get("require")):
        return None
    return list(cfg["trust"]) if cfg.get("trust") else TrustedKeys()


def describe(bundle: Bundle, trust: Optional[TrustSource] = None) -> dict[str, Any]:
    """For ``edgert inspect``: signed or not, by which key, and whether it verifies here."""
    raw, _ = _bundle_files(bundle)
    if raw is None:
        return {"signed": False}
    try:
        env = parse_envelope(raw)
    except IntegrityError as exc:
        return {"signed": True, "key": None, "verified": False, "reason": str(exc)}
    out: dict[str, Any] = {"signed": True, "key": env.hint}
    keys = required_trust(trust)
    if keys is None:
        out.update(verified=None, reason="no trusted keys given (--trust or EDGERT_TRUST)")
        return out
    try:
        signed = verify_bundle(bundle, keys)
    except IntegrityError as exc:
        out.update(verified=False, reason=str(exc).replace(f"{bundle.origin}: ", ""))
    else:
        out.update(verified=True, reason=f"by trusted key {signed.key.short}… ({signed.key.source}), "
                                         f"{len(signed.digests)} files")
    return out
