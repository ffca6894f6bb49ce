"""LightGBM, XGBoost and CatBoost through skl2onnx, alone or as the last step of a pipeline.

onnxmltools has the tree converters for LightGBM and XGBoost, and CatBoost exports its own
ONNX: both are registered as skl2onnx converters here (on first use, so none of the three is
imported unless a model needs it), and :func:`converters.convert` then treats them like any
scikit-learn estimator: same parity check, golden rows and reference statistics.

A bare ``lightgbm.Booster`` / ``xgboost.Booster`` and the files these libraries save
(``model.txt``, ``.json``/``.ubj``, ``.cbm``) are turned into estimators with ``predict`` and
``predict_proba`` first (:func:`as_estimator`, :func:`load_native`).

LightGBM keeps split thresholds as doubles and compares ``x <= t`` in double; an ONNX tree
holds float32 thresholds, and rounding ``t`` to the *nearest* float32 (what onnxmltools does)
moves every float32 input between ``t`` and the rounded value to the other branch (measured:
Δp 6.6e-4 on breast_cancer, 0.8 % relative on diabetes). For float32 inputs ``x <= t`` holds
exactly when ``x <= t↓``, the largest float32 not above ``t``: the converter feeds onnxmltools
those values, so the ONNX graph decides every float32 row as LightGBM does.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import ConversionError
from .float32 import down32
from .registry import refusal, steps_of

LIBRARIES = ("lightgbm", "xgboost", "catboost")
#: the files these libraries save their models in (data, not code)
NATIVE_SUFFIXES = (".txt", ".json", ".ubj", ".cbm")
_CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
_registered: set[str] = set()


def library_of(obj: Any) -> Optional[str]:
    """"lightgbm", "xgboost" or "catboost" for an object of those libraries (or of our
    wrappers of their boosters), else None."""
    lib = getattr(obj, "_edgert_library", None) or type(obj).__module__.split(".")[0]
    return lib if lib in LIBRARIES else None


def libraries_in(estimator: Any) -> list[str]:
    """The boosting libraries a (pipeline) estimator uses, in step order."""
    seen: list[str] = []
    for step in steps_of(estimator):
        lib = library_of(step)
        if lib and lib not in seen:
            seen.append(lib)
    return seen


def register(libraries: Any = LIBRARIES) -> None:
    """Register the skl2onnx converters of ``libraries`` (once each).

    Raises:
        ConversionError: a library is used but onnxmltools (LightGBM, XGBoost) is missing.
    """
    for lib in libraries:
        if lib in _registered:
            continue
        try:
            {"lightgbm": _register_lightgbm, "xgboost": _register_xgboost,
             "catboost": _register_catboost}[lib]()
        except ImportError as exc:
            raise ConversionError(f"converting a {lib} model needs {exc.name or 'onnxmltools'}: "
                                  "pip install 'edge-runtime[boosting]'") from None
        _registered.add(lib)


def _shapes() -> tuple[Any, Any]:
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    return calculate_linear_classifier_output_shapes, calculate_linear_regressor_output_shapes


# --- LightGBM ---------------------------------------------------------------------------------
def _floor_thresholds(node: dict) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if "split_feature" not in n:
            continue
        if n.get("decision_type") == "<=" and isinstance(n.get("threshold"), (int, float)):
            n["threshold"] = float(down32(np.array([float(n["threshold"])]))[0])
        stack += [n["left_child"], n["right_child"]]


class _Float32Booster:
    """A LightGBM booster as onnxmltools reads it (``is_mock``: through ``dump_model``), with
    every numeric threshold floored to float32 (see the module docstring)."""

    is_mock = True

    def __init__(self, booster: Any):
        self._booster = booster

    def dump_model(self, *args: Any, **kwargs: Any) -> dict:
        dump = self._booster.dump_model(*args, **kwargs)
        for tree in dump.get("tree_info", []):
            _floor_thresholds(tree["tree_structure"])
        return dump

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booster, name)


def _lightgbm_converter(scope: Any, operator: Any, container: Any) -> None:
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    raw = operator.raw_operator
    proxy = copy.copy(raw)
    if hasattr(proxy, "_Booster"):  # LGBMModel.booster_ is a property over _Booster
        proxy._Booster = _Float32Booster(raw.booster_)
    else:
        proxy.booster_ = _Float32Booster(raw.booster_)
    operator.raw_operator = proxy
    try:
        convert_lightgbm(scope, operator, container)
    finally:
        operator.raw_operator = raw


def _register_lightgbm() -> None:
    import lightgbm
    from skl2onnx import update_registered_converter

    cls_shape, reg_shape = _shapes()
    wrapped_cls, wrapped_reg = booster_classes()
    for est, shape, opts in ((lightgbm.LGBMClassifier, cls_shape, _CLASSIFIER_OPTIONS),
                             (wrapped_cls, cls_shape, _CLASSIFIER_OPTIONS),
                             (lightgbm.LGBMRegressor, reg_shape, None),
                             (wrapped_reg, reg_shape, None)):
        update_registered_converter(est, f"EdgeRT{est.__name__}", shape, _lightgbm_converter,
                                    options=opts)


# --- XGBoost ----------------------------------------------------------------------------------
def _register_xgboost() -> None:
    import xgboost
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter

    cls_shape, reg_shape = _shapes()
    update_registered_converter(xgboost.XGBClassifier, "EdgeRTXGBClassifier", cls_shape,
                                convert_xgboost, options=_CLASSIFIER_OPTIONS)
    update_registered_converter(xgboost.XGBRegressor, "EdgeRTXGBRegressor", reg_shape, convert_xgboost)


# --- CatBoost ---------------------------------------------------------------------------------
def _catboost_converter(scope: Any, operator: Any, container: Any) -> None:
    """CatBoost's own ONNX export (one TreeEnsemble node, no initializers), inlined into the
    skl2onnx graph so a CatBoost model can close a scikit-learn pipeline; its ZipMap is dropped."""
    from catboost.utils import convert_to_onnx_object
    from onnx.helper import get_attribute_value

    model = operator.raw_operator
    try:
        onx = convert_to_onnx_object(model)
    except Exception as exc:  # categorical features, text features...: CatBoost's own limits
        raise ConversionError(refusal(model, f"CatBoost's ONNX export: {exc}")) from None
    trees = [n for n in onx.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(trees) != 1 or len(onx.graph.initializer):
        raise ConversionError(refusal(model, "CatBoost's ONNX export is not one tree ensemble node "
                                      f"({[n.op_type for n in onx.graph.node]})"))
    node = trees[0]
    opsets = {d.domain: d.version for d in onx.opset_import}
    outputs = [o.full_name for o in operator.outputs][:len(node.output)]
    container.add_node(node.op_type, [operator.inputs[0].full_name], outputs, op_domain=node.domain,
                       op_version=opsets.get(node.domain), name=scope.get_unique_operator_name("CatBoost"),
                       **{a.name: get_attribute_value(a) for a in node.attribute})


def _catboost_classifier_parser(scope: Any, model: Any, inputs: list, custom_parsers: Any = None) -> list:
    """Label and probabilities, no ZipMap (skl2onnx's own classifier parser keys on
    ``ClassifierMixin``, which CatBoost does not derive from, and would declare one output)."""
    from skl2onnx.common.data_types import Int64TensorType, guess_tensor_type

    op = scope.declare_local_operator("EdgeRTCatBoostClassifier", model)
    op.inputs = inputs
    op.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    op.outputs.append(scope.declare_local_variable("probabilities", guess_tensor_type(inputs[0].type)))
    return list(op.outputs)


def _register_catboost() -> None:
    import catboost
    from skl2onnx import update_registered_converter

    cls_shape, reg_shape = _shapes()
    # skl2onnx's classifier parser (label + probabilities): CatBoost carries no scikit-learn
    # tags, so skl2onnx would otherwise give it a single output
    update_registered_converter(catboost.CatBoostClassifier, "EdgeRTCatBoostClassifier", cls_shape,
                                _catboost_converter, options=_CLASSIFIER_OPTIONS,
                                parser=_catboost_classifier_parser)
    update_registered_converter(catboost.CatBoostRegressor, "EdgeRTCatBoostRegressor", reg_shape,
                                _catboost_converter)


# --- boosters and saved files -------------------------------------------------------------------
def _sk_bases(kind: str) -> tuple[type, ...]:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    return (ClassifierMixin if kind == "classifier" else RegressorMixin, BaseEstimator)


class _LightGBMBooster:
    """A ``lightgbm.Booster`` with the estimator surface ``convert`` reads (``predict``,
    ``predict_proba``, ``classes_``) and the attributes onnxmltools' converter reads."""

    _edgert_library = "lightgbm"

    def __init__(self, booster: Any = None):
        self.booster = booster
        self.booster_ = booster
        if booster is not None:
            self.n_features_in_ = int(booster.num_feature())
            self.boosting_type = "rf" if booster.params.get("boosting") == "rf" else "gbdt"

    def fit(self, X: Any, y: Any = None) -> Any:
        raise ConversionError("a wrapped LightGBM Booster is already trained")

    def _raw(self, X: Any) -> np.ndarray:
        return np.asarray(self.booster_.predict(np.asarray(X, dtype=np.float64)))


class LightGBMBoosterRegressor(_LightGBMBooster):
    def predict(self, X: Any) -> np.ndarray:
        return self._raw(X)


class LightGBMBoosterClassifier(_LightGBMBooster):
    def __init__(self, booster: Any = None):
        super().__init__(booster)
        if booster is not None:
            n = int(booster.dump_model(num_iteration=1).get("num_class", 1))
            self.classes_ = np.arange(max(n, 2))

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self._raw(X)
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@functools.cache
def booster_classes() -> tuple[type, type]:
    """(classifier, regressor) wrappers of a LightGBM Booster as scikit-learn estimators, built
    on first use so importing this module needs no scikit-learn; one class each, registered once
    with skl2onnx (which looks converters up by exact class)."""
    def make(cls: type, kind: str) -> type:
        return type(cls.__name__, (cls, *_sk_bases(kind)), {"__module__": __name__})

    return make(LightGBMBoosterClassifier, "classifier"), make(LightGBMBoosterRegressor, "regressor")


def _lightgbm_objective(booster: Any) -> str:
    return str(booster.dump_model(num_iteration=1).get("objective", "")).split()[0]


def _from_lightgbm_booster(booster: Any) -> Any:
    objective = _lightgbm_objective(booster)
    if objective.startswith(("binary", "multiclass", "multiclassova", "cross_entropy")):
        return booster_classes()[0](booster)
    if objective.startswith(("regression", "huber", "fair", "poisson", "quantile", "mape", "gamma",
                             "tweedie")):
        return booster_classes()[1](booster)
    raise ConversionError(f"cannot convert a LightGBM Booster with objective {objective!r}: only "
                          "classification and regression objectives convert (wrap an ONNX export "
                          "with `edgert wrap`)")


def _from_xgboost_booster(booster: Any) -> Any:
    import xgboost

    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective.startswith(("binary:", "multi:")):
        est: Any = xgboost.XGBClassifier()
    elif objective.startswith(("reg:", "count:", "survival:")):
        est = xgboost.XGBRegressor()
    else:
        raise ConversionError(f"cannot convert an XGBoost Booster with objective {objective!r}: only "
                              "classification and regression objectives convert")
    est.load_model(bytearray(booster.save_raw("json")))
    return est


def as_estimator(model: Any) -> Any:
    """A bare LightGBM / XGBoost ``Booster`` as an estimator ``convert`` takes; anything else as is."""
    name = f"{type(model).__module__.split('.')[0]}.{type(model).__name__}"
    if name == "lightgbm.Booster":
        return _from_lightgbm_booster(model)
    if name == "xgboost.Booster":
        return _from_xgboost_booster(model)
    return model


def load_model_file(path: Any) -> Any:
    """The model in a file ``edgert convert`` (or ``bench --baseline``) was given: a boosting
    library's own format (:data:`NATIVE_SUFFIXES`, :func:`load_native`: data, not code), else a
    scikit-learn estimator from a trusted ``.joblib``/``.pkl`` file (unpickling runs code); or
    one line saying why not.

    Raises:
        ModelFileError: not a joblib/pickle file, or it holds no estimator (no ``predict``).
        ConversionError: a boosting file its library cannot read.
    """
    if Path(path).suffix.lower() in NATIVE_SUFFIXES:
        return load_native(path)
    import pickle

    import joblib  # workstation only: the device never unpickles anything

    from edge_runtime.errors import ModelFileError

    try:
        obj = joblib.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, ImportError, MemoryError, OSError) as exc:
        raise ModelFileError(f"{path}: not a joblib/pickle file of a model "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
                             ) from None
    if not callable(getattr(obj, "predict", None)):
        raise ModelFileError(f"{path}: holds a {type(obj).__name__}, not a fitted estimator (no "
                             "predict method); dump the estimator itself: joblib.dump(model, path)")
    return obj


def load_native(path: Any) -> Any:
    """A model file saved by LightGBM (``model.txt``), XGBoost (``.json``/``.ubj``) or CatBoost
    (``.cbm``), as an estimator. These formats are data, not code: no unpickling.

    Raises:
        ConversionError: the suffix is none of these, or the library cannot read the file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".txt":
            import lightgbm

            return as_estimator(lightgbm.Booster(model_file=str(p)))
        if suffix in (".json", ".ubj"):
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(str(p))
            return as_estimator(booster)
        if suffix == ".cbm":
            import catboost

            loss = catboost.CatBoost().load_model(str(p)).get_all_params().get("loss_function", "")
            classify = loss in ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")
            cls = catboost.CatBoostClassifier if classify else catboost.CatBoostRegressor
            return cls().load_model(str(p))
    except ImportError as exc:
        raise ConversionError(f"reading {p.name} needs {exc.name}: pip install 'edge-runtime[boosting]'") \
            from None
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"{p}: not a model file its library can read ({exc})") from None
    raise ConversionError(f"{p}: unknown model file type {suffix!r}; convert takes .joblib/.pkl "
                          "(scikit-learn), model.txt (LightGBM), .json/.ubj (XGBoost), .cbm (CatBoost)")
