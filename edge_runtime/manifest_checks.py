"""Typed readers for manifest fields, and the checks of the golden rows and reference statistics.

A manifest is untrusted input until it is validated: every field the runtime reads is checked
here for its JSON type (``"false"`` is not a bool, ``true`` is not a number), for finiteness and
bounds, and every refusal is a :class:`~edge_runtime.errors.BundleError` that names the field by
its path (``inputs.features[2].range``). :class:`edge_runtime.bundle.Manifest` uses these;
nothing else re-validates.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Mapping, Optional, Sequence

from .errors import BundleError

#: tasks whose ``label`` output is one of ``outputs.classes``: anomaly labels are -1 (outlier) /
#: 1 (inlier), clustering labels the cluster index; their ``scores`` output is the anomaly score
#: (decision_function: below 0 is an outlier) or the distance to each cluster centre (transform)
LABEL_TASKS = ("classification", "anomaly", "clustering")

MAX_NAME_CHARS = 256
FLOAT32_MAX = 3.4028234663852886e38
DTYPES = ("float32", "float64")
#: a categorical feature's categories: at most this many, each at most this many characters
MAX_CATEGORIES = 65_536
MAX_CATEGORY_CHARS = 1024
#: one text value (a text feature's cell) is at most this many characters
MAX_TEXT_CHARS = 100_000
UNKNOWN_POLICIES = ("ignore", "encoded", "error")
CLASS_TYPES = (str, int, float, bool)


def kind(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) \
        else type(value).__name__


def fail(where: str, what: str) -> BundleError:
    return BundleError(f"manifest: field '{where}' {what}")


def require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    """``obj[key]``, or a :class:`BundleError` naming the missing field."""
    if key not in obj:
        raise BundleError(f"manifest: missing field '{where}{key}'")
    return obj[key]


def obj(value: Any, where: str, *, optional: bool = False) -> dict[str, Any]:
    """A JSON object (``{}`` for null/absent when ``optional``)."""
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise fail(where, f"must be an object, not {kind(value)}")
    return value


def seq(value: Any, where: str, *, min_len: int = 0, length: Optional[int] = None) -> list[Any]:
    """A JSON list of at least ``min_len`` (or exactly ``length``) entries."""
    if not isinstance(value, list):
        raise fail(where, f"must be a list, not {kind(value)}")
    if length is not None and len(value) != length:
        raise fail(where, f"has {len(value)} entries, expected {length}")
    if len(value) < min_len:
        raise fail(where, "is empty" if not value else f"needs at least {min_len} entries")
    return value


def text(value: Any, where: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """A non-empty string without control characters, at most ``max_chars`` long."""
    if not isinstance(value, str):
        raise fail(where, f"must be a string, not {kind(value)}")
    if not value:
        raise fail(where, "is empty")
    if len(value) > max_chars:
        raise fail(where, f"is {len(value)} characters long (at most {max_chars})")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise fail(where, "holds a control character")
    return value


def boolean(value: Any, where: str) -> bool:
    """A JSON ``true``/``false``; the string ``"false"`` is not one (it would read as true)."""
    if not isinstance(value, bool):
        raise fail(where, f"must be true or false, not {kind(value)} ({_short(value)})")
    return value


def number(value: Any, where: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite JSON number in ``[lo, hi]`` (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(where, f"must be a number, not {kind(value)} ({_short(value)})")
    try:
        as_float = float(value)
    except OverflowError:
        raise fail(where, f"is {_short(value)} (beyond float range)") from None
    if not math.isfinite(as_float):
        raise fail(where, f"is {value} (must be finite)")
    if not lo <= as_float <= hi:
        raise fail(where, f"is {value}, outside [{lo}, {hi}]")
    return as_float


def integer(value: Any, where: str, *, lo: int, hi: int) -> int:
    """A JSON integer in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, f"must be an integer, not {kind(value)} ({_short(value)})")
    if not lo <= value <= hi:
        raise fail(where, f"is {value}, outside [{lo}, {hi}]")
    return value


def value_range(value: Any, where: str) -> Optional[tuple[float, float]]:
    """``[low, high]`` of finite numbers with low <= high, or None. ``[NaN, NaN]`` would switch
    the range check off (every comparison with NaN is false), hence finiteness."""
    if value is None:
        return None
    pair = seq(value, where, length=2)
    low, high = number(pair[0], where + "[0]"), number(pair[1], where + "[1]")
    if low > high:
        raise fail(where, f"is [{low}, {high}]: low is above high")
    return low, high


def classes(value: Any, task: str, where: str = "outputs.classes") -> Optional[list[Any]]:
    """At least one class for classification, all of one JSON type, unique (also as text: the
    golden check compares labels as strings); none for regression."""
    if task not in LABEL_TASKS:
        if value is not None:
            raise fail(where, "is set, but a regression bundle has no classes")
        return None
    if value is None:
        raise BundleError(f"manifest: a {task} bundle needs '{where}'")
    items = seq(value, where, min_len=1)
    first = type(items[0])
    for i, c in enumerate(items):
        if type(c) is not first or not isinstance(c, CLASS_TYPES):
            raise fail(f"{where}[{i}]", f"is {kind(c)}; classes must all be strings, all integers, "
                       "all numbers or all bools")
        if isinstance(c, float):
            number(c, f"{where}[{i}]")
        if isinstance(c, str):
            text(c, f"{where}[{i}]")
    if len({str(c) for c in items}) != len(items):
        raise fail(where, "has duplicate classes")
    return list(items)


def check_golden(golden: Any, where: str, *, features: Sequence[Any], task: str,
                 classes: Optional[list[Any]], rows: Optional[int]) -> int:
    """Shape and types of one golden block; returns its row count.

    ``rows`` is the row count of the top-level block when ``golden`` is an artifact's own block
    (whose ``inputs`` are optional and default to the top-level ones). Inputs must be values
    the model's input check accepts (finite float32, null only where the feature allows NaN,
    inside its range): otherwise the smoke test fails with an input error, not a verdict.
    Values the golden check compares must be finite numbers, so the check can never be NaN.
    """
    block = obj(golden, where)
    if "inputs" in block or rows is None:
        inputs = seq(require(block, "inputs", where + "."), where + ".inputs", min_len=1)
        for r, row in enumerate(inputs):
            _golden_row(row, f"{where}.inputs[{r}]", features)
        rows = len(inputs)
    for key in ("atol", "rtol"):  # present means a number: the check reads them with a default
        if key in block:
            number(block[key], f"{where}.{key}", lo=0.0)
    if "min_label_agreement" in block:
        number(block["min_label_agreement"], f"{where}.min_label_agreement", lo=0.0, hi=1.0)
    if block.get("label") is not None:
        _golden_labels(block["label"], where, classes, rows)
    if block.get("probabilities") is not None:
        if task != "classification" or classes is None:
            raise fail(f"{where}.probabilities", "is set, but the bundle has no classes")
        for i, prow in enumerate(seq(block["probabilities"], f"{where}.probabilities", length=rows)):
            for j, p in enumerate(seq(prow, f"{where}.probabilities[{i}]", length=len(classes))):
                number(p, f"{where}.probabilities[{i}][{j}]")
    if block.get("prediction") is not None:
        for i, v in enumerate(seq(block["prediction"], f"{where}.prediction", length=rows)):
            number(v, f"{where}.prediction[{i}]")
    return rows


def _golden_labels(labels: Any, where: str, classes: Optional[list[Any]], rows: int) -> None:
    """One class label per golden row, each one of ``classes`` when the bundle lists them."""
    known = {str(c) for c in classes} if classes is not None else None
    for i, lab in enumerate(seq(labels, f"{where}.label", length=rows)):
        if not isinstance(lab, CLASS_TYPES):
            raise fail(f"{where}.label[{i}]", f"must be a class label, not {kind(lab)}")
        if known is not None and str(lab) not in known:
            raise fail(f"{where}.label[{i}]", f"is {_short(lab)}, not one of outputs.classes")


def check_label_order(golden: Mapping[str, Any], classes: list[Any], where: str) -> None:
    """Probabilities columns are in ``classes`` order: the golden labels must mostly be the class
    of each row's highest probability. A permuted ``classes`` list would pass the golden check
    (labels and probability values are compared separately) and then name every column wrongly.
    A majority, not all rows: some estimators' ``predict`` is not their ``predict_proba`` argmax.
    Only rows that are distributions count: a wrapped model's second output may be scores
    (KMeans gives distances, whose argmin is the label)."""
    labels, probs = golden.get("label"), golden.get("probabilities")
    if labels is None or probs is None:
        return
    decided = agree = 0
    for lab, row in zip(labels, probs):
        if not row or min(row) < 0 or max(row) > 1 or abs(sum(row) - 1) > 1e-3:
            continue
        top = max(row)
        if row.count(top) == 1:
            decided += 1
            agree += str(classes[row.index(top)]) == str(lab)
    if decided and 2 * agree <= decided:
        raise fail("outputs.classes", f"is not the probabilities' column order: the golden labels "
                   f"are the top class in {agree} of {decided} rows ({where})")


def category(value: Any, where: str, max_chars: int = MAX_CATEGORY_CHARS) -> str:
    """A category (or, with ``max_chars=MAX_TEXT_CHARS``, a text feature's value): a string of
    at most ``max_chars`` (any characters; "" is one)."""
    if not isinstance(value, str):
        raise fail(where, f"must be a string, not {kind(value)} ({_short(value)})")
    if len(value) > max_chars:
        raise fail(where, f"is {len(value)} characters long (at most {max_chars})")
    return value


def categories(value: Any, where: str) -> tuple[str, ...]:
    """Unique strings, at least one, at most ``MAX_CATEGORIES``."""
    items = seq(value, where, min_len=1)
    if len(items) > MAX_CATEGORIES:
        raise fail(where, f"has {len(items)} entries (at most {MAX_CATEGORIES})")
    out = tuple(category(c, f"{where}[{i}]") for i, c in enumerate(items))
    if len(set(out)) != len(out):
        raise fail(where, "has duplicate categories")
    return out


def typed_feature(feat: Mapping[str, Any], feature_kind: str, where: str) -> dict[str, Any]:
    """The fields of a categorical or text feature (``Feature`` keyword arguments; none for a
    numeric one, which has no categories). Such a feature takes strings: no NaN, no numeric
    range, no training min/max."""
    if feature_kind == "numeric":
        for key in ("categories", "unknown"):
            if feat.get(key) is not None:
                raise fail(f"{where}.{key}", "is set, but only a categorical feature has categories")
        return {}
    for key in ("range", "train_min", "train_max"):
        if feat.get(key) is not None:
            raise fail(f"{where}.{key}", f"is set, but a {feature_kind} feature takes strings")
    if feat.get("allow_nan", False) is not False:
        raise fail(f"{where}.allow_nan", f"must be false for a {feature_kind} feature")
    out: dict[str, Any] = {"kind": feature_kind}
    if feature_kind == "categorical":
        out["categories"] = categories(require(feat, "categories", where + "."), where + ".categories")
        policy = require(feat, "unknown", where + ".")
        if policy not in UNKNOWN_POLICIES:
            raise fail(f"{where}.unknown", f"is {_short(policy)}, not one of {UNKNOWN_POLICIES}")
        out["unknown"] = policy
    elif feat.get("categories") is not None:
        raise fail(f"{where}.categories", "is set, but only a categorical feature has categories")
    return out


def check_inputs(specs: Sequence[Any], features: Sequence[Any], where: str) -> None:
    """An artifact's named inputs carry every feature exactly once, strings in string tensors
    and numbers in float ones; without named inputs every feature must be numeric."""
    if not specs:
        typed = [f.name for f in features if f.kind != "numeric"]
        if typed:
            raise fail(where[: -len(".inputs")] + ".input", f"is one float matrix, but feature "
                       f"'{typed[0]}' is {next(f.kind for f in features if f.name == typed[0])} "
                       "(strings need named 'inputs')")
        return
    by_name = {f.name: f for f in features}
    seen: set[str] = set()
    for k, spec in enumerate(specs):
        for j, name in enumerate(spec.features):
            at = f"{where}[{k}].features[{j}]"
            feat = by_name.get(name)
            if feat is None:
                raise fail(at, f"is {_short(name)}, not an input feature")
            if name in seen:
                raise fail(at, f"repeats feature '{name}' (each feature goes to one input)")
            seen.add(name)
            if (spec.dtype == "string") != (feat.kind != "numeric"):
                raise fail(f"{where}[{k}].dtype", f"is {spec.dtype}, but feature '{name}' is {feat.kind}")
    missing = [f.name for f in features if f.name not in seen]
    if missing:
        raise fail(where, f"carry no input for feature(s) {missing[:5]}")


def check_reference(value: Any, names: Sequence[str], where: str = "reference") -> None:
    """Training statistics drive drift telemetry and benchmark rows: one well-formed entry per
    input feature, in the features' order and under their names."""
    if value is None:
        return
    ref = obj(value, where)
    if ref.get("n_rows") is not None:
        integer(ref["n_rows"], where + ".n_rows", lo=0, hi=2**63 - 1)
    if ref.get("features") is None:
        return
    for i, feat in enumerate(seq(ref["features"], where + ".features", length=len(names))):
        at = f"{where}.features[{i}]"
        feat = obj(feat, at)
        if feat.get("name") is not None and feat["name"] != names[i]:
            raise fail(at + ".name", f"is {_short(feat['name'])}, but input feature {i} is "
                       f"'{names[i]}'")
        if feat.get("missing") is not None:
            integer(feat["missing"], at + ".missing", lo=0, hi=2**63 - 1)
        if feat.get("categories") is not None:  # a categorical feature: counts per category + other
            _reference_categorical(feat, at)
        else:
            _reference_numeric(feat, at)


def _reference_categorical(feat: Mapping[str, Any], at: str) -> None:
    cats = categories(feat["categories"], at + ".categories")
    # the device bins category codes: the edges are the half-integers between them
    if feat.get("edges") != [i + 0.5 for i in range(len(cats))]:
        raise fail(at + ".edges", "must be the half-integers 0.5 … len(categories) - 0.5 "
                   "(category codes are binned)")
    counts = seq(require(feat, "counts", at + "."), at + ".counts", length=len(cats) + 1)
    for k, c in enumerate(counts):
        integer(c, f"{at}.counts[{k}]", lo=0, hi=2**63 - 1)


def _reference_numeric(feat: Mapping[str, Any], at: str) -> None:
    """Sorted bin edges, one count more than edges, and numeric summary figures."""
    edges = seq(feat.get("edges", []), at + ".edges")
    last = -math.inf
    for k, e in enumerate(edges):
        e = number(e, f"{at}.edges[{k}]")
        if e < last:
            raise fail(at + ".edges", "is not sorted")
        last = e
    if feat.get("counts") is not None:
        counts = seq(feat["counts"], at + ".counts", length=len(edges) + 1)
        for k, c in enumerate(counts):
            integer(c, f"{at}.counts[{k}]", lo=0, hi=2**63 - 1)
    for key in ("min", "max", "mean", "std"):
        if feat.get(key) is not None:
            number(feat[key], f"{at}.{key}")


def _golden_row(row: Any, where: str, features: Sequence[Any]) -> None:
    for j, (v, feat) in enumerate(zip(seq(row, where, length=len(features)), features)):
        if feat.kind != "numeric":  # categories and text: a string the input check accepts
            category(v, f"{where}[{j}]", MAX_CATEGORY_CHARS if feat.kind == "categorical" else MAX_TEXT_CHARS)
            continue
        if v is None:
            if not feat.allow_nan:
                raise fail(f"{where}[{j}]", f"is null (NaN) but feature '{feat.name}' does not "
                           "allow NaN")
            continue
        x = number(v, f"{where}[{j}]", lo=-FLOAT32_MAX, hi=FLOAT32_MAX)
        if feat.range is not None:
            x32 = struct.unpack("f", struct.pack("f", x))[0]  # float32 artifacts compare this one
            if not (feat.range[0] <= x <= feat.range[1] and feat.range[0] <= x32 <= feat.range[1]):
                raise fail(f"{where}[{j}]", f"is {v}, outside feature '{feat.name}' range "
                           f"[{feat.range[0]}, {feat.range[1]}]")



def _short(value: Any) -> str:
    out = repr(value)
    return out if len(out) <= 40 else out[:37] + "..."
