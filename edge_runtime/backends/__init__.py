"""Backend registry. Adding a backend is adding a module to this package that defines a
:class:`Backend` subclass decorated with :func:`register`; modules are found by name, so no
central list needs editing, and engines are imported only when a backend is used."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Type

from ..errors import (
    BackendError,
    BackendUnavailableError,
    EdgeRuntimeError,
    UnsignedNativeError,
    UnsupportedModelError,
)
from .base import Backend, BackendOptions

if TYPE_CHECKING:
    from ..bundle import Artifact, Bundle
    from ..profiles import DeviceProfile

__all__ = ["Backend", "BackendOptions", "register", "get_backend", "backend_names",
           "available_backends", "candidates", "Candidate", "Candidates", "Skipped"]

_REGISTRY: Dict[str, Type[Backend]] = {}
#: backend modules that could not be imported here (module name -> why): a backend whose engine
#: is missing (numpy inside Pyodide) must not take the registry down with it
_UNIMPORTABLE: Dict[str, str] = {}
_DISCOVERED = False


def register(cls: Type[Backend]) -> Type[Backend]:
    """Class decorator: make ``cls`` loadable by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            try:
                importlib.import_module(f"{__name__}.{info.name}")
            except ImportError as exc:
                _UNIMPORTABLE[info.name] = str(exc)
    _DISCOVERED = True


def backend_names() -> List[str]:
    """Every registered backend, in default preference order."""
    _discover()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].priority, n))


def available_backends() -> List[str]:
    """Registered backends whose engine is importable here."""
    return [n for n in backend_names() if _REGISTRY[n].is_available()]


def get_backend(name: str) -> Type[Backend]:
    """Raises:
        BackendError: no backend of that name (lists the known ones).
    """
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        broken = "".join(f"; {m} could not be imported ({why})" for m, why in _UNIMPORTABLE.items())
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(backend_names())}{broken}") from None


@dataclass(frozen=True)
class Candidate:
    """One engine that may run one artifact of the bundle on this machine."""

    backend: Type[Backend]
    artifact: Artifact

    @property
    def name(self) -> str:
        return self.backend.name


@dataclass(frozen=True)
class Skipped:
    """A backend passed over, and why. ``kind``: unknown | unavailable | async | no-artifact;
    ``refusal`` is what a caller that asked for this backend by name raises; ``untrusted``:
    native code without a reason to run it (:attr:`Bundle.native_trust`)."""

    name: str
    why: str
    kind: str
    refusal: Optional[EdgeRuntimeError] = None


@dataclass
class Candidates:
    """The usable (backend, artifact) pairs in preference order, and the backends passed over."""

    usable: List[Candidate] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self.usable)

    def reasons(self) -> List[str]:
        return [f"{s.name}: {s.why}" for s in self.skipped]


_PRECISION_ORDER = ("fp32", "fp64", "fp16", "int8")


def _artifacts(bundle: Bundle, cls: Type[Backend], precision: Optional[str],
               preferred: Optional[str], every_precision: bool) -> List[Artifact]:
    arts = [a for a in bundle.manifest.artifacts if a.format in cls.formats and cls.accepts(a)]
    if precision:  # asked for explicitly: that precision or nothing
        arts = [a for a in arts if a.precision == precision]
    elif not every_precision:  # the profile's precision is a preference only, then fp32 first
        order = ([preferred] if preferred else []) + list(_PRECISION_ORDER)
        arts = sorted((a for a in arts if a.precision in order), key=lambda a: order.index(a.precision))
    return arts if every_precision else arts[:1]


def _no_artifact(bundle: Bundle, cls: Type[Backend], precision: Optional[str]) -> str:
    mine = [a for a in bundle.manifest.artifacts if a.format in cls.formats]
    if mine and not any(cls.accepts(a) for a in mine):  # built for other machines: never loaded
        built = ", ".join(sorted({str(a.extra.get("arch")) for a in mine}))
        return f"bundle has no {'/'.join(cls.formats)} artifact for this machine (only for {built})"
    return f"bundle has no {'/'.join(cls.formats)} artifact" + (f" at precision {precision}" if precision else "")


def candidates(bundle: Bundle, profile: Optional[DeviceProfile] = None, precision: Optional[str] = None,
               *, backends: Optional[Sequence[str]] = None, sync: bool = True,
               every_precision: bool = False) -> Candidates:
    """THE list of engines that may run ``bundle`` here, used by ``load``, routing and bench alike.

    Backends: ``backends`` if given, else the profile's order, else every installed one by
    priority. Each must be registered, available, synchronous when ``sync``, and find an artifact
    of its formats it accepts (:meth:`Backend.accepts`: e.g. a compiled artifact for this
    architecture): at ``precision`` when given, else the profile's precision first, then fp32
    first; with ``every_precision``, one candidate per matching artifact.
    """
    names = list(backends) if backends is not None else (
        list(profile.backends) if profile is not None else available_backends())
    preferred = profile.precision if profile is not None else None
    out = Candidates()
    for name in names:
        if name not in backend_names():
            try:
                get_backend(name)
            except BackendError as exc:
                out.skipped.append(Skipped(name, "no such backend in this edge-runtime", "unknown", exc))
            continue
        cls = get_backend(name)
        if not cls.is_available():
            why = cls.unavailable_reason()
            msg = (f"backend {name!r} is not installed on this device" if why == "not installed"
                   else f"backend {name!r} is not available here: {why}")
            out.skipped.append(Skipped(name, why, "unavailable", BackendUnavailableError(msg)))
            continue
        if sync and cls.async_only:
            why = ("answers only asynchronously; use `model = await edge_runtime.load_async(...)` "
                   "and `await model.predict_async(rows)`")
            out.skipped.append(Skipped(name, why, "async", BackendError(f"backend {name}: {why}")))
            continue
        arts = _artifacts(bundle, cls, precision, preferred, every_precision)
        if not arts:
            why = _no_artifact(bundle, cls, precision or preferred)
            foreign = "for this machine" in why
            out.skipped.append(Skipped(name, why, "no-artifact",
                                       UnsupportedModelError(f"backend {name!r}: {why}") if foreign else None))
            continue
        if cls.requires_trust and not bundle.native_trust:
            why = (f"'{arts[0].path}' is native code and the bundle is neither signed by a key this device "
                   "trusts (trust=, EDGERT_TRUST, profile [signing]) nor installed through TUF by the sync "
                   "agent; pass allow_unsigned_native=True to run it anyway")
            out.skipped.append(Skipped(name, why, "untrusted", UnsignedNativeError(f"{bundle.origin}: {why}")))
            continue
        out.usable.extend(Candidate(cls, a) for a in arts)
    return out
