"""MatMul(W) → Add(b) → [Relu | Tanh | Sigmoid] with constant W and bias: one ``Dense`` step
that adds the bias and applies the activation in place on the product's fresh buffer."""

from __future__ import annotations

from typing import Callable, Optional

from ..proto import A_STRING, Attribute, Node
from .graph import ACTIVATIONS, FUSED_DOMAIN, NodeGraph, bias_after


def dense(g: NodeGraph, i: int, constants: dict,
           fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    mm = g.nodes[i]
    if mm.op_type != "MatMul" or mm.domain or len(mm.inputs) != 2:
        return None
    w = constants.get(mm.inputs[1])
    if w is None or w.ndim != 2 or w.dtype.kind != "f":
        return None
    found = bias_after(g, mm, w.shape[1], constants)
    if found is None or constants[found[1]].dtype != w.dtype:
        return None
    j, other = found
    add = g.nodes[j]
    drop, out, act = {i, j}, add.outputs[0], ""
    k = g.only_reader(out)
    if k is not None and g.nodes[k].op_type in ACTIVATIONS and not g.nodes[k].domain:
        drop.add(k)
        out, act = g.nodes[k].outputs[0], g.nodes[k].op_type
    node = Node(op_type="Dense", domain=FUSED_DOMAIN, name=mm.name,
                inputs=[mm.inputs[0], mm.inputs[1], other], outputs=[out],
                attributes={"activation": Attribute(name="activation", type=A_STRING,
                                                    s=act.encode())})
    return drop, [node]
