"""Operator registry: ``@op("Gemm")`` / ``@op("Scaler", domain="ai.onnx.ml")``.

A registered function is a *factory*: it receives the node (attributes parsed, opset known)
once at load and returns the kernel, a function of the input arrays returning a list of output
arrays. Work that does not depend on the inputs (reshaping coefficients, flattening trees)
happens in the factory, so it is done once per model, not once per call.
"""

from __future__ import annotations

import builtins  # the accessors below named int/float/str shadow the builtins in the class
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ...errors import AttributeMissing as AttributeMissing  # defined in errors.py; importable from here too
from ..proto import (
    A_FLOAT,
    A_FLOATS,
    A_GRAPH,
    A_INT,
    A_INTS,
    A_STRING,
    A_STRINGS,
    A_TENSOR,
    Node,
)

Kernel = Callable[..., list]
Factory = Callable[["OpNode"], Kernel]

ML = "ai.onnx.ml"
_REGISTRY: dict[tuple[str, str], tuple[int, Factory]] = {}
_loaded = False


def op(op_type: str, domain: str = "", since: int = 1) -> Callable[[Factory], Factory]:
    """Register a kernel factory for ``domain``/``op_type`` (valid from opset ``since``)."""

    def deco(fn: Factory) -> Factory:
        _REGISTRY[(domain, op_type)] = (since, fn)
        return fn

    return deco


def lookup(domain: str, op_type: str) -> Optional[tuple[int, Factory]]:
    _load_all()
    return _REGISTRY.get((domain, op_type))


def supported() -> list[tuple[str, str]]:
    _load_all()
    return sorted(_REGISTRY)


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


class _Required:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


@dataclass
class OpNode:
    """A node as the factories see it: attributes by name, the opset its domain is at."""

    node: Node
    opset: int
    #: plans a subgraph attribute (Scan bodies); set by the planner
    plan_graph: Optional[Callable[[Any], Any]] = None

    @property
    def n_inputs(self) -> int:
        return len(self.node.inputs)

    def has(self, name: str) -> bool:
        return name in self.node.attributes

    def _get(self, name: str, kind: int, default: Any) -> Any:
        a = self.node.attributes.get(name)
        if a is None:
            if default is _REQUIRED:
                raise AttributeMissing(f"{self.node.op_type} node '{self.node.name}' lacks the "
                                       f"required attribute '{name}'")
            return default
        if a.type and a.type != kind:
            raise AttributeMissing(f"{self.node.op_type} attribute '{name}' has type {a.type}, "
                                   f"expected {kind}")
        return a

    def int(self, name: str, default: Any = None) -> Any:
        a = self._get(name, A_INT, default if default is not None else _REQUIRED)
        return a.i if a is not default else default

    def float(self, name: str, default: Any = None) -> Any:
        a = self._get(name, A_FLOAT, default if default is not None else _REQUIRED)
        return a.f if a is not default else default

    def str(self, name: str, default: Any = None) -> Any:
        a = self._get(name, A_STRING, default if default is not None else _REQUIRED)
        return a.s.decode("utf-8", "replace") if a is not default else default

    def ints(self, name: builtins.str, default: Any = _REQUIRED) -> Any:
        a = self._get(name, A_INTS, default)
        return list(a.ints) if a is not default else default

    def floats(self, name: builtins.str, default: Any = _REQUIRED) -> Any:
        a = self._get(name, A_FLOATS, default)
        return list(a.floats) if a is not default else default

    def strings(self, name: builtins.str, default: Any = _REQUIRED) -> Any:
        a = self._get(name, A_STRINGS, default)
        return [s.decode("utf-8", "replace") for s in a.strings] if a is not default else default

    def tensor(self, name: builtins.str, default: Any = _REQUIRED) -> Any:
        from ..tensors import to_array

        a = self._get(name, A_TENSOR, default)
        if a is default:
            return default
        if a.t is None:
            raise AttributeMissing(f"{self.node.op_type} attribute '{name}' holds no tensor")
        return to_array(a.t)

    def graph(self, name: builtins.str) -> Any:
        a = self._get(name, A_GRAPH, _REQUIRED)
        if a.g is None or self.plan_graph is None:
            raise AttributeMissing(f"{self.node.op_type} attribute '{name}' holds no graph")
        return self.plan_graph(a.g)

    def fail(self, msg: builtins.str) -> Exception:
        from ...errors import UnsupportedModelError

        return UnsupportedModelError(f"{self.node.op_type} node '{self.node.name}': {msg}")
