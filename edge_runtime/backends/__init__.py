"""Backend registry. Adding a backend is adding a module to this package that defines a
:class:`Backend` subclass decorated with :func:`register`; modules are found by name, so no
central list needs editing, and engines are imported only when a backend is used."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, List, Type

from ..errors import BackendError
from .base import Backend, BackendOptions

__all__ = ["Backend", "BackendOptions", "register", "get_backend", "backend_names",
           "available_backends"]

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
