"""Score post-transforms shared by the ai.onnx.ml classifiers and regressors."""

from __future__ import annotations

import numpy as np

from ._rows import narrow, row_max, row_sum


def logistic(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x):
    if narrow(x, 1):
        e = np.exp(x - row_max(x)[:, None])
        e /= row_sum(e)[:, None]
        return e
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_zero(x):
    """Softmax that keeps exact zeros at zero (ai.onnx.ml SOFTMAX_ZERO)."""
    m = x.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):  # exp(-m) overflows only where np.where discards it
        e = np.where(np.abs(x) > 1e-7, np.exp(x - m), x * np.exp(-m))
    s = e.sum(axis=1, keepdims=True)
    return np.where(s == 0, 0.5, e / np.where(s == 0, 1, s))


def _erfinv(x):
    """The closed-form erf^-1 approximation onnxruntime uses, in x's precision."""
    t = x.dtype.type
    sgn = np.where(x < 0, t(-1), t(1))
    y = (t(1) - x) * (t(1) + x)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(y)
        v = t(2) / (t(np.pi) * t(0.147)) + t(0.5) * log
        v2 = t(1) / t(0.147) * log
        v3 = -v + np.sqrt(v * v - v2)
        return (sgn * np.sqrt(v3)).astype(x.dtype)


def probit(x):
    x = np.asarray(x)
    t = x.dtype.type
    return (t(1.41421356) * _erfinv(x * t(2) - t(1))).astype(x.dtype)


def logistic_(x):
    """``logistic`` computed in ``x``'s own buffer (the caller owns ``x``): 1 / (1 + exp(-x)),
    accurate to an ulp for either sign; -x is capped below exp's overflow (the result there is
    under 1e-34 either way), so no overflow warning and no inf."""
    np.negative(x, out=x)
    np.minimum(x, 80.0 if x.dtype == np.float32 else 700.0, out=x)
    np.exp(x, out=x)
    x += 1
    return np.reciprocal(x, out=x)


def softmax_(x):
    """``softmax`` along axis 1 in ``x``'s own buffer (the caller owns ``x``)."""
    tall = narrow(x, 1)
    x -= row_max(x)[:, None] if tall else x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= row_sum(x)[:, None] if tall else x.sum(axis=1, keepdims=True)
    return x


#: post-transforms that may overwrite their (caller-owned) argument
IN_PLACE = {"LOGISTIC": logistic_, "SOFTMAX": softmax_}

TRANSFORMS = {"NONE": lambda x: x, "LOGISTIC": logistic, "SOFTMAX": softmax,
              "SOFTMAX_ZERO": softmax_zero, "PROBIT": probit}


def transform(node, default: str = "NONE"):
    name = node.str("post_transform", default)
    if name not in TRANSFORMS:
        raise node.fail(f"unknown post_transform '{name}'")
    return name, TRANSFORMS[name]


def transform_(node, default: str = "NONE"):
    """Like :func:`transform`, but the function may overwrite its argument."""
    name, fn = transform(node, default)
    return name, IN_PLACE.get(name, fn)


def class_labels(node):
    """(labels array, is_string) from classlabels_int64s / classlabels_strings."""
    ints = node.ints("classlabels_int64s", None) or node.ints("classlabels_ints", None)
    if ints:
        return np.array(ints, dtype=np.int64), False
    strs = node.strings("classlabels_strings", None)
    if strs:
        return np.array(strs, dtype=object), True
    raise node.fail("no class labels")
