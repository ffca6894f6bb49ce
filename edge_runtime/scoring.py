"""Streaming batch scoring of CSV and JSON-lines files: fixed-size chunks in, rows out, so
memory stays flat however large the file. Used by ``edgert predict``."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from .errors import InputError

CHUNK_ROWS = 4096


@dataclass
class Chunk:
    first_row: int  # 0-based index of the chunk's first data row in the input
    rows: list[Any]  # lists of values (CSV) or dicts / lists (JSON lines)
    ids: Optional[list[Any]] = None


def detect_format(path: str, explicit: Optional[str]) -> str:
    if explicit:
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "csv"


def open_text_in(path: str) -> IO[str]:
    return sys.stdin if path == "-" else open(path, newline="", encoding="utf-8")


def open_text_out(path: Optional[str]) -> IO[str]:
    if path in (None, "-"):
        return sys.stdout
    return open(path, "w", newline="", encoding="utf-8")


def read_csv_chunks(fh: IO[str], features: list[str], *, id_column: Optional[str] = None,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """CSV with a header. Columns are matched to features by name (extra columns other than the
    id column are an error, so a misnamed column never shifts values silently)."""
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    known = set(features)
    unknown = [h for h in header if h not in known and h != id_column]
    if unknown:
        raise InputError(f"CSV header: unknown column(s) {unknown[:5]}; expected {features[:6]}…"
                         if len(features) > 6 else
                         f"CSV header: unknown column(s) {unknown[:5]}; expected {features}")
    missing = [f for f in features if f not in header]
    if missing:
        raise InputError(f"CSV header: missing column(s) {missing[:5]}")
    order = [header.index(f) for f in features]
    id_idx = header.index(id_column) if id_column else None
    if id_column and id_column not in header:
        raise InputError(f"CSV header: no id column {id_column!r}")
    rows: list[Any] = []
    ids: list[Any] = []
    first = 0
    for n, rec in enumerate(reader):
        if len(rec) != len(header):
            raise InputError(f"CSV row {n + 1}: {len(rec)} fields, header has {len(header)}")
        rows.append([_cell(rec[i]) for i in order])
        if id_idx is not None:
            ids.append(rec[id_idx])
        if len(rows) == chunk_rows:
            yield Chunk(first, rows, ids if id_idx is not None else None)
            first += len(rows)
            rows, ids = [], []
    if rows:
        yield Chunk(first, rows, ids if id_idx is not None else None)


def _cell(text: str) -> Any:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "na", "null"):
        return None
    return text


def read_jsonl_chunks(fh: IO[str], *, id_column: Optional[str] = None,
                      chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    rows: list[Any] = []
    ids: list[Any] = []
    first = 0
    n = 0
    for line in fh:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"JSON line {n + 1}: not valid JSON ({exc.msg})") from None
        if id_column and isinstance(obj, dict):
            ids.append(obj.pop(id_column, None))
        rows.append(obj)
        n += 1
        if len(rows) == chunk_rows:
            yield Chunk(first, rows, ids if id_column else None)
            first += len(rows)
            rows, ids = [], []
    if rows:
        yield Chunk(first, rows, ids if id_column else None)


class ResultWriter:
    """Writes predictions as CSV or JSON lines, one output row per input row."""

    def __init__(self, fh: IO[str], fmt: str, *, classes: Optional[list[Any]], proba: bool,
                 task: str, id_column: Optional[str] = None):
        self.fh, self.fmt, self.proba, self.task = fh, fmt, proba, task
        self.classes = classes
        self.id_column = id_column
        self.target = "label" if task == "classification" else "prediction"
        self._csv = csv.writer(fh) if fmt == "csv" else None
        if self._csv is not None:
            head = ([id_column] if id_column else []) + [self.target]
            if proba:
                head += [f"proba_{c}" for c in classes or []]
            self._csv.writerow(head)

    def write(self, chunk: Chunk, values: Any, probabilities: Any = None) -> None:
        vals = values.tolist()
        probs = probabilities.tolist() if probabilities is not None else None
        ids = chunk.ids
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


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)
