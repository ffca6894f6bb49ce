"""C text helpers shared by the code generators: exact literals and the library's ABI.

Every generated library exports the same five symbols (``ABI_VERSION`` 1), which the device's
:mod:`edge_runtime.backends.native_backend` checks before its first call::

    uint32_t edgert_abi(void);          /* ABI_VERSION */
    int32_t  edgert_n_features(void);   /* input columns (float32, row-major) */
    int32_t  edgert_n_outputs(void);    /* float64 output columns */
    int32_t  edgert_has_label(void);    /* 1: an int32 class index per row is written too */
    int32_t  edgert_predict(const float *x, int64_t n, double *out, int32_t *label);

``edgert_predict`` returns 0, -1 for bad arguments, or 1 + the index of the first row it refused
(a category unseen in training, where the encoder raises). It handles any row range, so the
device splits a batch across threads by calling it on slices (ctypes releases the GIL). It
allocates nothing and keeps no state.
"""

from __future__ import annotations

from typing import Iterable

from edge_runtime.native_abi import ABI_VERSION

HEADER = "#include <math.h>\n#include <stdint.h>\n"


def lit(value: float) -> str:
    """An exact C double literal (hex float: no decimal round trip can change a threshold)."""
    v = float(value)
    if v != v:
        return "NAN"
    if v in (float("inf"), float("-inf")):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    return f"({v.hex()})" if v < 0 else v.hex()


def array(name: str, values: Iterable[float]) -> str:
    """A ``static const double`` table."""
    body = ", ".join(lit(v) for v in values)
    return f"static const double {name}[] = {{{body}}};\n"


def entry_points(n_features: int, n_outputs: int, has_label: bool, row_fn: str) -> str:
    """The exported ABI around ``int32_t row_fn(const float *x, double *o, int32_t *label)``
    (non-zero: the row is refused)."""
    return f"""
#define EDGERT_EXPORT __attribute__((visibility("default")))
EDGERT_EXPORT uint32_t edgert_abi(void) {{ return {ABI_VERSION}u; }}
EDGERT_EXPORT int32_t edgert_n_features(void) {{ return {n_features}; }}
EDGERT_EXPORT int32_t edgert_n_outputs(void) {{ return {n_outputs}; }}
EDGERT_EXPORT int32_t edgert_has_label(void) {{ return {1 if has_label else 0}; }}
EDGERT_EXPORT int32_t edgert_predict(const float *x, int64_t n, double *out, int32_t *label) {{
    int32_t unused = 0;
    if (n < 0 || !x || !out) return -1;
    for (int64_t i = 0; i < n; ++i)
        if ({row_fn}(x + i * {n_features}, out + i * {n_outputs}, label ? label + i : &unused)) return (int32_t)(i + 1);
    return 0;
}}
"""


def argmax(o: str, k: int) -> str:
    """First maximum, as numpy's argmax (ties go to the lower index)."""
    return (f"{{ int32_t b = 0; for (int32_t j = 1; j < {k}; ++j) if ({o}[j] > {o}[b]) b = j; "
            f"*label = b; }}\n")


def softmax(o: str, k: int) -> str:
    """sklearn's softmax: subtract the row max, exponentiate, divide by the sum (in order)."""
    return (f"{{ double m = {o}[0]; for (int32_t j = 1; j < {k}; ++j) if ({o}[j] > m) m = {o}[j];\n"
            f"  double s = 0.0; for (int32_t j = 0; j < {k}; ++j) {{ {o}[j] = exp({o}[j] - m); s += {o}[j]; }}\n"
            f"  for (int32_t j = 0; j < {k}; ++j) {o}[j] /= s; }}\n")


def expit_pair(o: str, d: str) -> str:
    """scipy's expit ``1 / (1 + exp(-d))`` as class 1, ``1 - p`` as class 0 (sklearn's order)."""
    return f"{{ double p = 1.0 / (1.0 + exp(-({d}))); {o}[1] = p; {o}[0] = 1.0 - p; }}\n"
