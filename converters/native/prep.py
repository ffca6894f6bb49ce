"""The preprocessing steps before a linear model or an MLP -> C, each as scikit-learn computes it
(not folded): SimpleImputer replaces NaN by its statistic, StandardScaler ``(x - mean) / scale``,
MinMaxScaler ``x * scale + min``, OneHotEncoder one 0/1 column per kept category, and a
ColumnTransformer gathers its columns for each transformer and concatenates the outputs in its
order (remainder included). Values are doubles; the input row is float32.

A category never seen in training, where the encoder says ``handle_unknown="error"``, makes the
row function return 1: the device raises an InputError for that row, as sklearn raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedEstimatorError
from .ctext import array, lit

PRE = ("StandardScaler", "MinMaxScaler", "SimpleImputer", "OneHotEncoder", "ColumnTransformer", "Pipeline")


@dataclass
class Code:
    """Tables (file scope) and statements (inside the row function) being emitted."""

    tables: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    n: int = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def buffer(self, width: int) -> str:
        v = self.name("v")
        self.body.append(f" double {v}[{max(width, 1)}];\n")
        return v


def refuse(what: str) -> UnsupportedEstimatorError:
    return UnsupportedEstimatorError(f"{what} cannot be compiled to native code (supported before a linear "
                                     f"model or an MLP: {', '.join(PRE)}); use --format onnx")


def emit(code: Code, steps: list[Any], d: int) -> tuple[str, int]:
    """Emit ``steps`` applied to the input row ``x``; returns (buffer name, width)."""
    z = code.buffer(d)
    code.body.append(f" for (int32_t j = 0; j < {d}; ++j) {z}[j] = (double)x[j];\n")
    for step in steps:
        z, d = _step(code, step, z, d)
    return z, d


def _step(code: Code, p: Any, z: str, d: int) -> tuple[str, int]:
    """One step on buffer ``z`` of width ``d`` (element-wise steps work in place)."""
    name = type(p).__name__
    if name == "Pipeline":
        for _, s in p.steps:
            if s not in (None, "passthrough"):
                z, d = _step(code, s, z, d)
        return z, d
    if name == "ColumnTransformer":
        return _columns(code, p, z, d)
    if name == "OneHotEncoder":
        return _one_hot(code, p, z, d)
    if name == "FunctionTransformer" and p.func is None:  # how a fitted ColumnTransformer passes through
        return z, d
    if getattr(p, "n_features_in_", d) != d:
        raise refuse(f"{name} fitted on {p.n_features_in_} columns, given {d}")
    if name == "SimpleImputer":
        stats = np.asarray(p.statistics_, np.float64)
        if getattr(p, "add_indicator", False) or stats.shape != (d,) or np.isnan(stats).any():
            raise refuse("a SimpleImputer with add_indicator or all-missing columns")
        t = code.name("FILL")
        code.tables.append(array(t, stats))
        code.body.append(f" for (int32_t j = 0; j < {d}; ++j) if ({z}[j] != {z}[j]) {z}[j] = {t}[j];\n")
    elif name == "StandardScaler":
        if p.mean_ is not None:
            t = code.name("MEAN")
            code.tables.append(array(t, p.mean_))
            code.body.append(f" for (int32_t j = 0; j < {d}; ++j) {z}[j] -= {t}[j];\n")
        if p.scale_ is not None:
            t = code.name("SCALE")
            code.tables.append(array(t, p.scale_))
            code.body.append(f" for (int32_t j = 0; j < {d}; ++j) {z}[j] /= {t}[j];\n")
    elif name == "MinMaxScaler":
        if getattr(p, "clip", False):
            raise refuse("MinMaxScaler(clip=True)")
        s, m = code.name("MMS"), code.name("MMM")
        code.tables += [array(s, p.scale_), array(m, p.min_)]
        code.body.append(f" for (int32_t j = 0; j < {d}; ++j) {{ {z}[j] *= {s}[j]; {z}[j] += {m}[j]; }}\n")
    else:
        raise refuse(name)
    return z, d


def _columns(code: Code, ct: Any, z: str, d: int) -> tuple[str, int]:
    """Gather each transformer's columns, run it, concatenate in ``transformers_`` order."""
    if getattr(ct, "sparse_output_", False):
        raise refuse("a ColumnTransformer with sparse output")
    parts: list[tuple[str, int]] = []
    for name, trans, _ in ct.transformers_:
        if trans == "drop":
            continue
        cols = [int(c) for c in np.asarray(ct._transformer_to_input_indices[name]).ravel()]
        if not cols:
            continue
        g = code.buffer(len(cols))
        idx = code.name("COLS")
        code.tables.append(f"static const int32_t {idx}[] = {{{', '.join(map(str, cols))}}};\n")
        code.body.append(f" for (int32_t j = 0; j < {len(cols)}; ++j) {g}[j] = {z}[{idx}[j]];\n")
        parts.append((g, len(cols)) if isinstance(trans, str) and trans == "passthrough"
                     else _step(code, trans, g, len(cols)))
    width = sum(w for _, w in parts)
    out = code.buffer(width)
    at = 0
    for buf, w in parts:
        code.body.append(f" for (int32_t j = 0; j < {w}; ++j) {out}[{at} + j] = {buf}[j];\n")
        at += w
    return out, width


def _one_hot(code: Code, enc: Any, z: str, d: int) -> tuple[str, int]:
    if getattr(enc, "_infrequent_enabled", False):
        raise refuse("OneHotEncoder with infrequent categories")
    if enc.handle_unknown not in ("error", "ignore"):
        raise refuse(f"OneHotEncoder(handle_unknown={enc.handle_unknown!r})")
    drops = getattr(enc, "drop_idx_", None)
    cats = []
    for j, c in enumerate(enc.categories_):
        if c.dtype.kind not in "biuf":
            raise refuse("OneHotEncoder with non-numeric categories (the device input is float32)")
        drop = None if drops is None or drops[j] is None else int(drops[j])
        cats.append((np.asarray(c, np.float64), drop))
    width = sum(len(c) - (drop is not None) for c, drop in cats)
    out = code.buffer(width)
    code.body.append(f" for (int32_t j = 0; j < {max(width, 1)}; ++j) {out}[j] = 0.0;\n")
    at = 0
    for j, (c, drop) in enumerate(cats):
        code.body.append(f" {{ const double v = {z}[{j}]; int32_t known = 0;\n")
        for k, value in enumerate(c):
            test = "v != v" if np.isnan(value) else f"v == {lit(value)}"
            hit = "known = 1;" if k == drop else f"known = 1; {out}[{at + k - (drop is not None and k > drop)}] = 1.0;"
            code.body.append(f"  if ({test}) {{ {hit} }}\n")
        if enc.handle_unknown == "error":
            code.body.append("  if (!known) return 1;\n")
        code.body.append("  (void)known; }\n")
        at += len(c) - (drop is not None)
    return out, width
