"""Read the CSV files the CLI takes (sample rows, hold-out rows) into float arrays + names."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import ConversionError


def read_csv_matrix(path: str, *, target: Optional[str] = None) -> tuple[np.ndarray, list[str]]:
    """A numeric CSV with a header; empty cells become NaN; ``target`` is dropped if present."""
    with open(Path(path), newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ConversionError(f"{path}: empty CSV") from None
        keep = [i for i, h in enumerate(header) if h != target]
        rows: list[list[float]] = []
        for n, rec in enumerate(reader, start=2):  # n: the file's line; len(rows) + 1: the data row
            if not rec:
                continue
            where = f"{path}:{n} (data row {len(rows) + 1})"
            if len(rec) != len(header):
                raise ConversionError(f"{where}: {len(rec)} fields, header has {len(header)}")
            try:
                rows.append([float(rec[i]) if rec[i].strip() not in ("", "NA", "nan") else np.nan
                             for i in keep])
            except ValueError as exc:
                raise ConversionError(f"{where}: not a number ({exc})") from None
    if not rows:
        raise ConversionError(f"{path}: no data rows")
    return np.asarray(rows, dtype=np.float64), [header[i] for i in keep]


@dataclass
class Table:
    """A numeric table with its column names, so ``convert`` matches columns by name (it reads
    ``columns`` and ``to_numpy`` like a pandas DataFrame's, without needing pandas)."""

    values: np.ndarray
    columns: list[str]

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return np.asarray(self.values, dtype=dtype)


def read_csv_table(path: str, *, target: Optional[str] = None) -> Table:
    """:func:`read_csv_matrix` as a named :class:`Table`; a CSV with text columns (categories,
    free text) as an object table: those columns keep their text (blank/NA cells missing),
    the others are read as numbers."""
    try:
        values, names = read_csv_matrix(path, target=target)
    except ConversionError as exc:
        if "not a number" not in str(exc):
            raise
        return _read_csv_objects(path, target)
    return Table(values, names)


def _read_csv_objects(path: str, target: Optional[str]) -> Table:
    with open(Path(path), newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        keep = [i for i, h in enumerate(header) if h != target]
        rows = []
        for n, rec in enumerate(reader, start=2):
            if not rec:
                continue
            if len(rec) != len(header):
                raise ConversionError(f"{path}:{n}: {len(rec)} fields, header has {len(header)}")
            rows.append([rec[i] for i in keep])
    values = np.empty((len(rows), len(keep)), dtype=object)
    for j in range(len(keep)):
        cells = [r[j] for r in rows]
        missing = [c.strip() in ("", "NA", "nan") for c in cells]
        try:
            values[:, j] = [np.nan if m else float(c) for c, m in zip(cells, missing)]
        except ValueError:  # a text column: categories or free text
            values[:, j] = [np.nan if m else c for c, m in zip(cells, missing)]
    return Table(values, [header[i] for i in keep])


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
