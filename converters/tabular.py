"""Read the CSV files the CLI takes (sample rows, hold-out rows) into float arrays + names."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import ConversionError


def _read_cells(path: str, target: Optional[str]) -> tuple[list[str], list[list[str]], list[int]]:
    """A CSV's header, text cells (without ``target``; blank lines skipped) and each row's line.

    Raises:
        ConversionError: an empty file, a line with the wrong number of fields, no data rows.
    """
    with open(Path(path), newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ConversionError(f"{path}: empty CSV") from None
        keep = [i for i, h in enumerate(header) if h != target]
        rows: list[list[str]] = []
        lines: list[int] = []
        for n, rec in enumerate(reader, start=2):  # n: the file's line; len(rows) + 1: the data row
            if not rec:
                continue
            where = f"{path}:{n} (data row {len(rows) + 1})"
            if len(rec) != len(header):
                raise ConversionError(f"{where}: {len(rec)} fields, header has {len(header)}")
            rows.append([rec[i] for i in keep])
            lines.append(n)
    if not rows:
        raise ConversionError(f"{path}: no data rows")
    return [header[i] for i in keep], rows, lines


def _missing(cell: str) -> bool:
    return cell.strip() in ("", "NA", "nan")


def read_csv_matrix(path: str, *, target: Optional[str] = None) -> tuple[np.ndarray, list[str]]:
    """A numeric CSV with a header; empty cells become NaN; ``target`` is dropped if present."""
    names, rows, lines = _read_cells(path, target)
    values = []
    for k, (n, rec) in enumerate(zip(lines, rows), start=1):
        try:
            values.append([np.nan if _missing(c) else float(c) for c in rec])
        except ValueError as exc:
            raise ConversionError(f"{path}:{n} (data row {k}): not a number ({exc})") from None
    return np.asarray(values, dtype=np.float64), names


@dataclass
class Table:
    """A numeric table with its column names, so ``convert`` matches columns by name (it reads
    ``columns`` and ``to_numpy`` like a pandas DataFrame's, without needing pandas)."""

    values: np.ndarray
    columns: list[str]

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return np.asarray(self.values, dtype=dtype)


def read_csv_table(path: str, *, target: Optional[str] = None) -> Table:
    """A CSV with a header as a named :class:`Table`: numbers, or, when some column holds text
    (categories, free text), an object table where those columns keep their text and the others
    are numbers (blank/NA cells missing in both)."""
    names, rows, _ = _read_cells(path, target)
    values = np.empty((len(rows), len(names)), dtype=object)
    text = False
    for j in range(len(names)):
        cells = [r[j] for r in rows]
        try:
            values[:, j] = [np.nan if _missing(c) else float(c) for c in cells]
        except ValueError:  # a text column: categories or free text
            values[:, j] = [np.nan if _missing(c) else c for c in cells]
            text = True
    return Table(values if text else values.astype(np.float64), names)


def read_csv_labels(path: str, target: str) -> Optional[np.ndarray]:
    """The ``target`` column of a CSV (numbers where every value is one, else strings), or
    None when the CSV has no such column: the training labels, for class shares."""
    with open(Path(path), newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if target not in header:
            return None
        i = header.index(target)
        values = [rec[i].strip() for rec in reader if rec]
    try:
        return np.asarray([float(v) for v in values])
    except ValueError:
        return np.asarray(values)
