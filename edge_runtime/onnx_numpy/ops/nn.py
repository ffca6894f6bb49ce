"""Dense layers and normalisers of activations: MatMul, Gemm, Softmax, LogSoftmax."""

from __future__ import annotations

import numpy as np

from . import op
from ._rows import narrow, row_max, row_sum


@op("MatMul")
def make_matmul(node):
    return lambda a, b: [np.matmul(a, b)]


@op("Gemm")
def make_gemm(node):
    alpha, beta = node.float("alpha", 1.0), node.float("beta", 1.0)
    ta, tb = node.int("transA", 0), node.int("transB", 0)

    def kernel(a, b, c=None):
        if ta:
            a = a.T
        if tb:
            b = b.T
        y = a @ b
        if alpha != 1.0:
            y = y * y.dtype.type(alpha)
        if c is not None:
            y = y + (c if beta == 1.0 else c * c.dtype.type(beta))
        return [y]

    return kernel


def _softmax(x, axis):
    if narrow(x, axis):
        e = np.exp(x - row_max(x)[:, None])
        e /= row_sum(e)[:, None]
        return e
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _coerced(fn, node):
    """Before opset 13 the input is flattened to 2-D at ``axis`` (default 1)."""
    if node.opset >= 13:
        axis = node.int("axis", -1)
        return lambda x: [fn(x, axis)]
    axis = node.int("axis", 1)

    def kernel(x):
        a = axis % x.ndim if x.ndim else 0
        flat = x.reshape(int(np.prod(x.shape[:a])), -1)
        return [fn(flat, 1).reshape(x.shape)]

    return kernel


@op("Softmax")
def make_softmax(node):
    return _coerced(_softmax, node)


@op("LogSoftmax")
def make_logsoftmax(node):
    def fn(x, axis):
        m = x.max(axis=axis, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))

    return _coerced(fn, node)
