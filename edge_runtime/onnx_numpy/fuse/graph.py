"""What every rewrite shares: the node list with its readers, the fused domain, and small
helpers to read and write node attributes and add folded constants."""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np

from ..proto import A_FLOAT, A_FLOATS, FLOAT, Attribute, Graph, Node

#: the domain of the steps only the planner creates (never read from a model file)
FUSED_DOMAIN = "edge_runtime.fused"
ML = "ai.onnx.ml"
ACTIVATIONS = ("Relu", "Tanh", "Sigmoid")

#: rewrite(graph, index, constants, fresh) -> (node indices dropped, replacement nodes) or None
Rewrite = Callable[["NodeGraph", int, dict, Callable[[str], str]], Optional[tuple[set, list]]]


class NodeGraph:
    """The node list with, per value name, the indices of the nodes that read it."""

    def __init__(self, nodes: list[Node], keep: set[str], float32: set[str]):
        self.nodes = nodes
        self.keep = keep
        self.readers: dict[str, list[int]] = {}
        #: values known to be float32: declared float inputs, outputs of Cast(to=FLOAT)
        self.float32 = set(float32)
        for i, n in enumerate(nodes):
            for name in n.inputs:
                if name:
                    self.readers.setdefault(name, []).append(i)
            to = n.attributes.get("to")
            if n.op_type == "Cast" and not n.domain and to is not None and to.i == FLOAT:
                self.float32.update(n.outputs)

    def only_reader(self, name: str) -> Optional[int]:
        """The single node reading ``name`` if nothing else (graph output, subgraph) needs it."""
        users = self.readers.get(name, [])
        if name in self.keep or len(users) != 1:
            return None
        return users[0]


def subgraph_reads(nodes: list[Node]) -> set[str]:
    """Every name read inside the subgraphs (Scan bodies) of ``nodes``, at any depth."""
    names: set[str] = set()
    stack: list[Graph] = [a.g for n in nodes for a in n.attributes.values() if a.g is not None]
    while stack:
        g = stack.pop()
        for n in g.nodes:
            names.update(n.inputs)
            stack.extend(a.g for a in n.attributes.values() if a.g is not None)
    return names


def float_attr(node: Node, name: str) -> Optional[np.ndarray]:
    a = node.attributes.get(name)
    if a is None:
        return None
    return np.array(a.floats, dtype=np.float32).astype(np.float64)


def with_attrs(node: Node, inputs: list[str], outputs: Optional[list[str]] = None,
          **floats: Union[np.ndarray, float]) -> Node:
    attrs = dict(node.attributes)
    for name, value in floats.items():
        if np.ndim(value) == 0:
            attrs[name] = Attribute(name=name, type=A_FLOAT, f=float(value))
        else:
            attrs[name] = Attribute(name=name, type=A_FLOATS,
                                    floats=[float(v) for v in np.ravel(value)])
    return Node(op_type=node.op_type, domain=node.domain, name=node.name, inputs=inputs,
                outputs=list(node.outputs) if outputs is None else outputs, attributes=attrs)


def add_constant(constants: dict, name: str, value: np.ndarray) -> str:
    constants[name] = np.ascontiguousarray(value, dtype=np.float32)
    return name


def bias_after(g: NodeGraph, node: Node, m: int, constants: dict) -> Optional[tuple[int, str]]:
    """(index, constant name) of an Add that adds a constant bias of ``m`` values (or one) to
    ``node``'s output and nothing else reads that output."""
    j = g.only_reader(node.outputs[0])
    if j is None:
        return None
    add = g.nodes[j]
    if add.op_type != "Add" or add.domain or len(add.inputs) != 2:
        return None
    other = add.inputs[1] if add.inputs[0] == node.outputs[0] else add.inputs[0]
    c = constants.get(other)
    if other == node.outputs[0] or c is None or c.dtype.kind != "f" or c.ndim > 2 or \
            (c.ndim and c.shape[-1] not in (1, m)) or (c.ndim == 2 and c.shape[0] != 1):
        return None
    return j, other
