"""The bundle: the contract between the workstation and the device.

A bundle is a directory holding ``manifest.json`` and the artifacts it lists, or the same
packed as one ``.tar.gz``. The converters write it with :func:`write_bundle`; the runtime
reads it with :func:`open_bundle`. Both go through :class:`Manifest`, so the two sides can
never drift apart.

Nothing here parses a model: an artifact's bytes are checked against the manifest's size
and sha256 (:meth:`Bundle.read_artifact`) before any backend sees them. The manifest's fields
are checked in :mod:`edge_runtime.manifest_checks` (parsed by :mod:`edge_runtime.safejson`);
archives are read through the bounded parser of :mod:`edge_runtime.archive`, with the policy
here: ``model.sig`` if signed, ``manifest.json``, then only the artifacts it lists
(:func:`read_archive`). A gate given to :func:`open_bundle` (the signature check, with trusted
keys) sees the manifest's bytes before they are parsed.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import manifest_checks as checks
from .archive import END_ALLOWANCE, HEADER_ALLOWANCE, LimitedGunzip, Member, TarReader, padded
from .errors import BundleError, IntegrityError, SchemaVersionError, UnsafeArchiveError
from .fsutil import atomic_write_bytes, atomic_write_json, fsync_dir
from .safejson import loads_bounded

#: 1.1: features may be categorical or text (``kind``), an artifact may take several named
#: ``inputs`` (one per column, strings included); a 1.0 manifest is a 1.1 one with numbers only
SCHEMA_VERSION = "1.1"
MANIFEST_NAME = "manifest.json"
#: the bundle's signature (OpenSSF model-signing format, checked by :mod:`edge_runtime.signing`)
SIGNATURE_NAME = "model.sig"
#: the signature travels beside the artifacts without a digest of its own (it signs them)
MAX_SIGNATURE_BYTES = 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 256
TASKS = ("classification", "regression", "anomaly", "clustering")
LABEL_TASKS = checks.LABEL_TASKS
FEATURE_KINDS = ("numeric", "categorical", "text")
FORMATS = ("onnx", "tflite", "native")
PRECISIONS = ("fp64", "fp32", "fp16", "int8")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

PathLike = Union[str, "os.PathLike[str]"]
#: what the manifest's bytes pass before anything parses them: ``gate(manifest, signature, where)``
#: with the signature's bytes (None: absent), raising to refuse; :func:`edge_runtime.signing.manifest_gate`
#: checks them against the signature (a hook, so this module never imports the verifier)
ManifestGate = Callable[[bytes, Optional[bytes], str], None]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_semver(version: str) -> tuple:
    """Sort key for a semver string (pre-releases sort before their release)."""
    m = _SEMVER.match(version)
    if not m:
        raise BundleError(f"version {version!r} is not semver (MAJOR.MINOR.PATCH)")
    core = tuple(int(g) for g in m.groups())
    pre = version.split("+", 1)[0].partition("-")[2]
    if not pre:
        return core + ((1,),)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return core + ((0,) + parts,)


def _training_bounds(obj: dict[str, Any], where: str) -> dict[str, float]:
    """A feature's ``train_min``/``train_max``: both or neither, finite numbers, min <= max."""
    lo, hi = obj.get("train_min"), obj.get("train_max")
    if lo is None and hi is None:
        return {}
    for key, value in (("train_min", lo), ("train_max", hi)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1e308 < value < 1e308:
            raise BundleError(f"manifest: '{where}{key}' must be a finite number, got {value!r}")
    if not lo <= hi:  # type: ignore[operator]
        raise BundleError(f"manifest: '{where}train_min' {lo} is above 'train_max' {hi}")
    return {"train_min": float(lo), "train_max": float(hi)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Feature:
    """One input column: its name, whether NaN may reach the model, an optional allowed range
    (always enforced), and the training sample's min/max (enforced by ``predict(strict=True)``;
    absent in bundles written before they were recorded).

    ``kind`` is "numeric" (the default, and all a 1.0 manifest has), "categorical" (strings from
    a known set: ``categories``, with ``unknown`` saying what the encoder does with any other:
    "ignore" (all-zero one-hot), "encoded" (OrdinalEncoder's ``unknown_value``) or "error"
    (refused at the input, naming column, row and value)) or "text" (free text)."""

    name: str
    allow_nan: bool = False
    range: Optional[tuple[float, float]] = None
    train_min: Optional[float] = None
    train_max: Optional[float] = None
    kind: str = "numeric"
    categories: Optional[tuple[str, ...]] = None
    unknown: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "allow_nan": self.allow_nan,
                               "range": list(self.range) if self.range is not None else None}
        if self.train_min is not None and self.train_max is not None:
            out["train_min"], out["train_max"] = self.train_min, self.train_max
        if self.kind != "numeric":
            out["kind"] = self.kind
        if self.categories is not None:
            out["categories"], out["unknown"] = list(self.categories), self.unknown
        return out


@dataclass(frozen=True)
class InputSpec:
    """One named input tensor of an artifact and the features it carries, in column order."""

    name: str
    dtype: str  # float32 | float64 | string
    features: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "features": list(self.features)}


#: artifact fields read here; any other field is kept in ``Artifact.extra`` (converter notes)
_ARTIFACT_FIELDS = {"path", "format", "precision", "sha256", "size", "input", "inputs", "outputs",
                    "opset", "parity"}


@dataclass(frozen=True)
class Artifact:
    """One model file of the bundle, with what a backend needs to run it."""

    path: str
    format: str
    precision: str
    sha256: str
    size: int
    input_name: str
    input_dtype: str
    outputs: dict[str, str]  # role ("label", "probabilities", "prediction") -> tensor name
    opset: dict[str, int] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: several named inputs (schema 1.1; empty: the one matrix ``input_name`` of every feature).
    #: When set, ``input_name``/``input_dtype`` are those of the first.
    inputs: tuple[InputSpec, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "format": self.format, "precision": self.precision,
                               "sha256": self.sha256, "size": self.size}
        if self.inputs:
            out["inputs"] = [i.to_json() for i in self.inputs]
        else:
            out["input"] = {"name": self.input_name, "dtype": self.input_dtype}
        out.update({"outputs": dict(self.outputs), "opset": dict(self.opset),
                    "parity": copy.deepcopy(self.parity)})
        out.update(copy.deepcopy(self.extra))
        return out

    @classmethod
    def from_json(cls, value: Any, index: int, task: str) -> Artifact:
        """Raises: BundleError naming the field (``artifacts[0].input.dtype``)."""
        where = f"artifacts[{index}]."
        art = checks.obj(value, where[:-1])
        path = checks.text(checks.require(art, "path", where), where + "path")
        if not _SAFE_NAME.match(path):
            raise BundleError(f"manifest: '{where}path' {path!r} is not a plain file name")
        fmt = _choice(art, "format", FORMATS, where)
        precision = _choice(art, "precision", PRECISIONS, where)
        digest = checks.require(art, "sha256", where)
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BundleError(f"manifest: '{where}sha256' is not 64 lowercase hex digits")
        size = checks.integer(checks.require(art, "size", where), where + "size",
                              lo=1, hi=MAX_ARTIFACT_BYTES)
        specs: tuple[InputSpec, ...] = ()
        if art.get("inputs") is not None:
            specs = _input_specs(art["inputs"], where + "inputs")
            input_name, dtype = specs[0].name, specs[0].dtype
        else:
            inp = checks.obj(checks.require(art, "input", where), where + "input")
            input_name = checks.text(checks.require(inp, "name", where + "input."), where + "input.name")
            dtype = _choice(inp, "dtype", checks.DTYPES, where + "input.")
        outputs = checks.obj(checks.require(art, "outputs", where), where + "outputs")
        for role, tensor in outputs.items():  # roles the runtime does not read ("scores") are kept
            checks.text(tensor, f"{where}outputs.{checks.text(role, where + 'outputs')}")
        needs = ("label", "probabilities") if task in LABEL_TASKS else ("prediction",)
        if not any(r in outputs for r in needs):
            raise BundleError(f"manifest: '{where}outputs' has no {' or '.join(needs)} output, "
                              f"which a {task} model needs")
        opset = checks.obj(art.get("opset"), where + "opset", optional=True)
        for domain, v in opset.items():
            checks.integer(v, f"{where}opset.{domain}", lo=1, hi=10_000)
        extra = {k: v for k, v in art.items() if k not in _ARTIFACT_FIELDS}
        if extra.get("label_encoding") not in (None, "index"):
            raise BundleError(f"manifest: '{where}label_encoding' must be \"index\" or absent")
        if extra.get("label_from") not in (None, "probabilities"):
            raise BundleError(f"manifest: '{where}label_from' must be \"probabilities\" or absent")
        if extra.get("label_from") and "probabilities" not in outputs:
            raise BundleError(f"manifest: '{where}label_from' is probabilities, but the artifact "
                              "has no probabilities output")
        return cls(path=path, format=fmt, precision=precision, sha256=digest, size=size,
                   input_name=input_name, input_dtype=dtype, outputs=dict(outputs),
                   opset=dict(opset),
                   parity=dict(checks.obj(art.get("parity"), where + "parity", optional=True)),
                   extra=extra, inputs=specs)


def _input_specs(value: Any, where: str) -> tuple[InputSpec, ...]:
    """An artifact's named inputs: unique names, a known dtype, at least one feature each."""
    out = []
    for k, entry in enumerate(checks.seq(value, where, min_len=1)):
        at = f"{where}[{k}]"
        spec = checks.obj(entry, at)
        name = checks.text(checks.require(spec, "name", at + "."), at + ".name")
        dtype = _choice(spec, "dtype", checks.DTYPES + ("string",), at + ".")
        feats = checks.seq(checks.require(spec, "features", at + "."), at + ".features", min_len=1)
        out.append(InputSpec(name, dtype, tuple(checks.text(f, f"{at}.features[{j}]")
                                                for j, f in enumerate(feats))))
    if len({s.name for s in out}) != len(out):
        raise BundleError(f"manifest: '{where}' has duplicate input names")
    return tuple(out)


def _choice(obj: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str) -> str:
    value = checks.require(obj, key, where)
    if not isinstance(value, str) or value not in allowed:
        raise BundleError(f"manifest: '{where}{key}' {checks.kind(value)} "
                          f"{str(value)[:40]!r} is not one of {allowed}")
    return value


class Manifest:
    """A validated ``manifest.json``. ``data`` is the plain JSON object; the properties are
    the parts the runtime depends on, checked once here so nothing else re-validates.

    Fields this runtime reads are checked strictly (type, finiteness, bounds, consistency with
    each other); a malformed one is a :class:`BundleError` naming it. Fields it does not know are
    kept and ignored, at the top level and inside ``inputs``, ``outputs``, features and artifacts:
    a later 1.x schema may add fields, and an older runtime must still load such a bundle.

    Raises:
        BundleError: a missing, mistyped, non-finite or inconsistent field (named).
        SchemaVersionError: the manifest's major schema version is not ours.
    """

    def __init__(self, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise BundleError("manifest: top level is not a JSON object")
        version = checks.text(checks.require(data, "schema_version", ""), "schema_version")
        major = version.split(".", 1)[0]
        if not major.isdigit() or len(major) > 6:
            raise BundleError(f"manifest: schema_version {version!r} is not MAJOR.MINOR")
        if int(major) != int(SCHEMA_VERSION.split(".")[0]):
            raise SchemaVersionError(
                f"manifest schema {version} is not supported by this edge-runtime (reads "
                f"{SCHEMA_VERSION.split('.')[0]}.x); upgrade edge-runtime to load this bundle")
        self.data = data
        self.name: str = checks.text(checks.require(data, "name", ""), "name")
        self.version: str = checks.text(checks.require(data, "version", ""), "version")
        try:
            parse_semver(self.version)
        except BundleError as exc:
            raise BundleError(f"manifest: field 'version': {exc}") from None
        self.task: str = _choice(data, "task", TASKS, "")
        if data.get("created") is not None:
            checks.text(data["created"], "created")
        inputs = checks.obj(checks.require(data, "inputs", ""), "inputs")
        if inputs.get("dtype") is not None:
            _choice(inputs, "dtype", checks.DTYPES, "inputs.")
        feats = checks.seq(checks.require(inputs, "features", "inputs."), "inputs.features",
                           min_len=1)
        self.features: tuple[Feature, ...] = tuple(self._feature(f, i) for i, f in enumerate(feats))
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise BundleError("manifest: 'inputs.features' has duplicate names")
        outputs = checks.obj(data.get("outputs"), "outputs", optional=True)
        self.classes: Optional[list[Any]] = checks.classes(outputs.get("classes"), self.task)
        arts = checks.seq(checks.require(data, "artifacts", ""), "artifacts", min_len=1)
        if len(arts) > MAX_ARCHIVE_MEMBERS - 1:
            raise BundleError(f"manifest: 'artifacts' lists {len(arts)} files (at most "
                              f"{MAX_ARCHIVE_MEMBERS - 1})")
        self.artifacts: tuple[Artifact, ...] = tuple(
            Artifact.from_json(a, i, self.task) for i, a in enumerate(arts))
        for i, art in enumerate(self.artifacts):
            checks.check_inputs(art.inputs, self.features, f"artifacts[{i}].inputs")
        if len({a.path for a in self.artifacts}) != len(self.artifacts):
            raise BundleError("manifest: two artifacts share one path")
        if MANIFEST_NAME in {a.path for a in self.artifacts}:
            raise BundleError(f"manifest: an artifact cannot be called {MANIFEST_NAME}")
        self.golden: Optional[dict[str, Any]] = data.get("golden")
        self._check_goldens()
        checks.check_reference(data.get("reference"), names)
        self.reference: Optional[dict[str, Any]] = data.get("reference")
        self.provenance: dict[str, Any] = dict(checks.obj(data.get("provenance"), "provenance",
                                                          optional=True))
        checks.obj(data.get("parity"), "parity", optional=True)
        #: sha256 of the exact bytes parsed (set by from_bytes), for the signature check
        self.raw_sha256: Optional[str] = None

    def _check_goldens(self) -> None:
        """The top-level golden rows, each artifact's own outputs on them, and that every
        artifact can be proven by them (a block the artifact has no output for checks nothing)."""
        def check(block: Any, where: str, rows: Optional[int]) -> int:
            return checks.check_golden(block, where, features=self.features, task=self.task,
                                       classes=self.classes, rows=rows)

        rows = check(self.golden, "golden", None) if self.golden is not None else None
        for i, art in enumerate(self.artifacts):
            own = art.extra.get("golden")
            if own is not None:
                if rows is None:
                    raise BundleError(f"manifest: 'artifacts[{i}].golden' is set but there are no "
                                      "top-level golden rows")
                check(own, f"artifacts[{i}].golden", rows)
            if self.golden is None:
                continue
            merged = {**self.golden, **(own or {})}
            if self.classes is not None:
                checks.check_label_order(merged, self.classes, f"artifacts[{i}]")
            provable = ["label"] if self.task in LABEL_TASKS else ["prediction"]
            if "probabilities" in art.outputs:
                provable.append("probabilities")
            if not any(merged.get(k) is not None for k in provable):
                raise BundleError(f"manifest: 'golden' has no {' or '.join(provable)} to check "
                                  f"artifacts[{i}] ({art.path}) against")

    def require_golden(self) -> dict[str, Any]:
        """The golden rows, which a verified load needs.

        Raises:
            BundleError: the manifest has none (load with ``verify=False`` to skip the check).
        """
        if self.golden is None:
            raise BundleError("manifest: no golden rows (field 'golden' is missing or null), so "
                              "nothing proves the model on this device; load with verify=False "
                              "to skip the check")
        return self.golden

    @staticmethod
    def _feature(value: Any, i: int) -> Feature:
        where = f"inputs.features[{i}]"
        feat = checks.obj(value, where)
        kind = feat.get("kind", "numeric")
        if kind not in FEATURE_KINDS:
            raise BundleError(f"manifest: '{where}.kind' {checks.kind(kind)} {str(kind)[:40]!r} is not "
                              f"one of {FEATURE_KINDS}")
        extra: dict[str, Any] = dict(_training_bounds(feat, where + "."))
        extra.update(checks.typed_feature(feat, kind, where))
        return Feature(name=checks.text(checks.require(feat, "name", where + "."), where + ".name"),
                       allow_nan=checks.boolean(feat.get("allow_nan", False), where + ".allow_nan"),
                       range=checks.value_range(feat.get("range"), where + ".range"), **extra)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse and validate ``manifest.json`` bytes.

        Raises:
            BundleError: over ``MAX_MANIFEST_BYTES``, not JSON, nested too deep, non-finite
                numbers, duplicate keys, or any field as :class:`Manifest` says.
        """
        if len(raw) > MAX_MANIFEST_BYTES:
            raise BundleError(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
        manifest = cls(loads_bounded(raw, MANIFEST_NAME))
        manifest.raw_sha256 = sha256_hex(raw)
        return manifest


def new_manifest(*, name: str, version: str, task: str, features: Iterable[Feature],
                 classes: Optional[list[Any]] = None, golden: Optional[dict[str, Any]] = None,
                 reference: Optional[dict[str, Any]] = None,
                 provenance: Optional[dict[str, Any]] = None,
                 created: Optional[str] = None) -> dict[str, Any]:
    """The manifest skeleton both sides agree on; :func:`write_bundle` adds the artifacts."""
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created": created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": task,
        "inputs": {"dtype": "float32", "features": [f.to_json() for f in features]},
        "outputs": {"classes": classes} if task in LABEL_TASKS else {},
        "artifacts": [],
        "golden": golden,
        "reference": reference,
        "provenance": provenance or {},
    }
    return data


def write_bundle(out_dir: PathLike, manifest: dict[str, Any],
                 artifacts: Iterable[tuple[Artifact, bytes]]) -> Path:
    """Write artifacts, then the manifest last and atomically: a directory with a manifest is
    always complete. Digests and sizes are computed here, not trusted from the caller."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = copy.deepcopy(manifest)
    data["artifacts"] = []
    for art, blob in artifacts:
        atomic_write_bytes(out / art.path, blob)
        fixed = Artifact(**{**art.__dict__, "sha256": sha256_hex(blob), "size": len(blob)})
        data["artifacts"].append(fixed.to_json())
    Manifest(json.loads(json.dumps(data)))  # validate exactly what will be read back
    atomic_write_json(out / MANIFEST_NAME, data)
    return out


class Bundle:
    """An opened bundle: its manifest and a way to read artifact bytes, verified."""

    def __init__(self, manifest: Manifest, files: Mapping[str, Any], origin: str):
        self.manifest = manifest
        self._files = files  # name -> Path (directory bundle) or bytes (archive read in memory)
        self.origin = origin
        #: why native code from this bundle may run here ("" = it may not); set by the loader
        #: once it has checked the signature, the TUF install record or the explicit opt-in
        self.native_trust = ""
        #: the signature that verified over every file (``signing.SignedFiles``), once the
        #: loader has required one
        self.signature: Optional[Any] = None

    def read_artifact(self, artifact: Artifact) -> bytes:
        """The artifact's bytes, only after size and sha256 match the manifest.

        Raises:
            IntegrityError: the file is missing, of another size, or its digest differs.
        """
        src = self._files.get(artifact.path)
        if src is None:
            raise IntegrityError(f"{self.origin}: artifact '{artifact.path}' is missing")
        if isinstance(src, Path):
            try:
                size = src.stat().st_size
            except OSError:
                raise IntegrityError(f"{self.origin}: artifact '{artifact.path}' is missing") from None
            if size != artifact.size:
                raise IntegrityError(f"{self.origin}: artifact '{artifact.path}' is {size} bytes, "
                                     f"manifest says {artifact.size}")
            with open(src, "rb") as fh:
                blob = fh.read(artifact.size + 1)
        else:
            blob = src
        if len(blob) != artifact.size:
            raise IntegrityError(f"{self.origin}: artifact '{artifact.path}' is {len(blob)} bytes, "
                                 f"manifest says {artifact.size}")
        digest = sha256_hex(blob)
        if digest != artifact.sha256:
            raise IntegrityError(f"{self.origin}: artifact '{artifact.path}' sha256 {digest[:12]}… "
                                 f"does not match the manifest ({artifact.sha256[:12]}…)")
        return blob

    def archive_members(self) -> Optional[Mapping[str, bytes]]:
        """Every member of an archive bundle, read in memory (None for a directory bundle): a
        signature covers files the manifest does not list."""
        if any(isinstance(v, Path) for v in self._files.values()):
            return None
        return self._files

    def verify(self) -> None:
        """Check every artifact; raises the first :class:`IntegrityError`."""
        for art in self.manifest.artifacts:
            self.read_artifact(art)

    def artifact_for(self, formats: Iterable[str], precision: Optional[str] = None,
                     accept: Optional[Callable[[Artifact], bool]] = None) -> Optional[Artifact]:
        """The first artifact in one of ``formats`` (and passing ``accept``, e.g. built for this
        machine): the requested precision, else fp32 first."""
        order = [precision] if precision else ["fp32", "fp64", "fp16", "int8"]
        fmts = tuple(formats)
        for prec in order:
            for art in self.manifest.artifacts:
                if art.format in fmts and art.precision == prec and (accept is None or accept(art)):
                    return art
        return None


def open_bundle(path: PathLike, *, gate: Optional[ManifestGate] = None) -> Bundle:
    """Open a bundle directory or ``.tar.gz``: manifest validated, artifacts not yet read.

    ``gate`` sees the manifest's bytes and the signature's before the manifest is parsed
    (``signing.manifest_gate(keys)``: they must be the signed ones); the rest of the file set
    is the caller's :func:`edge_runtime.signing.verify_bundle`, once the manifest says what
    belongs.

    Raises:
        BundleError: not a bundle, unreadable or invalid manifest (names the field).
        SchemaVersionError: the manifest's major schema version is newer than ours.
        UnsafeArchiveError: the archive holds a member that is not a plain, safe file.
        IntegrityError: the gate refused the manifest (unsigned, a bad or untrusted signature,
            changed since signing).
    """
    p = Path(path)
    if p.is_dir():
        raw = _read_capped(p / MANIFEST_NAME, MAX_MANIFEST_BYTES)
        if raw is None:
            raise BundleError(f"{p}: no {MANIFEST_NAME} (not a bundle directory)")
        if gate is not None:
            gate(raw, _read_capped(p / SIGNATURE_NAME, MAX_SIGNATURE_BYTES), str(p))
        manifest = Manifest.from_bytes(raw)
        files = {a.path: p / a.path for a in manifest.artifacts}
        return Bundle(manifest, files, str(p))
    if p.is_file():
        manifest, members = _archive_in_memory(p, gate=gate)
        return Bundle(manifest, members, str(p))
    raise BundleError(f"{p}: no such bundle (expected a directory or a .tar.gz)")


def _read_capped(path: Path, cap: int) -> Optional[bytes]:
    """A file's first ``cap + 1`` bytes (one over says "too large"); None if absent."""
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        return fh.read(cap + 1)


def _check_member(member: Member, max_member_bytes: int) -> str:
    name = member.name
    if name.startswith("./"):
        name = name[2:]
    if not member.isfile():
        kind = "link" if member.islink() else "non-regular file"
        raise UnsafeArchiveError(f"archive member {member.name!r} is a {kind}; only plain files "
                                 "are allowed")
    if (name.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", name) or ":" in name
            or "/" in name or not _SAFE_NAME.match(name)):
        raise UnsafeArchiveError(f"archive member {member.name!r} is not a plain file name at "
                                 "the top of the bundle (absolute path, '..' or sub-directory)")
    if member.size > max_member_bytes:
        raise UnsafeArchiveError(f"archive member {member.name!r} is {member.size} bytes, over "
                                 f"the {max_member_bytes}-byte limit")
    return name


def _next_file(tar: TarReader, max_member_bytes: int) -> Optional[tuple[str, Member]]:
    """The next plain-file member and its bare name; a leading ``.`` directory is skipped."""
    member = tar.next_member()
    while member is not None and member.isdir() and member.name in (".", "./"):
        member = tar.next_member()
    return None if member is None else (_check_member(member, max_member_bytes), member)


def _archive_head(tar: TarReader, max_member_bytes: int, origin: str,
                  gate: Optional[ManifestGate]) -> tuple[Optional[bytes], bytes]:
    """The signature (None: not first) and the manifest's bytes, checked against each other
    before anything parses the manifest by ``gate``, if given.

    Raises:
        BundleError, UnsafeArchiveError, IntegrityError: as :func:`_walk_archive`.
    """
    first = _next_file(tar, max_member_bytes)
    signature: Optional[bytes] = None
    if first is not None and first[0] == SIGNATURE_NAME:
        signature = _small_member(tar, first[1], MAX_SIGNATURE_BYTES, origin)
        first = _next_file(tar, max_member_bytes)
    if first is None:
        raise BundleError(f"{origin}: archive has no {MANIFEST_NAME}")
    if first[0] != MANIFEST_NAME:
        raise BundleError(f"{origin}: the archive's first member is {first[0]!r}; "
                          f"{MANIFEST_NAME} must come first (as pack_bundle writes it)")
    raw = _small_member(tar, first[1], MAX_MANIFEST_BYTES, origin)
    if gate is not None:
        gate(raw, signature, origin if signature is not None else (
            f"{origin} (no {SIGNATURE_NAME} before {MANIFEST_NAME}; an archive packed by "
            "edge-runtime before 2026-12 carries it last: repack it)"))
    return signature, raw


def _walk_archive(path: PathLike, open_sink: Any, *, max_member_bytes: int,
                  max_total_bytes: int, gate: Optional[ManifestGate] = None) -> Manifest:
    """Read a bundle archive member by member: ``model.sig`` if signed, ``manifest.json``, then
    only the artifacts it lists, each of the size it declares, hashed while read and passed in
    chunks to the writer ``open_sink(name)`` returns (which has ``write`` and ``close``). With
    a ``gate`` (the signature check), the manifest is checked before it is parsed, so the
    signature must come first (archives packed before it did carry it last: repack them).

    Memory and decompression are bounded by the manifest, not by what the archive claims:
    before the manifest, the gzip stream may yield only ``MAX_MANIFEST_BYTES`` plus one
    member's headers; after it, exactly the declared artifact sizes plus per-member header
    allowances (:mod:`edge_runtime.archive`).

    Raises:
        UnsafeArchiveError: links, devices, directories, ``..``/absolute names, oversize members
            or headers, members the manifest does not list, duplicates, more data than declared.
        IntegrityError: a listed member of another size or digest than the manifest says;
            the gate refused the manifest (no signature before it, or one that does not verify).
        BundleError: not a readable gzip'd tar, no manifest first, or an invalid manifest.
    """
    origin = os.fspath(path)
    try:
        fh = open(origin, "rb")  # noqa: SIM115 - opened apart from the read, to say which failed
    except OSError as exc:
        raise BundleError(f"{origin}: not a readable bundle archive ({exc})") from None
    with fh:
        stream = LimitedGunzip(fh, min(max_total_bytes, MAX_MANIFEST_BYTES) + 2 * HEADER_ALLOWANCE
                               + padded(MAX_SIGNATURE_BYTES) + HEADER_ALLOWANCE, origin)
        tar = TarReader(stream)
        signature, raw = _archive_head(tar, max_member_bytes, origin, gate)
        manifest = Manifest.from_bytes(raw)
        declared = {a.path: a for a in manifest.artifacts}
        if len(raw) + sum(a.size for a in manifest.artifacts) > max_total_bytes:
            raise UnsafeArchiveError(f"{origin}: archive unpacks to more than {max_total_bytes} "
                                     "bytes")
        stream.limit = stream.produced + END_ALLOWANCE + sum(
            padded(a.size) + HEADER_ALLOWANCE for a in manifest.artifacts
        ) + padded(MAX_SIGNATURE_BYTES) + HEADER_ALLOWANCE
        seen = set()
        for name, data in ((SIGNATURE_NAME, signature), (MANIFEST_NAME, raw)):
            if data is not None:
                sink = open_sink(name)
                sink.write(data)
                sink.close()
                seen.add(name)
        while (entry := _next_file(tar, max_member_bytes)) is not None:
            name, member = entry
            if name in seen:
                raise UnsafeArchiveError(f"archive member {name!r} appears twice")
            art = declared.get(name)
            # the signature last: an archive packed before it came first (checked, if required,
            # by edge_runtime.signing once the bundle is open)
            late_signature = art is None and name == SIGNATURE_NAME
            if late_signature and member.size > MAX_SIGNATURE_BYTES:
                raise UnsafeArchiveError(f"{origin}: {SIGNATURE_NAME} is larger than "
                                         f"{MAX_SIGNATURE_BYTES} bytes")
            if art is None and not late_signature:
                raise UnsafeArchiveError(f"{origin}: archive member {name!r} is not an artifact "
                                         "the manifest lists; refusing the archive")
            if art is not None and member.size != art.size:
                raise IntegrityError(f"{origin}: artifact '{name}' is {member.size} bytes, "
                                     f"manifest says {art.size}")
            sink = open_sink(name)
            try:
                tar.copy_data(member, sink.write)
            finally:
                sink.close()
            digest = sink.digest.hexdigest()
            if art is not None and digest != art.sha256:
                raise IntegrityError(f"{origin}: artifact '{name}' sha256 {digest[:12]}… "
                                     f"does not match the manifest ({art.sha256[:12]}…)")
            seen.add(name)
        tar.finish()
    return manifest


def _small_member(tar: TarReader, member: Member, cap: int, origin: str) -> bytes:
    """The manifest or the signature, read whole into memory: at most ``cap`` bytes."""
    if member.size > cap:
        raise UnsafeArchiveError(f"{origin}: {member.name} is larger than {cap} bytes")
    buf = bytearray()
    tar.copy_data(member, buf.extend)
    return bytes(buf)


class _Sink:
    """Where one member's chunks go; hashes them on the way."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _MemorySink(_Sink):
    """Collects one member in memory (``read_archive``)."""

    def __init__(self, out: dict[str, bytes], name: str):
        super().__init__()
        self._out, self._name, self._buf = out, name, bytearray()

    def _write(self, chunk: bytes) -> None:
        self._buf.extend(chunk)

    def close(self) -> None:
        self._out[self._name] = bytes(self._buf)


class _FileSink(_Sink):
    """Streams one member into a file of the aside directory ``unpack_bundle`` renames whole:
    written, fsync'ed, then made durable by the directory's fsync and rename."""

    def __init__(self, directory: Path, name: str):
        super().__init__()
        self._fh = open(directory / name, "xb")  # noqa: SIM115 - the sink owns it; close() ends it

    def _write(self, chunk: bytes) -> None:
        self._fh.write(chunk)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def read_archive(path: PathLike, *, max_member_bytes: int = MAX_ARTIFACT_BYTES,
                 max_total_bytes: int = 2 * MAX_ARTIFACT_BYTES,
                 gate: Optional[ManifestGate] = None) -> dict[str, bytes]:
    """Read a bundle archive into memory: the manifest and the artifacts it lists, digests
    checked as they are read. Memory is what the manifest declares, never what headers claim.

    Raises:
        UnsafeArchiveError, IntegrityError, BundleError: as :func:`_walk_archive`.
    """
    return _archive_in_memory(path, max_member_bytes, max_total_bytes, gate)[1]


def _archive_in_memory(path: PathLike, max_member_bytes: int = MAX_ARTIFACT_BYTES,
                       max_total_bytes: int = 2 * MAX_ARTIFACT_BYTES,
                       gate: Optional[ManifestGate] = None) -> tuple[Manifest, dict[str, bytes]]:
    out: dict[str, bytes] = {}
    manifest = _walk_archive(path, lambda name: _MemorySink(out, name), max_member_bytes=max_member_bytes,
                             max_total_bytes=max_total_bytes, gate=gate)
    return manifest, out


def pack_bundle(bundle_dir: PathLike, out_file: PathLike, *, verify: bool = True) -> Path:
    """Pack a verified bundle directory into one reproducible ``.tar.gz`` (atomic write).
    ``verify=False`` packs every file as it is, manifest first, without parsing it: only for
    tests that must get a hostile bundle to the device, as a compromised publisher would."""
    if verify:
        bundle = open_bundle(bundle_dir)
        bundle.verify()
        names = [MANIFEST_NAME] + [a.path for a in bundle.manifest.artifacts]
        if (Path(bundle_dir) / SIGNATURE_NAME).is_file():
            # a signed bundle stays signed in transport, its signature first: the device checks
            # the manifest against it before parsing a byte of it
            names.insert(0, SIGNATURE_NAME)
    else:
        names = [MANIFEST_NAME] + sorted(p.name for p in Path(bundle_dir).iterdir()
                                         if p.is_file() and p.name != MANIFEST_NAME)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            data = (Path(bundle_dir) / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    out = Path(out_file)
    atomic_write_bytes(out, buf.getvalue())
    return out


def unpack_bundle(archive: PathLike, out_dir: PathLike, *, gate: Optional[ManifestGate] = None) -> Path:
    """Unpack an archive into ``out_dir`` safely: members are checked and streamed to disk with
    their digests verified (memory stays a few chunks whatever the sizes), and the directory
    appears complete or not at all (built aside, then renamed). ``gate``: sees the
    manifest's bytes before they are parsed (as :func:`open_bundle`).

    Raises:
        BundleError, UnsafeArchiveError, IntegrityError: as :func:`read_archive`; ``out_dir``
            exists already; an artifact the manifest lists is not in the archive.
    """
    out = Path(out_dir)
    if out.exists():
        raise BundleError(f"{out}: already exists; refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = _walk_archive(archive, lambda name: _FileSink(tmp, name),
                                 max_member_bytes=MAX_ARTIFACT_BYTES,
                                 max_total_bytes=2 * MAX_ARTIFACT_BYTES, gate=gate)
        Bundle(manifest, {a.path: tmp / a.path for a in manifest.artifacts}, str(archive)).verify()
        for name in os.listdir(tmp):
            os.chmod(tmp / name, 0o644)
        fsync_dir(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(out.parent)
    return out


def json_safe(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
