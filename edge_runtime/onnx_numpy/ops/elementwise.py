"""Element-wise arithmetic, comparisons and activations (numpy broadcasting = ONNX's)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import op


def _binary(name: str, fn) -> None:
    @op(name)
    def make(node):
        return lambda a, b: [fn(a, b)]


def _div(a, b):
    if a.dtype.kind in "iu":
        return np.trunc(a / b).astype(a.dtype)
    return a / b


def _pow(a, b):
    out = np.power(a, b)
    return out.astype(a.dtype) if out.dtype != a.dtype else out


Binary = Callable[[np.ndarray, np.ndarray], np.ndarray]
Unary = Callable[[np.ndarray], np.ndarray]

#: the arithmetic ops (also used by the fused in-place chains of ``fused.py``)
ARITHMETIC: dict[str, Binary] = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _div,
                                 "Pow": _pow}

for _name, _fn in {**ARITHMETIC, "Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                   "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}.items():
    _binary(_name, _fn)


def _unary(name: str, fn) -> None:
    @op(name)
    def make(node):
        return lambda x: [fn(x)]


def _sigmoid(x):
    # exp(-|x|) never overflows; same value as 1 / (1 + exp(-x))
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


_erf = np.frompyfunc(math.erf, 1, 1)

#: the float activations and functions (also used by the fused in-place chains)
ACTIVATIONS: dict[str, Unary] = {
    "Relu": lambda x: np.maximum(x, x.dtype.type(0)), "Sigmoid": _sigmoid,
    "Tanh": np.tanh, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Abs": np.abs, "Neg": np.negative}

_OTHER_UNARY: dict[str, Unary] = {
    "Not": np.logical_not, "Reciprocal": lambda x: (1 / x).astype(x.dtype), "Floor": np.floor,
    "Ceil": np.ceil, "Sign": np.sign, "IsNaN": np.isnan,
    "Softplus": lambda x: np.logaddexp(0, x).astype(x.dtype),
    "Erf": lambda x: np.asarray(_erf(x)).astype(x.dtype)}
for _name, _fn in {**ACTIVATIONS, **_OTHER_UNARY}.items():
    _unary(_name, _fn)


def _variadic(name: str, fn) -> None:
    @op(name)
    def make(node):
        def kernel(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = fn(out, x)
            return [out]

        return kernel


_variadic("Sum", np.add)
_variadic("Max", np.maximum)
_variadic("Min", np.minimum)


@op("Mean")
def make_mean(node):
    return lambda *xs: [(sum(xs[1:], xs[0]) / len(xs)).astype(xs[0].dtype)]


@op("Where")
def make_where(node):
    return lambda c, a, b: [np.where(c, a, b)]


@op("Clip")
def make_clip(node):
    if node.opset < 11:
        lo, hi = node.float("min", -np.inf), node.float("max", np.inf)
        return lambda x: [np.clip(x, lo, hi).astype(x.dtype)]

    def kernel(x, lo=None, hi=None):
        if lo is not None:
            x = np.maximum(x, lo)
        if hi is not None:
            x = np.minimum(x, hi)
        return [x]

    return kernel


@op("LeakyRelu")
def make_leaky(node):
    alpha = node.float("alpha", 0.01)
    return lambda x: [np.where(x >= 0, x, x * x.dtype.type(alpha))]
