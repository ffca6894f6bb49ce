"""ai.onnx.ml linear models and preprocessing: LinearClassifier/Regressor, Scaler, Normalizer,
Imputer, OneHotEncoder, ArrayFeatureExtractor, Binarizer."""

from __future__ import annotations

import numpy as np

from . import ML, op
from ._post import class_labels, transform, transform_
from ._rows import narrow, row_sum


def _per_dtype(w, b):
    """(weights, bias) ready for float32 [0] and float64 [1] inputs: cast once, at load."""
    return [(np.ascontiguousarray(w, dtype=dt), None if b is None else b.astype(dt))
            for dt in (np.float32, np.float64)]


def _float_input(x):
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


@op("LinearClassifier", ML)
def make_linear_classifier(node):
    """Scores in float32 whatever the input type, as onnxruntime computes them (it casts the
    input to float32 and Z is tensor(float)); labels from the raw scores, before the
    post-transform, as onnxruntime picks them."""
    labels, _ = class_labels(node)
    coef = np.array(node.floats("coefficients"), dtype=np.float32)
    icpt = node.floats("intercepts", None)
    n_rows = len(icpt) if icpt else max(1, len(labels) if len(labels) > 2 else 1)
    if coef.size % n_rows:
        raise node.fail("coefficients do not divide into the classes")
    w = np.ascontiguousarray(coef.reshape(n_rows, -1).T)
    b = np.array(icpt, dtype=np.float32) if icpt else None
    name, post = transform_(node)
    if n_rows == 1 and len(labels) != 2:
        raise node.fail(f"one coefficient row needs exactly 2 class labels, not {len(labels)} "
                        "(onnxruntime refuses the graph too)")
    if n_rows == 1 and name == "PROBIT":
        # onnxruntime writes probit(s) into the first half of the [N, 2] buffer and leaves
        # the rest unwritten: no answer to reproduce, so no answer at all
        raise node.fail("post_transform PROBIT with one coefficient row has no defined scores "
                        "(onnxruntime leaves half of them unwritten)")

    def scores_of(x):
        scores = x.astype(np.float32, copy=False) @ w  # fresh: bias and transform go in place
        if b is not None:
            scores += b
        return scores

    def binary_kernel(x):
        # onnxruntime's one-row rule: label = s > 0 on the raw score; Z = [1 - p, p] with
        # p = logistic(s) after LOGISTIC and p = s for NONE, SOFTMAX and SOFTMAX_ZERO
        s = scores_of(x)[:, 0]
        p = post(s.copy()) if name == "LOGISTIC" else s
        z = np.empty((s.shape[0], 2), dtype=np.float32)
        z[:, 1] = p
        np.subtract(np.float32(1), p, out=z[:, 0])
        return [labels.take(s > 0), z]

    def kernel(x):
        raw = scores_of(x)
        # the label is the largest raw score (the first on a tie), as onnxruntime picks it:
        # after LOGISTIC two saturated scores both read 1.0 and the first would win a tie the
        # raw scores do not
        label = labels.take(np.argmax(raw, axis=1))
        return [label, post(raw)]

    return binary_kernel if n_rows == 1 else kernel


@op("LinearRegressor", ML)
def make_linear_regressor(node):
    targets = node.int("targets", 1)
    coef = np.array(node.floats("coefficients"), dtype=np.float32).reshape(targets, -1)
    icpt = node.floats("intercepts", None)
    intercepts = np.array(icpt, dtype=np.float32) if icpt else None
    _, post = transform(node)
    by_dtype = _per_dtype(coef.T, intercepts)

    def kernel(x):
        x = _float_input(x)
        w, b = by_dtype[x.dtype == np.float64]
        y = x @ w
        if b is not None:
            y = y + b
        # Y is tensor(float) for every input type (onnxruntime has no double kernel at all):
        # float64 inputs are summed in float64 and rounded once
        return [post(y).astype(np.float32, copy=False)]

    return kernel


@op("Scaler", ML)
def make_scaler(node):
    offset = np.array(node.floats("offset", [0.0]), dtype=np.float32)
    scale = np.array(node.floats("scale", [1.0]), dtype=np.float32)

    by_dtype = _per_dtype(offset, scale)

    def kernel(x):
        x = _float_input(x)
        off, sc = by_dtype[x.dtype == np.float64]
        return [((x - off) * sc).astype(np.float32, copy=False)]

    return kernel


@op("Normalizer", ML)
def make_normalizer(node):
    norm = node.str("norm", "MAX")
    if norm not in ("MAX", "L1", "L2"):
        raise node.fail(f"unknown norm '{norm}'")

    def kernel(x):
        x = _float_input(x)
        tall = narrow(x, 1)
        if norm == "MAX":
            # the spec's and onnxruntime's rule: divide by the row's largest value (signed, NaN
            # ignored); a row whose largest value is 0 stays as it is
            d = np.fmax.reduce(x, axis=1, keepdims=True)
            return [(x / np.where(d == 0, d.dtype.type(1), d)).astype(np.float32, copy=False)]
        if norm == "L1":
            d = row_sum(np.abs(x))[:, None] if tall else np.abs(x).sum(axis=1, keepdims=True)
        else:
            d = np.sqrt(row_sum(x * x)[:, None] if tall else (x * x).sum(axis=1, keepdims=True))
        return [(x / np.maximum(d, 1e-30)).astype(np.float32, copy=False)]

    return kernel


@op("Imputer", ML)
def make_imputer(node):
    floats = node.floats("imputed_value_floats", None)
    if floats:
        values = np.array(floats, dtype=np.float32)
        replace = node.float("replaced_value_float", 0.0)
    else:
        values = np.array(node.ints("imputed_value_int64s", []), dtype=np.int64)
        replace = node.int("replaced_value_int64", 0)
    if values.size == 0:
        raise node.fail("no imputed values")

    def kernel(x):
        if values.size not in (1, x.shape[-1]):
            raise node.fail(f"{values.size} imputed values for {x.shape[-1]} columns")
        mask = np.isnan(x) if isinstance(replace, float) and np.isnan(replace) else x == replace
        return [np.where(mask, values.astype(x.dtype, copy=False), x)]

    return kernel


@op("OneHotEncoder", ML)
def make_one_hot(node):
    ints = node.ints("cats_int64s", None)
    cats = np.array(ints, dtype=np.int64) if ints else np.array(
        node.strings("cats_strings", []), dtype=object)
    if cats.size == 0:
        raise node.fail("no categories")
    zeros = node.int("zeros", 1)

    def kernel(x):
        if cats.dtype == object:
            hot = x.astype(object)[..., None] == cats
        else:
            xv = x.astype(np.float64) if x.dtype.kind == "f" else x
            hot = xv[..., None] == cats
        if not zeros and not hot.any(axis=-1).all():
            raise node.fail("a value matches no category (zeros=0)")
        return [hot.astype(np.float32)]

    return kernel


@op("ArrayFeatureExtractor", ML)
def make_afe(node):
    # indices are usually a constant: converted once. One tuple, swapped whole, so threads
    # sharing the model never pair one call's indices with another's conversion
    last: list = [(None, None)]

    def kernel(x, idx):
        seen = last[0]
        if idx is seen[0]:
            index = seen[1]
        else:
            index = np.ravel(idx).astype(np.intp, copy=False)
            last[0] = (idx, index)
        try:
            out = x.take(index, axis=-1)  # bounds checked by take (negative ones count back)
        except IndexError:
            raise node.fail(f"an index in {index.tolist()[:10]} is out of range for "
                            f"{x.shape[-1]} columns") from None
        if x.ndim == 1:
            return [out.reshape(1, -1)]
        return [out]

    return kernel


@op("Binarizer", ML)
def make_binarizer(node):
    threshold = node.float("threshold", 0.0)
    return lambda x: [(x > threshold).astype(x.dtype)]
