"""Shape and layout operators: Reshape, Flatten, Concat, Transpose, (Un)Squeeze, Gather…"""

from __future__ import annotations

import numpy as np

from . import op


@op("Identity")
def make_identity(node):
    return lambda x: [x]


@op("Constant")
def make_constant(node):
    if node.has("value"):
        value = node.tensor("value")
    elif node.has("value_float"):
        value = np.array(node.float("value_float"), dtype=np.float32)
    elif node.has("value_floats"):
        value = np.array(node.floats("value_floats"), dtype=np.float32)
    elif node.has("value_int"):
        value = np.array(node.int("value_int"), dtype=np.int64)
    elif node.has("value_ints"):
        value = np.array(node.ints("value_ints"), dtype=np.int64)
    else:
        raise node.fail("Constant without a supported value attribute")
    return lambda: [value]


def _reshape_to(x, shape, allowzero):
    shape = [int(s) for s in shape]
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@op("Reshape")
def make_reshape(node):
    if node.opset < 5:
        shape = node.ints("shape")
        return lambda x: [_reshape_to(x, shape, 0)]
    allowzero = node.int("allowzero", 0)
    # the shape is usually a constant: read into ints once (one tuple, swapped whole, as in
    # ArrayFeatureExtractor); a shape without 0 entries is then used as it is
    last: list = [(None, None)]

    def kernel(x, shape):
        seen = last[0]
        if shape is seen[0]:
            plain = seen[1]
        else:
            ints = [int(s) for s in shape]
            plain = ints if allowzero or 0 not in ints else None
            last[0] = (shape, plain)
        if plain is not None:
            return [x.reshape(plain)]
        return [_reshape_to(x, shape, allowzero)]

    return kernel


@op("Flatten")
def make_flatten(node):
    axis = node.int("axis", 1)

    def kernel(x):
        a = axis % x.ndim if axis < 0 else axis
        return [x.reshape(int(np.prod(x.shape[:a])), -1) if x.size else
                x.reshape(int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:])))]

    return kernel


@op("Concat")
def make_concat(node):
    axis = node.int("axis")
    return lambda *xs: [np.concatenate(xs, axis=axis)]


@op("Transpose")
def make_transpose(node):
    perm = node.ints("perm", None)
    return lambda x: [np.transpose(x, perm)]


def _axes_arg(node, attr_until: int):
    """Axes from the attribute (older opsets) or the optional second input."""
    if node.opset < attr_until:
        axes = node.ints("axes", None)
        return lambda x, a=None: axes
    return lambda x, a=None: None if a is None else [int(v) for v in np.ravel(a)]


@op("Unsqueeze")
def make_unsqueeze(node):
    get = _axes_arg(node, 13)

    def kernel(x, a=None):
        axes = get(x, a)
        nd = x.ndim + len(axes)
        for ax in sorted(v % nd for v in axes):
            x = np.expand_dims(x, ax)
        return [x]

    return kernel


@op("Squeeze")
def make_squeeze(node):
    get = _axes_arg(node, 13)

    def kernel(x, a=None):
        axes = get(x, a)
        return [np.squeeze(x, axis=None if axes is None else tuple(axes))]

    return kernel


@op("Shape")
def make_shape(node):
    start, end = node.int("start", 0), node.int("end", 0) if node.has("end") else None
    return lambda x: [np.array(x.shape[start:end], dtype=np.int64)]


@op("Size")
def make_size(node):
    return lambda x: [np.array(x.size, dtype=np.int64)]


@op("Gather")
def make_gather(node):
    axis = node.int("axis", 0)
    return lambda x, idx: [np.take(x, idx.astype(np.intp, copy=False), axis=axis)]


@op("GatherElements")
def make_gather_elements(node):
    axis = node.int("axis", 0)

    def kernel(x, idx):
        idx = np.where(idx < 0, idx + x.shape[axis], idx)
        return [np.take_along_axis(x, idx.astype(np.intp, copy=False), axis=axis)]

    return kernel


@op("Slice")
def make_slice(node):
    if node.opset < 10:
        starts, ends = node.ints("starts"), node.ints("ends")
        axes0 = node.ints("axes", None)

        def old(x):
            return _slice(x, starts, ends, axes0, None)

        return lambda x: [old(x)]
    return lambda x, s, e, a=None, st=None: [_slice(x, s, e, a, st)]


def _slice(x, starts, ends, axes, steps):
    starts = [int(v) for v in np.ravel(starts)]
    ends = [int(v) for v in np.ravel(ends)]
    axes = list(range(len(starts))) if axes is None else [int(v) for v in np.ravel(axes)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.ravel(steps)]
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a % x.ndim] = slice(s, e, st)
    return x[tuple(index)]


@op("ConstantOfShape")
def make_constant_of_shape(node):
    value = node.tensor("value", None)
    if value is None:
        value = np.zeros(1, dtype=np.float32)
    return lambda shape: [np.full([int(s) for s in shape], value.ravel()[0], dtype=value.dtype)]


@op("Expand")
def make_expand(node):
    def kernel(x, shape):
        shape = [int(s) for s in shape]
        return [x * np.ones(shape, dtype=x.dtype)]

    return kernel


@op("Tile")
def make_tile(node):
    return lambda x, reps: [np.tile(x, [int(r) for r in reps])]
