"""Linear models, MLPs and the preprocessing steps before them -> plain C, in float64.

Each step is emitted as sklearn computes it, not folded: SimpleImputer replaces NaN by its
statistic, StandardScaler ``(x - mean) / scale``, MinMaxScaler ``x * scale + min``; then
``x @ W.T + b`` per layer (sklearn's BLAS sums in another order, so values agree to ~1e-15, not
bit for bit), the activations, and the same probability heads as sklearn (binary expit pair,
softmax, one-vs-rest normalisation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedEstimatorError
from .ctext import HEADER, argmax, array, entry_points, expit_pair, softmax
from .prep import Code, emit

LINEAR = ("LogisticRegression", "LinearRegression", "Ridge", "SGDClassifier", "SGDRegressor", "LinearSVC",
          "Lasso", "ElasticNet")
MLP = ("MLPClassifier", "MLPRegressor")
#: -O3 vectorises each layer's loop over outputs (the sums keep their order: results are bit for
#: bit those of -O2); the suite's MLP 3.3 -> 1.9 us per row in C, with AVX2 1.1 us
OPT = "-O3"
#: on x86_64 the row function is built twice, for AVX2 and for the baseline (SSE2), and the
#: loader's ifunc picks one on the device's CPU: four doubles per instruction where it has them.
#: No FMA (-ffp-contract=off), so both clones compute the same numbers. glibc only (musl has no
#: ifunc: such a device fails to load the library and is served by another engine)
ROW_CLONES = ('#if defined(__x86_64__) && defined(__GNUC__)\n'
              '__attribute__((target_clones("avx2", "default")))\n#endif\n')
ACTIVATIONS = {"identity": "v", "relu": "(v > 0.0 ? v : 0.0)", "tanh": "tanh(v)",
               "logistic": "(1.0 / (1.0 + exp(-v)))"}


def _layer(i: int, w: np.ndarray, b: np.ndarray, src: str, dst: str, act: str) -> str:
    """``dst = act(src @ w + b)``; ``w`` is (inputs, outputs) as sklearn stores coefs_. Each
    output sums its inputs in order (j = 0, 1, ...), but the loop runs over outputs innermost, so
    the compiler vectorises across outputs without reordering any sum."""
    n_in, n_out = w.shape
    tables = array(f"W{i}", np.ascontiguousarray(w).ravel()) + array(f"B{i}", b)
    code = (f" {{ double acc[{n_out}];\n  for (int32_t k = 0; k < {n_out}; ++k) acc[k] = 0.0;\n"
            f"  for (int32_t j = 0; j < {n_in}; ++j) {{\n"
            f"   const double zj = {src}[j]; const double *wj = W{i} + j * {n_out};\n"
            f"   for (int32_t k = 0; k < {n_out}; ++k) acc[k] += zj * wj[k]; }}\n"
            f"  for (int32_t k = 0; k < {n_out}; ++k) {{\n"
            f"   double v = acc[k] + B{i}[k]; {dst}[k] = {ACTIVATIONS[act]}; }} }}\n")
    return tables + code


def generate(last: Any, pre: list[Any], d: int, has_proba: bool) -> tuple[str, int]:
    """(C source, output columns) for ``pre`` steps then a linear model or an MLP."""
    name = type(last).__name__
    classifier = hasattr(last, "classes_")
    code = Code()
    z, width = emit(code, pre, d)
    tables, body = code.tables, code.body
    n_in = int(np.shape(last.coefs_[0] if name in MLP else np.atleast_2d(getattr(last, "coef_", 0)).T)[0])
    if name in MLP + LINEAR and n_in != width:
        raise UnsupportedEstimatorError(f"{name} takes {n_in} columns but the steps before it give {width}")
    if name in MLP:
        src = z
        layers = list(zip(last.coefs_, last.intercepts_))
        for i, (w, b) in enumerate(layers):
            w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
            act = last.activation if i < len(layers) - 1 else "identity"
            dst = f"h{i}"
            body.append(f" double {dst}[{w.shape[1]}];\n")
            layer = _layer(i, w, b, src, dst, act)
            tables += [ln for ln in layer.splitlines(keepends=True) if ln.startswith("static")]
            body += [ln for ln in layer.splitlines(keepends=True) if not ln.startswith("static")]
            src = dst
        scores, k = src, int(layers[-1][0].shape[1])
        out_act = last.out_activation_
        if out_act != {True: "logistic" if k == 1 else "softmax", False: "identity"}[classifier]:
            raise UnsupportedEstimatorError(f"{name} with output activation {out_act} (multi-label?) cannot be "
                                            "compiled to native code")
    elif name in LINEAR:
        coef = np.atleast_2d(np.asarray(last.coef_, np.float64))
        b = np.atleast_1d(np.asarray(last.intercept_, np.float64)) * np.ones(coef.shape[0])
        body.append(f" double s[{coef.shape[0]}];\n")
        layer = _layer(0, np.ascontiguousarray(coef.T), b, z, "s", "identity")
        tables += [ln for ln in layer.splitlines(keepends=True) if ln.startswith("static")]
        body += [ln for ln in layer.splitlines(keepends=True) if not ln.startswith("static")]
        scores, k = "s", coef.shape[0]
    else:
        raise UnsupportedEstimatorError(f"{name} is not a linear model or an MLP")

    mlp = name in MLP
    if not classifier:
        body.append(f" for (int32_t j = 0; j < {k}; ++j) o[j] = {scores}[j];\n")
        n_out = k
    elif k == 1:  # binary, one score: p = expit(score); sklearn's label rule differs by family
        body.append(" " + expit_pair("o", f"{scores}[0]"))
        body.append(" *label = o[1] > 0.5;\n" if mlp else f" *label = {scores}[0] > 0.0;\n")
        n_out = 2
    else:
        n_out = k
        body.append(f" for (int32_t j = 0; j < {k}; ++j) o[j] = {scores}[j];\n")
        if mlp or name == "LogisticRegression":
            body.append(" " + softmax("o", k))
        elif name == "SGDClassifier" and has_proba:  # one-vs-rest: expit each, then normalise
            body.append(f" {{ double t = 0.0; for (int32_t j = 0; j < {k}; ++j) {{ o[j] = 1.0 / (1.0 + exp(-o[j])); "
                        f"t += o[j]; }}\n"
                        f"  if (t == 0.0) {{ for (int32_t j = 0; j < {k}; ++j) o[j] = 1.0; t = {k}.0; }}\n"
                        f"  for (int32_t j = 0; j < {k}; ++j) o[j] /= t; }}\n")
        # MLP labels are argmax(proba); linear ones argmax(decision)
        body.append(" " + argmax("o" if mlp else scores, k))
    src = HEADER + "".join(tables) + ROW_CLONES + "static int32_t row(const float *x, double *o, int32_t *label) {\n" \
        + "".join(body) + " return 0;\n}\n" + entry_points(d, n_out, classifier, "row")
    return src, n_out
