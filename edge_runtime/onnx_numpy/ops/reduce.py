"""Reductions, ArgMax/ArgMin and TopK."""

from __future__ import annotations

import numpy as np

from . import op

_SINCE_INPUT = {"ReduceSum": 13}  # the others moved axes from attribute to input at opset 18


def _reducer(name: str, fn) -> None:
    @op(name)
    def make(node):
        keepdims = bool(node.int("keepdims", 1))
        from_input = node.opset >= _SINCE_INPUT.get(name, 18)
        attr_axes = None if from_input else node.ints("axes", None)
        noop = bool(node.int("noop_with_empty_axes", 0))

        def kernel(x, axes=None):
            ax = attr_axes if not from_input else (
                None if axes is None else [int(v) for v in np.ravel(axes)])
            if not ax:
                if noop and from_input:
                    return [x]
                ax = None
            return [np.asarray(fn(x, tuple(ax) if ax is not None else None, keepdims))]

        return kernel


def _initial(x, sign):
    """Empty reductions give the identity (-inf for max, +inf for min; int/bool extremes)."""
    if x.size:
        return {}
    if x.dtype == bool:
        return {"initial": sign > 0}
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return {"initial": info.min if sign < 0 else info.max}
    return {"initial": sign * np.inf}


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True, **_initial(x, -1))
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


for _name, _fn in {
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceMean": lambda x, a, k: np.mean(x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, **_initial(x, -1)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, **_initial(x, 1)),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceSumSquare": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k, dtype=x.dtype),
    "ReduceL2": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceLogSum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceLogSumExp": _logsumexp,
}.items():
    _reducer(_name, _fn)


def _arg(name: str, fn) -> None:
    @op(name)
    def make(node):
        axis = node.int("axis", 0)
        keepdims = bool(node.int("keepdims", 1))
        last = bool(node.int("select_last_index", 0))

        def kernel(x):
            if last:
                flipped = np.flip(x, axis=axis)
                idx = x.shape[axis] - 1 - fn(flipped, axis=axis)
            else:
                idx = fn(x, axis=axis)
            idx = idx.astype(np.int64)
            return [np.expand_dims(idx, axis) if keepdims else idx]

        return kernel


_arg("ArgMax", np.argmax)
_arg("ArgMin", np.argmin)


@op("TopK")
def make_topk(node):
    axis = node.int("axis", -1)
    largest = bool(node.int("largest", 1))
    k_attr = node.int("k", 0) if node.opset < 10 else None

    def kernel(x, k=None):
        kk = k_attr if k_attr is not None else int(np.ravel(k)[0])
        # stable sort: equal values keep the lower index first, as onnxruntime does
        keys = -x if largest else x
        if largest and x.dtype.kind == "u":
            keys = np.iinfo(x.dtype).max - x
        idx = np.argsort(keys, axis=axis, kind="stable")
        idx = np.take(idx, np.arange(kk), axis=axis)
        return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]

    return kernel
