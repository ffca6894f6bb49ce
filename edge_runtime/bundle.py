"""The bundle: the contract between the workstation and the device.

A bundle is a directory holding ``manifest.json`` and the artifacts it lists, or the same
packed as one ``.tar.gz``. The converters write it with :func:`write_bundle`; the runtime
reads it with :func:`open_bundle`. Both go through :class:`Manifest`, so the two sides can
never drift apart.

Nothing here parses a model: an artifact's bytes are checked against the manifest's size
and sha256 (:meth:`Bundle.read_artifact`) before any backend sees them.
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
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from .errors import BundleError, IntegrityError, SchemaVersionError, UnsafeArchiveError
from .fsutil import atomic_write_bytes, atomic_write_json, fsync_dir

SCHEMA_VERSION = "1.0"
MANIFEST_NAME = "manifest.json"
#: the bundle's signature (OpenSSF model-signing format, checked by :mod:`edge_runtime.signing`)
SIGNATURE_NAME = "model.sig"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 256
TASKS = ("classification", "regression")
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp64", "fp32", "fp16", "int8")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

PathLike = Union[str, "os.PathLike[str]"]


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


def _require(obj: Mapping[str, Any], key: str, kind: Any, where: str) -> Any:
    if key not in obj:
        raise BundleError(f"manifest: missing field '{where}{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"manifest: field '{where}{key}' has the wrong type ({type(value).__name__})")
    return value


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _check_golden(golden: Any, width: int, where: str, inputs_required: bool = True) -> None:
    """Golden rows drive the on-device smoke test, so their shape is checked like the rest."""
    if not isinstance(golden, dict):
        raise BundleError(f"manifest: '{where}' is not an object")
    rows = golden.get("inputs")
    if rows is None and not inputs_required:
        n = None
    else:
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == width and all(map(_is_number, r)) for r in rows):
            raise BundleError(f"manifest: '{where}.inputs' must be rows of {width} numbers")
        n = len(rows)
    for key in ("label", "prediction", "probabilities"):
        value = golden.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or (n is not None and len(value) != n):
            raise BundleError(f"manifest: '{where}.{key}' must be a list with one entry per golden row")
        if key == "probabilities" and not all(
                isinstance(r, list) and all(map(_is_number, r)) for r in value):
            raise BundleError(f"manifest: '{where}.probabilities' must be rows of numbers")
        if key == "prediction" and not all(map(_is_number, value)):
            raise BundleError(f"manifest: '{where}.prediction' must be numbers")
    for key in ("atol", "rtol", "min_label_agreement"):
        if key in golden and not (_is_number(golden[key]) and golden[key] is not None):
            raise BundleError(f"manifest: '{where}.{key}' must be a number")


@dataclass(frozen=True)
class Feature:
    """One input column: its name, whether NaN may reach the model, and optional allowed range."""

    name: str
    allow_nan: bool = False
    range: Optional[tuple[float, float]] = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "allow_nan": self.allow_nan,
                "range": list(self.range) if self.range is not None else None}


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

    def to_json(self) -> dict[str, Any]:
        out = {"path": self.path, "format": self.format, "precision": self.precision,
               "sha256": self.sha256, "size": self.size,
               "input": {"name": self.input_name, "dtype": self.input_dtype},
               "outputs": dict(self.outputs), "opset": dict(self.opset),
               "parity": copy.deepcopy(self.parity)}
        out.update(copy.deepcopy(self.extra))
        return out

    @classmethod
    def from_json(cls, obj: Any, index: int) -> Artifact:
        where = f"artifacts[{index}]."
        if not isinstance(obj, dict):
            raise BundleError(f"manifest: '{where[:-1]}' is not an object")
        path = _require(obj, "path", str, where)
        if not _SAFE_NAME.match(path):
            raise BundleError(f"manifest: '{where}path' {path!r} is not a plain file name")
        fmt = _require(obj, "format", str, where)
        if fmt not in FORMATS:
            raise BundleError(f"manifest: '{where}format' {fmt!r} is not one of {FORMATS}")
        precision = _require(obj, "precision", str, where)
        if precision not in PRECISIONS:
            raise BundleError(f"manifest: '{where}precision' {precision!r} not in {PRECISIONS}")
        digest = _require(obj, "sha256", str, where)
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BundleError(f"manifest: '{where}sha256' is not 64 lowercase hex digits")
        size = _require(obj, "size", int, where)
        if not 0 < size <= MAX_ARTIFACT_BYTES:
            raise BundleError(f"manifest: '{where}size' {size} is out of bounds")
        inp = _require(obj, "input", dict, where)
        outputs = _require(obj, "outputs", dict, where)
        if not outputs or not all(isinstance(v, str) for v in outputs.values()):
            raise BundleError(f"manifest: '{where}outputs' must map roles to tensor names")
        known = {"path", "format", "precision", "sha256", "size", "input", "outputs", "opset",
                 "parity"}
        return cls(path=path, format=fmt, precision=precision, sha256=digest, size=size,
                   input_name=_require(inp, "name", str, where + "input."),
                   input_dtype=_require(inp, "dtype", str, where + "input."),
                   outputs=dict(outputs), opset=dict(obj.get("opset") or {}),
                   parity=dict(obj.get("parity") or {}),
                   extra={k: v for k, v in obj.items() if k not in known})


class Manifest:
    """A validated ``manifest.json``. ``data`` is the plain JSON object; the properties are
    the parts the runtime depends on, checked once here so nothing else re-validates."""

    def __init__(self, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise BundleError("manifest: top level is not a JSON object")
        version = _require(data, "schema_version", str, "")
        major = version.split(".", 1)[0]
        if not major.isdigit():
            raise BundleError(f"manifest: schema_version {version!r} is not MAJOR.MINOR")
        if int(major) != int(SCHEMA_VERSION.split(".")[0]):
            raise SchemaVersionError(
                f"manifest schema {version} is not supported by this edge-runtime (reads "
                f"{SCHEMA_VERSION.split('.')[0]}.x); upgrade edge-runtime to load this bundle")
        self.data = data
        self.name: str = _require(data, "name", str, "")
        if not self.name:
            raise BundleError("manifest: field 'name' is empty")
        self.version: str = _require(data, "version", str, "")
        try:
            parse_semver(self.version)
        except BundleError as exc:
            raise BundleError(f"manifest: field 'version': {exc}") from None
        self.task: str = _require(data, "task", str, "")
        if self.task not in TASKS:
            raise BundleError(f"manifest: field 'task' {self.task!r} is not one of {TASKS}")
        inputs = _require(data, "inputs", dict, "")
        feats = _require(inputs, "features", list, "inputs.")
        if not feats:
            raise BundleError("manifest: 'inputs.features' is empty")
        self.features: tuple[Feature, ...] = tuple(self._feature(f, i) for i, f in enumerate(feats))
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise BundleError("manifest: 'inputs.features' has duplicate names")
        outputs = data.get("outputs") or {}
        if not isinstance(outputs, dict):
            raise BundleError("manifest: field 'outputs' is not an object")
        self.classes: Optional[list[Any]] = outputs.get("classes")
        if self.task == "classification" and not isinstance(self.classes, list):
            raise BundleError("manifest: a classification bundle needs 'outputs.classes'")
        arts = _require(data, "artifacts", list, "")
        if not arts:
            raise BundleError("manifest: 'artifacts' is empty")
        self.artifacts: tuple[Artifact, ...] = tuple(
            Artifact.from_json(a, i) for i, a in enumerate(arts))
        if len({a.path for a in self.artifacts}) != len(self.artifacts):
            raise BundleError("manifest: two artifacts share one path")
        golden = data.get("golden")
        if golden is not None:
            _check_golden(golden, len(self.features), "golden")
        for i, art in enumerate(self.artifacts):
            if art.extra.get("golden") is not None:
                _check_golden(art.extra["golden"], len(self.features), f"artifacts[{i}].golden",
                              inputs_required=False)
        self.golden: Optional[dict[str, Any]] = golden
        self.reference: Optional[dict[str, Any]] = data.get("reference")
        self.provenance: dict[str, Any] = dict(data.get("provenance") or {})
        #: sha256 of the exact bytes parsed (set by from_bytes), for the signature check
        self.raw_sha256: Optional[str] = None

    @staticmethod
    def _feature(obj: Any, i: int) -> Feature:
        where = f"inputs.features[{i}]."
        if not isinstance(obj, dict):
            raise BundleError(f"manifest: '{where[:-1]}' is not an object")
        rng = obj.get("range")
        if rng is not None:
            if (not isinstance(rng, list) or len(rng) != 2
                    or not all(isinstance(v, (int, float)) for v in rng)):
                raise BundleError(f"manifest: '{where}range' must be [low, high]")
            rng = (float(rng[0]), float(rng[1]))
        return Feature(name=_require(obj, "name", str, where),
                       allow_nan=bool(obj.get("allow_nan", False)), range=rng)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        if len(raw) > MAX_MANIFEST_BYTES:
            raise BundleError(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"manifest.json is not valid JSON: {exc}") from None
        manifest = cls(data)
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
        "outputs": {"classes": classes} if task == "classification" else {},
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

    def artifact_for(self, formats: Iterable[str], precision: Optional[str] = None
                     ) -> Optional[Artifact]:
        """The first artifact in one of ``formats``: the requested precision, else fp32 first."""
        order = [precision] if precision else ["fp32", "fp64", "fp16", "int8"]
        fmts = tuple(formats)
        for prec in order:
            for art in self.manifest.artifacts:
                if art.format in fmts and art.precision == prec:
                    return art
        return None


def open_bundle(path: PathLike) -> Bundle:
    """Open a bundle directory or ``.tar.gz``: manifest validated, artifacts not yet read.

    Raises:
        BundleError: not a bundle, unreadable or invalid manifest (names the field).
        SchemaVersionError: the manifest's major schema version is newer than ours.
        UnsafeArchiveError: the archive holds a member that is not a plain, safe file.
    """
    p = Path(path)
    if p.is_dir():
        mpath = p / MANIFEST_NAME
        if not mpath.is_file():
            raise BundleError(f"{p}: no {MANIFEST_NAME} (not a bundle directory)")
        with open(mpath, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
        manifest = Manifest.from_bytes(raw)
        files = {a.path: p / a.path for a in manifest.artifacts}
        return Bundle(manifest, files, str(p))
    if p.is_file():
        members = read_archive(p)
        if MANIFEST_NAME not in members:
            raise BundleError(f"{p}: archive has no {MANIFEST_NAME}")
        manifest = Manifest.from_bytes(members[MANIFEST_NAME])
        return Bundle(manifest, members, str(p))
    raise BundleError(f"{p}: no such bundle (expected a directory or a .tar.gz)")


def _check_member(member: tarfile.TarInfo, max_member_bytes: int) -> str:
    name = member.name
    if name.startswith("./"):
        name = name[2:]
    if not member.isfile():
        kind = "link" if member.issym() or member.islnk() else "non-regular file"
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


def read_archive(path: PathLike, *, max_member_bytes: int = MAX_ARTIFACT_BYTES,
                 max_total_bytes: int = 2 * MAX_ARTIFACT_BYTES) -> dict[str, bytes]:
    """Read a bundle archive into memory, refusing anything but a few flat, plain files.

    Raises:
        UnsafeArchiveError: links, devices, directories, ``..``/absolute names, too many or too
            large members, duplicate names.
        BundleError: not a readable gzip'd tar.
    """
    out: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(os.fspath(path), mode="r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_ARCHIVE_MEMBERS:
                    raise UnsafeArchiveError(f"archive has more than {MAX_ARCHIVE_MEMBERS} members")
                if member.isdir() and member.name in (".", "./"):
                    continue
                name = _check_member(member, max_member_bytes)
                if name in out:
                    raise UnsafeArchiveError(f"archive member {name!r} appears twice")
                total += member.size
                if total > max_total_bytes:
                    raise UnsafeArchiveError(f"archive unpacks to more than {max_total_bytes} bytes")
                fh = tar.extractfile(member)
                if fh is None:
                    raise UnsafeArchiveError(f"archive member {name!r} has no data")
                data = fh.read(member.size + 1)
                if len(data) != member.size:
                    raise BundleError(f"archive member {name!r} is truncated")
                out[name] = data
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BundleError(f"{path}: not a readable bundle archive ({exc})") from None
    return out


def pack_bundle(bundle_dir: PathLike, out_file: PathLike) -> Path:
    """Pack a verified bundle directory into one reproducible ``.tar.gz`` (atomic write)."""
    bundle = open_bundle(bundle_dir)
    bundle.verify()
    names = [MANIFEST_NAME] + [a.path for a in bundle.manifest.artifacts]
    if (Path(bundle_dir) / SIGNATURE_NAME).is_file():
        names.append(SIGNATURE_NAME)  # a signed bundle stays signed in transport
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
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


def unpack_bundle(archive: PathLike, out_dir: PathLike) -> Path:
    """Unpack an archive into ``out_dir`` safely: members are checked, the artifacts verified,
    and the directory appears complete or not at all (built aside, then renamed)."""
    members = read_archive(archive)
    if MANIFEST_NAME not in members:
        raise BundleError(f"{archive}: archive has no {MANIFEST_NAME}")
    bundle = Bundle(Manifest.from_bytes(members[MANIFEST_NAME]), members, str(archive))
    bundle.verify()
    out = Path(out_dir)
    if out.exists():
        raise BundleError(f"{out}: already exists; refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, data in members.items():
            atomic_write_bytes(tmp / name, data)
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
