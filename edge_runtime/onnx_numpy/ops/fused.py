"""Steps only the planner creates (``fuse/``), never read from a model file: ``Dense`` is
MatMul + bias + activation with the bias and activation applied in place on the product;
``Chain`` is a run of element-wise ops applied in place on the first one's result;
``TransposeInPlace`` transposes a Scan's new output and applies one-input ops to it in place."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..fuse import FUSED_DOMAIN
from . import op
from ._post import logistic_
from .elementwise import ACTIVATIONS, ARITHMETIC


def _relu(y: np.ndarray) -> np.ndarray:
    return np.maximum(y, y.dtype.type(0), out=y)


def _tanh(y: np.ndarray) -> np.ndarray:
    return np.tanh(y, out=y)


_IN_PLACE = {"": lambda y: y, "Relu": _relu, "Tanh": _tanh, "Sigmoid": logistic_}


@op("Dense", domain=FUSED_DOMAIN)
def make_dense(node):
    act = node.str("activation", "")
    if act not in _IN_PLACE:
        raise node.fail(f"unknown activation '{act}'")
    activation = _IN_PLACE[act]

    def kernel(x, w, b):
        y = np.matmul(x, w)  # always a fresh array: safe to overwrite
        # in place only where the sum has the product's shape and type (a 1-D x, or a bias
        # of another type, takes the plain route)
        if y.ndim >= b.ndim and y.dtype == np.result_type(y, b):
            np.add(y, b, out=y)
        else:
            y = y + b
        return [activation(y)]

    return kernel


#: in-place forms: ufuncs writing into their chain operand
_UFUNCS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
           "Pow": np.power}
_UNARY_IN_PLACE = {"Relu": _relu, "Tanh": _tanh, "Sigmoid": logistic_,
                   "Exp": lambda y: np.exp(y, out=y), "Log": lambda y: np.log(y, out=y),
                   "Sqrt": lambda y: np.sqrt(y, out=y), "Abs": lambda y: np.abs(y, out=y),
                   "Neg": lambda y: np.negative(y, out=y)}


def _writable(y: object) -> bool:
    """A writable float array (0-d results of numpy ops are scalars, which nothing can write
    into)."""
    return isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.flags.writeable


def _fits_into(y: np.ndarray, other: np.ndarray) -> bool:
    """True when ``op(y, other)`` has ``y``'s shape and type, so it can be written into y."""
    if not _writable(y) or other.dtype != y.dtype or other.ndim > y.ndim:
        return False
    if other.size == 1 or other.shape == y.shape:
        return True
    return all(o in (1, d) for o, d in zip(other.shape[::-1], y.shape[::-1]))


@op("Chain", domain=FUSED_DOMAIN)
def make_chain(node):
    """``ops``: the op types in order; ``slots``: per op after the first, which operand the
    running value is (0 or 1; -1 for a one-input op). The inputs are the first op's inputs,
    then the other operand of each later two-input op."""
    ops = node.strings("ops")
    slots = node.ints("slots")
    if len(ops) < 2 or len(slots) != len(ops) - 1 or \
            any(o not in ARITHMETIC and o not in ACTIVATIONS for o in ops):
        raise node.fail("malformed chain")
    # one- or two-input ops: ``slot`` (or n_first) says which, not the type
    first: Callable[..., np.ndarray] = ARITHMETIC.get(ops[0]) or ACTIVATIONS[ops[0]]
    n_first = 2 if ops[0] in ARITHMETIC else 1
    rest: list[tuple[str, int, Callable[..., np.ndarray]]] = [(name, slot, ARITHMETIC.get(name) or ACTIVATIONS[name])
            for name, slot in zip(ops[1:], slots)]

    def kernel(*args):
        y = first(*args[:n_first])  # a new array: the ops after it may overwrite it
        k = n_first
        for name, slot, plain in rest:
            if slot < 0:
                y = _UNARY_IN_PLACE[name](y) if _writable(y) else plain(y)
                continue
            other = args[k]
            k += 1
            if _fits_into(y, other):
                a, b = (y, other) if slot == 0 else (other, y)
                _UFUNCS[name](a, b, out=y)
            else:
                y = plain(y, other) if slot == 0 else plain(other, y)
        return [y]

    return kernel


@op("TransposeInPlace", domain=FUSED_DOMAIN)
def make_transpose_in_place(node):
    """``perm`` as Transpose's; ``ops``: one-input float ops applied in order. The planner
    makes this step only for an array nothing else reads (a Scan's scan output)."""
    perm = node.ints("perm", None)
    ops = node.strings("ops")
    if not ops or any(o not in _UNARY_IN_PLACE for o in ops):
        raise node.fail("malformed in-place transpose")
    steps = [(_UNARY_IN_PLACE[o], ACTIVATIONS[o]) for o in ops]

    def kernel(x):
        y = np.transpose(x, perm)
        for in_place, plain in steps:
            y = in_place(y) if _writable(y) else plain(y)
        return [y]

    return kernel
