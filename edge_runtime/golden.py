"""The golden check's rules: what a device demands of a bundle's golden rows, whatever the manifest says.

Golden rows are the device's only proof that an engine reproduces the model, so the manifest may
make that proof stricter, never looser: tolerances are capped here (a forced or hand-edited
``atol: 1e9`` would otherwise let any model through), label agreement has a floor, and the rows
are run twice, all at once and one row at a time, because engines take different paths by
batch size (a kernel that is right on one row and wrong on 32 was found that way). Pure Python:
it runs where numpy does not (Pyodide's core), and the converter uses it to check, before it
writes a bundle, that the device will accept it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .bundle import Artifact
from .errors import BundleError, GoldenMismatchError
from .manifest_checks import LABEL_TASKS

#: Probabilities: the absolute and relative tolerances a manifest may ask for, at most.
PROBA_ATOL_CAP = 1e-3
PROBA_RTOL_CAP = 1e-3
#: Regression: tolerances at most this share of the golden outputs' scale (their largest magnitude).
PREDICTION_REL_CAP = 1e-3
#: Full-precision artifacts must agree with the golden labels on at least this share of rows.
LABEL_AGREEMENT_FLOOR = 0.99
#: Quantized artifacts are held to the agreement the converter was told to keep
#: (``--min-quantized-agreement``, recorded in their parity figures), never below this.
QUANTIZED_AGREEMENT_MIN = 0.9
QUANTIZED = ("fp16", "int8")
#: The converter aims for this many golden rows (fewer only when the data has fewer).
MIN_GOLDEN_ROWS = 32
OUTPUT_KEYS = ("label", "probabilities", "prediction")


def _capped(value: Any, cap: float, default: float) -> float:
    """``value`` as a float in [0, cap]: larger values (infinity too) give ``cap``; NaN,
    non-numbers and absence give ``default`` (capped). A manifest cannot loosen the check."""
    try:
        v = float(default if value is None or isinstance(value, bool) else value)
    except (TypeError, ValueError, OverflowError):
        v = default
    if v != v:
        v = default
    return min(max(v, 0.0), cap)


def label_floor(artifact: Artifact) -> float:
    """The least label agreement an artifact may show: 0.99 at full precision; for fp16/int8 the
    quantized bar its conversion kept (its parity ``min_label_agreement``), at least 0.9."""
    if artifact.precision not in QUANTIZED:
        return LABEL_AGREEMENT_FLOOR
    try:
        bar = float((artifact.parity or {})["min_label_agreement"])
    except (KeyError, TypeError, ValueError):
        return LABEL_AGREEMENT_FLOOR
    return min(1.0, max(QUANTIZED_AGREEMENT_MIN, bar)) if math.isfinite(bar) else LABEL_AGREEMENT_FLOOR


def tolerance(key: str, golden: Mapping[str, Any], want: list[float]) -> float:
    """The tolerance applied to output ``key`` (probabilities or prediction): the manifest's
    ``atol`` + ``rtol`` × scale, each capped (see the module constants)."""
    scale = max((abs(w) for w in want if w == w), default=0.0)
    if key == "probabilities":
        atol = _capped(golden.get("atol"), PROBA_ATOL_CAP, 1e-4)
        rtol = _capped(golden.get("rtol"), PROBA_RTOL_CAP, 0.0)
    else:
        scale = scale or 1.0  # all-zero outputs: an absolute scale
        atol = _capped(golden.get("atol"), PREDICTION_REL_CAP * scale, 1e-4)
        rtol = _capped(golden.get("rtol"), PREDICTION_REL_CAP, 0.0)
    return atol + rtol * scale


def flat(values: Any) -> list[Any]:
    """Row-major flattening of an array, a list of rows or a flat list."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        return [values]
    out: list[Any] = []
    for v in values:
        out.extend(flat(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else [v])
    return out


@dataclass
class GoldenPlan:
    """Which golden rows to run and what to expect of them, for one artifact."""

    inputs: list[list[Any]]
    wanted: list[str]
    golden: dict[str, Any]
    artifact: Artifact

    def judge(self, at_once: Mapping[str, Any], by_row: Mapping[str, Any], where: str) -> dict[str, float]:
        """Compare both runs (``{key: outputs}``) with the golden outputs; the worst figures.

        Raises:
            GoldenMismatchError: a run misses the (capped) tolerance or the label floor.
        """
        figures = compare(self.golden, at_once, f"{where}, {len(self.inputs)} rows at once", self.artifact)
        one = f"{where}, one row at a time"
        if isinstance(self.golden.get("by_row"), Mapping) or self.artifact.precision not in QUANTIZED:
            single = compare({**self.golden, **_mapping(self.golden.get("by_row"))}, by_row, one, self.artifact)
        else:  # a quantized artifact from before per-row outputs were stored: its quantized bar
            single = _quantized_bar(self.golden, by_row, one, self.artifact)
        for k, v in single.items():
            worst = min if k == "label_agreement" else max
            figures[k] = v if math.isnan(v) else worst(figures.get(k, v), v)
        figures["rows"] = float(len(self.inputs))
        return figures


def _quantized_bar(golden: Mapping[str, Any], got: Mapping[str, Any], where: str,
                   artifact: Artifact) -> dict[str, float]:
    """Per-row outputs of a quantized artifact whose bundle stored only the all-at-once ones
    (dynamic int8 answers a little differently per call): labels must keep the label floor,
    predictions an R² of at least the floor against the stored ones; probabilities are left to
    the labels.

    Raises:
        GoldenMismatchError: labels or R² below the floor.
    """
    figures = compare(golden, {k: v for k, v in got.items() if k == "label"}, where, artifact)
    if "prediction" in got:
        have = [float(v) for v in flat(got["prediction"])]
        want = [float(v) for v in flat(golden["prediction"])]
        mean = sum(want) / len(want) if want else 0.0
        sse = sum((a - b) ** 2 for a, b in zip(have, want)) if len(have) == len(want) else math.inf
        sst = sum((w - mean) ** 2 for w in want)
        r2 = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else -math.inf)
        figures["prediction_r2"] = r2
        if not r2 >= label_floor(artifact):
            raise GoldenMismatchError(f"{where}: golden prediction R² {r2:.4f} < {label_floor(artifact):.4f}")
    return figures


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def plan(manifest_golden: Optional[Mapping[str, Any]], artifact: Artifact, task: str,
         has_proba: bool) -> GoldenPlan:
    """The golden rows for ``artifact``: the manifest's, overridden by the artifact's own outputs
    where it has them (quantized or forced artifacts are proven against what they ship).

    Raises:
        BundleError: there are no golden rows, or none of the outputs this model gives; such a
            bundle cannot be proven and loads only with ``verify=False``.
    """
    golden = dict(manifest_golden or {})
    golden.update(_mapping(artifact.extra.get("golden")))
    rows = golden.get("inputs")
    if not isinstance(rows, list) or not rows:
        raise BundleError("manifest: no golden rows, so no engine can be proven to run this model; "
                          "load it with verify=False to use it unproven")
    try:
        # strings stay strings (categorical and text features; the manifest checked which)
        x = [[math.nan if v is None else v if isinstance(v, str) else float(v) for v in row]
             for row in rows]
    except (TypeError, ValueError):
        raise BundleError("manifest: 'golden.inputs' must be rows of numbers and strings") from None
    wanted = []
    if golden.get("label") is not None and task in LABEL_TASKS:
        wanted.append("label")
    if golden.get("probabilities") is not None and has_proba:
        wanted.append("probabilities")
    if golden.get("prediction") is not None and task == "regression":
        wanted.append("prediction")
    if not wanted:
        raise BundleError(f"manifest: the golden rows carry none of this {task} model's outputs "
                          f"({', '.join(k for k in OUTPUT_KEYS if k in golden) or 'none'}); "
                          "load it with verify=False to use it unproven")
    return GoldenPlan(inputs=x, wanted=wanted, golden=golden, artifact=artifact)


def compare(golden: Mapping[str, Any], got: Mapping[str, Any], where: str,
            artifact: Artifact) -> dict[str, float]:
    """One run's outputs against the golden outputs, with the capped tolerances.

    Raises:
        GoldenMismatchError: labels agree on fewer rows than the floor, a value is off by more
            than the tolerance, or the output shapes differ.
    """
    figures: dict[str, float] = {}
    if "label" in got:
        have_labels = [str(v) for v in flat(got["label"])]
        want_labels = [str(v) for v in flat(golden["label"])]
        same_rows = len(have_labels) == len(want_labels)
        agree = sum(a == b for a, b in zip(have_labels, want_labels)) / len(want_labels) if same_rows else 0.0
        figures["label_agreement"] = agree
        floor = max(_capped(golden.get("min_label_agreement"), 1.0, 1.0), label_floor(artifact))
        if agree < floor:
            wrong = sum(a != b for a, b in zip(have_labels, want_labels)) if same_rows else len(want_labels)
            raise GoldenMismatchError(f"{where}: golden labels agree on {agree:.1%} of rows "
                                      f"({wrong} of {len(want_labels)} differ; at least {floor:.1%} needed)")
    for key in ("probabilities", "prediction"):
        if key not in got:
            continue
        try:
            have = [float(v) for v in flat(got[key])]
            want = [math.nan if v is None else float(v) for v in flat(golden[key])]
        except (TypeError, ValueError):
            raise BundleError(f"manifest: golden '{key}' must be numbers") from None
        if len(have) != len(want):
            raise GoldenMismatchError(f"{where}: golden {key} do not have the model's output "
                                      f"shape ({len(have)} values, golden has {len(want)})")
        diffs = [abs(a - b) for a, b in zip(have, want)]
        diff = math.nan if any(d != d for d in diffs) else max(diffs, default=0.0)
        figures[f"{key}_max_abs_diff"] = diff
        tol = tolerance(key, golden, want)
        if not diff <= tol:
            raise GoldenMismatchError(f"{where}: golden {key} differ by {diff:.3g} "
                                      f"(tolerance {tol:.3g})")
    return figures
