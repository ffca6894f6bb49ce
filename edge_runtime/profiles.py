"""Device profiles: what a target is (arch, cores, memory) and how to run models on it
(backend order, threads, precision) with which budgets (p99 latency, memory).

Profiles are TOML files: the ones shipped in ``device_profiles/``, the user's own in
``$EDGERT_PROFILES_DIR`` (else ``profiles/`` in the user config dir), or any path given directly.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ProfileError
from .paths import profiles_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10
    import tomli as tomllib

_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "description": (str,), "arch": (str,), "cores": (int,),
    "memory_mb": (int,), "backends": (list,), "threads": (int,), "precision": (str,),
    "optimization": (str,), "latency_budget_ms": (int, float), "memory_budget_mb": (int, float),
    "conditions": (dict,), "probation": (dict,), "signing": (dict,), "auto_measure": (bool,),
}
_REQUIRED = ("arch", "cores", "memory_mb", "backends", "threads", "precision",
             "latency_budget_ms", "memory_budget_mb")
_PRECISIONS = ("fp32", "fp16", "int8", "fp64")
_OPTIMIZATIONS = ("all", "extended", "basic", "disable")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    arch: str
    cores: int
    memory_mb: int
    backends: tuple[str, ...]
    threads: int
    precision: str
    latency_budget_ms: float
    memory_budget_mb: float
    optimization: str = "all"
    description: str = ""
    conditions: dict[str, Any] = field(default_factory=dict)
    probation: dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None
    #: bundle signatures on this device: ``trust`` (PEM paths, relative to the profile's folder)
    #: and ``require`` (see :func:`edge_runtime.signing.profile_trust`)
    signing: dict[str, Any] = field(default_factory=dict)
    #: ``auto`` times its few best candidates on the first load of a bundle (≤ ~200 ms, cached);
    #: false: the measured rule alone (:mod:`edge_runtime.routing_rule`)
    auto_measure: bool = True


def builtin_dir() -> Path:
    """Installed: ``edge_runtime/device_profiles`` (setup.cfg maps it); in a source checkout:
    the top-level ``device_profiles/`` beside the package."""
    here = Path(__file__).resolve().parent
    for cand in (here / "device_profiles", here.parent / "device_profiles"):
        if cand.is_dir():
            return cand
    return here / "device_profiles"


def user_dir() -> Path:
    """The user's own profiles (``edge_runtime.paths.profiles_dir``)."""
    return profiles_dir()


def _search_dirs() -> list[Path]:
    return [user_dir(), builtin_dir()]


def list_profiles() -> list[DeviceProfile]:
    """Every profile found, user profiles shadowing built-in ones of the same name."""
    seen: dict[str, DeviceProfile] = {}
    for d in reversed(_search_dirs()):
        if d.is_dir():
            for f in sorted(d.glob("*.toml")):
                seen[f.stem] = parse_profile(f)
    return sorted(seen.values(), key=lambda p: p.name)


def load_profile(name_or_path: str) -> DeviceProfile:
    """A profile by name (user dir first, then built-in) or by path to a ``.toml`` file.

    Raises:
        ProfileError: not found, not TOML, or a field is missing / of the wrong type.
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or os.sep in name_or_path:
        return parse_profile(p)
    for d in _search_dirs():
        f = d / f"{name_or_path}.toml"
        if f.is_file():
            return parse_profile(f)
    known = ", ".join(sorted({f.stem for d in _search_dirs() if d.is_dir() for f in d.glob("*.toml")}))
    raise ProfileError(f"no device profile named {name_or_path!r}; known: {known}")


def parse_profile(path: Path) -> DeviceProfile:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None
    return profile_from_dict(data, name=Path(path).stem, path=str(path))


def profile_from_dict(data: dict[str, Any], *, name: str, path: Optional[str] = None) -> DeviceProfile:
    where = path or name
    for key, value in data.items():
        kinds = _FIELDS.get(key)
        if kinds is None:
            raise ProfileError(f"{where}: unknown field '{key}' (known: {', '.join(_FIELDS)})")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ProfileError(f"{where}: field '{key}' must be {kinds[0].__name__}, "
                               f"got {type(value).__name__}")
    for key in _REQUIRED:
        if key not in data:
            raise ProfileError(f"{where}: missing field '{key}'")
    if data["threads"] < 1 or data["cores"] < 1:
        raise ProfileError(f"{where}: field '{'threads' if data['threads'] < 1 else 'cores'}' must be ≥ 1")
    if data["precision"] not in _PRECISIONS:
        raise ProfileError(f"{where}: field 'precision' must be one of {_PRECISIONS}")
    opt = data.get("optimization", "all")
    if opt not in _OPTIMIZATIONS:
        raise ProfileError(f"{where}: field 'optimization' must be one of {_OPTIMIZATIONS}")
    if not data["backends"] or not all(isinstance(b, str) for b in data["backends"]):
        raise ProfileError(f"{where}: field 'backends' must be a non-empty list of names")
    for key in ("latency_budget_ms", "memory_budget_mb", "memory_mb"):
        if data[key] <= 0:
            raise ProfileError(f"{where}: field '{key}' must be > 0")
    signing = dict(data.get("signing", {}))
    trust = signing.get("trust", [])
    if (set(signing) - {"trust", "require"} or not isinstance(trust, list)
            or not all(isinstance(t, str) for t in trust) or not isinstance(signing.get("require", False), bool)):
        raise ProfileError(f"{where}: field 'signing' takes trust = [\"key.pem\", …] and require = true|false")
    if path is not None:
        signing["trust"] = [str(Path(path).parent / t) for t in trust]
    return DeviceProfile(
        name=data.get("name", name), arch=data["arch"], cores=data["cores"],
        memory_mb=data["memory_mb"], backends=tuple(data["backends"]), threads=data["threads"],
        precision=data["precision"], latency_budget_ms=float(data["latency_budget_ms"]),
        memory_budget_mb=float(data["memory_budget_mb"]), optimization=opt,
        description=data.get("description", ""), conditions=dict(data.get("conditions", {})),
        probation=dict(data.get("probation", {})), path=path, signing=signing,
        auto_measure=data.get("auto_measure", True))
