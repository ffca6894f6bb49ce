"""Element-wise runs (Add/Sub/Mul/Div/Pow and float activations, each reading the one before):
one ``Chain`` step whose first op makes a new array and whose others write into it."""

from __future__ import annotations

from typing import Callable, Optional

from ..proto import A_INTS, A_STRINGS, Attribute, Node
from .graph import FUSED_DOMAIN, NodeGraph

CHAIN_BINARY = ("Add", "Sub", "Mul", "Div", "Pow")
CHAIN_UNARY = ("Relu", "Tanh", "Sigmoid", "Exp", "Log", "Sqrt", "Abs", "Neg")


def chain_op(node: Node, value: Optional[str] = None) -> bool:
    """True for an op a run can hold; after the first (``value``: the run's value so far) it
    must read that value once, as one operand."""
    if node.domain or len(node.outputs) != 1:
        return False
    if node.op_type in CHAIN_BINARY:
        return len(node.inputs) == 2 and (value is None or node.inputs.count(value) == 1)
    return node.op_type in CHAIN_UNARY and len(node.inputs) == 1


def chain(g: NodeGraph, i: int, constants: dict,
           fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    start = g.nodes[i]
    if not chain_op(start):
        return None
    drop, ops, slots = [i], [start.op_type], []
    inputs = list(start.inputs)
    value = start.outputs[0]
    while True:
        j = g.only_reader(value)
        if j is None or not chain_op(g.nodes[j], value):
            break
        nxt = g.nodes[j]
        if nxt.op_type in CHAIN_BINARY:
            slot = nxt.inputs.index(value)
            inputs.append(nxt.inputs[1 - slot])
        else:
            slot = -1
        drop.append(j)
        ops.append(nxt.op_type)
        slots.append(slot)
        value = nxt.outputs[0]
    if len(ops) < 2:
        return None
    node = Node(op_type="Chain", domain=FUSED_DOMAIN, name=start.name, inputs=inputs,
                outputs=[value], attributes={
                    "ops": Attribute(name="ops", type=A_STRINGS, strings=[o.encode() for o in ops]),
                    "slots": Attribute(name="slots", type=A_INTS, ints=slots)})
    return set(drop), [node]
