"""Scan (opset 9+): the body graph runs once per slice; scikit-learn's k-NN uses it to compute
distances to the training rows one query row at a time."""

from __future__ import annotations

import numpy as np

from . import op


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

    return kernel
