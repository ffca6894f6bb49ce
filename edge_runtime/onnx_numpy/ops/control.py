"""Scan (opset 9+): the body graph runs once per slice; scikit-learn's k-NN uses it to compute
distances to the training rows one query row at a time."""

from __future__ import annotations

import numpy as np

from . import op

#: elements per chunk when a distance Scan is evaluated for many slices at once
_CHUNK = 1 << 22


def _is_sq_distance_body(node) -> bool:
    """True for the body scikit-learn's k-NN export uses: state passes through, the output is
    ReduceSumSquare(state - slice, axes=[1], keepdims=0). That loop is one broadcast here."""
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


@op("Scan", since=9)
def make_scan(node):
    body = node.graph("body")
    m = node.int("num_scan_inputs")
    in_axes = node.ints("scan_input_axes", None)
    in_dirs = node.ints("scan_input_directions", None)
    out_axes = node.ints("scan_output_axes", None)
    out_dirs = node.ints("scan_output_directions", None)
    n_state = len(body.inputs) - m
    if n_state < 0:
        raise node.fail("num_scan_inputs exceeds the body's inputs")
    names = body.inputs
    plain = not any(in_axes or []) and not any(in_dirs or []) and not any(out_axes or []) \
        and not any(out_dirs or [])
    if plain and m == 1 and n_state == 1 and _is_sq_distance_body(node):
        def distances(state, xs):
            if state.ndim != 2 or xs.ndim != 2 or state.shape[1] != xs.shape[1]:
                return kernel(state, xs)
            out = np.empty((xs.shape[0], state.shape[0]), dtype=np.result_type(state, xs))
            step = max(1, _CHUNK // max(1, state.size))
            for s in range(0, xs.shape[0], step):
                diff = state[None, :, :] - xs[s:s + step, None, :]
                out[s:s + step] = np.sum(diff * diff, axis=2, dtype=out.dtype)
            return [state, out]

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
            if collected:
                y = np.stack([c[j] for c in collected])
            else:
                y = np.zeros((0,), dtype=np.float32)
            if out_dirs and out_dirs[j]:
                y = y[::-1]
            if out_axes and out_axes[j]:
                y = np.moveaxis(y, 0, out_axes[j] % y.ndim)
            results.append(y)
        return results

    if plain and m == 1 and n_state == 1 and _is_sq_distance_body(node):
        return distances
    return kernel
