"""Writers of predictions (CSV, JSON lines, Parquet) and of the reject file.

The output columns are named here once (:func:`output_columns`), for the files ``edgert predict``
writes and the frames of the Dask recipe alike.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import IO, Any, Optional

from .records import Reject, Result


def target_column(task: str) -> str:
    """The name of the predicted column: ``label`` for a classifier, ``prediction`` otherwise."""
    return "prediction" if task == "regression" else "label"


def output_columns(task: str, classes: Optional[list[Any]], proba: bool) -> list[str]:
    """The predicted columns in order: the target, then ``proba_<class>`` per class with ``proba``."""
    return [target_column(task)] + ([f"proba_{c}" for c in classes or []] if proba else [])


def open_text_out(path: Optional[str]) -> IO[str]:
    """The text output (None or ``-``: stdout); a file is opened as the csv module wants it."""
    if path in (None, "-"):
        return sys.stdout
    return open(path, "w", newline="", encoding="utf-8")


class ResultWriter:
    """Writes predictions as CSV, JSON lines or Parquet, one output row per kept input row."""

    def __init__(self, fh: Any, fmt: str, *, classes: Optional[list[Any]], proba: bool,
                 task: str, id_column: Optional[str] = None, header: bool = True):
        self.fh, self.fmt, self.proba, self.task = fh, fmt, proba, task
        self.classes = classes
        self.id_column = id_column
        self.target = target_column(task)
        self.rows = 0
        self._csv = csv.writer(fh) if fmt == "csv" else None
        self._parquet: Any = None
        if self._csv is not None and header:
            self._csv.writerow(([id_column] if id_column else []) + output_columns(task, classes, proba))

    def write(self, chunk: Any, values: Any, probabilities: Any = None) -> None:
        """``chunk`` is anything with ``.ids`` (a :class:`Chunk` or :class:`Scored`)."""
        ids = chunk.ids
        self.rows += len(values)
        if self.fmt == "parquet":
            self._write_parquet(ids, values, probabilities)
            return
        vals = values.tolist()
        probs = probabilities.tolist() if probabilities is not None else None
        if self._csv is not None:
            for i, v in enumerate(vals):
                row = ([ids[i]] if ids is not None else []) + [_fmt(v)]
                if probs is not None:
                    row += [repr(float(p)) for p in probs[i]]
                self._csv.writerow(row)
            return
        buf = io.StringIO()
        for i, v in enumerate(vals):
            rec: dict[str, Any] = {}
            if ids is not None:
                rec[self.id_column or "id"] = ids[i]
            rec[self.target] = v
            if probs is not None:
                rec["probabilities"] = probs[i]
            buf.write(json.dumps(rec) + "\n")
        self.fh.write(buf.getvalue())

    def _write_parquet(self, ids: Optional[list[Any]], values: Any, probabilities: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, Any] = {}
        if ids is not None:
            cols[self.id_column or "id"] = pa.array(ids)
        cols[self.target] = pa.array(values)
        if probabilities is not None:
            for j, c in enumerate(self.classes or []):
                cols[f"proba_{c}"] = pa.array(probabilities[:, j])
        table = pa.table(cols)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.fh, table.schema)
        elif table.schema != self._schema:  # e.g. an all-null id column in one chunk
            table = table.cast(self._schema)
        self._parquet.write_table(table)

    def write_result(self, result: Result) -> None:
        """One chunk from the engine: the text a worker formatted, or the scored rows."""
        if result.text is not None:
            self.write_text(result.text, result.rows_out)
        elif result.scored is not None and result.rows_out:
            scored = result.scored
            self.write(scored, scored.values, scored.probabilities)

    def write_text(self, text: str, rows: int) -> None:
        """Rows a worker process already formatted (same format, no header)."""
        self.fh.write(text)
        self.rows += rows

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


class RejectWriter:
    """The reject file: one JSON line per bad row, in row order."""

    def __init__(self, fh: IO[str]):
        self.fh = fh
        self.count = 0

    def write(self, rejects: list[Reject]) -> None:
        for r in rejects:
            self.fh.write(json.dumps(r.to_json(), default=str) + "\n")
        self.count += len(rejects)


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)
