"""Plan-time rewrites of the node list: fewer, cheaper steps for the patterns the converters
emit, each only where its result stays within float32 rounding of the plain evaluation.

- **Scaler → linear step** (LinearClassifier, LinearRegressor, MatMul or Gemm reading the
  scaled values, optionally through a Cast to float): ``((x - o) * s) @ W`` becomes
  ``(x - o) @ (s W)`` — the scale is folded into the weights in float64 and stored as float32,
  as the consumer stores its own weights; one subtraction pass instead of the Scaler's two
  passes and a cast. The offset is folded too (``x @ (s W) + (b - (o s) W)``, no pass over ``x``
  at all) only when that cannot cost precision: summing ``x s W`` in float32 instead of
  ``(x - o) s W`` adds a rounding error of about ``eps * sum|o s W|``, so the offset is folded
  when that sum is at most the ``sum|W| + |b|`` the plain evaluation rounds anyway (features
  roughly centred). Off-centre features (a year, a price) keep the subtraction.
- **MatMul(W) → Add(b) → [Relu | Tanh | Sigmoid]** with constant ``W`` and bias: one ``Dense``
  step that adds the bias and applies the activation in place on the product's fresh buffer
  (same arithmetic, two fewer full-size temporaries).
- **Element-wise runs** (Add/Sub/Mul/Div/Pow and float activations, each reading the one
  before): one ``Chain`` step; the first op makes a new array, the others write into it where
  shape and type allow (GaussianNB's Sub → Pow → Div, MinMaxScaler's Mul → Add).
- **Scan output → Transpose → one-input float ops** (k-NN's distances → Sqrt): a Scan's scan
  outputs are new arrays, so the ops after the Transpose (a view) write into them: one
  ``TransposeInPlace`` step, no second distance matrix (tens of MB at 10k rows).

Only values nothing else reads are fused away: graph outputs, values with more than one
reader and values a subgraph reads stay as they are.
"""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np

from ..proto import Node
from .chain import chain
from .dense import dense
from .graph import FUSED_DOMAIN, NodeGraph, Rewrite, subgraph_reads
from .scaler import fold_scaler
from .scan import transpose_in_place

__all__ = ["FUSED_DOMAIN", "fuse", "subgraph_reads"]

#: in this order: a Scaler folds into a MatMul before that MatMul becomes a Dense step
REWRITES: tuple[Rewrite, ...] = (fold_scaler, dense, chain, transpose_in_place)


def fuse(nodes: list[Node], constants: dict[str, np.ndarray], keep: set[str],
         float32: Optional[set[str]] = None) -> list[Node]:
    """The rewritten node list (in a valid order if ``nodes`` was); folded weights are added to
    ``constants`` under fresh names. ``keep``: names that must stay observable; ``float32``:
    graph inputs declared float (a Scaler is folded only where its input is float32)."""
    float32 = float32 or set()
    counter = itertools.count()
    taken = set(constants) | keep | {v for n in nodes for v in (*n.inputs, *n.outputs)}

    def fresh(base: str) -> str:
        while True:
            name = f"{base}__fused{next(counter)}"
            if name not in taken:
                taken.add(name)
                return name

    nodes = list(nodes)
    for rewrite in REWRITES:
        # one scan per rewrite over the list as it is, then one rebuild: load time stays
        # linear in the graph's size
        g = NodeGraph(nodes, keep, float32)
        consumed: set[int] = set()
        placed: dict[int, list[Node]] = {}
        for i in range(len(nodes)):
            if i in consumed:
                continue
            replaced = rewrite(g, i, constants, fresh)
            if replaced is None or replaced[0] & consumed:
                continue
            drop, new = replaced
            consumed |= drop
            # the new nodes take the place of the last dropped one: every input of the
            # pattern is made before the node that reads it, so before the last one (also
            # when another pattern makes it), and every reader of its output comes after
            placed[max(drop)] = new
        if placed:
            rebuilt: list[Node] = []
            for j, node in enumerate(nodes):
                if j in placed:
                    rebuilt.extend(placed[j])
                elif j not in consumed:
                    rebuilt.append(node)
            nodes = rebuilt
    return nodes
