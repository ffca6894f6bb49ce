"""Tree ensembles -> C, as nested if/else (one static function per tree).

Bit-faithful to scikit-learn by construction: a float32 input promoted to double is compared
with the float64 threshold (what sklearn's Cython does), NaN goes the way the node learned
(``missing_go_to_left``), leaf contributions are added in sklearn's tree order in float64, and
the per-tree normalisation, ``learning_rate`` products and baselines are computed here with the
same numpy operations sklearn runs, then written as exact hex literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import UnsupportedEstimatorError
from .ctext import HEADER, argmax, entry_points, expit_pair, lit, softmax

FOREST = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor")
SINGLE = ("DecisionTreeClassifier", "DecisionTreeRegressor")
BOOSTED = ("GradientBoostingClassifier", "GradientBoostingRegressor")
HIST = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
#: branchy code gains nothing from -O3's vectoriser (measured: the suite's boosting model 10-15 %
#: slower at 32 rows, the forest level) and its libraries grow
OPT = "-O2"
TREES = SINGLE + FOREST + BOOSTED + HIST


@dataclass
class Tree:
    """One tree's nodes; ``values[i]`` is what leaf ``i`` adds to columns ``column..``."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    missing_left: np.ndarray
    values: np.ndarray  # (n_nodes, width) float64
    column: int = 0


@dataclass
class Ensemble:
    """Trees plus how their sums become outputs.

    ``head``: ``none`` (the sums are the prediction), ``proba`` (the sums are probabilities,
    label = argmax), ``expit`` (one raw score: [1 - p, p]), ``softmax`` (raw scores per class).
    ``label_ge``: the binary raw-score rule is ``>= 0`` (GradientBoosting) rather than ``> 0``.
    """

    trees: list[Tree]
    width: int  # accumulator columns
    base: Optional[np.ndarray]
    divide: Optional[int]
    head: str
    label_ge: bool = False


def _sk_tree(t: Any, values: np.ndarray, column: int = 0) -> Tree:
    leaf = t.children_left == -1
    ml = getattr(t, "missing_go_to_left", None)
    ml = np.zeros(t.node_count, bool) if ml is None else np.asarray(ml).astype(bool)
    return Tree(np.asarray(t.feature), np.asarray(t.threshold, np.float64), np.asarray(t.children_left),
                np.asarray(t.children_right), leaf, ml, np.asarray(values, np.float64), column)


def _proba_values(t: Any, n_classes: int) -> np.ndarray:
    """What DecisionTreeClassifier.predict_proba returns per leaf: scikit-learn >= 1.4 stores
    class fractions in ``tree_.value`` and returns them as they are; older releases stored
    counts and divided by their sum (the same numpy ops are used here for those)."""
    proba = np.array(t.value[:, 0, :n_classes], dtype=np.float64)
    sums = proba.sum(axis=1)
    leaves = t.children_left == -1
    if np.allclose(sums[leaves], 1.0, rtol=0, atol=1e-9):
        return proba
    normalizer = sums[:, np.newaxis]
    normalizer[normalizer == 0.0] = 1.0
    proba /= normalizer
    return proba


def _link(est: Any) -> str:
    link = type(getattr(getattr(est, "_loss", None), "link", None)).__name__
    if link not in ("IdentityLink", "LogitLink", "MultinomialLogit"):
        raise UnsupportedEstimatorError(
            f"{type(est).__name__} with loss {getattr(est, 'loss', '?')!r} (inverse link {link}) cannot be "
            "compiled to native code; use log_loss / squared_error, or --format onnx")
    return link


def ensemble_of(est: Any) -> Ensemble:
    """Raises: UnsupportedEstimatorError for multi-output classifiers, categorical splits and
    losses whose inverse link is not identity, expit or softmax."""
    name = type(est).__name__
    classifier = hasattr(est, "classes_")
    if name in SINGLE + FOREST:
        members = [est] if name in SINGLE else list(est.estimators_)
        if classifier:
            if getattr(est, "n_outputs_", 1) != 1:
                raise UnsupportedEstimatorError(f"multi-output {name} cannot be compiled to native code")
            k = len(est.classes_)
            trees = [_sk_tree(m.tree_, _proba_values(m.tree_, k)) for m in members]
            return Ensemble(trees, k, None, None if name in SINGLE else len(members), "proba")
        width = int(est.n_outputs_)
        trees = [_sk_tree(m.tree_, m.tree_.value[:, :, 0]) for m in members]
        return Ensemble(trees, width, None, None if name in SINGLE else len(members), "none")
    if name in BOOSTED:
        link = _link(est)
        if est.init not in (None, "zero"):
            raise UnsupportedEstimatorError(f"{name} with a custom init estimator cannot be compiled to native code")
        k = int(est.estimators_.shape[1])
        base = np.asarray(est._raw_predict_init(np.zeros((1, est.n_features_in_), np.float32)),
                          np.float64).reshape(-1)
        lr = float(est.learning_rate)
        trees = [_sk_tree(stage[j].tree_, lr * stage[j].tree_.value[:, 0, :1], j)
                 for stage in est.estimators_ for j in range(k)]
        head = "none" if link == "IdentityLink" else "expit" if k == 1 else "softmax"
        return Ensemble(trees, k, base, None, head, label_ge=True)
    if name in HIST:
        link = _link(est)
        if getattr(est, "_preprocessor", None) is not None or getattr(est, "is_categorical_", None) is not None \
                and np.any(est.is_categorical_):
            raise UnsupportedEstimatorError(f"{name} with categorical features cannot be compiled to native code")
        k = int(getattr(est, "n_trees_per_iteration_", 1))
        base = np.asarray(est._baseline_prediction, np.float64).reshape(-1)
        trees = []
        for predictors in est._predictors:
            for j, p in enumerate(predictors):
                n = p.nodes
                leaf = n["is_leaf"].astype(bool)
                trees.append(Tree(np.asarray(n["feature_idx"]), np.asarray(n["num_threshold"], np.float64),
                                  np.where(leaf, -1, n["left"]), np.where(leaf, -1, n["right"]), leaf,
                                  n["missing_go_to_left"].astype(bool),
                                  np.asarray(n["value"], np.float64).reshape(-1, 1), j))
        head = "none" if link == "IdentityLink" else "expit" if k == 1 else "softmax"
        return Ensemble(trees, k, base, None, head)
    raise UnsupportedEstimatorError(f"{name} is not a tree model")


def _tree_fn(i: int, t: Tree) -> str:
    lines = [f"static void t{i}(const float *x, double *r) {{\n"]

    def node(n: int, pad: str) -> None:
        if t.leaf[n]:
            adds = " ".join(f"r[{t.column + j}] += {lit(v)};" for j, v in enumerate(t.values[n]))
            lines.append(f"{pad}{adds}\n")
            return
        f, thr = int(t.feature[n]), lit(t.threshold[n])
        # NaN fails every comparison: "!(x > t)" sends it left, "x <= t" sends it right
        cond = f"!(x[{f}] > {thr})" if t.missing_left[n] else f"x[{f}] <= {thr}"
        lines.append(f"{pad}if ({cond}) {{\n")
        node(int(t.left[n]), pad + " ")
        lines.append(f"{pad}}} else {{\n")
        node(int(t.right[n]), pad + " ")
        lines.append(f"{pad}}}\n")

    node(0, " ")
    lines.append("}\n")
    return "".join(lines)


def generate(est: Any, n_features: int, classifier: bool) -> tuple[str, int]:
    """(C source, output columns) for a fitted tree model."""
    e = ensemble_of(est)
    src = [HEADER]
    src += [_tree_fn(i, t) for i, t in enumerate(e.trees)]
    init = ", ".join(lit(v) for v in e.base) if e.base is not None else "0"
    body = [f"static int32_t row(const float *x, double *o, int32_t *label) {{\n double r[{e.width}] = {{{init}}};\n"]
    body += [f" t{i}(x, r);\n" for i in range(len(e.trees))]
    if e.divide:
        body.append(f" for (int32_t j = 0; j < {e.width}; ++j) r[j] /= {lit(float(e.divide))};\n")
    if e.head in ("none", "proba"):
        n_out = e.width
        body.append(f" for (int32_t j = 0; j < {e.width}; ++j) o[j] = r[j];\n")
        if e.head == "proba":
            body.append(" " + argmax("o", e.width))
    elif e.head == "expit":
        n_out = 2
        body.append(" " + expit_pair("o", "r[0]"))
        body.append(f" *label = r[0] {'>=' if e.label_ge else '>'} 0.0;\n")
    else:
        n_out = e.width
        body.append(" " + argmax("r", e.width))
        body.append(f" for (int32_t j = 0; j < {e.width}; ++j) o[j] = r[j];\n " + softmax("o", e.width))
    body.append(" return 0;\n}\n")
    src += body
    src.append(entry_points(n_features, n_out, classifier, "row"))
    return "".join(src), n_out
