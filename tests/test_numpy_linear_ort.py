"""LinearClassifier, SVMClassifier and the linear / SVM regressors: the numpy backend answers as
onnxruntime does, labels exactly, values within 1e-6, in the same dtype.

Why: the numpy backend returned float64 scores for float64 inputs where onnxruntime computes in
float32 and types Z tensor(float) (a different number from each engine for the same artifact),
and a one-row binary LinearClassifier scored [-s, s] where onnxruntime scores [1 - s, s] (a
difference up to 1.0, and a probability-read label flipped; SOFTMAX there raised). onnxruntime
1.32's rule for one coefficient row and two labels (``linearclassifier.cc``, ``ml_common.h``
``batched_update_scores_inplace`` with add_second_class): label = raw score > 0; Z = [1 - p, p]
with p = logistic(s) after LOGISTIC and p = s for NONE, SOFTMAX and SOFTMAX_ZERO; after PROBIT
it fills half of Z and leaves the rest unwritten, so the numpy backend refuses that graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy_diff import assert_same, ort_session
from onnx import TensorProto, helper

from edge_runtime.errors import UnsupportedModelError
from edge_runtime.onnx_numpy.plan import load_plan

ML = "ai.onnx.ml"
ROWS = (1, 7, 300, 5000)
POSTS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
IN_TYPES = {"fp32": (TensorProto.FLOAT, np.float32), "fp64": (TensorProto.DOUBLE, np.float64)}
#: (coefficient rows, class labels)
SHAPES = {"1row-binary": (1, 2), "2row-binary": (2, 2), "3class": (3, 3)}
N_FEATURES = 5


def _model(node: Any, in_type: int, outputs: list) -> bytes:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", in_type, [None, N_FEATURES])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(ML, 1)])
    model.ir_version = 8
    return model.SerializeToString()


def _labels(n: int, strings: bool) -> dict:
    if strings:
        return {"classlabels_strings": [f"c{i}" for i in range(n)]}
    return {"classlabels_ints": [10 + 7 * i for i in range(n)]}


def _label_info(strings: bool) -> Any:
    return helper.make_tensor_value_info("label", TensorProto.STRING if strings else
                                         TensorProto.INT64, [None])


def _linear_classifier(rows: int, n_labels: int, post: str, in_type: int, strings: bool,
                       seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    icpt = rng.normal(size=rows).astype(np.float32)
    icpt[-1] = 0.0  # zero rows then score exactly 0 there: SOFTMAX_ZERO's special case
    node = helper.make_node("LinearClassifier", ["x"], ["label", "p"], domain=ML,
                            coefficients=coef.ravel().tolist(), intercepts=icpt.tolist(),
                            post_transform=post, **_labels(n_labels, strings))
    return _model(node, in_type, [_label_info(strings),
                                  helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, None])])


def _rows(n: int, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Rows whose scores take both signs, some saturating (x 30: logistic reads 1.0 for two
    classes, where only the raw scores tell them apart), some tiny (x 1e-9: a positive score
    whose float32 logistic reads exactly 0.5), some exactly zero."""
    x = rng.normal(size=(n, N_FEATURES))
    kind = rng.integers(0, 8, size=n)
    x[kind == 0] *= 30
    x[kind == 1] *= 1e-4
    x[kind == 2] = 0
    x[kind == 3] *= 1e-9
    return x.astype(dtype)


def _same(want: list, got: list, what: Any, magnitude: Any = None) -> None:
    """Labels identical, dtypes equal, values within 1e-6 of onnxruntime's; relative, per
    row, past the row's ``magnitude`` (sum |x w| + |b|): two float32 dot products summed in
    a different order differ by a few roundings of their largest terms, not of their sum."""
    for w, g in zip(want, got):
        assert g.dtype == w.dtype, (what, g.dtype, w.dtype)
        if magnitude is None or w.dtype.kind != "f":
            assert_same(w, g, what, tol=1e-6)
            continue
        scale = np.maximum(1.0, magnitude).reshape(-1, *([1] * (w.ndim - 1)))
        assert_same(w / scale, g / scale, what, tol=1e-6)


def _magnitude(blob: bytes, x: np.ndarray) -> np.ndarray:
    """Per row, the largest sum |x w| + |b| of the node's coefficient rows."""
    import onnx

    node = onnx.load_from_string(blob).graph.node[0]
    attrs = {a.name: a for a in node.attribute}
    icpt = np.abs(np.array(attrs["intercepts"].floats))
    coef = np.abs(np.array(attrs["coefficients"].floats)).reshape(icpt.size, -1)
    return (np.abs(x.astype(np.float64)) @ coef.T + icpt).max(axis=1)


@pytest.mark.parametrize("strings", [False, True], ids=["ints", "strings"])
@pytest.mark.parametrize("precision", list(IN_TYPES))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("post", POSTS)
def test_linear_classifier_answers_as_onnxruntime(post: str, shape: str, precision: str,
                                                  strings: bool) -> None:
    rows, n_labels = SHAPES[shape]
    in_type, dtype = IN_TYPES[precision]
    blob = _linear_classifier(rows, n_labels, post, in_type, strings)
    if rows == 1 and post == "PROBIT":
        with pytest.raises(UnsupportedModelError, match="PROBIT"):
            load_plan(blob)
        return
    sess = ort_session(blob)
    plans = [load_plan(blob)[0], load_plan(blob, fuse=False)[0]]
    rng = np.random.default_rng(rows * 100 + len(post))
    for n in ROWS:
        x = _rows(n, dtype, rng)
        want = sess.run(None, {"x": x})
        for plan in plans:
            _same(want, plan.run({"x": x}), (post, shape, precision, strings, n),
                  _magnitude(blob, x))


def test_one_row_rule_is_not_minus_s_s() -> None:
    """The rows above tell the rules apart: onnxruntime's one-row NONE scores sum to 1 (a
    test whose reference happened to agree with [-s, s] could not fail)."""
    blob = _linear_classifier(1, 2, "NONE", TensorProto.FLOAT, False)
    _, z = ort_session(blob).run(None, {"x": _rows(300, np.float32, np.random.default_rng(0))})
    assert np.allclose(z.sum(axis=1), 1.0)
    assert (np.abs(z[:, 1]) > 0.5).any()


def test_one_row_needs_two_labels() -> None:
    """One coefficient row with three labels: onnxruntime refuses the graph, so does numpy."""
    blob = _linear_classifier(1, 3, "NONE", TensorProto.FLOAT, False)
    with pytest.raises(UnsupportedModelError, match="2 class labels"):
        load_plan(blob)


def _svm_classifier(n_classes: int, probabilities: bool, post: str, in_type: int,
                    strings: bool) -> bytes:
    rng = np.random.default_rng(n_classes)
    per_class = 3
    n_sv = per_class * n_classes
    n_pairs = n_classes * (n_classes - 1) // 2
    extra: dict = {}
    if probabilities:
        extra = {"prob_a": (-rng.random(n_pairs) * 3).tolist(),
                 "prob_b": (rng.normal(size=n_pairs) * 0.2).tolist()}
    node = helper.make_node(
        "SVMClassifier", ["x"], ["label", "p"], domain=ML, kernel_type="RBF",
        kernel_params=[0.2, 0.0, 3.0], vectors_per_class=[per_class] * n_classes,
        support_vectors=rng.normal(size=n_sv * N_FEATURES).tolist(),
        coefficients=rng.normal(size=(n_classes - 1) * n_sv).tolist(),
        rho=rng.normal(size=n_pairs).tolist(), post_transform=post,
        **_labels(n_classes, strings), **extra)
    return _model(node, in_type, [_label_info(strings),
                                  helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, None])])


SVMS = [(2, False, "NONE"), (2, False, "LOGISTIC"), (2, True, "NONE"), (3, False, "NONE"),
        (3, True, "NONE")]


@pytest.mark.parametrize("precision", list(IN_TYPES))
@pytest.mark.parametrize("svm", SVMS, ids=["-".join(map(str, s)) for s in SVMS])
def test_svm_classifier_answers_as_onnxruntime(svm: Any, precision: str) -> None:
    """skl2onnx writes SVC at fp64 as an SVMClassifier reading doubles: Z stays float32."""
    n_classes, probabilities, post = svm
    in_type, dtype = IN_TYPES[precision]
    for strings in (False, True):
        blob = _svm_classifier(n_classes, probabilities, post, in_type, strings)
        sess, plan = ort_session(blob), load_plan(blob)[0]
        rng = np.random.default_rng(n_classes)
        for n in ROWS:
            x = rng.normal(size=(n, N_FEATURES)).astype(dtype)
            _same(sess.run(None, {"x": x}), plan.run({"x": x}), (svm, precision, strings, n))


def _regressor(op: str) -> Any:
    rng = np.random.default_rng(5)
    if op == "LinearRegressor":
        return helper.make_node(op, ["x"], ["y"], domain=ML, targets=2,
                                coefficients=rng.normal(size=2 * N_FEATURES).tolist(),
                                intercepts=[0.25, -1.5])
    return helper.make_node(op, ["x"], ["y"], domain=ML, kernel_type="RBF",
                            kernel_params=[0.2, 0.0, 3.0], n_supports=4,
                            support_vectors=rng.normal(size=4 * N_FEATURES).tolist(),
                            coefficients=rng.normal(size=4).tolist(), rho=[0.5])


@pytest.mark.parametrize("op", ["LinearRegressor", "SVMRegressor"])
def test_regressors_return_float32_for_double_inputs(op: str) -> None:
    """Y is tensor(float) for every input (onnxruntime has only a float kernel): a double
    input gives float32, within 1e-6 of onnxruntime's answer on the same rows as float32
    (the inputs are float32-representable, so only the arithmetic's rounding differs)."""
    node = _regressor(op)
    width = 2 if op == "LinearRegressor" else 1
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])]
    sess = ort_session(_model(node, TensorProto.FLOAT, out))
    plan32 = load_plan(_model(node, TensorProto.FLOAT, out))[0]
    plan64 = load_plan(_model(node, TensorProto.DOUBLE, out))[0]
    rng = np.random.default_rng(1)
    for n in ROWS:
        x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
        want = sess.run(None, {"x": x})
        _same(want, plan32.run({"x": x}), (op, "fp32", n))
        _same(want, plan64.run({"x": x.astype(np.float64)}), (op, "fp64", n))
