"""Streaming batch scoring of CSV, JSON-lines and Parquet files: fixed-size chunks in, rows out,
so memory stays flat however large the file. :func:`score_file` is what ``edgert predict`` runs.

Bad rows (a CSV line with the wrong number of fields, a JSON line that does not parse, a value
that is not a number, NaN where the model has no imputer, an unknown feature) are handled by a
policy: ``fail`` stops with the row number and the reason; ``skip`` leaves them out of the output
and writes each to a reject file (JSON lines: ``{"row": n, "reason": ..., "input": ...}``).
Row numbers are 1-based data records: a CSV header and blank JSON lines are not counted.

With ``workers > 1`` chunks are scored in worker processes (each loads the bundle once and
checks its golden rows); at most ``2 × workers`` chunks are in flight and results are written in
input order, so memory stays flat and the output is identical to one process.

Modules: :mod:`.records` (chunks, rejects, results), :mod:`.readers`, :mod:`.chunk` (one chunk
through the model), :mod:`.writers`, :mod:`.engine` (in order, in one process or several),
:mod:`.progress`, :mod:`.file` (:func:`score_file`), :mod:`.dask` (the Dask recipe).
"""

from __future__ import annotations

from .chunk import score_chunk
from .engine import ScoringJob, TextBlock, score, worker_model
from .file import ScoreRequest, ScoreSummary, load_for_scoring, score_file
from .progress import Progress, position_reader, progress_bar
from .readers import (
    detect_format,
    open_text_in,
    parquet_row_count,
    read_chunks,
    read_csv_chunks,
    read_csv_rows,
    read_jsonl_chunks,
    read_parquet_chunks,
    read_text_blocks,
)
from .records import CHUNK_ROWS, ON_ERROR, Chunk, Reject, Result, Scored
from .writers import RejectWriter, ResultWriter, open_text_out, output_columns, target_column

__all__ = [
    "CHUNK_ROWS", "ON_ERROR", "Chunk", "Progress", "Reject", "RejectWriter", "Result", "ResultWriter",
    "ScoreRequest", "ScoreSummary", "Scored", "ScoringJob", "TextBlock", "detect_format",
    "load_for_scoring", "open_text_in", "open_text_out", "output_columns", "parquet_row_count",
    "position_reader", "progress_bar", "read_chunks", "read_csv_chunks", "read_csv_rows",
    "read_jsonl_chunks", "read_parquet_chunks", "read_text_blocks", "score", "score_chunk",
    "score_file", "target_column", "worker_model",
]
