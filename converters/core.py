"""``convert``: a fitted scikit-learn estimator in, a verified bundle directory out.

Every artifact is run through the same runtime backend a device will use, on held-out rows,
and compared with the estimator itself; the figures go into the manifest, and a conversion
that misses its tolerance writes nothing (unless forced).
"""

from __future__ import annotations

import platform
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from edge_runtime import golden as device_golden
from edge_runtime._version import __version__ as runtime_version
from edge_runtime.backends import get_backend
from edge_runtime.backends.base import BackendOptions
from edge_runtime.bundle import LABEL_TASKS, Artifact, Feature, json_safe, new_manifest, sha256_hex, write_bundle
from edge_runtime.errors import BackendError, EdgeRuntimeError
from edge_runtime.native_abi import host_arch
from edge_runtime.outputs.arrays import ArrayDecoder
from edge_runtime.outputs.plan import OutputPlan

from .boosting import as_estimator, libraries_in
from .columns import match_columns, table_names
from .errors import CombinationUnsupportedError, ConversionError, ParityError
from .golden import artifact_golden, golden_block, select_golden_rows
from .kinds import Typed, feeds, frame, infer, is_string_table, round_numeric, takes_raw_text, text_column, text_hint
from .kinds import features as typed_features
from .onnx_export import Exported, export_onnx
from .registry import describe, known_parity_cause, refusal
from .training_stats import class_reference, nan_tolerant_features, r2_score, reference_statistics, training_bounds

#: Which runtime backend proves an artifact of each format at conversion time.
FORMAT_BACKEND = {"onnx": "onnxruntime", "tflite": "litert", "native": "native"}
QUANTIZED = ("fp16", "int8")
#: native code computes in float64 as scikit-learn does: held to this, whatever ``tolerance`` says
#: (trees measure 0, softmax heads one ulp, linear/MLP ~1e-13: a larger gap is a codegen bug)
NATIVE_ATOL = 1e-9


@dataclass
class ExportContext:
    """What an exporter may need besides the estimator."""

    estimator: Any
    n_features: int
    task: str
    has_proba: bool
    classes: Optional[list]
    sample: np.ndarray  # float32-representable rows, float64 dtype (calibration for int8)
    feature_names: list[str]
    #: int8 scheme: "dynamic" (int8 weights, float activations quantized per call) or "static"
    #: (full-integer: activation ranges calibrated once on ``sample``)
    quantization: str = "dynamic"
    #: feature kinds when the table has string columns (then ``sample`` is an object table)
    typed: Optional[Typed] = None
    #: native targets (x86_64, aarch64, armv7); None: this machine's
    targets: Optional[list[str]] = None


#: an exporter returns one artifact, or several (native: one per target architecture)
Exporter = Callable[[ExportContext, str], Any]
#: format -> exporter(ctx, precision). Other modules add theirs (e.g. "tflite").
EXPORTERS: dict[str, Exporter] = {
    "onnx": lambda ctx, precision: export_onnx(ctx.estimator, ctx.n_features, task=ctx.task,
                                               has_proba=ctx.has_proba, precision=precision,
                                               quantization=ctx.quantization, calibration=ctx.sample,
                                               typed=ctx.typed, names=ctx.feature_names),
}


#: what scikit-learn calls the ``scores`` output of each labelled task without probabilities
SCORES_METHOD = {"anomaly": "decision_function", "clustering": "transform"}


def _task_of(estimator: Any) -> str:
    from sklearn.base import is_classifier, is_clusterer, is_outlier_detector, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    if is_outlier_detector(estimator):
        return "anomaly"
    if is_clusterer(estimator) and hasattr(estimator, "predict") and hasattr(estimator, "transform"):
        return "clustering"
    raise ConversionError(refusal(estimator, "it is neither a classifier, a regressor, an outlier "
                                  "detector nor a clusterer with predict and transform; a bundle "
                                  "needs a model that predicts"))


def _classes_of(estimator: Any, task: str) -> Optional[list]:
    """The label set: a classifier's ``classes_``, -1/1 for outlier detectors, the cluster
    indices for clusterers."""
    if task == "classification":
        return np.asarray(estimator.classes_).tolist()
    if task == "anomaly":
        return [-1, 1]
    if task == "clustering":
        last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        return list(range(int(np.asarray(last.cluster_centers_).shape[0])))
    return None


def _has_proba(estimator: Any) -> bool:
    try:
        return hasattr(estimator, "predict_proba")
    except AttributeError:  # SVC(probability=False) raises from the property
        return False


def _sk_call(estimator: Any, method: str, X: np.ndarray, names: list[str]) -> np.ndarray:
    data: Any = X
    if X.dtype == object and takes_raw_text(estimator):  # fitted on a 1-D sequence of texts
        data = X[:, 0]
    elif X.dtype == object:  # string columns: the frame the estimator was fitted on
        data = frame(X, names)
    elif getattr(estimator, "feature_names_in_", None) is not None:
        import pandas as pd

        data = pd.DataFrame(X, columns=names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(getattr(estimator, method)(data))


def _predicted(estimator: Any, X: np.ndarray, names: list[str], task: str) -> np.ndarray:
    """``predict``, labels as one flat column (CatBoost's multi-class predict gives (n, 1))."""
    out = _sk_call(estimator, "predict", X, names)
    return out.reshape(X.shape[0]) if task in LABEL_TASKS and out.ndim == 2 and out.shape[1] == 1 else out


def _expected(estimator: Any, X: np.ndarray, names: list[str], task: str, has_proba: bool) -> dict:
    out: dict[str, np.ndarray] = {}
    if task in LABEL_TASKS:
        out["label"] = _predicted(estimator, X, names, task)
        if has_proba:
            out["probabilities"] = _sk_call(estimator, "predict_proba", X, names)
        if task in SCORES_METHOD:
            out["scores"] = _sk_call(estimator, SCORES_METHOD[task], X, names).reshape(X.shape[0], -1)
    else:
        out["prediction"] = _sk_call(estimator, "predict", X, names).reshape(X.shape[0], -1)
    return out


def tolerance_for(precision: str, tolerance: float, min_label_agreement: float,
                  quantized_agreement: float = 0.99) -> dict[str, Any]:
    """Full precision must match values and labels. Quantized artifacts are judged on what they
    are for: classifiers on label agreement, regressors on R² against the original predictions
    (the share of their variance kept), both at ``quantized_agreement``."""
    if precision in QUANTIZED:
        return {"atol": None, "min_label_agreement": quantized_agreement, "min_r2": quantized_agreement}
    return {"atol": tolerance, "min_label_agreement": min_label_agreement}


def run_exported(exported: Exported, X: np.ndarray, classes: Optional[list], *,
                 by_row: bool = False) -> dict[str, np.ndarray]:
    """Outputs of ``exported`` on ``X`` through the device's own backend, labels decoded; with
    ``by_row`` one row per call (the device checks golden rows both ways).

    Raises:
        BackendError: the device's engine cannot load or run the artifact.
    """
    art = _artifact(exported)
    decoder = _decoder(art, classes)
    x: Any = feeds(exported.inputs, X) if exported.inputs else \
        np.ascontiguousarray(X, dtype=np.dtype(exported.input_dtype))
    roles = decoder.plan.roles
    names = [exported.outputs[r] for r in roles]
    if exported.format == "native" and exported.extra.get("arch") != host_arch():
        from .native.emulate import run_foreign  # another architecture's library: under qemu-user

        values, labels = run_foreign(exported.data, exported.toolchain, x, int(exported.extra["n_outputs"]), by_row)
        raw = [labels if r == "label" else values for r in roles]
    else:
        # the converter built a native library itself a moment ago: it may run here
        options = BackendOptions(threads=1, extra={"native_trust": "built by this conversion"})
        engine = get_backend(FORMAT_BACKEND[exported.format])(exported.data, art, options)
        try:
            if by_row:
                parts = [engine.run({k: v[i:i + 1] for k, v in x.items()} if exported.inputs else x[i:i + 1],
                                    names) for i in range(X.shape[0])]
                raw = [np.concatenate([np.asarray(p[k]).reshape(1, -1) for p in parts]) for k in range(len(roles))]
            else:
                raw = engine.run(x, names)
        finally:
            engine.close()
    return decoder.decode_all(dict(zip(roles, raw)))


def _artifact(exported: Exported) -> Artifact:
    """The manifest entry ``exported`` will get, for the device's engine and decoder."""
    return Artifact(path=f"{exported.format}/{exported.precision} artifact being converted",
                    format=exported.format, precision=exported.precision,
                    sha256=sha256_hex(exported.data), size=len(exported.data), input_name=exported.input_name,
                    input_dtype=exported.input_dtype, outputs=exported.outputs, opset=exported.opset,
                    extra=exported.extra, inputs=exported.inputs)


def _decoder(art: Artifact, classes: Optional[list]) -> ArrayDecoder:
    """The device's output decoder for ``art``; classes stay Python objects (compared as text)."""
    return ArrayDecoder(OutputPlan(art), None if classes is None else np.asarray(classes, dtype=object))


def measure_parity(exported: Exported, X: np.ndarray, expected: dict, ctx: ExportContext,
                   tol: dict[str, Any]) -> dict[str, Any]:
    """Run ``exported`` through the device's own backend and compare with the estimator."""
    backend_name = FORMAT_BACKEND[exported.format]
    if exported.format == "native" and exported.extra.get("arch") != host_arch():
        backend_name = f"native under {exported.extra.get('arch')} emulation (qemu-user)"
    got = run_exported(exported, X, ctx.classes)
    fig: dict[str, Any] = {"rows": int(X.shape[0]), "backend": backend_name,
                           "tolerance": tol["atol"], "min_label_agreement": tol["min_label_agreement"]}
    reasons = []
    if "label" in got:
        want_labels = expected["label"].astype(str)
        agree = float(np.mean(got["label"].astype(str) == want_labels))
        if agree < 1.0 and "probabilities" in got and ctx.classes is not None:
            # Engines break exact probability ties their own way (a 20-tree forest at 10 votes
            # each); where scikit-learn's label is argmax(proba), decode it the same way.
            alt = _decoder(_artifact(exported), ctx.classes).argmax_labels(got["probabilities"])
            alt_agree = float(np.mean(alt.astype(str) == want_labels))
            if alt_agree > agree:
                exported.extra["label_from"] = "probabilities"
                fig["label_source"] = "argmax(probabilities)"
                agree = alt_agree
        fig["label_agreement"] = agree
        if agree < tol["min_label_agreement"]:
            reasons.append(f"label agreement {agree:.2%} < {tol['min_label_agreement']:.2%}")
    for role in ("probabilities", "prediction", "scores"):
        if role in got and role in expected:
            want = expected[role].astype(np.float64)
            diff = float(np.max(np.abs(np.asarray(got[role], np.float64).reshape(want.shape) - want)))
            fig[f"{role}_max_abs_diff"] = diff
            if role == "prediction" and tol.get("min_r2") is not None:
                r2 = r2_score(want, np.asarray(got[role], np.float64).reshape(want.shape))
                fig["prediction_r2"] = r2
                if not r2 >= tol["min_r2"]:
                    reasons.append(f"R² against the original predictions {r2:.4f} < {tol['min_r2']:.4f}")
            if tol["atol"] is not None:
                limit = tol["atol"] * (1.0 + float(np.max(np.abs(want)))) if role != "probabilities" \
                    else tol["atol"]
                if not diff <= limit:
                    reasons.append(f"{role} max abs diff {diff:.3g} > {limit:.3g}")
    fig["passed"] = not reasons
    fig["reasons"] = reasons
    return fig


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "edge_runtime": runtime_version,
           "numpy": np.__version__}
    for mod in ("sklearn", "skl2onnx", "onnx", "onnxruntime", "ai_edge_litert", *sorted(
            m for m in ("lightgbm", "xgboost", "catboost", "onnxmltools") if m in sys.modules)):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                continue
        out["scikit-learn" if mod == "sklearn" else mod] = getattr(m, "__version__", "?")
    return out


def _columns(estimator: Any, sample_X: Any, holdout: Any, feature_names: Optional[Sequence[str]],
             strings: bool = False) -> tuple[np.ndarray, Optional[np.ndarray], list[str], str]:
    """Sample and hold-out values in the model's feature order, the names, and ``matched_by``
    (object tables with ``strings``)."""
    fitted = getattr(estimator, "feature_names_in_", None)
    fitted = None if fitted is None else [str(n) for n in fitted]
    n_in = getattr(estimator, "n_features_in_", None) or None  # a CatBoost model read from .cbm says 0
    sample = match_columns(sample_X, fitted=fitted, expected=fitted, feature_names=feature_names,
                           n_in=n_in, role="sample", strings=strings)
    named = fitted is not None or table_names(sample_X) is not None or feature_names is not None
    H = None
    if holdout is not None:
        H = match_columns(holdout, fitted=fitted, expected=sample.names if named else None,
                          feature_names=feature_names, n_in=n_in, role="holdout", strings=strings).X
    return sample.X, H, sample.names, sample.matched_by


def _with_fallback(exported: Exported, parity: dict[str, Any], H: np.ndarray, expected: dict,
                   ctx: ExportContext, tol: dict[str, Any]) -> tuple[Exported, dict[str, Any]]:
    """fp32 missed parity: try the float64 graph (sklearn-onnx #1192). Whatever happens to it,
    the fp32 miss stays the finding; where the engine cannot load the fp64 graph (tree
    classifiers' double outputs in onnxruntime) the fallback is skipped with a note."""
    step = "skl2onnx cannot export it"
    try:
        fallback = export_onnx(ctx.estimator, ctx.n_features, task=ctx.task, has_proba=ctx.has_proba,
                               precision="fp64", typed=ctx.typed, names=ctx.feature_names)
        step = f"{FORMAT_BACKEND['onnx']} cannot run it"
        fb_parity = measure_parity(fallback, H, expected, ctx, tol)
    except EdgeRuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        parity["fallback"] = f"fp64 fallback skipped: {step} ({first})"
        return exported, parity
    if fb_parity["passed"]:
        fallback.extra["fallback_reason"] = "fp32 missed parity: " + "; ".join(parity["reasons"])
        return fallback, fb_parity
    parity["fallback"] = "fp64 fallback missed parity too: " + "; ".join(fb_parity["reasons"])
    return exported, parity


def _measured(exported: Exported, H: np.ndarray, expected: dict, ctx: ExportContext,
              tol: dict[str, Any]) -> dict[str, Any]:
    """:func:`measure_parity`, with an engine that cannot load the artifact named as such."""
    try:
        return measure_parity(exported, H, expected, ctx, tol)
    except BackendError as exc:
        raise ConversionError(f"the {exported.format}/{exported.precision} artifact of "
                              f"{describe(ctx.estimator)} does not run in {FORMAT_BACKEND[exported.format]}, "
                              f"the engine that must prove it: {exc}") from None


def convert(estimator: Any, sample_X: Any, out_dir: Any, *, name: Optional[str] = None,
            version: str = "1.0.0", formats: Sequence[str] = ("onnx",), holdout: Any = None,
            precisions: Any = ("fp32",), tolerance: float = 1e-4,
            min_label_agreement: float = 1.0, quantized_agreement: float = 0.99,
            quantization: str = "dynamic", force: bool = False,
            feature_names: Optional[Sequence[str]] = None, n_golden: int = device_golden.MIN_GOLDEN_ROWS,
            double_fallback: bool = True, feature_ranges: Optional[dict] = None,
            sign_with: Any = None, sample_y: Any = None, targets: Any = None) -> Path:
    """Convert a fitted estimator into a bundle directory and return its path.

    ``sample_X`` characterises the input (reference statistics, calibration); parity is
    measured on ``holdout`` when given, else on a seeded 25% of ``sample_X``. Columns are
    matched by name against the estimator's ``feature_names_in_`` (a DataFrame's columns, or
    ``feature_names`` for bare arrays, in any order); by position only where the estimator has
    no names. fp16/int8 artifacts must keep ``quantized_agreement`` of the labels (classifiers)
    or R² against the original predictions (regressors). ``quantization`` picks the int8
    scheme: "dynamic" (int8 weights) or "static" (full-integer, activation ranges calibrated on
    ``sample_X``). ``n_golden`` (at least 32) stratified golden rows prove the model on devices.
    ``sample_y`` (the labels of ``sample_X``) gives a classifier's training class shares for
    probation on the device; without it the estimator's own predictions on ``sample_X`` are
    counted. ``sign_with``: a PEM private key (ECDSA) that signs the whole bundle (``model.sig``,
    :mod:`converters.signing`). ``targets`` (format ``native``): the architectures to build a
    library for, e.g. ``["x86_64", "aarch64", "armv7"]`` (default: this machine's); each library's
    parity is measured on this machine directly or under qemu-user.

    Raises:
        UnsupportedEstimatorError: skl2onnx has no converter for a step (the one-line message
            names it and says how to add one). There is no allowlist: parity decides.
        ParityError: an artifact misses its tolerance; nothing is written unless ``force``.
        ConversionError: bad arguments, columns that do not match the model's features (named),
            or a converter failure.
    """
    estimator = as_estimator(estimator)  # a bare LightGBM / XGBoost Booster
    _check_arguments(quantization, n_golden)
    task = _task_of(estimator)
    has_proba = task == "classification" and _has_proba(estimator)
    inputs = _prepare_inputs(estimator, sample_X, holdout, feature_names)
    classes = _classes_of(estimator, task)
    ctx = ExportContext(estimator=estimator, n_features=inputs.X.shape[1], task=task, has_proba=has_proba,
                        classes=classes, sample=inputs.X, feature_names=inputs.names,
                        quantization=quantization, typed=inputs.typed,
                        targets=None if targets is None else list(_target_list(targets)))
    expected = _expected(estimator, inputs.H, inputs.names, task, has_proba)
    limits = _Limits(tolerance, min_label_agreement, quantized_agreement, double_fallback)
    exports = _export_all(ctx, inputs.H, expected, _pairs(formats, precisions), limits)
    _refuse_misses(estimator, inputs, exports, force)

    allow_nan, golden = _golden(ctx, inputs, exports.produced, n_golden, tolerance, quantized_agreement)
    features = _features(inputs, allow_nan, feature_ranges)
    provenance = _provenance(estimator, inputs, exports)
    reference = _reference(ctx, inputs, features, sample_y)
    manifest = new_manifest(name=name or _default_name(estimator), version=version, task=task,
                            features=features, classes=classes, golden=golden,
                            reference=reference, provenance=provenance)
    manifest["inputs"]["matched_by"] = inputs.matched_by
    manifest["parity"] = {e.key: json_safe(p) for e, p in exports.produced}
    return _write(out_dir, manifest, _entries(exports.produced), sign_with)


# -- the steps of ``convert``, in the order it takes them ------------------------------------


def _check_arguments(quantization: str, n_golden: int) -> None:
    """Refuse arguments no conversion could honour, before any work is done.

    Raises:
        ConversionError: an unknown int8 scheme, or too few golden rows.
    """
    if quantization not in ("dynamic", "static"):
        raise ConversionError(f"quantization {quantization!r}: use dynamic or static")
    if n_golden < device_golden.MIN_GOLDEN_ROWS:
        raise ConversionError(f"n_golden={n_golden}: at least {device_golden.MIN_GOLDEN_ROWS} golden rows "
                              "are needed to prove a model's batch paths on a device")


@dataclass
class _Inputs:
    """The rows a conversion works on, in the model's feature order and rounded as the device
    will feed them (float32), so parity is measured on what a device can actually send."""

    X: np.ndarray  # the sample
    H: np.ndarray  # the hold-out rows parity is measured on
    names: list[str]
    matched_by: str
    #: feature kinds when the model takes string columns (then X and H are object tables)
    typed: Optional[Typed]
    #: where H came from, for the golden block
    holdout_source: str


def _prepare_inputs(estimator: Any, sample_X: Any, holdout: Any,
                    feature_names: Optional[Sequence[str]]) -> _Inputs:
    """Match the columns, type string features, round to float32 and draw the hold-out rows
    (a seeded 25% of the sample, at most 2000) when none are given.

    Raises:
        ConversionError: columns that do not match the model's features.
    """
    if takes_raw_text(estimator):  # texts, one per row: a table of one text feature
        sample_X = text_column(sample_X, feature_names[0] if feature_names else "text")
        holdout = text_column(holdout, list(sample_X.columns)[0]) if holdout is not None else None
        feature_names = None
    strings = is_string_table(sample_X)
    X, H, names, matched_by = _columns(estimator, sample_X, holdout, feature_names, strings)
    typed = infer(estimator, X, names) if strings else None
    if typed is not None and not typed.any_strings:  # object columns of numbers: one matrix
        X, H, typed = X.astype(np.float64), (H.astype(np.float64) if H is not None else None), None
    X = _as_fed(X, typed)
    if H is not None:
        H = _as_fed(H, typed)
    else:
        rng = np.random.default_rng(0)
        k = max(1, min(2000, X.shape[0] // 4))
        H = X[np.sort(rng.choice(X.shape[0], size=k, replace=False))]
    return _Inputs(X=X, H=H, names=names, matched_by=matched_by, typed=typed,
                   holdout_source="holdout" if holdout is not None else "a seeded 25% of the sample")


def _as_fed(T: np.ndarray, typed: Optional[Typed]) -> np.ndarray:
    """``T`` as the device feeds it: float32 numbers (string columns kept as they are)."""
    return round_numeric(T, typed) if typed else T.astype(np.float32).astype(np.float64)


def _pairs(formats: Sequence[str], precisions: Any) -> list[tuple[str, str]]:
    """Every (format, precision) asked for; ``precisions`` may be one list or one per format."""
    return [(fmt, prec) for fmt in formats
            for prec in (precisions.get(fmt, ("fp32",)) if isinstance(precisions, dict) else precisions)]


@dataclass(frozen=True)
class _Limits:
    """The parity limits a conversion was asked for."""

    tolerance: float
    min_label_agreement: float
    quantized_agreement: float
    double_fallback: bool

    def of(self, fmt: str, precision: str) -> dict[str, Any]:
        """:func:`tolerance_for` one artifact; native code is held to :data:`NATIVE_ATOL`."""
        return tolerance_for(precision, min(self.tolerance, NATIVE_ATOL) if fmt == "native" else self.tolerance,
                             self.min_label_agreement, self.quantized_agreement)


@dataclass
class _Exports:
    """What the export step made, and why anything asked for is missing."""

    #: each artifact with its parity figures, misses included
    produced: list[tuple[Exported, dict]] = field(default_factory=list)
    #: one line per artifact that missed parity
    failures: list[str] = field(default_factory=list)
    #: formats a string-typed model cannot have
    notes: list[str] = field(default_factory=list)
    #: impossible format/precision pairs among several asked
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, exported: Exported, parity: dict[str, Any]) -> None:
        self.produced.append((exported, parity))
        if not parity["passed"]:
            self.failures.append(f"{exported.key}: " + "; ".join(parity["reasons"])
                                 + (f" ({parity['fallback']})" if parity.get("fallback") else ""))


def _export_all(ctx: ExportContext, H: np.ndarray, expected: dict, pairs: list[tuple[str, str]],
                limits: _Limits) -> _Exports:
    """Export every asked format/precision and measure each artifact's parity on ``H`` through
    the device's own engine. A string-typed model gets ONNX only (noted); a combination the
    exporter cannot make is skipped when several were asked, and raised when it is the only one.

    Raises:
        ConversionError: an unknown format, an engine that cannot run its artifact, or (the only
            pair asked) a combination the exporter cannot make.
    """
    done = _Exports()
    for fmt, prec in pairs:
        if ctx.typed is not None and fmt != "onnx":
            note = (f"no {fmt} artifact: its engine has no string tensors, and this model takes "
                    "categorical/text features")
            if note not in done.notes:
                done.notes.append(note)
            continue
        exporter = _exporter(fmt)
        tol = limits.of(fmt, prec)
        try:
            made = exporter(ctx, prec)
        except CombinationUnsupportedError as exc:
            if len(pairs) == 1:
                raise
            done.skipped.append({"artifact": f"{fmt}/{prec}", "reason": str(exc)})
            continue
        for exported in made if isinstance(made, list) else [made]:
            parity = _measured(exported, H, expected, ctx, tol)
            if not parity["passed"] and fmt == "onnx" and prec == "fp32" and limits.double_fallback:
                exported, parity = _with_fallback(exported, parity, H, expected, ctx, tol)
            done.add(exported, parity)
    return done


def _exporter(fmt: str) -> Exporter:
    """The exporter of ``fmt``, loading the optional formats' modules first if needed.

    Raises:
        ConversionError: no module registers ``fmt``.
    """
    if fmt not in EXPORTERS:
        _load_optional_exporters()
    if fmt not in EXPORTERS:
        raise ConversionError(f"unknown format {fmt!r}; known: {', '.join(sorted(EXPORTERS))}")
    return EXPORTERS[fmt]


def _refuse_misses(estimator: Any, inputs: _Inputs, exports: _Exports, force: bool) -> None:
    """Nothing is written when no artifact could be made, or (unless ``force``) when one
    missed parity.

    Raises:
        ConversionError: no artifact at all (the reasons of each format/precision given).
        ParityError: an artifact missed its tolerance and ``force`` is off.
    """
    if not exports.produced:
        raise ConversionError("no artifact can be built: " + " | ".join(
            exports.notes + [f"{s['artifact']}: {s['reason']}" for s in exports.skipped])
            + (" (use --format onnx)" if exports.notes else ""))
    if exports.failures and not force:
        cause = known_parity_cause(estimator)
        raise ParityError(refusal(estimator, f"parity missed on {inputs.H.shape[0]} held-out rows: "
                                  + " | ".join(exports.failures) + (f"; known cause: {cause}" if cause else "")
                                  + (text_hint(inputs.X, inputs.typed) if inputs.typed is not None else ""))
                          + " (or pass force=True / --force to write it anyway)",
                          {e.key: p for e, p in exports.produced})


def _golden(ctx: ExportContext, inputs: _Inputs, produced: list[tuple[Exported, dict]], n_golden: int,
            tolerance: float, quantized_agreement: float) -> tuple[list[bool], dict[str, Any]]:
    """Which features may be NaN (the estimator and every artifact agree on blanked rows), and
    the golden block of ``n_golden`` stratified rows; an artifact the device must prove on its
    own outputs gets them in ``extra["golden"]``."""
    estimator, names, task, has_proba, classes = ctx.estimator, ctx.feature_names, ctx.task, ctx.has_proba, ctx.classes
    X, typed = inputs.X, inputs.typed
    allow_nan = nan_tolerant_features(
        lambda rows: _expected(estimator, rows, names, task, has_proba),
        [lambda rows, e=e: run_exported(e, rows, classes) for e, _ in produced], X,
        quantized=[e.precision in QUANTIZED for e, _ in produced], min_agreement=quantized_agreement,
        columns=typed.numeric() if typed else None)
    g, selection = select_golden_rows(
        inputs.H, X, lambda rows: _predicted(estimator, rows, names, task), task, n=n_golden,
        source=inputs.holdout_source, allow_nan=allow_nan)
    golden = golden_block(_expected(estimator, g, names, task, has_proba), g, task, tolerance, selection)
    for exported, parity in produced:
        own = artifact_golden(exported, parity, g, golden, _runner(exported, classes))
        if own is not None:  # the device proves the engine on the artifact's own outputs
            exported.extra["golden"] = own
    return allow_nan, golden


def _runner(exported: Exported, classes: Optional[list]) -> Callable[[np.ndarray, bool], dict[str, np.ndarray]]:
    """``run(rows, by_row)`` of one artifact, bound here rather than by a loop's lambda (which
    would see the loop's last artifact)."""
    def run(rows: np.ndarray, by_row: bool) -> dict[str, np.ndarray]:
        return run_exported(exported, rows, classes, by_row=by_row)

    return run


def _features(inputs: _Inputs, allow_nan: list[bool], feature_ranges: Optional[dict]) -> list[Feature]:
    """The manifest's features: NaN policy, declared ranges and the sample's training bounds."""
    ranges = feature_ranges or {}
    typed = inputs.typed
    bounds = training_bounds(inputs.X, columns=typed.numeric() if typed else None)
    if typed is not None:
        return typed_features(inputs.names, typed, allow_nan, ranges, bounds)
    return [Feature(name=n, allow_nan=a, range=tuple(ranges[n]) if n in ranges else None,
                    train_min=b[0] if b else None, train_max=b[1] if b else None)
            for n, a, b in zip(inputs.names, allow_nan, bounds)]


def _provenance(estimator: Any, inputs: _Inputs, exports: _Exports) -> dict[str, Any]:
    """Where the bundle came from: frameworks, tool versions, rows used, whether it was forced
    and which asked formats are missing and why."""
    libraries = libraries_in(estimator)
    frameworks = libraries + ["scikit-learn"] * (not libraries or hasattr(estimator, "steps"))
    via = ", onnxmltools / CatBoost's own export for the boosting step" if libraries else ""
    provenance = {"framework": ", ".join(frameworks), "estimator": describe(estimator),
                  "estimator_class": f"{type(estimator).__module__}.{type(estimator).__name__}",
                  "converter": f"edge-runtime converters (skl2onnx for ONNX{via})",
                  "versions": _versions(), "holdout_rows": int(inputs.H.shape[0]),
                  "sample_rows": int(inputs.X.shape[0]), "forced": bool(exports.failures)}
    if exports.notes:
        provenance["notes"] = exports.notes
    if exports.skipped:
        provenance["skipped"] = exports.skipped
    return provenance


def _reference(ctx: ExportContext, inputs: _Inputs, features: list[Feature], sample_y: Any) -> dict[str, Any]:
    """The reference statistics drift is judged against on the device; for labelled tasks the
    class shares of ``sample_y`` (else of the estimator's predictions on the sample).

    Raises:
        ConversionError: ``sample_y`` does not have one label per sample row.
    """
    X = inputs.X
    reference = reference_statistics(X, inputs.names, features=features)
    if ctx.classes is not None:
        if sample_y is not None and len(sample_y) != X.shape[0]:
            raise ConversionError(f"sample_y has {len(sample_y)} labels for {X.shape[0]} rows of sample_X")
        reference["classes"] = class_reference(
            sample_y if sample_y is not None else _predicted(ctx.estimator, X, inputs.names, ctx.task),
            ctx.classes, "labels" if sample_y is not None else "predicted")
    return reference


def _entries(produced: list[tuple[Exported, dict]]) -> list[tuple[Artifact, bytes]]:
    """Each artifact's manifest entry (its sha256 filled in when written) with its bytes."""
    entries = []
    for exported, parity in produced:
        suffix = "" if exported.precision == "fp32" else f".{exported.precision}"
        art = Artifact(path=exported.name or f"model{suffix}.{exported.format}", format=exported.format,
                       precision=exported.precision, sha256="0" * 64, size=len(exported.data),
                       input_name=exported.input_name, input_dtype=exported.input_dtype,
                       outputs=exported.outputs, opset=exported.opset, parity=json_safe(parity),
                       extra=json_safe(exported.extra), inputs=exported.inputs)
        entries.append((art, exported.data))
    return entries


def _write(out_dir: Any, manifest: dict, entries: list[tuple[Artifact, bytes]], sign_with: Any) -> Path:
    """Write the bundle (replacing an earlier bundle in ``out_dir``) and sign it if asked."""
    out = Path(out_dir)
    if out.exists() and (out / "manifest.json").exists():
        shutil.rmtree(out)
    written = write_bundle(out, manifest, entries)
    if sign_with is not None:
        from .signing import sign_bundle

        sign_bundle(written, sign_with)
    return written


def _target_list(targets: Any) -> list[str]:
    return [t.strip() for t in targets.split(",")] if isinstance(targets, str) else [str(t) for t in targets]


def _default_name(estimator: Any) -> str:
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(last).__name__.lower()


def _load_optional_exporters() -> None:
    """Formats that live in their own modules register on import (e.g. TFLite)."""
    import importlib

    for mod in ("converters.tflite", "converters.native"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise

