"""Reductions, ArgMax/ArgMin and TopK."""

from __future__ import annotations

import numpy as np

from ..switches import TOPK_ARGMIN_CHUNK_CELLS, TOPK_ARGMIN_MAX_K, TOPK_SORT_MAX_AXIS
from . import op
from ._rows import narrow, row_arg, row_max, row_sum

_SINCE_INPUT = {"ReduceSum": 13}  # the others moved axes from attribute to input at opset 18


def _reducer(name: str, fn) -> None:
    @op(name)
    def make(node):
        keepdims = bool(node.int("keepdims", 1))
        from_input = node.opset >= _SINCE_INPUT.get(name, 18)
        attr_axes = None if from_input else node.ints("axes", None)
        noop = bool(node.int("noop_with_empty_axes", 0))
        row = _ROWS.get(name)
        # axes from an input are usually a constant: read into a tuple once (one tuple,
        # swapped whole, so threads sharing the model never mix two calls' axes)
        last: list = [(None, None)]

        def kernel(x, axes=None):
            if not from_input:
                ax = tuple(attr_axes) if attr_axes else None
            elif axes is None:
                ax = None
            elif axes is last[0][0]:
                ax = last[0][1]
            else:
                ax = tuple(int(v) for v in np.ravel(axes)) or None
                last[0] = (axes, ax)
            if ax is None and noop and from_input:
                return [x]
            if row is not None and ax is not None and len(ax) == 1 and narrow(x, ax[0]):
                out = row(x)
                return [out[:, None] if keepdims else out]
            return [np.asarray(fn(x, ax, keepdims))]

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


def _row_logsumexp(x):
    m = row_max(x)
    m = np.where(np.isfinite(m), m, 0)
    return np.log(row_sum(np.exp(x - m[:, None]))) + m


#: the reductions that have a column-loop form for tall, narrow inputs (``_rows``)
_ROWS = {"ReduceSum": row_sum, "ReduceMax": row_max, "ReduceLogSumExp": _row_logsumexp}


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True, **_initial(x, -1))
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


for _name, _fn in {
    # ufunc.reduce directly: np.sum's Python wrapper is most of the time on a single row
    "ReduceSum": lambda x, a, k: np.add.reduce(x, axis=a, keepdims=k, dtype=x.dtype),
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


def _arg(name: str, fn, largest: bool) -> None:
    @op(name)
    def make(node):
        axis = node.int("axis", 0)
        keepdims = bool(node.int("keepdims", 1))
        last = bool(node.int("select_last_index", 0))

        def kernel(x):
            if not last and narrow(x, axis):
                idx = row_arg(x, largest).astype(np.int64, copy=False)
                return [idx[:, None] if keepdims else idx]
            if last:
                flipped = np.flip(x, axis=axis)
                idx = x.shape[axis] - 1 - fn(flipped, axis=axis)
            else:
                idx = fn(x, axis=axis)
            idx = idx.astype(np.int64, copy=False)
            if not keepdims:
                return [idx]
            a = axis % x.ndim
            return [idx.reshape(idx.shape[:a] + (1,) + idx.shape[a:])]

        return kernel


_arg("ArgMax", np.argmax, largest=True)
_arg("ArgMin", np.argmin, largest=False)


# TopK selects by repeated argmin (k passes over cache-sized chunks) for k up to
# TOPK_ARGMIN_MAX_K rather than by partitioning (the k-NN graphs: k = n_neighbors)


def _smallest_by_argmin(flat: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest floats of each row, in stable-sort order: argmin returns the
    first of equal minima, and a taken key is then set to +inf. Only right for rows whose k
    picks are all below +inf (no NaN, which argmin would pick first): the caller checks."""
    n_rows, n = flat.shape
    out = np.empty((n_rows, k), dtype=np.intp)
    step = max(1, TOPK_ARGMIN_CHUNK_CELLS // max(1, n))
    for s in range(0, n_rows, step):
        y = flat[s:s + step].copy()
        rows = np.arange(y.shape[0])
        o = out[s:s + step]
        for j in range(k):
            a = y.argmin(axis=1)
            o[:, j] = a
            y[rows, a] = np.inf
    return out


def _topk_indices(keys, k):
    """Indices of the k smallest keys along the last axis, ties to the lower index (a stable
    sort's order, which is onnxruntime's). Small k: repeated argmin; else partition first when
    k is small relative to the axis. Rows where either shortcut may have ordered ties or NaN
    differently get the full stable sort."""
    n = keys.shape[-1]
    if k == 0:
        return np.zeros(keys.shape[:-1] + (0,), dtype=np.intp)
    if keys.dtype.kind == "f" and k <= TOPK_ARGMIN_MAX_K and keys.size:
        flat = keys.reshape(-1, n)
        idx = _smallest_by_argmin(flat, k)
        unsure = ~(np.take_along_axis(flat, idx, axis=-1) < np.inf).all(axis=-1)
        if unsure.any():
            idx[unsure] = np.argsort(flat[unsure], axis=-1, kind="stable")[:, :k]
        return idx.reshape(keys.shape[:-1] + (k,))
    if n <= TOPK_SORT_MAX_AXIS or k * 4 > n or keys.dtype.kind not in "fiu":
        return np.argsort(keys, axis=-1, kind="stable")[..., :k]
    part = np.argpartition(keys, k - 1, axis=-1)[..., :k]
    vals = np.take_along_axis(keys, part, axis=-1)
    order = np.lexsort((part, vals), axis=-1)
    idx = np.take_along_axis(part, order, axis=-1)
    kth = vals.max(axis=-1, keepdims=True)
    unsure = (keys == kth).sum(axis=-1) != (vals == kth).sum(axis=-1)
    if keys.dtype.kind == "f":
        unsure |= np.isnan(keys).any(axis=-1)
    if unsure.any():
        idx[unsure] = np.argsort(keys[unsure], axis=-1, kind="stable")[..., :k]
    return idx


@op("TopK")
def make_topk(node):
    axis = node.int("axis", -1)
    largest = bool(node.int("largest", 1))
    k_attr = node.int("k", 0) if node.opset < 10 else None

    def kernel(x, k=None):
        kk = k_attr if k_attr is not None else int(np.ravel(k)[0])
        keys = np.moveaxis(x, axis, -1)
        if largest:
            keys = (np.iinfo(x.dtype).max - keys) if x.dtype.kind == "u" else -keys
        idx = np.moveaxis(_topk_indices(keys, kk), -1, axis)
        return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64, copy=False)]

    return kernel


@op("CumSum", since=11)
def make_cumsum(node):
    """Running sums along ``axis`` (an input); ``exclusive`` shifts by one (the first is 0),
    ``reverse`` sums from the end. AdaBoostRegressor's weighted median uses it."""
    exclusive = bool(node.int("exclusive", 0))
    reverse = bool(node.int("reverse", 0))

    def kernel(x, axis):
        ax = int(np.ravel(axis)[0])
        if not -x.ndim <= ax < x.ndim:
            raise node.fail(f"axis {ax} is out of range for a {x.ndim}-D input")
        y = np.flip(x, ax) if reverse else x
        out = np.cumsum(y, axis=ax, dtype=x.dtype)
        if exclusive:
            out = np.roll(out, 1, axis=ax)
            first = [slice(None)] * x.ndim
            first[ax] = slice(0, 1)
            out[tuple(first)] = 0
        return [np.flip(out, ax) if reverse else out]

    return kernel
