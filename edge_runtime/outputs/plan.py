"""The output decisions for one artifact, shared by the numpy and the plain-lists decoders:
which engine outputs each call asks for, whether labels are class indices, and whether labels
come from ``argmax(probabilities)``. Decided once, when a model is built, so a call only runs
the engine and one decode function."""

from __future__ import annotations

from typing import Optional

from ..bundle import Artifact
from ..errors import BundleError
from ..manifest_checks import LABEL_TASKS

#: the output roles an artifact may name, in the order the converter's parity check reads them
ROLES = ("label", "probabilities", "prediction", "scores")


def index_encoded(artifact: Artifact) -> bool:
    """Whether the artifact's label tensor holds an index into the classes (TFLite's ARG_MAX,
    compiled code) rather than the class value itself."""
    return artifact.extra.get("label_encoding") == "index"


class OutputPlan:
    """What to request and how to read it, for one artifact (and, given ``task``, the proof that
    the artifact has the outputs that task needs).

    ``predict`` names the outputs :meth:`predict` requests and ``predict_kind`` how its first
    output becomes the answer: ``"prediction"`` (values), ``"label"`` (labels) or ``"argmax"``
    (the class of the largest probability).

    Raises:
        BundleError: ``task`` needs labels (or predictions) and the artifact gives neither a
            label nor a probabilities output (no prediction output).
    """

    def __init__(self, artifact: Artifact, task: Optional[str] = None):
        outs = artifact.outputs
        self.roles = [r for r in ROLES if r in outs]
        label = [outs["label"]] if "label" in outs else None
        self.probabilities = [outs["probabilities"]] if "probabilities" in outs else None
        self.prediction = [outs["prediction"]] if "prediction" in outs else None
        self.scores = [outs["scores"]] if "scores" in outs else None
        self.label_is_index = index_encoded(artifact)
        # the converter found argmax(proba) matches the framework where the label tensor does not
        self.label_from_proba = (artifact.extra.get("label_from") == "probabilities"
                                 and self.probabilities is not None)
        self.label = None if self.label_from_proba else label
        if task in LABEL_TASKS and self.label is None and self.probabilities is None:
            raise BundleError(f"artifact '{artifact.path}' has neither a label nor a probabilities output")
        if task == "regression" and self.prediction is None:
            raise BundleError(f"artifact '{artifact.path}' has no 'prediction' output")
        self.predict_kind = ("prediction" if self.prediction is not None
                             else "label" if self.label is not None else "argmax")
        self.predict: list[str] = self.prediction or self.label or self.probabilities or []
