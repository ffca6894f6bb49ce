"""The output decoder: one set of decisions (which outputs, index or class labels, labels from
``argmax(probabilities)``), the same answers from the numpy and the plain-lists decoder, on raw
outputs shaped as engines give them. No model is fitted: the artifacts are written out here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.bundle import Artifact
from edge_runtime.errors import BackendError, BackendOutputError, BundleError
from edge_runtime.outputs import ListDecoder, OutputPlan, index_encoded
from edge_runtime.outputs.arrays import ArrayDecoder

CLASSES = ["setosa", "versicolor", "virginica"]
PROBA = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]]
ARGMAX = ["setosa", "virginica", "versicolor"]


def artifact(outputs: dict[str, str], **extra) -> Artifact:
    return Artifact(path="model.onnx", format="onnx", precision="fp32", sha256="0" * 64, size=0,
                    input_name="X", input_dtype="float32", outputs=outputs, extra=extra)


def both(plan: OutputPlan, classes=CLASSES):
    return ArrayDecoder(plan, classes), ListDecoder(plan, classes)


def test_predict_asks_for_the_label_and_decodes_index_labels_to_classes():
    art = artifact({"label": "l", "probabilities": "p"}, label_encoding="index")
    plan = OutputPlan(art, "classification")
    assert plan.predict == ["l"] and plan.probabilities == ["p"] and plan.predict_kind == "label"
    assert index_encoded(art)
    arrays, lists = both(plan)
    raw = np.array([[2], [0], [1]], dtype=np.int64)  # an ARG_MAX column, as LiteRT gives it
    assert arrays.predict(raw).tolist() == lists.predict(raw, 3) == ["virginica", "setosa", "versicolor"]


def test_class_valued_labels_are_only_flattened():
    plan = OutputPlan(artifact({"label": "l", "probabilities": "p"}), "classification")
    arrays, lists = both(plan)
    raw = np.array(["b", "a"])
    assert arrays.predict(raw).tolist() == lists.predict(raw, 2) == ["b", "a"]


def test_label_from_probabilities_asks_for_probabilities_and_takes_their_argmax():
    art = artifact({"label": "l", "probabilities": "p"}, label_from="probabilities")
    plan = OutputPlan(art, "classification")
    assert plan.label is None and plan.predict == ["p"] and plan.predict_kind == "argmax"
    arrays, lists = both(plan)
    assert arrays.predict(np.array(PROBA)).tolist() == lists.predict(PROBA, 3) == ARGMAX
    flat_buffer = [v for row in PROBA for v in row]  # a JS engine's Float32Array
    assert lists.predict(flat_buffer, 3) == ARGMAX


def test_probabilities_alone_give_class_labels_not_column_indices():
    # bug fixed here: without a label output (and no label_from), predict gave the argmax index
    plan = OutputPlan(artifact({"probabilities": "p"}), "classification")
    arrays, lists = both(plan)
    assert arrays.predict(np.array(PROBA)).tolist() == lists.predict(PROBA, 3) == ARGMAX


def test_regression_values_one_per_row_or_one_row_per_input():
    plan = OutputPlan(artifact({"prediction": "y"}), "regression")
    assert plan.predict == ["y"] and plan.probabilities is None
    arrays, lists = both(plan, None)
    column = np.array([[1.5], [2.5]])
    assert arrays.predict(column).tolist() == lists.predict(column, 2) == [1.5, 2.5]
    two = np.array([[1.0, 2.0], [3.0, 4.0]])  # multi-output regression
    assert arrays.predict(two).tolist() == lists.predict(two, 2) == [[1.0, 2.0], [3.0, 4.0]]
    assert lists.predict([1.0, 2.0, 3.0, 4.0], 2) == [[1.0, 2.0], [3.0, 4.0]]  # flat buffer


def test_scores_of_anomaly_and_clustering_models():
    plan = OutputPlan(artifact({"label": "l", "scores": "s"}), "anomaly")
    assert plan.scores == ["s"]
    arrays, lists = both(plan, [-1, 1])
    one = np.array([[-0.2], [0.4]])
    assert arrays.values(one).tolist() == lists.values(one, 2) == [-0.2, 0.4]
    distances = np.array([[0.1, 2.0, 3.0], [4.0, 0.5, 6.0]])
    assert arrays.values(distances).tolist() == lists.values(distances, 2) == distances.tolist()


def test_probabilities_as_rows():
    plan = OutputPlan(artifact({"label": "l", "probabilities": "p"}), "classification")
    arrays, lists = both(plan)
    assert arrays.probabilities(PROBA).tolist() == lists.probabilities(PROBA, 3) == PROBA
    assert lists.probabilities([v for row in PROBA for v in row], 3) == PROBA


def test_a_wrong_number_of_values_is_an_error_not_an_answer():
    plan = OutputPlan(artifact({"label": "l", "probabilities": "p"}), "classification")
    _, lists = both(plan)
    with pytest.raises(BackendError, match="7 values for 3 rows"):
        lists.probabilities(list(range(7)), 3)
    with pytest.raises(BackendError, match="several values per row"):
        lists.labels([[0, 1], [1, 0]], 2)


def test_the_parity_check_decodes_every_output_of_one_run():
    art = artifact({"label": "l", "probabilities": "p"}, label_encoding="index")
    decoder = ArrayDecoder(OutputPlan(art), np.asarray(CLASSES, dtype=object))
    assert OutputPlan(art).roles == ["label", "probabilities"]
    got = decoder.decode_all({"label": np.array([[1], [2]]), "probabilities": np.array(PROBA[:2])})
    assert got["label"].tolist() == ["versicolor", "virginica"]
    assert got["probabilities"].tolist() == PROBA[:2]


@pytest.mark.parametrize("task, outputs, missing", [
    ("classification", {"scores": "s"}, "neither a label nor a probabilities output"),
    ("anomaly", {}, "neither a label nor a probabilities output"),
    ("regression", {"label": "l"}, "no 'prediction' output"),
])
def test_an_artifact_without_the_outputs_its_task_needs_is_refused(task, outputs, missing):
    with pytest.raises(BundleError, match=missing):
        OutputPlan(artifact(outputs), task)


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=8, unique=True),
    st.lists(st.text(min_size=0, max_size=6), min_size=1, max_size=8, unique=True),
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=8, unique=True)),
    st.lists(st.integers(0, 7), max_size=40), st.data())
def test_class_values_map_back_to_their_index_or_are_refused(classes, picks, data):
    """An engine answering class values (onnxruntime) stands in for an artifact with index labels
    (compiled code): each value becomes its class's index; a value that is no class is an error,
    never the nearest class."""
    from hypothesis import assume

    assume(len(set(np.asarray(classes).tolist())) == len(classes))  # numpy may merge 0.0 and -0.0
    dec = ArrayDecoder(OutputPlan(artifact({"label": "l"})), classes)
    idx = [i % len(classes) for i in picks]
    labels = np.array([classes[i] for i in idx], dtype=object if isinstance(classes[0], str) else None)
    got = dec.index_of(labels)
    assert got.dtype == np.int64 and got.tolist() == idx
    assert dec.labels(labels).tolist() == labels.tolist()  # class-valued: the labels themselves
    stranger = data.draw(st.sampled_from(["", "zz", "setosa-x", 2**41 + 1, 0.5, -1e30]))
    assume(stranger not in set(classes))
    with pytest.raises(BackendOutputError, match="not one of the classes"):
        dec.index_of(np.array(list(labels) + [stranger], dtype=object))


def test_a_class_with_trailing_nul_characters_is_kept_exactly():
    """numpy's fixed-width strings drop trailing NULs: "a\\x00" must not come back as "a"."""
    classes = ["a", "a\x00", "\x00"]
    dec = ArrayDecoder(OutputPlan(artifact({"label": "l"}, label_encoding="index")), classes)
    assert dec.labels(np.array([1, 2, 0])).tolist() == ["a\x00", "\x00", "a"]
    assert dec.index_of(np.array(["\x00", "a\x00", "a"], dtype=object)).tolist() == [2, 1, 0]
    with pytest.raises(BackendOutputError, match="not one of the classes"):
        dec.index_of(np.array([""], dtype=object))


def test_index_labels_round_trip_through_class_values():
    arrays = ArrayDecoder(OutputPlan(artifact({"label": "l"}, label_encoding="index")), CLASSES)
    idx = np.array([2, 0, 1, 1], dtype=np.int64)
    assert arrays.index_of(arrays.labels(idx)).tolist() == idx.tolist()
    with pytest.raises(BackendOutputError, match="names no classes"):
        ArrayDecoder(OutputPlan(artifact({"label": "l"})), None).index_of(np.array([1]))
