"""SVMClassifier / SVMRegressor (libsvm semantics as onnxruntime implements them), vectorised
over rows: one kernel matrix per batch, a short loop over class pairs, and the pairwise
coupling of probabilities iterated for all rows at once."""

from __future__ import annotations

from operator import mul

import numpy as np

from ..switches import SVM_COUPLING_LOOP_MAX_ROWS
from . import ML, op
from ._post import class_labels, logistic, logistic_, transform


def _kernel(node):
    """(kernel name, prepare): ``prepare(sv)`` returns ``k(x)``, the kernel matrix of the rows
    of ``x`` against the fixed vectors ``sv``, with everything about ``sv`` computed once."""
    kind = node.str("kernel_type", "LINEAR").upper()
    params = node.floats("kernel_params", []) or [0.0, 0.0, 0.0]
    gamma, coef0, degree = (list(params) + [0.0, 0.0, 0.0])[:3]
    if kind not in ("LINEAR", "POLY", "RBF", "SIGMOID"):
        raise node.fail(f"unknown kernel_type '{kind}'")

    def prepare(sv):
        svt = np.ascontiguousarray(sv.T)
        if kind == "RBF":
            # |x - v|^2 = |x|^2 + |v|^2 - 2 x.v; -2 scales exactly, |v|^2 is a constant
            svt_m2 = -2.0 * svt
            sv_sq = np.einsum("ij,ij->i", sv, sv)
            neg_gamma = -gamma

            def rbf(x):
                d = x @ svt_m2
                d += np.einsum("ij,ij->i", x, x)[:, None]
                d += sv_sq
                np.maximum(d, 0, out=d)
                d *= neg_gamma
                return np.exp(d, out=d)

            return rbf

        def k(x):
            dot = x @ svt
            if kind == "LINEAR":
                return dot
            if kind == "POLY":
                return (gamma * dot + coef0) ** degree
            return np.tanh(gamma * dot + coef0)

        return k

    return kind, prepare


def _coupling_row(r: list) -> list:
    """One row of :func:`_coupling` in plain Python: for a handful of rows, a few hundred
    float operations beat a few hundred numpy calls on tiny arrays."""
    k = len(r)
    q = [[0.0] * k for _ in range(k)]
    for t in range(k):
        q[t][t] = sum(r[j][t] ** 2 for j in range(t)) + sum(r[j][t] ** 2 for j in range(t + 1, k))
        for j in range(t):
            q[t][j] = q[j][t]
        for j in range(t + 1, k):
            q[t][j] = -r[j][t] * r[t][j]
    p = [1.0 / k] * k
    eps = 0.005 / k
    for _ in range(max(100, k)):
        qp = [sum(map(mul, row, p)) for row in q]
        pqp = sum(map(mul, p, qp))
        if max(abs(v - pqp) for v in qp) < eps:
            break
        for t in range(k):
            diff = (pqp - qp[t]) / q[t][t]
            p[t] += diff
            scale = 1 + diff
            pqp = (pqp + diff * (diff * q[t][t] + 2 * qp[t])) / scale / scale
            qp = [(qp[j] + diff * q[t][j]) / scale for j in range(k)]
            p = [v / scale for v in p]
    return p


def _coupling(r: np.ndarray) -> np.ndarray:
    """Pairwise-coupled class probabilities (libsvm's multiclass_probability), all rows at
    once; rows that converge stop changing, as in the one-row loop."""
    n, k, _ = r.shape
    if n <= SVM_COUPLING_LOOP_MAX_ROWS:
        return np.array([_coupling_row(row) for row in r.tolist()], dtype=np.float64)
    q = np.zeros_like(r)
    for t in range(k):
        q[:, t, t] = (r[:, :t, t] ** 2).sum(1) + (r[:, t + 1:, t] ** 2).sum(1)
        for j in range(t):
            q[:, t, j] = q[:, j, t]
        for j in range(t + 1, k):
            q[:, t, j] = -r[:, j, t] * r[:, t, j]
    p = np.full((n, k), 1.0 / k)
    eps = 0.005 / k
    active = np.ones(n, dtype=bool)
    diag = [q[:, t, t] for t in range(k)]
    rows_q = [q[:, t, :] for t in range(k)]
    for _ in range(max(100, k)):
        qp = np.einsum("nij,nj->ni", q, p)
        pqp = (p * qp).sum(1)
        active &= np.abs(qp - pqp[:, None]).max(1) >= eps
        if not active.any():
            break
        on = active.astype(np.float64)
        for t in range(k):
            # rows already converged get diff = 0, which leaves them exactly as they are
            diff = (pqp - qp[:, t]) / diag[t] * on
            p[:, t] += diff
            scale = 1 + diff
            pqp = (pqp + diff * (diff * diag[t] + 2 * qp[:, t])) / scale / scale
            qp = (qp + diff[:, None] * rows_q[t]) / scale[:, None]
            p /= scale[:, None]
    return p


@op("SVMClassifier", ML)
def make_svm_classifier(node):
    labels, _ = class_labels(node)
    k = max(len(labels), 1)
    kind, prepare = _kernel(node)
    coefs = np.array(node.floats("coefficients"), dtype=np.float64)
    rho = np.array(node.floats("rho"), dtype=np.float64)
    prob_a = np.array(node.floats("prob_a", []), dtype=np.float64)
    prob_b = np.array(node.floats("prob_b", []), dtype=np.float64)
    vpc = node.ints("vectors_per_class", [])
    n_sv = int(sum(vpc))
    post_name, post = transform(node)
    if n_sv:
        sv = np.array(node.floats("support_vectors"), dtype=np.float64)
        if sv.size % n_sv or coefs.size % n_sv or len(vpc) != k:
            raise node.fail("support vectors / coefficients do not match vectors_per_class")
        sv = sv.reshape(n_sv, -1)
        coefs = coefs.reshape(-1, n_sv)
        starts = np.concatenate([[0], np.cumsum(vpc)[:-1]]).astype(int)
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        if rho.size < len(pairs) or coefs.shape[0] < k - 1:
            raise node.fail("rho / coefficients too short for the class pairs")
        # every pairwise decision as one matmul: column e holds the dual coefficients of
        # the support vectors of classes i and j for pair e = (i, j), zero elsewhere
        dual = np.zeros((n_sv, len(pairs)))
        for e, (i, j) in enumerate(pairs):
            si, sj = starts[i], starts[j]
            dual[si:si + vpc[i], e] = coefs[j - 1, si:si + vpc[i]]
            dual[sj:sj + vpc[j], e] = coefs[i, sj:sj + vpc[j]]
        rho_p = rho[:len(pairs)]
        win_i = np.zeros((len(pairs), k))
        win_j = np.zeros((len(pairs), k))
        pi = np.array([i for i, _ in pairs], dtype=np.intp)
        pj = np.array([j for _, j in pairs], dtype=np.intp)
        win_i[np.arange(len(pairs)), pi] = 1
        win_j[np.arange(len(pairs)), pj] = 1
        pa, pb = prob_a[:len(pairs)], prob_b[:len(pairs)]
        kern = prepare(sv)
    else:
        if coefs.size % k:
            raise node.fail("coefficients do not divide into the classes")
        coefs = coefs.reshape(k, -1)
        kern = prepare(coefs)

    def kernel(x):
        xd = x.astype(np.float64, copy=False)  # only read
        n = xd.shape[0]
        # Z is tensor(float) for every input type, as onnxruntime returns it: the float64
        # arithmetic is rounded once, at the end
        out_dtype = np.float32
        if not n_sv:  # liblinear mode
            scores = kern(xd) + rho[0]
            best = np.argmax(scores, axis=1)
            label = labels[best]
            if rho.size == 1 and len(labels) == 2 and scores.shape[1] == 1:
                label = np.where(scores[:, 0] > 0, labels[1], labels[0])
            return [label, post(scores).astype(out_dtype, copy=False)]
        dec = kern(xd) @ dual
        dec += rho_p
        pos = dec > 0
        votes = pos @ win_i + (~pos) @ win_j
        best = np.argmax(votes, axis=1)
        label = labels.take(best)
        if prob_a.size:
            # libsvm's sigmoid_predict: 1 / (1 + exp(dec * A + B)), kept in [1e-7, 1 - 1e-7]
            t = dec * pa
            t += pb
            v = logistic_(np.negative(t, out=t))
            np.maximum(v, 1e-7, out=v)
            np.minimum(v, 1 - 1e-7, out=v)
            r = np.zeros((n, k, k))
            r[:, pi, pj] = v
            r[:, pj, pi] = 1 - v
            return [label, post(_coupling(r)).astype(out_dtype, copy=False)]
        if len(pairs) == 1:  # the vote decides the label, as onnxruntime does
            s = dec[:, 0]
            z = np.stack([-s, s], axis=1)
            if post_name == "LOGISTIC":
                z = np.stack([logistic(-s), logistic(s)], axis=1)
            return [label, z.astype(out_dtype, copy=False)]
        return [label, post(dec).astype(out_dtype, copy=False)]

    return kernel


@op("SVMRegressor", ML)
def make_svm_regressor(node):
    kind, prepare = _kernel(node)
    coefs = np.array(node.floats("coefficients"), dtype=np.float64)
    rho = np.array(node.floats("rho", [0.0]), dtype=np.float64)
    n_sv = node.int("n_supports", 0)
    one_class = node.int("one_class", 0)
    _, post = transform(node)
    if n_sv:
        sv = np.array(node.floats("support_vectors"), dtype=np.float64)
        if sv.size % n_sv or coefs.size != n_sv:
            raise node.fail("support vectors do not match n_supports")
        sv = sv.reshape(n_sv, -1)
        kern = prepare(sv)

    def kernel(x):
        xd = x.astype(np.float64, copy=False)  # only read
        s = kern(xd) @ coefs + rho[0] if n_sv else xd @ coefs + rho[0]
        if one_class:
            s = np.where(s > 0, 1.0, -1.0)
        s = post(s[:, None])
        return [s.astype(np.float32, copy=False)]  # Y is tensor(float), whatever the input

    return kernel
