"""What flows through batch scoring: chunks of rows in, rejects and scored values out.

Row numbers are 1-based data records everywhere (a CSV header and blank lines are not counted),
so every message and reject record names the row a user finds in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

CHUNK_ROWS = 4096
ON_ERROR = ("fail", "skip")


@dataclass
class Reject:
    """A bad row left out of the output (``--on-error skip``), as written to the reject file."""

    row: int  # 1-based data record number
    reason: str
    raw: Any  # what was read (CSV fields, JSON text or object, Parquet values)
    id: Any = None  # the id column's value, when there is one and the row got that far

    def to_json(self) -> dict[str, Any]:
        out = {"row": self.row, "reason": self.reason, "input": self.raw}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass
class Chunk:
    """Rows read together and scored in one model call (memory stays flat)."""

    first_row: int  # 0-based index of the chunk's first data row in the input
    rows: Any  # lists of values (CSV), dicts / lists (JSON lines), or a 2-D float array (Parquet)
    ids: Optional[list[Any]] = None
    numbers: Optional[list[int]] = None  # 1-based row number of each row (None: consecutive)
    rejects: list[Reject] = field(default_factory=list)  # rows the reader could not parse

    def number(self, i: int) -> int:
        return self.numbers[i] if self.numbers is not None else self.first_row + i + 1


@dataclass
class Scored:
    """A chunk's results: values (and probabilities) for the rows kept, in order."""

    values: Any
    probabilities: Any
    ids: Optional[list[Any]]
    rejects: list[Reject]
    rows_in: int


@dataclass
class Result:
    """One chunk as the engine hands it to the writers: the rows already formatted by a worker
    process (``text``, so the parent only writes), or the ``scored`` values to format here."""

    scored: Optional[Scored]
    text: Optional[str]
    rejects: list[Reject]
    rows_in: int
    rows_out: int

    @classmethod
    def of(cls, scored: Scored) -> Result:
        return cls(scored, None, scored.rejects, scored.rows_in, len(scored.values))
