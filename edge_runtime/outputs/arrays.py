"""The numpy decoder: raw engine outputs (arrays) to labels, probabilities, predictions, scores,
following an :class:`~.plan.OutputPlan`. The per-call functions are picked at construction."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .plan import OutputPlan


def _class_array(classes: Union[Sequence[Any], np.ndarray]) -> np.ndarray:
    """The classes as an array that still says each class exactly: numpy's fixed-width strings
    drop trailing NUL characters ("a\\x00" would come back as "a", a silently wrong label), so
    such classes stay Python strings in an object array."""
    if isinstance(classes, np.ndarray):
        return classes
    arr = np.asarray(classes)
    if arr.dtype.kind in "US" and arr.tolist() != list(classes):
        arr = np.array(list(classes), dtype=object)
    return arr


class ArrayDecoder:
    """Decodes one artifact's outputs into numpy arrays.

    ``predict`` turns the first output of a ``plan.predict`` request into the answer of
    ``predict`` (values, labels, or the argmax class); ``labels`` decodes a label tensor.
    ``classes`` is kept as given when it is already an array (the converter keeps its classes
    as Python objects), else made one.
    """

    def __init__(self, plan: OutputPlan, classes: Optional[Union[Sequence[Any], np.ndarray]]):
        self.plan = plan
        self.classes: Optional[np.ndarray] = None if classes is None else _class_array(classes)
        # the classes in sorted order, for :meth:`index_of`'s binary search (made on first use:
        # only an adapter standing in for index labels needs it)
        self._sorter: Optional[np.ndarray] = None
        self.labels: Callable[[Any], np.ndarray] = (
            self._class_of if plan.label_is_index and self.classes is not None else self._flat)
        self.predict: Callable[[Any], np.ndarray] = {
            "prediction": self.values, "label": self.labels, "argmax": self.argmax_labels,
        }[plan.predict_kind]

    @staticmethod
    def _flat(raw: Any) -> np.ndarray:
        return np.asarray(raw).reshape(-1)

    def _class_of(self, raw: Any) -> np.ndarray:
        return self.classes[np.asarray(raw).reshape(-1).astype(np.intp)]  # type: ignore[index]

    def index_of(self, raw: Any) -> np.ndarray:
        """Class values to their index among the classes: an engine that answers class values
        (onnxruntime) standing in for an artifact whose labels are indices (compiled code).

        Raises:
            BackendOutputError: a value is not one of the classes (an engine answering something
                the model cannot say is broken: never mapped to a nearby class).
        """
        from ..errors import BackendOutputError

        values = np.asarray(raw).reshape(-1)
        if self.classes is None:
            raise BackendOutputError("class labels cannot be turned into indices: the bundle names no classes")
        if self._sorter is None:
            self._sorter = np.argsort(self.classes, kind="stable")
        classes, sorter = self.classes, self._sorter
        try:
            probe = values if values.dtype == classes.dtype else values.astype(classes.dtype)
            pos = sorter[np.searchsorted(classes, probe, sorter=sorter).clip(0, len(classes) - 1)]
            same = bool(np.all(classes[pos] == values))  # the values as given: a cast may truncate
        except (TypeError, ValueError, OverflowError):  # a value no class could be
            same = False
        if not same:
            raise BackendOutputError(f"the engine answered a label that is not one of the classes "
                                     f"{classes.tolist()!r}")
        return pos.astype(np.int64)

    def argmax_labels(self, proba: Any) -> np.ndarray:
        """The class of each row's largest probability (columns are in class order; without
        classes, the column index). Ties go to the first class, as numpy's argmax."""
        idx = np.asarray(proba).argmax(axis=1)
        return self.classes[idx] if self.classes is not None else idx

    @staticmethod
    def values(raw: Any) -> np.ndarray:
        """Predictions or scores: one value per row where the engine gives one column, else
        one row of values per input row."""
        raw = np.asarray(raw)
        return raw.reshape(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw

    @staticmethod
    def probabilities(raw: Any) -> np.ndarray:
        """Class probabilities, shape (rows, classes), as the engine gives them."""
        return np.asarray(raw)

    def decode_all(self, raw: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Every role of one run that requested all of ``plan.roles`` (the converter's parity
        check): labels decoded (or taken from the probabilities), values as the engine gave them."""
        got = {role: np.asarray(v) for role, v in raw.items()}
        if self.plan.label_from_proba:
            got["label"] = self.argmax_labels(got["probabilities"])
        elif "label" in got:
            got["label"] = self.labels(got["label"])
        return got
