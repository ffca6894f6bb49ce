"""Which estimators are known to convert, and the hook to add your own.

Parity is the gate, not a list: anything skl2onnx (with the converters registered here and in
:mod:`converters.boosting`) turns into ONNX is accepted, and the held-out parity check in
:func:`converters.convert` decides. :data:`SUPPORTED` documents the families the test zoo proves
(docs/zoo.md holds their figures). skl2onnx's most common complaint is ``MissingShapeCalculator``
for a custom estimator: :func:`register_converter` tells skl2onnx how to compute the output shape
and emit the ONNX nodes.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

#: Families the test zoo converts with parity on every backend that runs them (docs/zoo.md).
#: Documentation only: an estimator outside it is still converted and judged by parity.
SUPPORTED = (
    "LogisticRegression", "LinearRegression", "Ridge", "SGDClassifier", "LinearSVC", "SVC",
    "SVR", "LinearSVR", "DecisionTreeClassifier", "DecisionTreeRegressor",
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
    "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "MLPClassifier",
    "MLPRegressor", "KNeighborsClassifier", "KNeighborsRegressor", "GaussianNB",
    "Pipeline", "ColumnTransformer", "StandardScaler", "MinMaxScaler", "SimpleImputer",
    "OneHotEncoder", "RobustScaler", "MaxAbsScaler", "Normalizer", "PolynomialFeatures", "PCA",
    "QuantileTransformer", "CalibratedClassifierCV", "StackingClassifier", "StackingRegressor",
    "BaggingClassifier", "BaggingRegressor", "AdaBoostClassifier", "AdaBoostRegressor",
    "VotingClassifier", "VotingRegressor", "IsolationForest", "KMeans", "MiniBatchKMeans",
    "LGBMClassifier", "LGBMRegressor", "XGBClassifier", "XGBRegressor", "CatBoostClassifier",
    "CatBoostRegressor", "OrdinalEncoder", "TfidfVectorizer", "CountVectorizer", "TfidfTransformer",
)

_CUSTOM: dict[type, str] = {}

HOW_TO_REGISTER = (
    "To convert a custom estimator, register a converter for it first:\n"
    "    from converters import register_converter\n"
    "    register_converter(MyEstimator, shape_fn, converter_fn, alias='MyEstimator')\n"
    "where shape_fn(operator) sets operator.outputs[i].type and converter_fn(scope, operator,\n"
    "container) emits the ONNX nodes (see skl2onnx's 'custom converter' tutorial and\n"
    "tests/test_custom_converter.py for a complete example)."
)


def register_converter(estimator_class: type, shape_calculator: Callable[..., Any],
                       converter: Callable[..., Any], *, alias: Optional[str] = None,
                       parser: Optional[Callable[..., Any]] = None,
                       options: Optional[dict] = None) -> None:
    """Teach skl2onnx (and our checks) to convert ``estimator_class``."""
    from skl2onnx import update_registered_converter

    name = alias or f"EdgeRT{estimator_class.__name__}"
    update_registered_converter(estimator_class, name, shape_calculator, converter,
                                parser=parser, options=options)
    _CUSTOM[estimator_class] = name


def steps_of(estimator: Any) -> list[Any]:
    """Every estimator inside ``estimator`` (pipeline steps, column transformers), itself included."""
    out = [estimator]
    if hasattr(estimator, "steps"):
        for _, step in estimator.steps:
            if step not in (None, "passthrough", "drop"):
                out += steps_of(step)
    transformers = getattr(estimator, "transformers_", None) or getattr(estimator, "transformers", None)
    if transformers and type(estimator).__name__ == "ColumnTransformer":
        for _, trans, _ in transformers:
            if trans not in ("passthrough", "drop"):
                out += steps_of(trans)
    return out


def refusal(estimator: Any, reason: str) -> str:
    """The one-line refusal every converter failure ends in: the estimator, the real reason,
    and the two ways out (bundle an ONNX file exported elsewhere, or teach skl2onnx)."""
    reason = " ".join(str(reason).split()) or "no reason given"
    return (f"cannot convert {describe(estimator)}: {reason}. Export it to ONNX another way and "
            "bundle it with `edgert wrap`, or teach skl2onnx with "
            "converters.register_converter(YourEstimator, shape_fn, converter_fn) "
            "(tests/test_custom_converter.py shows one)")


def known_parity_cause(estimator: Any) -> Optional[str]:
    """Why a step is known to miss parity in skl2onnx, for the refusal (None: no known cause)."""
    for step in steps_of(estimator):
        cats = getattr(step, "is_categorical_", None)
        if type(step).__name__.startswith("HistGradientBoosting") and cats is not None and any(cats):
            return ("skl2onnx converts HistGradientBoosting's categorical splits (category bitsets) "
                    "as numeric thresholds and ignores the model's internal column order "
                    "(categorical columns first), so every categorical model reads the wrong "
                    "features; fit it with OneHotEncoder / OrdinalEncoder in front instead of "
                    "categorical_features")
    return None


def describe(estimator: Any) -> str:
    """A pipeline as its steps (``Pipeline(StandardScaler → LGBMClassifier)``), else the class."""
    if hasattr(estimator, "steps"):
        return "Pipeline(" + " → ".join(describe(s) for _, s in estimator.steps
                                        if s not in (None, "passthrough")) + ")"
    if type(estimator).__name__ == "ColumnTransformer":
        parts = getattr(estimator, "transformers_", None) or estimator.transformers
        inner = ", ".join(describe(t) for _, t, _ in parts if not isinstance(t, str))
        return f"ColumnTransformer({inner})"
    return type(estimator).__name__
