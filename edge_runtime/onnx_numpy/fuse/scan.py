"""Scan output → Transpose → one-input float ops (k-NN's distances → Sqrt): the ops after the
Transpose (a view) write into the array the Scan made for this call."""

from __future__ import annotations

from typing import Callable, Optional

from ..proto import A_STRINGS, Attribute, Node
from .chain import CHAIN_UNARY, chain_op
from .graph import FUSED_DOMAIN, NodeGraph


def _scan_output(g: NodeGraph, name: str) -> bool:
    """True when ``name`` is a scan output (not a passed-through state) of a Scan node: an
    array the Scan made for this call."""
    for n in g.nodes:
        if n.op_type == "Scan" and not n.domain and name in n.outputs:
            body, m = n.attributes.get("body"), n.attributes.get("num_scan_inputs")
            if body is None or body.g is None or m is None:
                return False
            n_state = len(body.g.inputs) - m.i
            return 0 <= n_state <= n.outputs.index(name)
    return False


def transpose_in_place(g: NodeGraph, i: int, constants: dict,
                        fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    tr = g.nodes[i]
    if tr.op_type != "Transpose" or tr.domain or len(tr.inputs) != 1 or \
            g.only_reader(tr.inputs[0]) != i or not _scan_output(g, tr.inputs[0]):
        return None
    drop, ops, value = [i], [], tr.outputs[0]
    while True:
        j = g.only_reader(value)
        if j is None or g.nodes[j].op_type not in CHAIN_UNARY or \
                not chain_op(g.nodes[j], value):
            break
        drop.append(j)
        ops.append(g.nodes[j].op_type)
        value = g.nodes[j].outputs[0]
    if not ops:
        return None
    attrs = {"ops": Attribute(name="ops", type=A_STRINGS, strings=[o.encode() for o in ops])}
    if "perm" in tr.attributes:
        attrs["perm"] = tr.attributes["perm"]
    node = Node(op_type="TransposeInPlace", domain=FUSED_DOMAIN, name=tr.name,
                inputs=[tr.inputs[0]], outputs=[value], attributes=attrs)
    return set(drop), [node]
