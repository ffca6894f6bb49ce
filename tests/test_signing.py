"""Signed bundles: signed on the workstation with the OpenSSF model-signing package, checked on
the device with ``cryptography`` alone (edge_runtime.signing), interoperable both ways with the
upstream library and CLI; with a signature required, every tampering is refused by name before
an engine sees a byte: through load(), the version store, HotSwapModel and the real CLI."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import edge_runtime
from edge_runtime.bundle import SIGNATURE_NAME, open_bundle, pack_bundle, sha256_hex
from edge_runtime.errors import BundleError, IntegrityError
from edge_runtime.hotswap import HotSwapModel
from edge_runtime.signing import (
    ENV_REQUIRE,
    ENV_TRUST,
    PAYLOAD_TYPE,
    TrustedKeys,
    manifest_gate,
    parse_envelope,
    parse_statement,
    verify_bundle,
)
from edge_runtime.sync.store import VersionStore

pytest.importorskip("model_signing")
ROW = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from converters.signing import init_signing_key

    d = tmp_path_factory.mktemp("keys")
    priv, pub = init_signing_key(d / "owner")
    other_priv, other_pub = init_signing_key(d / "other")
    return {"priv": priv, "pub": pub, "other_priv": other_priv, "other_pub": other_pub}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, keys) -> dict[str, Path]:
    """A signed iris bundle and an unsigned one of another model (the swap an attacker makes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier
    from zoo import dataset

    import converters

    X, y, X_te, _ = dataset("iris")
    d = tmp_path_factory.mktemp("models")
    signed = converters.convert(LogisticRegression(max_iter=1000).fit(X, y), X, d / "signed", name="iris",
                                version="1.0.0", holdout=X_te, sign_with=keys["priv"])
    y_other = (y + 1) % 3  # answers differ on every row
    other = converters.convert(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y_other), X,
                               d / "other", name="iris", version="1.0.0", holdout=X_te)
    return {"signed": signed, "other": other, "X": X}


@pytest.fixture()
def bundle(models, tmp_path: Path) -> Path:
    """A fresh copy of the signed bundle to tamper with."""
    return Path(shutil.copytree(models["signed"], tmp_path / "b"))


def _upstream_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model_signing", *args], capture_output=True, text=True,
                          timeout=120)


# --- round trip and interoperability ------------------------------------------------------
def test_signed_bundle_loads_with_trust_and_covers_every_file(bundle: Path, keys) -> None:
    assert (bundle / SIGNATURE_NAME).is_file()
    signed = verify_bundle(open_bundle(bundle), TrustedKeys.load(keys["pub"]))
    on_disk = sorted(p.name for p in bundle.iterdir() if p.name != SIGNATURE_NAME)
    assert sorted(signed.digests) == on_disk and "manifest.json" in on_disk
    assert signed.digests["manifest.json"] == sha256_hex((bundle / "manifest.json").read_bytes())
    model = edge_runtime.load(bundle, trust=keys["pub"])
    assert model.predict(ROW).shape == (1,)


def test_upstream_cli_and_library_verify_our_bundles(bundle: Path, keys) -> None:
    from model_signing import verifying

    sig = bundle / SIGNATURE_NAME
    ok = _upstream_cli("verify", "key", str(bundle), "--signature", str(sig), "--public_key", str(keys["pub"]))
    assert ok.returncode == 0, ok.stderr + ok.stdout
    verifying.Config().use_elliptic_key_verifier(public_key=keys["pub"]).verify(bundle, sig)
    wrong = _upstream_cli("verify", "key", str(bundle), "--signature", str(sig),
                          "--public_key", str(keys["other_pub"]))
    assert wrong.returncode != 0
    (bundle / "model.onnx").write_bytes((bundle / "model.onnx").read_bytes() + b"\0")
    changed = _upstream_cli("verify", "key", str(bundle), "--signature", str(sig),
                            "--public_key", str(keys["pub"]))
    assert changed.returncode != 0 and "model.onnx" in changed.stderr + changed.stdout


def test_bundles_signed_by_the_upstream_cli_verify_here(models, tmp_path: Path, keys) -> None:
    b = Path(shutil.copytree(models["other"], tmp_path / "up"))
    out = _upstream_cli("sign", "key", str(b), "--signature", str(b / SIGNATURE_NAME),
                        "--private_key", str(keys["other_priv"]))
    assert out.returncode == 0, out.stderr + out.stdout
    model = edge_runtime.load(b, trust=keys["other_pub"])
    assert model.predict(ROW).shape == (1,)
    with pytest.raises(IntegrityError, match="not trusted here"):
        edge_runtime.load(b, trust=keys["pub"])
    (b / "manifest.json").write_text((b / "manifest.json").read_text().replace('"iris"', '"iris2"'))
    with pytest.raises(IntegrityError, match="'manifest.json' changed since signing"):
        edge_runtime.load(b, trust=keys["other_pub"])


def test_an_archive_keeps_its_signature_and_is_checked_in_memory(bundle: Path, tmp_path: Path, keys) -> None:
    tar = pack_bundle(bundle, tmp_path / "b.tar.gz")
    assert edge_runtime.load(tar, trust=keys["pub"]).predict(ROW).shape == (1,)
    from converters.signing import sign_bundle

    unsigned = pack_bundle(bundle, tmp_path / "u.tar.gz")
    sign_bundle(unsigned, keys["other_priv"])  # re-signs an archive in place, by another owner
    assert edge_runtime.load(unsigned, trust=keys["other_pub"]).predict(ROW).shape == (1,)
    with pytest.raises(IntegrityError, match="not trusted here"):
        edge_runtime.load(unsigned, trust=keys["pub"])


# --- refusals with a signature required ---------------------------------------------------
def _swap_model(b: Path, other: Path) -> None:
    """The issue's attack: another model's artifact, its digest in the manifest, its golden rows."""
    blob = (other / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(blob)
    m = json.loads((b / "manifest.json").read_text())
    m["artifacts"][0].update(sha256=sha256_hex(blob), size=len(blob))
    # the runtime caps tolerances whatever the manifest says, so an attacker who can edit the
    # manifest brings the swapped model's own golden rows instead
    m["golden"] = json.loads((other / "manifest.json").read_text())["golden"]
    (b / "manifest.json").write_text(json.dumps(m))


def _permute_features(b: Path, other: Path) -> None:
    m = json.loads((b / "manifest.json").read_text())
    feats = m["inputs"]["features"]
    m["inputs"]["features"] = feats[1:] + feats[:1]
    ref = (m.get("reference") or {}).get("features")
    if ref:  # kept consistent, so only the signature can tell
        m["reference"]["features"] = ref[1:] + ref[:1]
    (b / "manifest.json").write_text(json.dumps(m))


def _flip(name: str):
    def go(b: Path, other: Path) -> None:
        blob = bytearray((b / name).read_bytes())
        blob[len(blob) // 2] ^= 0x01
        (b / name).write_bytes(bytes(blob))
    return go


CASES = {
    "unsigned": (lambda b, o: (b / SIGNATURE_NAME).unlink(), "not signed"),
    "one byte of the artifact": (_flip("model.onnx"), "'model.onnx' changed since signing"),
    "one byte of the manifest": (lambda b, o: (b / "manifest.json").write_text(
        (b / "manifest.json").read_text().replace('"version": "1.0.0"', '"version": "1.0.1"')),
        "'manifest.json' changed since signing"),
    "one byte of the signature": (_flip(SIGNATURE_NAME), SIGNATURE_NAME),
    "file added": (lambda b, o: (b / "extra.onnx").write_bytes(b"x"), "'extra.onnx' is not covered"),
    "file in a sub-directory added": (lambda b, o: ((b / "sub").mkdir(), (b / "sub" / "x").write_text("x")),
                                      "'sub/x' is not covered"),
    "file removed": (lambda b, o: (b / "model.onnx").unlink(), "'model.onnx' is signed but missing"),
    "model swapped, digest and tolerance edited": (_swap_model, "'manifest.json' changed since signing"),
    "feature names permuted": (_permute_features, "'manifest.json' changed since signing"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_tampering_is_refused_by_name(case: str, bundle: Path, models, keys) -> None:
    change, message = CASES[case]
    change(bundle, models["other"])
    with pytest.raises(IntegrityError, match=message):
        edge_runtime.load(bundle, trust=keys["pub"])


def test_the_swap_loads_and_answers_wrongly_when_no_signature_is_required(bundle: Path, models, keys) -> None:
    """Why the signature is needed: digests and golden rows alone let the swapped model through."""
    right = edge_runtime.load(bundle).predict(models["X"])
    _swap_model(bundle, models["other"])
    wrong = edge_runtime.load(bundle).predict(models["X"])
    assert (right != wrong).mean() > 0.5
    with pytest.raises(IntegrityError):
        edge_runtime.load(bundle, trust=keys["pub"])


def test_wrong_key_is_refused_naming_the_key(bundle: Path, keys) -> None:
    with pytest.raises(IntegrityError, match="is signed by key [0-9a-f]{16}…, which is not trusted"):
        edge_runtime.load(bundle, trust=keys["other_pub"])


def test_device_policy_from_the_environment(bundle: Path, models, keys, monkeypatch) -> None:
    monkeypatch.setenv(ENV_REQUIRE, "1")
    with pytest.raises(IntegrityError, match="no trusted keys configured"):
        edge_runtime.load(bundle)
    monkeypatch.setenv(ENV_TRUST, f"{keys['other_pub']}:{keys['pub']}")
    assert edge_runtime.load(bundle).predict(ROW).shape == (1,)
    with pytest.raises(IntegrityError, match="not signed"):
        edge_runtime.load(models["other"])


def test_trust_files_directories_and_private_keys(tmp_path: Path, bundle: Path, keys) -> None:
    both = tmp_path / "trust.pem"
    both.write_bytes(keys["other_pub"].read_bytes() + keys["pub"].read_bytes())
    assert len(TrustedKeys.load(both).keys) == 2
    assert edge_runtime.load(bundle, trust=both).predict(ROW).shape == (1,)
    trust_dir = tmp_path / "trusted"
    trust_dir.mkdir()
    shutil.copy(keys["pub"], trust_dir / "owner.pem")
    assert edge_runtime.load(bundle, trust=[keys["other_pub"], trust_dir]).predict(ROW).shape == (1,)
    with pytest.raises(BundleError, match="is a private key"):
        TrustedKeys.load(keys["priv"])
    with pytest.raises(BundleError, match="is a private key"):  # a device never holds one
        TrustedKeys.load(keys["pub"].parent)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed = tmp_path / "ed.pem"
    ed.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(BundleError, match="not supported for bundle signatures"):
        TrustedKeys.load(ed)
    with pytest.raises(BundleError, match="no \\*.pem public key"):
        TrustedKeys.load((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_signing_with_an_ed25519_key_says_which_keys_work(bundle: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from converters.signing import SigningError, sign_bundle

    key = tmp_path / "ed.pem"
    key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    before = (bundle / SIGNATURE_NAME).read_bytes()
    with pytest.raises(SigningError, match="ECDSA P-256"):
        sign_bundle(bundle, key)
    assert (bundle / SIGNATURE_NAME).read_bytes() == before  # a failed re-sign keeps the old signature


def test_a_signature_file_over_the_size_cap_is_refused(bundle: Path, keys) -> None:
    (bundle / SIGNATURE_NAME).write_bytes(b" " * (1024 * 1024 + 10))
    with pytest.raises(IntegrityError, match="larger than"):
        edge_runtime.load(bundle, trust=keys["pub"])


def test_a_resigned_payload_listing_an_unsigned_manifest_is_refused(bundle: Path, keys, tmp_path: Path) -> None:
    """A trusted signer that ignored manifest.json (upstream --ignore-paths) does not vouch for it."""
    (bundle / SIGNATURE_NAME).unlink()
    out = _upstream_cli("sign", "key", str(bundle), "--signature", str(bundle / SIGNATURE_NAME),
                        "--private_key", str(keys["priv"]), "--ignore-paths", str(bundle / "manifest.json"))
    assert out.returncode == 0, out.stderr
    with pytest.raises(IntegrityError, match="'manifest.json' is not covered by the signature"):
        edge_runtime.load(bundle, trust=keys["pub"])


# --- the manifest is checked against the signature before it is parsed ---------------------
def _old_layout(bundle: Path, out: Path) -> Path:
    """The archive as edge-runtime packed it before 2026-12: the signature last."""
    import tarfile

    names = ["manifest.json"] + sorted(p.name for p in bundle.iterdir()
                                       if p.name not in ("manifest.json", SIGNATURE_NAME)) + [SIGNATURE_NAME]
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(bundle / name, arcname=name)
    return out


def _rewrite_order(archive: Path, order: list[str]) -> None:
    import io
    import tarfile

    with tarfile.open(archive) as tar:
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in order:
            info = tarfile.TarInfo(name)
            info.size = len(blobs[name])
            tar.addfile(info, io.BytesIO(blobs[name]))


@pytest.fixture()
def parses(monkeypatch) -> list[bytes]:
    """Every manifest the runtime parses, in order."""
    from edge_runtime.bundle import Manifest

    seen: list[bytes] = []
    real = Manifest.from_bytes.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Manifest, "from_bytes", classmethod(lambda cls, raw: (seen.append(raw), real(cls, raw))[1]))
    return seen


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "archive"])
def test_an_altered_manifest_is_refused_before_it_is_parsed(packed: bool, bundle: Path, keys, tmp_path: Path,
                                                           parses: list[bytes]) -> None:
    (bundle / "manifest.json").write_bytes(b'{"schema_version": "1.1", "name": ' + b"[" * 5000)
    src = pack_bundle(bundle, tmp_path / "b.tar.gz", verify=False) if packed else bundle
    if packed:  # the signature first, as pack_bundle writes a signed bundle
        import tarfile

        with tarfile.open(src) as tar:
            names = tar.getnames()
        _rewrite_order(src, [SIGNATURE_NAME] + [n for n in names if n != SIGNATURE_NAME])
    with pytest.raises(IntegrityError, match="'manifest.json' changed since signing"):
        edge_runtime.load(src, trust=keys["pub"])
    assert parses == []
    with pytest.raises(BundleError, match="manifest"):  # without trust it is parsed, and refused
        edge_runtime.load(src)
    assert len(parses) == 1


def test_a_signed_archive_carries_its_signature_first_and_an_old_one_still_opens(
        bundle: Path, keys, tmp_path: Path, parses: list[bytes]) -> None:
    import tarfile

    new = pack_bundle(bundle, tmp_path / "new.tar.gz")
    with tarfile.open(new) as tar:
        assert tar.getnames()[:2] == [SIGNATURE_NAME, "manifest.json"]
    assert edge_runtime.load(new, trust=keys["pub"]).predict(ROW).shape == (1,)
    old = _old_layout(bundle, tmp_path / "old.tar.gz")
    parses.clear()
    with pytest.raises(IntegrityError, match="no model.sig before manifest.json.*repack it.*not signed"):
        edge_runtime.load(old, trust=keys["pub"])
    assert parses == []
    assert edge_runtime.load(old).predict(ROW).shape == (1,)  # no signature required: as before
    twice = tmp_path / "twice.tar.gz"
    shutil.copy(new, twice)
    with tarfile.open(twice) as tar:
        names = tar.getnames()
    _rewrite_order(twice, names + [SIGNATURE_NAME])
    with pytest.raises(BundleError, match="'model.sig' appears twice"):
        edge_runtime.load(twice)


# --- the envelope parser on untrusted input -----------------------------------------------
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids,
                                                                               max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()))
def test_fuzz_with_trust_no_unsigned_manifest_reaches_the_parser(raw: bytes, bundle: Path, keys,
                                                                 parses: list[bytes]) -> None:
    signed = (bundle / "manifest.json").read_bytes()
    assume(raw != signed)
    (bundle / "manifest.json").write_bytes(raw)
    parses.clear()
    try:
        with pytest.raises(IntegrityError):
            open_bundle(bundle, gate=manifest_gate(TrustedKeys.load(keys["pub"])))
        assert parses == []
    finally:
        (bundle / "manifest.json").write_bytes(signed)


def _envelope_like(draw_payload: object) -> bytes:
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                       "verificationMaterial": {"publicKey": {"hint": "ab"}},
                       "dsseEnvelope": {"payloadType": PAYLOAD_TYPE,
                                        "payload": base64.b64encode(json.dumps(draw_payload).encode()).decode(),
                                        "signatures": [{"sig": "AA=="}]}}).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=512) | _json.map(lambda v: json.dumps(v).encode()))
def test_fuzz_envelope_parser_raises_only_integrity_errors(raw: bytes) -> None:
    try:
        env = parse_envelope(raw)
    except IntegrityError:
        return
    assert env.signatures


@settings(max_examples=300, deadline=None)
@given(payload=_json | st.fixed_dictionaries({
    "_type": st.just("https://in-toto.io/Statement/v1"),
    "predicateType": st.just("https://model_signing/signature/v1.0"),
    "subject": st.lists(st.fixed_dictionaries({"digest": st.dictionaries(st.just("sha256"), st.text(max_size=64))}),
                        max_size=2),
    "predicate": st.fixed_dictionaries({
        "serialization": st.fixed_dictionaries({"method": st.just("files"), "hash_type": st.just("sha256"),
                                                "ignore_paths": _json}),
        "resources": st.lists(st.fixed_dictionaries({"name": st.text(max_size=8), "algorithm": st.just("sha256"),
                                                     "digest": st.text("0123456789abcdefg", min_size=64,
                                                                       max_size=64)}), max_size=3)})}))
def test_fuzz_statement_parser_raises_only_integrity_errors(payload: object) -> None:
    assert parse_envelope(_envelope_like(payload)).payload
    try:
        digests, ignored = parse_statement(json.dumps(payload).encode())
    except IntegrityError:
        return
    assert all(len(d) == 64 for d in digests.values()) and isinstance(ignored, frozenset)


# --- the version store and HotSwapModel ---------------------------------------------------
def _version(src: Path, dst: Path, version: str, key: Path) -> Path:
    """``src`` as ``version``, signed with ``key``, packed."""
    from converters.signing import sign_bundle

    d = Path(shutil.copytree(src, dst / version))
    m = json.loads((d / "manifest.json").read_text())
    m["version"] = version
    (d / "manifest.json").write_text(json.dumps(m))
    sign_bundle(d, key)
    return pack_bundle(d, dst / f"{version}.tar.gz")


def test_store_refuses_an_unsigned_or_foreign_bundle_at_install(models, keys, tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "state", trust=keys["pub"])
    store.install("1.0.0", _version(models["signed"], tmp_path, "1.0.0", keys["priv"]))
    foreign = _version(models["signed"], tmp_path, "1.1.0", keys["other_priv"])
    with pytest.raises(IntegrityError, match="signature check failed at install: .*not trusted here"):
        store.install("1.1.0", foreign)
    assert store.installed() == ["1.0.0"]  # nothing of 1.1.0 left behind


def test_store_tampered_at_rest_with_matching_digest_is_refused_at_activation_and_start(
        models, keys, tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "state", trust=keys["pub"])
    for v in ("1.0.0", "1.1.0"):
        store.install(v, _version(models["signed"], tmp_path, v, keys["priv"]))
        store.activate(v)
        store.commit(v, "test: judged good")
    store.install("1.2.0", _version(models["signed"], tmp_path, "1.2.0", keys["priv"]))
    _swap_model(store.path("1.2.0"), models["other"])  # digests agree: only the signature catches it
    store.verify_at_rest("1.0.0")
    before = (store.root / "active.json").read_bytes()
    with pytest.raises(IntegrityError, match="signature check failed at rest: .*'manifest.json' changed"):
        store.activate("1.2.0")
    assert (store.root / "active.json").read_bytes() == before
    _swap_model(store.path("1.1.0"), models["other"])  # the current version, tampered at rest
    model = HotSwapModel(store.root, trust=keys["pub"])
    try:
        assert model.version == "1.0.0" and model.predict(ROW).shape == (1,)
        rec = store.read_active()
        assert rec["current"] == "1.0.0" and "manifest.json" in rec["known_bad"]["1.1.0"]
    finally:
        model.close()


# --- the real CLI ---------------------------------------------------------------------------
def _edgert(cli_env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True, text=True,
                          env=cli_env, timeout=180)


def test_cli_keys_sign_verify_inspect(models, tmp_path: Path, cli_env: dict) -> None:
    b = Path(shutil.copytree(models["other"], tmp_path / "b"))
    out = _edgert(cli_env, "keys", "init-signing", str(tmp_path / "k"))
    assert out.returncode == 0, out.stderr
    priv, pub = tmp_path / "k" / "signing-key.pem", tmp_path / "k" / "signing-key.pub.pem"
    assert priv.stat().st_mode & 0o077 == 0
    out = _edgert(cli_env, "sign", str(b), "--key", str(priv))
    assert out.returncode == 0 and "signed" in out.stdout, out.stderr
    out = _edgert(cli_env, "verify", str(b), "--trust", str(pub))
    assert out.returncode == 0 and "ok: signature by trusted key" in out.stdout, out.stderr
    out = _edgert(cli_env, "inspect", str(b), "--trust", str(pub))
    assert "signature: model.sig by key" in out.stdout and "verifies here" in out.stdout, out.stderr
    names = [f["name"] for f in json.loads((b / "manifest.json").read_text())["inputs"]["features"]]
    csv = tmp_path / "in.csv"
    csv.write_text(",".join(names) + "\n" + "\n".join(",".join(map(str, r)) for r in models["X"][:5]) + "\n")
    out = _edgert(cli_env, "predict", str(b), str(csv), "--trust", str(pub), "--workers", "2")
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 6, out.stderr
    _permute_features(b, b)
    out = _edgert(cli_env, "predict", str(b), str(csv), "--trust", str(pub))
    assert out.returncode == 1 and "'manifest.json' changed since signing" in out.stderr
    out = _edgert(cli_env, "verify", str(b), "--trust", str(pub))
    assert out.returncode == 1 and "IntegrityError" in out.stderr and "manifest.json" in out.stderr
    out = _edgert(cli_env, "inspect", str(b), "--trust", str(pub))
    assert "DOES NOT VERIFY" in out.stdout


def test_cli_serve_with_trust_serves_signed_and_refuses_unsigned(models, keys, cli_env: dict) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from serve_support import load_benchmark

    bench = load_benchmark("serve_load")
    with bench.server_process(models["signed"], extra=("--trust", str(keys["pub"]))) as url, \
            urllib.request.urlopen(url + "/readyz", timeout=30) as resp:
        assert resp.status == 200
    out = _edgert(cli_env, "serve", str(models["other"]), "--port", "0", "--trust", str(keys["pub"]))
    assert out.returncode != 0 and "not signed" in out.stderr


def test_device_profile_signing_policy(bundle: Path, models, keys, tmp_path: Path, monkeypatch) -> None:
    from edge_runtime.errors import ProfileError
    from edge_runtime.profiles import builtin_dir, load_profile

    base = (builtin_dir() / "laptop-x86_64.toml").read_text()
    shutil.copy(keys["pub"], tmp_path / "owner.pem")
    prof = tmp_path / "site.toml"
    prof.write_text(base + '\n[signing]\ntrust = ["owner.pem"]\n')  # relative to the profile
    assert edge_runtime.load(bundle, profile=str(prof)).predict(ROW).shape == (1,)
    with pytest.raises(IntegrityError, match="not signed"):
        edge_runtime.load(models["other"], profile=str(prof))
    monkeypatch.setenv(ENV_TRUST, str(keys["other_pub"]))  # the environment overrides the profile
    with pytest.raises(IntegrityError, match="not trusted here"):
        edge_runtime.load(bundle, profile=str(prof))
    monkeypatch.delenv(ENV_TRUST)
    strict = tmp_path / "strict.toml"
    strict.write_text(base + "\n[signing]\nrequire = true\n")
    with pytest.raises(IntegrityError, match="no trusted keys configured"):
        edge_runtime.load(bundle, profile=str(strict))
    bad = tmp_path / "bad.toml"
    bad.write_text(base + '\n[signing]\ntrust = "owner.pem"\n')
    with pytest.raises(ProfileError, match="field 'signing'"):
        load_profile(str(bad))


def test_cli_serve_store_with_trust_serves_the_previous_good_when_current_was_tampered(
        models, keys, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from serve_support import load_benchmark

    store = VersionStore(tmp_path / "state", trust=keys["pub"])
    for v in ("1.0.0", "1.1.0"):
        store.install(v, _version(models["signed"], tmp_path, v, keys["priv"]))
        store.activate(v)
        store.commit(v, "test: judged good")
    _swap_model(store.path("1.1.0"), models["other"])
    with load_benchmark("serve_load").server_process(store.root, extra=("--trust", str(keys["pub"]))) as url, \
            urllib.request.urlopen(url + "/model", timeout=30) as resp:
        assert json.loads(resp.read())["version"] == "1.0.0"
    rec = VersionStore(store.root).read_active()
    assert rec["current"] == "1.0.0" and "signature check failed at rest" in rec["known_bad"]["1.1.0"]
