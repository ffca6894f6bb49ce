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
from typing import Callable, Optional

import numpy as np

from .proto import (
    A_FLOAT,
    A_FLOATS,
    A_INT,
    A_INTS,
    A_STRING,
    A_STRINGS,
    FLOAT,
    Attribute,
    Graph,
    Node,
)

#: the domain of the steps only the planner creates (never read from a model file)
FUSED_DOMAIN = "edge_runtime.fused"
ML = "ai.onnx.ml"
_ACTIVATIONS = ("Relu", "Tanh", "Sigmoid")

#: store(x, W', b'): the consumer's replacement nodes reading ``x`` (``b'`` None: bias as is)
Store = Callable[[str, np.ndarray, Optional[np.ndarray]], list[Node]]
#: (W as (features, outputs) float64, bias float64, store, more node indices to drop)
Weights = Optional[tuple[np.ndarray, np.ndarray, Store, set[int]]]


class _Graph:
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
    for rewrite in (_fold_scaler, _dense, _chain, _transpose_in_place):
        # one scan per rewrite over the list as it is, then one rebuild: load time stays
        # linear in the graph's size
        g = _Graph(nodes, keep, float32)
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


# --- Scaler → linear ------------------------------------------------------------------------

def _floats(node: Node, name: str) -> Optional[np.ndarray]:
    a = node.attributes.get(name)
    if a is None:
        return None
    return np.array(a.floats, dtype=np.float32).astype(np.float64)


def _with(node: Node, inputs: list[str], outputs: Optional[list[str]] = None,
          **floats: np.ndarray) -> Node:
    attrs = dict(node.attributes)
    for name, value in floats.items():
        if np.ndim(value) == 0:
            attrs[name] = Attribute(name=name, type=A_FLOAT, f=float(value))
        else:
            attrs[name] = Attribute(name=name, type=A_FLOATS,
                                    floats=[float(v) for v in np.ravel(value)])
    return Node(op_type=node.op_type, domain=node.domain, name=node.name, inputs=inputs,
                outputs=list(node.outputs) if outputs is None else outputs, attributes=attrs)


def _linear_rows(node: Node) -> Optional[int]:
    """Rows (classes / targets) of a linear ml op's coefficient matrix, as its kernel reads it."""
    if node.op_type == "LinearRegressor":
        a = node.attributes.get("targets")
        return a.i if a is not None else 1
    icpt = node.attributes.get("intercepts")
    if icpt is not None and icpt.floats:
        return len(icpt.floats)
    labels = [a for k in ("classlabels_ints", "classlabels_int64s", "classlabels_strings")
              if (a := node.attributes.get(k)) is not None]
    n_labels = len(labels[0].ints or labels[0].strings) if labels else 0
    return n_labels if n_labels > 2 else 1


def _offset_folds(o_s: np.ndarray, w: np.ndarray, b: np.ndarray) -> bool:
    """Folding the offset adds about eps * sum|o s W| to each output's rounding error; fold it
    only where that is no more than what the plain evaluation rounds (sum|W| + |b|)."""
    extra = np.abs(o_s) @ np.abs(w)
    own = np.abs(w).sum(axis=0) + np.abs(b)
    return bool(np.all(extra <= own))


def _fold_scaler(g: _Graph, i: int, constants: dict,
                 fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    scaler = g.nodes[i]
    if scaler.op_type != "Scaler" or scaler.domain != ML or len(scaler.outputs) != 1:
        return None
    j = g.only_reader(scaler.outputs[0])
    if j is None:
        return None
    drop = {i, j}
    src = scaler.outputs[0]
    user = g.nodes[j]
    if user.op_type == "Cast" and not user.domain:  # the Scaler's output is float already
        to = user.attributes.get("to")
        k = g.only_reader(user.outputs[0])
        if to is None or to.i != FLOAT or k is None:
            return None
        src, user = user.outputs[0], g.nodes[k]
        drop.add(k)
    if not user.inputs or user.inputs[0] != src or src in user.inputs[1:]:
        return None
    offset, scale = _floats(scaler, "offset"), _floats(scaler, "scale")
    x = scaler.inputs[0]
    if x not in g.float32:
        # a double input: the Scaler subtracts in float64 before rounding to float, which
        # the fold (rounding x first) would not reproduce for off-centre features
        return None
    as_float = fresh(x)
    cast = Node(op_type="Cast", name=f"{scaler.name}_as_float", inputs=[x], outputs=[as_float],
                attributes={"to": Attribute(name="to", type=A_INT, i=FLOAT)})
    weights = _consumer_weights(g, user, constants, fresh)
    if weights is None:
        return None
    w, b, store, more = weights
    drop |= more
    n_feat = w.shape[0]
    o = np.zeros(n_feat) if offset is None or offset.size == 0 else offset
    s = np.ones(n_feat) if scale is None or scale.size == 0 else scale
    if o.size not in (1, n_feat) or s.size not in (1, n_feat):
        return None
    o, s = np.broadcast_to(o, (n_feat,)), np.broadcast_to(s, (n_feat,))
    w_scaled = s[:, None] * w
    if _offset_folds(o * s, w, b):
        return drop, [cast] + store(as_float, w_scaled, b - (o * s) @ w)
    centred = fresh(x)
    o_name = fresh(f"{scaler.name or 'scaler'}_offset")
    constants[o_name] = o.astype(np.float32)
    sub = Node(op_type="Sub", name=f"{scaler.name}_centre", inputs=[as_float, o_name],
               outputs=[centred])
    return drop, [cast, sub] + store(centred, w_scaled, None)


def _consumer_weights(g: _Graph, user: Node, constants: dict,
                      fresh: Callable[[str], str]) -> Weights:
    """(W as (features, outputs) float64, bias float64, store, more nodes to drop) for a linear
    consumer, where ``store(x, W', b')`` gives its replacement nodes (``b'`` None: bias as is).
    A MatMul's bias is the constant of the Add after it, if one follows."""
    if user.domain == ML and user.op_type in ("LinearClassifier", "LinearRegressor"):
        coef = _floats(user, "coefficients")
        if coef is None or coef.size == 0:
            return None
        rows = _linear_rows(user)
        if not rows or coef.size % rows:
            return None
        w = coef.reshape(rows, -1).T
        icpt = _floats(user, "intercepts")
        b = np.zeros(rows) if icpt is None or icpt.size == 0 else icpt
        if b.size != rows:
            return None

        def store_linear(x: str, w2: np.ndarray, b2: Optional[np.ndarray]) -> list[Node]:
            extra = {} if b2 is None else {"intercepts": b2}
            return [_with(user, [x] + list(user.inputs[1:]), coefficients=w2.T, **extra)]

        return w, b, store_linear, set()
    if user.domain or user.op_type not in ("MatMul", "Gemm") or len(user.inputs) < 2:
        return None
    wt = constants.get(user.inputs[1])
    if wt is None or wt.ndim != 2 or wt.dtype != np.float32:
        return None
    if user.op_type == "MatMul":
        return _matmul_weights(g, user, wt, constants, fresh)
    return _gemm_weights(user, wt, constants, fresh)


def _bias_after(g: _Graph, node: Node, m: int, constants: dict) -> Optional[tuple[int, str]]:
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


def _matmul_weights(g: _Graph, user: Node, wt: np.ndarray, constants: dict,
                    fresh: Callable[[str], str]) -> Weights:
    m = wt.shape[1]
    bias = _bias_after(g, user, m, constants)
    if bias is not None and constants[bias[1]].dtype != np.float32:
        bias = None
    b = np.zeros(m) if bias is None else \
        np.broadcast_to(constants[bias[1]].astype(np.float64).reshape(-1), (m,))
    out = g.nodes[bias[0]].outputs[0] if bias is not None else user.outputs[0]

    def store_matmul(x: str, w2: np.ndarray, b2: Optional[np.ndarray]) -> list[Node]:
        w_name = _constant(constants, fresh(user.inputs[1]), w2)
        if b2 is None and bias is None:
            return [_with(user, [x, w_name])]
        mid = fresh(out)
        b_name = bias[1] if b2 is None and bias is not None else \
            _constant(constants, fresh(out + "_bias"), b if b2 is None else b2)
        return [_with(user, [x, w_name], [mid]),
                Node(op_type="Add", name=f"{user.name}_bias", inputs=[mid, b_name],
                     outputs=[out])]

    return wt.astype(np.float64), b, store_matmul, set() if bias is None else {bias[0]}


def _gemm_weights(user: Node, wt: np.ndarray, constants: dict,
                  fresh: Callable[[str], str]) -> Weights:
    def attr(name: str, default: float) -> float:
        a = user.attributes.get(name)
        return default if a is None else (a.f if a.type == A_FLOAT else a.i)

    if attr("transA", 0):
        return None
    trans_b, alpha, beta = bool(attr("transB", 0)), attr("alpha", 1.0), attr("beta", 1.0)
    w = (wt.T if trans_b else wt).astype(np.float64) * alpha
    c = constants.get(user.inputs[2]) if len(user.inputs) > 2 and user.inputs[2] else None
    if len(user.inputs) > 2 and user.inputs[2] and c is None:
        return None  # a bias computed at run time: leave the Gemm alone
    if c is not None and (c.dtype != np.float32 or c.ndim > 2 or
                          np.broadcast_shapes(c.shape, (1, w.shape[1])) != (1, w.shape[1])):
        return None
    bias = np.zeros(w.shape[1]) if c is None else \
        np.broadcast_to(c.astype(np.float64) * beta, (1, w.shape[1]))[0]

    def store_gemm(x: str, w2: np.ndarray, b2: Optional[np.ndarray]) -> list[Node]:
        w2 = w2 / alpha
        w_name = _constant(constants, fresh(user.inputs[1]), w2.T if trans_b else w2)
        ins = [x, w_name] + list(user.inputs[2:])
        if b2 is None:
            return [_with(user, ins)]
        ins = [x, w_name, _constant(constants, fresh(user.outputs[0] + "_bias"), b2.reshape(1, -1))]
        return [_with(user, ins, beta=np.float64(1.0))]

    return w, bias, store_gemm, set()


def _constant(constants: dict, name: str, value: np.ndarray) -> str:
    constants[name] = np.ascontiguousarray(value, dtype=np.float32)
    return name


# --- MatMul → Add → activation ------------------------------------------------------------------

def _dense(g: _Graph, i: int, constants: dict,
           fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    mm = g.nodes[i]
    if mm.op_type != "MatMul" or mm.domain or len(mm.inputs) != 2:
        return None
    w = constants.get(mm.inputs[1])
    if w is None or w.ndim != 2 or w.dtype.kind != "f":
        return None
    found = _bias_after(g, mm, w.shape[1], constants)
    if found is None or constants[found[1]].dtype != w.dtype:
        return None
    j, other = found
    add = g.nodes[j]
    drop, out, act = {i, j}, add.outputs[0], ""
    k = g.only_reader(out)
    if k is not None and g.nodes[k].op_type in _ACTIVATIONS and not g.nodes[k].domain:
        drop.add(k)
        out, act = g.nodes[k].outputs[0], g.nodes[k].op_type
    node = Node(op_type="Dense", domain=FUSED_DOMAIN, name=mm.name,
                inputs=[mm.inputs[0], mm.inputs[1], other], outputs=[out],
                attributes={"activation": Attribute(name="activation", type=A_STRING,
                                                    s=act.encode())})
    return drop, [node]


# --- element-wise runs ----------------------------------------------------------------------------

_CHAIN_BINARY = ("Add", "Sub", "Mul", "Div", "Pow")
_CHAIN_UNARY = ("Relu", "Tanh", "Sigmoid", "Exp", "Log", "Sqrt", "Abs", "Neg")


def _chain_op(node: Node, value: Optional[str] = None) -> bool:
    """True for an op a run can hold; after the first (``value``: the run's value so far) it
    must read that value once, as one operand."""
    if node.domain or len(node.outputs) != 1:
        return False
    if node.op_type in _CHAIN_BINARY:
        return len(node.inputs) == 2 and (value is None or node.inputs.count(value) == 1)
    return node.op_type in _CHAIN_UNARY and len(node.inputs) == 1


def _chain(g: _Graph, i: int, constants: dict,
           fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    start = g.nodes[i]
    if not _chain_op(start):
        return None
    drop, ops, slots = [i], [start.op_type], []
    inputs = list(start.inputs)
    value = start.outputs[0]
    while True:
        j = g.only_reader(value)
        if j is None or not _chain_op(g.nodes[j], value):
            break
        nxt = g.nodes[j]
        if nxt.op_type in _CHAIN_BINARY:
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


# --- Scan output → Transpose → one-input ops, in place ---------------------------------------

def _scan_output(g: _Graph, name: str) -> bool:
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


def _transpose_in_place(g: _Graph, i: int, constants: dict,
                        fresh: Callable[[str], str]) -> Optional[tuple[set, list]]:
    tr = g.nodes[i]
    if tr.op_type != "Transpose" or tr.domain or len(tr.inputs) != 1 or \
            g.only_reader(tr.inputs[0]) != i or not _scan_output(g, tr.inputs[0]):
        return None
    drop, ops, value = [i], [], tr.outputs[0]
    while True:
        j = g.only_reader(value)
        if j is None or g.nodes[j].op_type not in _CHAIN_UNARY or \
                not _chain_op(g.nodes[j], value):
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
