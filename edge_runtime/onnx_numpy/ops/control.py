"""Scan: the body graph runs once per slice; scikit-learn's k-NN uses it to compute distances,
one training row against the whole query batch per step. Opset 8's Scan (a leading batch axis,
optional sequence lengths) runs the opset-9 loop once per batch entry."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..switches import SCAN_DISTANCE_CHUNK_CELLS
from . import op


def _is_sq_distance_body(node) -> bool:
    """True for the body scikit-learn's k-NN export uses: state passes through, the output is
    ReduceSumSquare(state - slice, axes=[1], keepdims=0). That loop is one matrix product here."""
    g = node.node.attributes["body"].g
    if g is None or len(g.inputs) != 2 or len(g.outputs) != 2 or g.initializers:
        return False
    state, xs = g.inputs[0].name, g.inputs[1].name
    produced = {}
    for n in g.nodes:
        if len(n.outputs) != 1 or n.domain not in ("", "ai.onnx"):
            return False
        produced[n.outputs[0]] = n

    def follow(name):
        n = produced.get(name)
        while n is not None and n.op_type == "Identity":
            name = n.inputs[0]
            n = produced.get(name)
        return name, n

    src, _ = follow(g.outputs[0].name)
    if src != state:
        return False
    _, red = follow(g.outputs[1].name)
    if red is None or red.op_type != "ReduceSumSquare" or len(red.inputs) != 1:
        return False
    attrs = red.attributes
    if "axes" not in attrs or list(attrs["axes"].ints) != [1] or \
            "keepdims" not in attrs or attrs["keepdims"].i != 0:
        return False
    sub = produced.get(red.inputs[0])
    return sub is not None and sub.op_type == "Sub" and list(sub.inputs) == [state, xs] \
        and len(g.nodes) <= 4


def _sq_distances(fallback: Callable[..., list]) -> Callable[..., list]:
    """The squared-distance Scan as matrix algebra: |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, one BLAS
    product per chunk instead of a (rows x points x features) broadcast (10x faster).

    Cancellation is kept small by centring both sides on the scanned points' mean and working
    in float64; the result is then rounded to the input's type. onnxruntime's own float32 sums
    differ from the exact value by a few ulp, as much as this does, so neighbour order only
    depends on it for distances equal to ~1e-7 (exact duplicates tie the same way: identical
    rows give identical arithmetic). The matrix is built (state rows, points) and returned
    transposed, so the Transpose that follows in the k-NN graph hands TopK contiguous rows.
    """
    # the scanned points are a model constant: centre them once (keyed by identity)
    last: list = [(None, None, None, None)]

    def prepared(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seen = last[0]
        if seen[0] is xs:
            return seen[1], seen[2], seen[3]
        mu = xs.mean(axis=0, dtype=np.float64)
        b = xs.astype(np.float64) - mu
        neg2bt = np.ascontiguousarray(-2.0 * b.T)
        bn = np.einsum("ij,ij->i", b, b)
        last[0] = (xs, mu, neg2bt, bn)
        return mu, neg2bt, bn

    def distances(state: np.ndarray, xs: np.ndarray) -> list:
        if state.ndim != 2 or xs.ndim != 2 or state.shape[1] != xs.shape[1] or \
                state.dtype.kind != "f" or xs.dtype.kind != "f":
            return fallback(state, xs)
        mu, neg2bt, bn = prepared(xs)
        dtype = np.result_type(state, xs)
        out = np.empty((state.shape[0], xs.shape[0]), dtype=dtype)
        step = max(1, SCAN_DISTANCE_CHUNK_CELLS // max(1, xs.shape[0]))
        for s in range(0, state.shape[0], step):
            a = state[s:s + step].astype(np.float64) - mu
            d = a @ neg2bt
            d += np.einsum("ij,ij->i", a, a)[:, None]
            d += bn
            np.maximum(d, 0.0, out=d)  # rounding can dip a zero distance below zero
            out[s:s + step] = d
        return [state, out.T]

    return distances


@op("Scan", since=8)
def make_scan(node):
    body = node.graph("body")
    m = node.int("num_scan_inputs")
    v8 = node.opset < 9
    in_axes = None if v8 else node.ints("scan_input_axes", None)
    in_dirs = node.ints("directions" if v8 else "scan_input_directions", None)
    out_axes = None if v8 else node.ints("scan_output_axes", None)
    out_dirs = None if v8 else node.ints("scan_output_directions", None)
    n_state = len(body.inputs) - m
    if n_state < 0:
        raise node.fail("num_scan_inputs exceeds the body's inputs")
    names = body.inputs
    plain = not any(in_axes or []) and not any(in_dirs or []) and not any(out_axes or []) \
        and not any(out_dirs or [])
    def kernel(*args):
        states = list(args[:n_state])
        scans = []
        for j, x in enumerate(args[n_state:]):
            ax = in_axes[j] % x.ndim if in_axes else 0
            x = np.moveaxis(x, ax, 0)
            if in_dirs and in_dirs[j]:
                x = x[::-1]
            scans.append(x)
        steps = scans[0].shape[0] if scans else 0
        collected: list[list] = []
        for t in range(steps):
            feeds = dict(zip(names, states + [s[t] for s in scans]))
            outs = body.run(feeds)
            states = outs[:n_state]
            collected.append(outs[n_state:])
        k = len(body.outputs) - n_state
        results = list(states)
        for j in range(k):
            y = np.stack([c[j] for c in collected]) if collected else np.zeros((0,), dtype=np.float32)
            if out_dirs and out_dirs[j]:
                y = y[::-1]
            if out_axes and out_axes[j]:
                y = np.moveaxis(y, 0, out_axes[j] % y.ndim)
            results.append(y)
        return results

    if v8:
        return _batched(kernel)
    if plain and m == 1 and n_state == 1 and _is_sq_distance_body(node):
        return _sq_distances(kernel)
    return kernel


def _batched(kernel: Callable[..., list]) -> Callable[..., list]:
    """Opset 8: every input has a leading batch axis; the loop runs once per batch entry.

    Raises:
        ValueError: sequence lengths shorter than the scanned axis (not supported here; the
            backend reports it as a ``BackendError``).
    """

    def batched(sequence_lens, *args):
        n_batch = args[0].shape[0] if args else 0
        if not n_batch:
            raise ValueError("Scan (opset 8) over an empty batch")
        if sequence_lens is not None and sequence_lens.size:
            full = args[-1].shape[1] if args[-1].ndim > 1 else 0
            if np.any(np.asarray(sequence_lens) != full):
                raise ValueError("Scan (opset 8) with sequence lengths shorter than the input "
                                 "is not supported by the numpy backend")
        per_batch = [kernel(*[a[b] for a in args]) for b in range(n_batch)]
        return [np.stack(outs) for outs in zip(*per_batch)]

    return batched
