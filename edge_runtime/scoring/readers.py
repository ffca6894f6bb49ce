"""Readers of CSV, JSON-lines and Parquet input: fixed-size :class:`Chunk` s of rows, so memory
stays flat however large the file. A row the reader cannot parse (a CSV line with the wrong
number of fields, a JSON line that is not an object or array) becomes a :class:`Reject` of its
chunk; the model's schema judges the values later (:func:`score_chunk`).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional

from ..errors import InputError
from ..inputs.schema import InputSchema, check_columns, text_value
from .records import CHUNK_ROWS, Chunk, Reject


def detect_format(path: Optional[str], explicit: Optional[str]) -> str:
    """``explicit`` when given, else the format the file name says (csv when it says nothing,
    as for stdin)."""
    if explicit:
        return explicit
    suffix = Path(path or "-").suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def open_text_in(path: str) -> IO[str]:
    """The text input (``-``: stdin), opened as the csv module wants it (no newline translation)."""
    return sys.stdin if path == "-" else open(path, newline="", encoding="utf-8")


def read_csv_chunks(fh: IO[str], features: list[str], *, id_column: Optional[str] = None,
                    chunk_rows: int = CHUNK_ROWS, first_row: int = 0,
                    schema: Optional[InputSchema] = None) -> Iterator[Chunk]:
    """CSV with a header. Columns are matched to features by name (extra columns other than the
    id column are an error, so a misnamed column never shifts values silently). A line with the
    wrong number of fields becomes a reject of its chunk. With the model's ``schema``, cells of
    categorical and text features stay text (:meth:`InputSchema.cell`).

    Raises:
        InputError: the header has unknown or missing columns, or no such id column.
    """
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    check_columns(header, features, id_column, "CSV header")
    order = [header.index(f) for f in features]
    id_idx = header.index(id_column) if id_column else None
    width = len(header)
    finish: Callable[[list[list[str]]], Any] = _csv_values
    if schema is not None and schema.string_columns:
        def finish(rows: list[list[str]]) -> Any:
            return [[schema.cell(v, c) for c, v in enumerate(r)] for r in rows]
    out = _Chunker(first_row, chunk_rows, id_idx is not None, finish)
    n = first_row  # rows before this text (a block of a bigger file, see read_text_blocks)
    for rec in reader:
        n += 1
        if len(rec) != width:
            if not rec:  # a blank line
                n -= 1
                continue
            out.rejects.append(Reject(n, f"{len(rec)} fields, the header has {width}", rec))
        else:
            out.add(n, [rec[i] for i in order], rec[id_idx] if id_idx is not None else None)
        if out.full():
            yield out.take(n)
    if out:
        yield out.take(n)


class _Chunker:
    """Rows (with their numbers and ids) and rejects of one input, cut into chunks."""

    def __init__(self, first_row: int, chunk_rows: int, with_ids: bool, finish: Any = list):
        self.first, self.size, self.with_ids, self.finish = first_row, chunk_rows, with_ids, finish
        self._reset()

    def _reset(self) -> None:
        self.rows: list[Any] = []
        self.ids: list[Any] = []
        self.numbers: list[int] = []
        self.rejects: list[Reject] = []

    def add(self, number: int, row: Any, row_id: Any = None) -> None:
        self.rows.append(row)
        self.numbers.append(number)
        if self.with_ids:
            self.ids.append(row_id)

    def full(self) -> bool:
        return len(self.rows) + len(self.rejects) >= self.size

    def __bool__(self) -> bool:
        return bool(self.rows or self.rejects)

    def take(self, last_row: int) -> Chunk:
        chunk = Chunk(self.first, self.finish(self.rows), self.ids if self.with_ids else None, self.numbers,
                      self.rejects)
        self.first = last_row
        self._reset()
        return chunk


def _csv_values(rows: list[list[str]]) -> Any:
    """A chunk's cells as one float64 array when they all parse (numpy's C loop, which reads
    text as ``float()`` does: the fast, usual path), else cell by cell by the input schema's
    text rule (blanks and NA/null are missing); a cell that is no number stays text, for the
    model's schema to refuse naming row and feature, as on every other path."""
    if rows:
        import numpy as np

        try:
            return np.array(rows, dtype=np.float64)
        except ValueError:
            pass
    return [[text_value(v) for v in r] for r in rows]


def read_jsonl_chunks(fh: IO[str], *, id_column: Optional[str] = None,
                      chunk_rows: int = CHUNK_ROWS, first_row: int = 0) -> Iterator[Chunk]:
    """JSON lines: each line an object keyed by feature name, or an array in feature order.
    A line that does not parse, or parses to something else, becomes a reject."""
    out = _Chunker(first_row, chunk_rows, bool(id_column))
    n = first_row  # rows before this text (a block of a bigger file, see read_text_blocks)
    for line in fh:
        line = line.strip()
        if not line:
            continue
        n += 1
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            out.rejects.append(Reject(n, f"JSON line is not valid JSON ({getattr(exc, 'msg', exc)})", line))
            obj = None
        else:
            if not isinstance(obj, (dict, list)):
                out.rejects.append(Reject(n, f"JSON line holds a {type(obj).__name__}, expected an object "
                                         "or an array", line))
                obj = None
        if obj is not None:
            row_id = obj.pop(id_column, None) if id_column and isinstance(obj, dict) else None
            out.add(n, obj, row_id)
        if out.full():
            yield out.take(n)
    if out:
        yield out.take(n)


def parquet_row_count(path: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def read_parquet_chunks(path: str, features: list[str], *, id_column: Optional[str] = None,
                        chunk_rows: int = CHUNK_ROWS, schema: Optional[InputSchema] = None) -> Iterator[Chunk]:
    """Parquet (needs pyarrow): record batches of ``chunk_rows`` rows, features cast to float64
    (nulls become NaN, i.e. missing); with the model's ``schema``, categorical and text features
    as their values (an object table, for the schema to judge).

    Raises:
        InputError: unknown/missing columns, or a feature column that is not numeric.
        ImportError: pyarrow is not installed.
    """
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError("Parquet needs pyarrow: pip install 'edge-runtime[parquet]'") from exc
    pf = pq.ParquetFile(path)
    header = list(pf.schema_arrow.names)
    check_columns(header, features, id_column, "Parquet columns")
    columns = features + ([id_column] if id_column else [])
    first = 0
    strings = set(schema.string_columns) if schema is not None else set()
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
        cols = []
        for j, name in enumerate(features):
            if j in strings:
                cols.append(np.array(batch.column(name).to_pylist(), dtype=object))
                continue
            try:
                cols.append(pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InputError(f"Parquet column '{name}' is not numeric "
                                 f"({batch.schema.field(name).type}): {exc}") from None
        if strings:
            arr = np.empty((batch.num_rows, len(cols)), dtype=object)
            for j, col in enumerate(cols):
                arr[:, j] = col
        else:
            arr = np.column_stack(cols) if cols else np.empty((batch.num_rows, 0))
        ids = batch.column(id_column).to_pylist() if id_column else None
        yield Chunk(first, np.ascontiguousarray(arr), ids)
        first += batch.num_rows


def read_chunks(fmt: str, path: str, fh: Optional[IO[str]], features: list[str], *,
                id_column: Optional[str], chunk_rows: int, schema: Optional[InputSchema]) -> Iterator[Chunk]:
    """The chunks of an input in format ``fmt``: the Parquet file at ``path``, else the open text
    ``fh`` (CSV or JSON lines)."""
    if fmt == "parquet":
        return read_parquet_chunks(path, features, id_column=id_column, chunk_rows=chunk_rows, schema=schema)
    assert fh is not None, "text input needs an open file"
    if fmt == "csv":
        return read_csv_chunks(fh, features, id_column=id_column, chunk_rows=chunk_rows, schema=schema)
    return read_jsonl_chunks(fh, id_column=id_column, chunk_rows=chunk_rows)


def read_text_blocks(fh: IO[str], chunk_rows: int, *, quoted: bool) -> Iterator[tuple[int, str]]:
    """Split text input into blocks of ``chunk_rows`` records without parsing them, for worker
    processes: ``(rows before the block, text)``. Blank lines are dropped (they are not rows);
    with ``quoted`` (CSV), a line with an odd number of quote characters continues on the next
    line, so a quoted field holding a newline stays in one block."""
    buf: list[str] = []
    pending: Optional[str] = None
    before = 0
    for line in fh:
        if pending is not None:
            pending += line
            if pending.count('"') % 2:
                continue
            line, pending = pending, None
        elif not line.strip():
            continue
        elif quoted and line.count('"') % 2:
            pending = line
            continue
        buf.append(line if line.endswith("\n") else line + "\n")
        if len(buf) == chunk_rows:
            yield before, "".join(buf)
            before += len(buf)
            buf = []
    if pending is not None:
        buf.append(pending)
    if buf:
        yield before, "".join(buf)


def read_csv_header(line: str, features: list[str], id_column: Optional[str]) -> None:
    """Check a CSV header line read apart from its rows (the parallel engine splits the text
    before any worker parses it), with the message :func:`read_csv_chunks` gives.

    Raises:
        InputError: the header has unknown or missing columns, or no such id column.
    """
    header = [h.strip() for h in next(csv.reader([line]))]
    check_columns(header, features, id_column, "CSV header")


def read_csv_rows(path: str, features: list[str]) -> list[list[float]]:
    """Every row of a small CSV file as floats in feature order (missing values as NaN), for
    callers that want plain rows rather than chunks (``edgert bench --data``).

    Raises:
        InputError: the header has unknown or missing columns.
        ValueError: a cell is not a number.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for chunk in read_csv_chunks(fh, features) for r in chunk.rows]
    return [[float("nan") if v is None else float(v) for v in r] for r in rows]
