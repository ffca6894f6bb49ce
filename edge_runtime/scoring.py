"""Streaming batch scoring of CSV, JSON-lines and Parquet files: fixed-size chunks in, rows out,
so memory stays flat however large the file. Used by ``edgert predict``.

Bad rows (a CSV line with the wrong number of fields, a JSON line that does not parse, a value
that is not a number, NaN where the model has no imputer, an unknown feature) are handled by a
policy: ``fail`` stops with the row number and the reason; ``skip`` leaves them out of the output
and writes each to a reject file (JSON lines: ``{"row": n, "reason": ..., "input": ...}``).
Row numbers are 1-based data records: a CSV header and blank JSON lines are not counted.

With ``workers > 1`` chunks are scored in worker processes (each loads the bundle once and
checks its golden rows); at most ``2 × workers`` chunks are in flight and results are written in
input order, so memory stays flat and the output is identical to one process.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional

from .errors import InputError
from .inputs.schema import InputSchema, check_columns, text_value

CHUNK_ROWS = 4096
ON_ERROR = ("fail", "skip")


@dataclass
class Reject:
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


def detect_format(path: Optional[str], explicit: Optional[str]) -> str:
    if explicit:
        return explicit
    suffix = Path(path or "-").suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def open_text_in(path: str) -> IO[str]:
    return sys.stdin if path == "-" else open(path, newline="", encoding="utf-8")


def open_text_out(path: Optional[str]) -> IO[str]:
    if path in (None, "-"):
        return sys.stdout
    return open(path, "w", newline="", encoding="utf-8")


# --- readers ----------------------------------------------------------------------------------
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


# --- scoring ----------------------------------------------------------------------------------
def score_chunk(model: Any, chunk: Chunk, *, proba: bool = False, on_error: str = "fail",
                strict: bool = False) -> Scored:
    """Predict a chunk. The whole chunk goes to the model in one call; only when that fails is it
    split row by row to find the bad rows, which then fail the run or are set aside. ``strict``
    also refuses values outside the training min/max (``Model.predict(strict=True)``).

    Raises:
        InputError: ``on_error="fail"`` and a row is bad: the model's message, with the file's
            row number (data records counted from 1) in place of the batch's.
    """
    rejects = list(chunk.rejects)
    rows, ids = chunk.rows, chunk.ids
    n = len(rows)
    kw = {"strict": True} if strict else {}  # any predictor works; strict only where asked
    whole = not rejects  # when the reader set rows aside, look for the model's bad rows too
    if whole:
        try:
            values = model.predict(rows, **kw)
            probs = model.predict_proba(rows, **kw) if proba else None
        except InputError:
            whole = False
    if not whole:
        keep: list[int] = []
        for i in range(n):
            try:
                model.predict(rows[i:i + 1], **kw)
            except InputError as exc:
                rejects.append(Reject(chunk.number(i), exc.reason, _raw(rows[i]),
                                      ids[i] if ids is not None else None))
            else:
                keep.append(i)
        rejects.sort(key=lambda r: r.row)
        if rejects and on_error == "fail":
            raise InputError.at(rejects[0].row - 1, rejects[0].reason) from None  # Reject.row counts from 1
        if not keep:
            return Scored(_empty(), None, [] if ids is not None else None, rejects, n + len(chunk.rejects))
        rows = _take(rows, keep)
        ids = [ids[i] for i in keep] if ids is not None else None
        values = model.predict(rows, **kw)
        probs = model.predict_proba(rows, **kw) if proba else None
    return Scored(values, probs, ids, rejects, n + len(chunk.rejects))


def _empty() -> Any:
    import numpy as np

    return np.empty(0)


def _take(rows: Any, keep: list[int]) -> Any:
    if hasattr(rows, "shape"):
        return rows[keep]
    return [rows[i] for i in keep]


def _raw(row: Any) -> Any:
    if hasattr(row, "tolist"):
        return [None if isinstance(v, float) and math.isnan(v) else v for v in row.tolist()]
    return row


# --- writers ----------------------------------------------------------------------------------
class ResultWriter:
    """Writes predictions as CSV, JSON lines or Parquet, one output row per kept input row."""

    def __init__(self, fh: Any, fmt: str, *, classes: Optional[list[Any]], proba: bool,
                 task: str, id_column: Optional[str] = None, header: bool = True):
        self.fh, self.fmt, self.proba, self.task = fh, fmt, proba, task
        self.classes = classes
        self.id_column = id_column
        self.target = "prediction" if task == "regression" else "label"
        self.rows = 0
        self._csv = csv.writer(fh) if fmt == "csv" else None
        self._parquet: Any = None
        if self._csv is not None and header:
            head = ([id_column] if id_column else []) + [self.target]
            if proba:
                head += [f"proba_{c}" for c in classes or []]
            self._csv.writerow(head)

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


# --- parallel scoring -------------------------------------------------------------------------
_WORKER_MODEL: Any = None


def _worker_init(bundle: str, backend: str) -> None:
    global _WORKER_MODEL
    from .loader import load

    _WORKER_MODEL = load(bundle, backend=backend, threads=1)


def _worker_score(chunk: Chunk, proba: bool, on_error: str, strict: bool = False) -> Scored:
    return score_chunk(_WORKER_MODEL, chunk, proba=proba, on_error=on_error, strict=strict)


def score_stream(chunks: Iterator[Chunk], *, model: Any = None, bundle: Optional[str] = None,
                 backend: str = "auto", workers: int = 1, proba: bool = False,
                 on_error: str = "fail", strict: bool = False) -> Iterator[Scored]:
    """Score chunks in order, in this process (``workers == 1``, needs ``model``) or in
    ``workers`` processes that each load ``bundle``. At most ``2 × workers`` chunks in flight.

    Raises:
        InputError: a bad row under ``on_error="fail"`` (the earliest one in input order).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if workers <= 1:
        for chunk in chunks:
            yield score_chunk(model, chunk, proba=proba, on_error=on_error, strict=strict)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if bundle is None:
        raise ValueError("workers > 1 needs the bundle path")
    # spawn, not fork: a forked child would inherit the parent's engine thread pools mid-state
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(bundle, backend)) as pool:
        yield from _in_order(pool, workers, ((_worker_score, chunk, proba, on_error, strict)
                                             for chunk in chunks))


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


@dataclass
class TextJob:
    """What a worker needs to parse, score and format a block of CSV or JSON-lines text."""

    bundle: str
    backend: str
    fmt: str  # csv | jsonl
    out_fmt: str  # csv | jsonl | parquet
    header_line: str  # CSV header text ("" for JSON lines)
    features: list[str]
    id_column: Optional[str]
    proba: bool
    on_error: str
    strict: bool = False


_TEXT_JOB: Optional[TextJob] = None


def _text_worker_init(job: TextJob) -> None:
    global _TEXT_JOB
    _TEXT_JOB = job
    _worker_init(job.bundle, job.backend)


def _text_worker_score(before: int, text: str) -> tuple[Any, list[Reject], int, int]:
    """Parse, score and (for CSV / JSON-lines output) format one block in the worker: the parent
    only splits lines and writes results, so the parsing uses every core too."""
    job, model = _TEXT_JOB, _WORKER_MODEL
    assert job is not None and model is not None
    if job.fmt == "csv":
        chunks = read_csv_chunks(io.StringIO(job.header_line + text), job.features, id_column=job.id_column,
                                 chunk_rows=1 << 30, first_row=before, schema=model.input_schema)
    else:
        chunks = read_jsonl_chunks(io.StringIO(text), id_column=job.id_column, chunk_rows=1 << 30,
                                   first_row=before)
    chunk = next(iter(chunks), None)
    if chunk is None:
        return "", [], 0, 0
    scored = score_chunk(model, chunk, proba=job.proba, on_error=job.on_error, strict=job.strict)
    if job.out_fmt == "parquet":
        return scored, scored.rejects, scored.rows_in, len(scored.values)
    buf = io.StringIO(newline="")
    writer = ResultWriter(buf, job.out_fmt, classes=model.manifest.classes, proba=job.proba,
                          task=model.task, id_column=job.id_column, header=False)
    if len(scored.values):
        writer.write(scored, scored.values, scored.probabilities)
    return buf.getvalue(), scored.rejects, scored.rows_in, len(scored.values)


def score_text_parallel(fh: IO[str], job: TextJob, *, workers: int, chunk_rows: int
                        ) -> Iterator[tuple[Any, list[Reject], int, int]]:
    """Score CSV / JSON-lines text in ``workers`` processes, results in input order:
    ``(formatted text or Scored for Parquet output, rejects, rows read, rows written)``.
    At most ``2 × workers`` blocks are in flight, so memory stays flat.

    Raises:
        InputError: a bad row under ``on_error="fail"`` (the earliest in input order), or a bad
            CSV header.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if job.fmt == "csv":
        job.header_line = fh.readline()
        if not job.header_line:
            return
        header = [h.strip() for h in next(csv.reader([job.header_line]))]
        check_columns(header, job.features, job.id_column, "CSV header")
    ctx = mp.get_context("spawn")  # not fork: a forked child would inherit engine thread pools
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_text_worker_init,
                             initargs=(job,)) as pool:
        yield from _in_order(pool, workers, ((_text_worker_score, before, text) for before, text
                                             in read_text_blocks(fh, chunk_rows, quoted=job.fmt == "csv")))


def progress_bar(enabled: Optional[bool], *, total: Optional[int], unit: str,
                 stream: IO[str] = sys.stderr) -> Optional[Any]:
    """A tqdm bar on stderr when asked (``True``) or, by default (``None``), when stderr is a
    terminal. Returns None when off or when tqdm is not installed (then says so once if asked)."""
    on = stream.isatty() if enabled is None else enabled
    if not on:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        if enabled:
            print("edgert: --progress needs tqdm (pip install 'edge-runtime[batch]')", file=stream)
        return None
    return tqdm(total=total, unit=unit, unit_scale=True, file=stream, dynamic_ncols=True,
                desc="scoring", mininterval=0.5)


def position_reader(fh: Any) -> Callable[[], Optional[int]]:
    """How many bytes of a text file were read so far (for the progress bar), or None."""
    buf = getattr(fh, "buffer", None)
    if buf is None or fh is sys.stdin:
        return lambda: None

    def pos() -> Optional[int]:
        try:
            return int(buf.tell())
        except (OSError, ValueError):
            return None
    return pos


def _in_order(pool: Any, workers: int, calls: Iterator[tuple]) -> Iterator[Any]:
    """Results of ``pool.submit(*call)`` for each call, in input order, with at most
    2 × workers in flight so memory stays flat; unstarted calls are cancelled on exit."""
    from collections import deque

    pending: deque[Any] = deque()
    try:
        for fn, *args in calls:
            pending.append(pool.submit(fn, *args))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
