"""The plain-lists decoder, for Pythons without numpy (Pyodide's core): the same decisions as
:mod:`.arrays` (one :class:`~.plan.OutputPlan`), on lists, array-likes with ``tolist()`` or
flat row-major buffers plus the row count."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from ..errors import BackendOutputError
from .plan import OutputPlan


class ListDecoder:
    """Decodes one artifact's outputs into plain lists; every function takes the raw output and
    the number of input rows (a flat buffer is split by it)."""

    def __init__(self, plan: OutputPlan, classes: Optional[Sequence[Any]]):
        self.plan = plan
        self.classes: Optional[list[Any]] = None if classes is None else list(classes)
        self.labels: Callable[[Any, int], list[Any]] = (
            self._class_of if plan.label_is_index and self.classes is not None else self._flat)
        self.predict: Callable[[Any, int], list[Any]] = {
            "prediction": self.values, "label": self.labels, "argmax": self.argmax_labels,
        }[plan.predict_kind]

    @staticmethod
    def _flat(raw: Any, n: int) -> list[Any]:
        return _one_per_row(raw)

    def _class_of(self, raw: Any, n: int) -> list[Any]:
        classes = self.classes
        return [classes[int(i)] for i in _one_per_row(raw)]  # type: ignore[index]

    def argmax_labels(self, proba: Any, n: int) -> list[Any]:
        """The class of each row's largest probability (first one on ties, as numpy's argmax)."""
        idx = [max(range(len(p)), key=p.__getitem__) for p in rows(proba, n)]
        classes = self.classes
        return [classes[i] for i in idx] if classes is not None else idx

    @staticmethod
    def values(raw: Any, n: int) -> list[Any]:
        """Predictions or scores: one value per row where the engine gives one column, else
        one list of values per input row."""
        raw = _tolist(raw)
        if isinstance(raw, (list, tuple)) and raw:
            if isinstance(raw[0], (list, tuple)):
                if any(len(r) != 1 for r in raw):
                    return [list(r) for r in raw]
            elif len(raw) != n:
                return rows(raw, n)  # a flat buffer of several values per row
        return _one_per_row(raw)

    @staticmethod
    def probabilities(raw: Any, n: int) -> list[list[float]]:
        """Class probabilities, one list per input row."""
        return rows(raw, n)


def _tolist(values: Any) -> Any:
    return values.tolist() if hasattr(values, "tolist") else values


def _one_per_row(raw: Any) -> list[Any]:
    """One value per row from a column (n,), a (n, 1) matrix or nested lists.

    Raises:
        BackendOutputError: the backend gave several values per row.
    """
    raw = _tolist(raw)
    if not isinstance(raw, (list, tuple)):
        return [raw]
    if raw and isinstance(raw[0], (list, tuple)):
        if any(len(r) != 1 for r in raw):
            raise BackendOutputError("backend returned several values per row where one was expected")
        return [r[0] for r in raw]
    return list(raw)


def rows(raw: Any, n: int) -> list[list[Any]]:
    """A list of rows from nested lists or a flat row-major list of ``n`` rows.

    Raises:
        BackendOutputError: a flat buffer does not split into ``n`` equal rows.
    """
    raw = _tolist(raw)
    if raw and isinstance(raw[0], (list, tuple)):
        return [list(r) for r in raw]
    raw = list(raw)
    if n <= 0 or len(raw) % n:
        raise BackendOutputError(f"backend returned {len(raw)} values for {n} rows")
    d = len(raw) // n
    return [raw[i * d:(i + 1) * d] for i in range(n)]
