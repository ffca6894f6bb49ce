"""Which estimators we convert, and the hook to add your own.

skl2onnx's most common complaint is ``MissingShapeCalculator`` for a custom estimator. The fix
is always the same: tell skl2onnx how to compute the output shape and how to emit the ONNX
nodes. :func:`register_converter` does that and adds the class to our supported list, so the
checks in :func:`converters.convert` accept it too.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .errors import UnsupportedEstimatorError

#: Estimators converted by the stock skl2onnx converters, tested in tests/test_parity.py.
SUPPORTED = (
    "LogisticRegression", "LinearRegression", "Ridge", "SGDClassifier", "LinearSVC", "SVC",
    "SVR", "LinearSVR", "DecisionTreeClassifier", "DecisionTreeRegressor",
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
    "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "MLPClassifier",
    "MLPRegressor", "KNeighborsClassifier", "KNeighborsRegressor", "GaussianNB",
    "Pipeline", "ColumnTransformer", "StandardScaler", "MinMaxScaler", "SimpleImputer",
    "OneHotEncoder", "RobustScaler", "MaxAbsScaler", "Normalizer",
    "OrdinalEncoder", "TfidfVectorizer", "CountVectorizer", "TfidfTransformer",
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


def check_supported(estimator: Any) -> None:
    """Raises:
        UnsupportedEstimatorError: names the first unsupported step and how to register it.
    """
    for step in steps_of(estimator):
        cls = type(step)
        if cls in _CUSTOM or cls.__name__ in SUPPORTED:
            continue
        raise UnsupportedEstimatorError(
            f"{cls.__module__}.{cls.__name__} is not supported by the converters.\n"
            f"Supported: {', '.join(SUPPORTED)}.\n{HOW_TO_REGISTER}")
