"""Steps only the planner creates (``fuse.py``), never read from a model file: ``Dense`` is
MatMul + bias + activation with the bias and activation applied in place on the product."""

from __future__ import annotations

import numpy as np

from ..fuse import FUSED_DOMAIN
from . import op
from ._post import logistic_


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
