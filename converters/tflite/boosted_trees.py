"""LightGBM and XGBoost trees as node arrays, for the TFLite tree compiler (``trees.py``).

Both libraries' own dumps are read (no treelite): LightGBM's ``dump_model`` (double thresholds,
``x <= t``; floored to float32 by the compiler) and XGBoost's JSON dump (float32 thresholds,
``x < t``, turned into ``x <= t⁻`` exactly). A split or objective the float comparisons cannot
reproduce is refused by name; ONNX still converts those models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
        trees.append(_flatten_lightgbm(info["tree_structure"], i % k))
    return trees, k, link


def _flatten_lightgbm(root: dict, output: int) -> FlatTree:
    feat, thr, left, right, leaf, value, miss = [], [], [], [], [], [], []
    depth = 0
    stack: list[tuple[dict, int, int, bool]] = [(root, -1, 0, True)]  # node, parent, depth, is left
    while stack:
        node, parent, d, is_left = stack.pop()
        i = len(feat)
        depth = max(depth, d)
        if parent >= 0:
            (left if is_left else right)[parent] = i
        if "split_feature" not in node:
            feat.append(0), thr.append(0.0), left.append(-1), right.append(-1)
            leaf.append(True), value.append(float(node["leaf_value"])), miss.append(False)
            continue
        if node.get("decision_type") != "<=":
            raise ConversionError("LightGBM categorical splits have no TFLite compilation (ONNX converts them)")
        missing = node.get("missing_type", "None")
        t = float(node["threshold"])
        if missing == "NaN":
            nan_left = bool(node.get("default_left", True))
        elif missing == "None":
            nan_left = 0.0 <= t  # LightGBM reads NaN as 0.0
        else:
            raise ConversionError(f"LightGBM missing_type {missing!r} (zero as missing) has no TFLite compilation")
        feat.append(int(node["split_feature"])), thr.append(t), left.append(-1), right.append(-1)
        leaf.append(False), value.append(0.0), miss.append(nan_left)
        stack.append((node["right_child"], i, d + 1, False))
        stack.append((node["left_child"], i, d + 1, True))
    return FlatTree(np.asarray(feat), np.asarray(thr, np.float64), np.asarray(left), np.asarray(right),
                    np.asarray(leaf, bool), np.asarray(value, np.float64), np.asarray(miss, bool), depth, output)


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
    trees = [_flatten_xgboost(t, i % k) for i, t in enumerate(dumps)]
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


def _flatten_xgboost(root: dict, output: int) -> FlatTree:
    feat, thr, left, right, leaf, value, miss = [], [], [], [], [], [], []
    depth = 0
    stack: list[tuple[dict, int, int, bool]] = [(root, -1, 0, True)]
    while stack:
        node, parent, d, is_left = stack.pop()
        i = len(feat)
        depth = max(depth, d)
        if parent >= 0:
            (left if is_left else right)[parent] = i
        if "leaf" in node:
            feat.append(0), thr.append(0.0), left.append(-1), right.append(-1)
            leaf.append(True), value.append(float(node["leaf"])), miss.append(False)
            continue
        split = str(node["split"])
        if not split.startswith("f") or not split[1:].isdigit() or "split_condition" not in node:
            raise ConversionError(f"XGBoost split {split!r} is not a numeric feature split (no TFLite compilation)")
        t32 = np.float32(node["split_condition"])
        below = float(np.nextafter(t32, np.float32(-np.inf)))  # x < t  ⇔  x <= t⁻ for float32 x
        children = {c["nodeid"]: c for c in node["children"]}
        feat.append(int(split[1:])), thr.append(below), left.append(-1), right.append(-1)
        leaf.append(False), value.append(0.0), miss.append(node["missing"] == node["yes"])
        stack.append((children[node["no"]], i, d + 1, False))
        stack.append((children[node["yes"]], i, d + 1, True))
    return FlatTree(np.asarray(feat), np.asarray(thr, np.float64), np.asarray(left), np.asarray(right),
                    np.asarray(leaf, bool), np.asarray(value, np.float64), np.asarray(miss, bool), depth, output)
