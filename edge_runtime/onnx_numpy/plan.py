"""The graph, planned once at load: checked, topologically ordered, constants pre-built.

Running a plan is then a flat loop over prepared kernels with a dict of live arrays; nothing
about the graph is looked at again per call.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import UnsupportedModelError
from .fuse import FUSED_DOMAIN, subgraph_reads
from .fuse import fuse as fuse_nodes
from .ops import OpNode, lookup
from .proto import FLOAT, Graph, Model, decode_model
from .tensors import to_array

#: the values of the graph now running, visible to the subgraphs (Scan bodies) it calls
_SCOPE: ContextVar[Optional[dict[str, Any]]] = ContextVar("onnx_numpy_scope", default=None)


class Plan:
    """An executable graph (the main graph, or a Scan body with outer-scope access)."""

    def __init__(self, graph: Graph, opset: dict[str, int], outer: Sequence[str] = (),
                 fuse: bool = True):
        """``fuse``: apply the plan-time rewrites of :mod:`.fuse` (main graph only); False
        runs every node as written (the tests compare the two)."""
        self.opset = opset
        self.nested = bool(outer)
        self.constants: dict[str, Any] = {t.name: to_array(t) for t in graph.initializers}
        self.inputs = [v.name for v in graph.inputs if v.name not in self.constants]
        self.input_info = {v.name: v for v in graph.inputs}
        self.outputs = [v.name for v in graph.outputs]
        known = set(self.constants) | set(self.inputs) | set(outer) | {""}
        self.steps: list[tuple[Any, list[str], list[str]]] = []
        #: "domain::op_type" of each step, in step order (for tests and profiling)
        self.step_ops: list[str] = []
        unsupported: list[str] = []
        nodes = _topological(graph, known)
        if any(n.domain == FUSED_DOMAIN for n in nodes):
            raise UnsupportedModelError(f"domain '{FUSED_DOMAIN}' is the planner's own; a model "
                                        "file cannot use it")
        inner = subgraph_reads(nodes)
        self.has_subgraphs = bool(inner) or any(
            a.g is not None for n in nodes for a in n.attributes.values())
        if fuse and not self.nested:
            declared_float = {v.name for v in graph.inputs if v.elem_type == FLOAT}
            nodes = fuse_nodes(nodes, self.constants, set(self.outputs) | inner, declared_float)
            opset = {**opset, FUSED_DOMAIN: 1}
            read = inner | set(self.outputs) | {v for n in nodes for v in n.inputs}
            self.constants = {k: v for k, v in self.constants.items() if k in read}
        for node in nodes:
            domain = "" if node.domain == "ai.onnx" else node.domain
            version = opset.get(domain)
            entry = lookup(domain, node.op_type)
            if entry is None or version is None or version < entry[0]:
                label = f"{domain or 'ai.onnx'}::{node.op_type} (opset {version})"
                if label not in unsupported:
                    unsupported.append(label)
                continue
            try:
                kernel = entry[1](OpNode(node, version, self._subplan))
            except UnsupportedModelError:
                raise
            except (ValueError, TypeError, IndexError, KeyError, ArithmeticError,
                    MemoryError) as exc:  # attribute values that do not fit together
                raise UnsupportedModelError(
                    f"{domain or 'ai.onnx'}::{node.op_type} node '{node.name}' has invalid "
                    f"attributes: {type(exc).__name__}: {exc}") from None
            self.steps.append((kernel, list(node.inputs), list(node.outputs)))
            self.step_ops.append(f"{domain}::{node.op_type}" if domain else node.op_type)
        if unsupported:
            raise UnsupportedModelError(
                "the numpy backend does not support operator(s) " + ", ".join(unsupported)
                + "; use backend='onnxruntime' where it is available")
        self._fold_constants()

    def _subplan(self, graph: Graph) -> Plan:
        return Plan(graph, self.opset, outer=self._visible())

    def _visible(self) -> list[str]:
        names = list(self.constants) + self.inputs
        for _, _, outs in self.steps:
            names.extend(outs)
        return names

    def _fold_constants(self) -> None:
        """Run the nodes whose inputs are all constants now, once (shape arithmetic, casts)."""
        kept, kept_ops = [], []
        for (kernel, ins, outs), op_name in zip(self.steps, self.step_ops):
            if all(n == "" or n in self.constants for n in ins):
                try:
                    vals = kernel(*[self.constants.get(n) if n else None for n in ins])
                except Exception:  # leave it to run time, where the error names the input
                    kept.append((kernel, ins, outs))
                    kept_ops.append(op_name)
                    continue
                for name, val in zip(outs, vals):
                    if name:
                        self.constants[name] = val
            else:
                kept.append((kernel, ins, outs))
                kept_ops.append(op_name)
        self.steps, self.step_ops = kept, kept_ops

    def _run_steps(self, values: dict[str, Any]) -> None:
        # the hot loop: inputs fetched by the dict's own __getitem__ (absent optional inputs,
        # named "", read None), a single output stored without a zip
        values[""] = None
        get = values.__getitem__
        for kernel, ins, outs in self.steps:
            results = kernel(*map(get, ins))
            if len(outs) == 1:
                values[outs[0]] = results[0]
                continue
            for name, val in zip(outs, results):
                if name:
                    values[name] = val

    def run(self, feeds: dict[str, Any], wanted: Optional[Sequence[str]] = None,
            outer: Optional[dict[str, Any]] = None) -> list[Any]:
        if outer is None and not self.nested:
            values: dict[str, Any] = self.constants.copy()
        else:
            values = dict(outer) if outer else {}
            if self.nested and outer is None:
                values.update(_SCOPE.get() or {})
            values.update(self.constants)
        values.update(feeds)
        if self.has_subgraphs:  # the Scan bodies read this plan's values through the scope
            token = _SCOPE.set(values)
            try:
                self._run_steps(values)
            finally:
                _SCOPE.reset(token)
        else:
            self._run_steps(values)
        names = self.outputs if wanted is None else wanted
        try:
            return [values[n] for n in names]
        except KeyError as exc:
            raise UnsupportedModelError(f"the model has no output named {exc}") from None


def _topological(graph: Graph, known: set[str]) -> list[Any]:
    """Nodes in an order where every input is produced before use (Kahn's algorithm)."""
    producers: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            if out:
                producers[out] = i
    deps = []
    for i, node in enumerate(graph.nodes):
        d = set()
        for name in node.inputs:
            if name in known and name not in producers:
                continue
            if name not in producers:
                raise UnsupportedModelError(f"node '{node.name or node.op_type}' reads "
                                            f"'{name}', which nothing produces")
            d.add(producers[name])
        # a subgraph (Scan/Loop/If body) may read this graph's values by name: the node that
        # owns it depends on their producers too (names a body makes itself are not in
        # ``producers``: ONNX names are unique across nested graphs)
        d.update(producers[name] for name in subgraph_reads([node])
                 if name in producers and producers[name] != i)
        deps.append(d)
    users: dict[int, list[int]] = {i: [] for i in range(len(graph.nodes))}
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    remaining = [len(d) for d in deps]
    ready = deque(i for i, r in enumerate(remaining) if r == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(graph.nodes[i])
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                ready.append(u)
    if len(order) != len(graph.nodes):
        raise UnsupportedModelError("the model's graph has a cycle")
    return order


def load_plan(model_bytes: bytes, fuse: bool = True) -> tuple[Plan, Model]:
    """Decode and plan a model (``fuse``: see :class:`Plan`).

    Raises:
        ModelDecodeError: malformed bytes.
        UnsupportedModelError: operators the numpy backend does not implement (all named).
    """
    model = decode_model(model_bytes)
    assert model.graph is not None
    return Plan(model.graph, model.opset, fuse=fuse), model


__all__ = ["Plan", "load_plan", "np"]
