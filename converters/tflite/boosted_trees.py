"""LightGBM and XGBoost trees as node arrays, for the TFLite tree compiler (``trees.py``).

Both libraries' own dumps are read (no treelite): LightGBM's ``dump_model`` (double thresholds,
``x <= t``; floored to float32 by the compiler) and XGBoost's JSON dump (float32 thresholds,
``x < t``, turned into ``x <= t⁻`` exactly). A split or objective the float comparisons cannot
reproduce is refused by name; ONNX still converts those models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ConversionError


@dataclass
class FlatTree:
    """One LightGBM tree as node arrays (depth-first ids; children -1 at leaves), what the
    TFLite tree compiler takes. ``missing_left``: where NaN goes (LightGBM reads NaN as 0.0
    where the split has no missing-value direction)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    depth: int
    output: int  # which raw score (class) the tree adds to


def lightgbm_trees(model: Any) -> tuple[list[FlatTree], int, str]:
    """The trees of a LightGBM model (estimator or wrapped Booster), the number of raw scores
    and the objective's link: "identity" (regression), "sigmoid" (binary), "softmax".

    Raises:
        ConversionError: a split or objective the float comparisons cannot reproduce exactly
            (categorical splits, zero-as-missing, random-forest averaging, log links).
    """
    booster = model.booster_
    dump = booster.dump_model()
    objective = str(dump.get("objective", "")).split()[0]
    k = int(dump.get("num_tree_per_iteration", 1))
    if objective == "binary":
        link = "sigmoid"
    elif objective in ("multiclass", "softmax"):
        link = "softmax"
    elif objective in ("regression", "regression_l2", "l2", "regression_l1", "huber", "fair", "quantile"):
        link = "identity"
    else:
        raise ConversionError(f"LightGBM objective {objective!r} has no TFLite compilation (ONNX converts it)")
    if dump.get("average_output"):
        raise ConversionError("LightGBM random-forest mode (average_output) has no TFLite compilation")
    trees = []
    for i, info in enumerate(dump["tree_info"]):
        trees.append(_flatten(info["tree_structure"], i % k, _lightgbm_node))
    return trees, k, link


#: one node read from a library's dump: ("leaf", value) or ("split", feature, threshold used
#: with ``x <= threshold``, NaN goes left, left child, right child)
Visited = tuple


def _flatten(root: dict, output: int, visit: Callable[[dict], Visited]) -> FlatTree:
    """Depth-first node arrays of one tree; ``visit`` reads one node of the library's dump."""
    feat: list[int] = []
    thr: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    miss: list[bool] = []
    depth = 0
    stack: list[tuple[dict, int, int, bool]] = [(root, -1, 0, True)]  # node, parent, depth, is left
    while stack:
        node, parent, d, is_left = stack.pop()
        i = len(feat)
        depth = max(depth, d)
        if parent >= 0:
            (left if is_left else right)[parent] = i
        seen = visit(node)
        left.append(-1)
        right.append(-1)
        if seen[0] == "leaf":
            feat.append(0)
            thr.append(0.0)
            value.append(float(seen[1]))
            miss.append(False)
            continue
        _, f, t, nan_left, yes, no = seen
        feat.append(int(f))
        thr.append(float(t))
        value.append(0.0)
        miss.append(bool(nan_left))
        stack.append((no, i, d + 1, False))
        stack.append((yes, i, d + 1, True))
    leaf = np.asarray(left) == -1
    return FlatTree(np.asarray(feat), np.asarray(thr, np.float64), np.asarray(left), np.asarray(right),
                    leaf, np.asarray(value, np.float64), np.asarray(miss, bool), depth, output)


def _lightgbm_node(node: dict) -> Visited:
    if "split_feature" not in node:
        return ("leaf", node["leaf_value"])
    if node.get("decision_type") != "<=":
        raise ConversionError("LightGBM categorical splits have no TFLite compilation (ONNX converts them)")
    missing = node.get("missing_type", "None")
    t = float(node["threshold"])
    if missing == "NaN":
        nan_left = bool(node.get("default_left", True))
    elif missing == "None":
        nan_left = t >= 0.0  # LightGBM reads NaN as 0.0
    else:
        raise ConversionError(f"LightGBM missing_type {missing!r} (zero as missing) has no TFLite compilation")
    return ("split", node["split_feature"], t, nan_left, node["left_child"], node["right_child"])


def xgboost_trees(model: Any) -> tuple[list[FlatTree], int, str, np.ndarray]:
    """The trees of an XGBoost model as :class:`FlatTree` (XGBoost splits on ``x < t`` with a
    float32 ``t``: for float32 x that is ``x <= t⁻``, the float32 just below), the number of raw
    scores, the link and the margin offset (the base score, read back from XGBoost's own margin
    on one row, so its probability-vs-margin storage across versions does not matter).

    Raises:
        ConversionError: an objective other than binary:logistic, multi:softprob/softmax or
            reg:squarederror, or a split that is not numeric.
    """
    import xgboost

    booster = model.get_booster()
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    links = {"binary:logistic": "sigmoid", "multi:softprob": "softmax", "multi:softmax": "softmax",
             "reg:squarederror": "identity"}
    if objective not in links:
        raise ConversionError(f"XGBoost objective {objective!r} has no TFLite compilation (ONNX converts it)")
    k = int(getattr(model, "n_classes_", 1)) if links[objective] == "softmax" else 1
    dumps = [json.loads(t) for t in booster.get_dump(dump_format="json")]
    trees = [_flatten(t, i % k, _xgboost_node) for i, t in enumerate(dumps)]
    row = xgboost.DMatrix(np.zeros((1, booster.num_features()), np.float32))
    margin = np.asarray(booster.predict(row, output_margin=True), np.float64).reshape(-1)
    reached = np.asarray(booster.predict(row, pred_leaf=True)).reshape(-1)
    sums = np.zeros(k)
    for i, (t, leaf_id) in enumerate(zip(dumps, reached)):
        sums[i % k] += _xgb_leaf_value(t, int(leaf_id))
    return trees, k, links[objective], margin - sums


def _xgb_leaf_value(node: dict, leaf_id: int) -> float:
    stack = [node]
    while stack:
        n = stack.pop()
        if n["nodeid"] == leaf_id:
            return float(n["leaf"])
        stack += n.get("children", [])
    raise ConversionError(f"XGBoost leaf {leaf_id} not found in its tree")


def _xgboost_node(node: dict) -> Visited:
    if "leaf" in node:
        return ("leaf", node["leaf"])
    split = str(node["split"])
    if not split.startswith("f") or not split[1:].isdigit() or "split_condition" not in node:
        raise ConversionError(f"XGBoost split {split!r} is not a numeric feature split (no TFLite compilation)")
    t32 = np.float32(node["split_condition"])
    below = float(np.nextafter(t32, np.float32(-np.inf)))  # x < t  ⇔  x <= t⁻ for float32 x
    children = {c["nodeid"]: c for c in node["children"]}
    return ("split", int(split[1:]), below, node["missing"] == node["yes"], children[node["yes"]],
            children[node["no"]])


def catboost_trees(model: Any) -> tuple[list[FlatTree], int, str, np.ndarray, float]:
    """CatBoost's oblivious trees (its JSON export) as full binary :class:`FlatTree`s: level j
    tests split j (``x > border`` goes right, bit j of the leaf index), the leaf values are the
    row of that index. Also the number of raw scores, the link, the bias and the scale
    (raw = scale × Σ leaves + bias).

    Raises:
        ConversionError: a loss other than Logloss, MultiClass or RMSE, or a split on anything
            but a float feature (categorical, text, embeddings).
    """
    import tempfile
    from pathlib import Path

    loss = str(model.get_all_params().get("loss_function", ""))
    links = {"Logloss": "sigmoid", "CrossEntropy": "sigmoid", "MultiClass": "softmax", "RMSE": "identity"}
    if loss not in links:
        raise ConversionError(f"CatBoost loss {loss!r} has no TFLite compilation (ONNX converts it)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.json"
        model.save_model(str(path), format="json")
        dump = json.loads(path.read_text(encoding="utf-8"))
    nan_right = {f["flat_feature_index"]: f.get("nan_value_treatment") == "AsTrue"
                 for f in dump["features_info"].get("float_features", [])}
    scale, bias = dump.get("scale_and_bias", [1.0, [0.0]])
    bias = np.asarray(bias, np.float64).reshape(-1)
    k = bias.size
    trees = []
    for tree in dump["oblivious_trees"]:
        splits = tree["splits"]
        if any(s.get("split_type") != "FloatFeature" for s in splits):
            raise ConversionError("CatBoost splits on categorical or text features have no TFLite compilation")
        leaves = np.asarray(tree["leaf_values"], np.float64).reshape(-1, k)
        for j in range(k):
            trees.append(_oblivious(splits, leaves[:, j], nan_right, j))
    return trees, k, links[loss], bias, float(scale)


def _oblivious(splits: list, values: np.ndarray, nan_right: dict, output: int) -> FlatTree:
    def visit(node: dict) -> Visited:
        level, index = node["level"], node["index"]
        if level == len(splits):
            return ("leaf", values[index])
        s = splits[level]
        f = s["float_feature_index"]
        return ("split", f, s["border"], not nan_right.get(f, False),
                {"level": level + 1, "index": index}, {"level": level + 1, "index": index | (1 << level)})

    return _flatten({"level": 0, "index": 0}, output, visit)
