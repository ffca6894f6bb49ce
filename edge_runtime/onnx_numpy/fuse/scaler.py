"""Scaler → linear step (LinearClassifier, LinearRegressor, MatMul or Gemm reading the scaled
values, optionally through a Cast to float): the scale folded into the weights, and the offset
into the bias where the rounding bound allows (see the package docstring)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..proto import A_FLOAT, A_INT, FLOAT, Attribute, Node
from .graph import ML, NodeGraph, add_constant, bias_after, float_attr, with_attrs

#: store(x, W', b'): the consumer's replacement nodes reading ``x`` (``b'`` None: bias as is)
Store = Callable[[str, np.ndarray, Optional[np.ndarray]], list[Node]]
#: (W as (features, outputs) float64, bias float64, store, more node indices to drop)
Weights = Optional[tuple[np.ndarray, np.ndarray, Store, set[int]]]


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


def fold_scaler(g: NodeGraph, i: int, constants: dict,
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
    offset, scale = float_attr(scaler, "offset"), float_attr(scaler, "scale")
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


def _consumer_weights(g: NodeGraph, user: Node, constants: dict,
                      fresh: Callable[[str], str]) -> Weights:
    """(W as (features, outputs) float64, bias float64, store, more nodes to drop) for a linear
    consumer, where ``store(x, W', b')`` gives its replacement nodes (``b'`` None: bias as is).
    A MatMul's bias is the constant of the Add after it, if one follows."""
    if user.domain == ML and user.op_type in ("LinearClassifier", "LinearRegressor"):
        coef = float_attr(user, "coefficients")
        if coef is None or coef.size == 0:
            return None
        rows = _linear_rows(user)
        if not rows or coef.size % rows:
            return None
        w = coef.reshape(rows, -1).T
        icpt = float_attr(user, "intercepts")
        b = np.zeros(rows) if icpt is None or icpt.size == 0 else icpt
        if b.size != rows:
            return None

        def store_linear(x: str, w2: np.ndarray, b2: Optional[np.ndarray]) -> list[Node]:
            ins = [x] + list(user.inputs[1:])
            if b2 is None:
                return [with_attrs(user, ins, coefficients=w2.T)]
            return [with_attrs(user, ins, coefficients=w2.T, intercepts=b2)]

        return w, b, store_linear, set()
    if user.domain or user.op_type not in ("MatMul", "Gemm") or len(user.inputs) < 2:
        return None
    wt = constants.get(user.inputs[1])
    if wt is None or wt.ndim != 2 or wt.dtype != np.float32:
        return None
    if user.op_type == "MatMul":
        return _matmul_weights(g, user, wt, constants, fresh)
    return _gemm_weights(user, wt, constants, fresh)


def _matmul_weights(g: NodeGraph, user: Node, wt: np.ndarray, constants: dict,
                    fresh: Callable[[str], str]) -> Weights:
    m = wt.shape[1]
    bias = bias_after(g, user, m, constants)
    if bias is not None and constants[bias[1]].dtype != np.float32:
        bias = None
    b = np.zeros(m) if bias is None else \
        np.broadcast_to(constants[bias[1]].astype(np.float64).reshape(-1), (m,))
    out = g.nodes[bias[0]].outputs[0] if bias is not None else user.outputs[0]

    def store_matmul(x: str, w2: np.ndarray, b2: Optional[np.ndarray]) -> list[Node]:
        w_name = add_constant(constants, fresh(user.inputs[1]), w2)
        if b2 is None and bias is None:
            return [with_attrs(user, [x, w_name])]
        mid = fresh(out)
        b_name = bias[1] if b2 is None and bias is not None else \
            add_constant(constants, fresh(out + "_bias"), b if b2 is None else b2)
        return [with_attrs(user, [x, w_name], [mid]),
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
        w_name = add_constant(constants, fresh(user.inputs[1]), w2.T if trans_b else w2)
        ins = [x, w_name] + list(user.inputs[2:])
        if b2 is None:
            return [with_attrs(user, ins)]
        ins = [x, w_name, add_constant(constants, fresh(user.outputs[0] + "_bias"), b2.reshape(1, -1))]
        return [with_attrs(user, ins, beta=np.float64(1.0))]

    return w, bias, store_gemm, set()
