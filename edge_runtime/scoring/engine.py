"""The scoring engine: chunks scored in order, in this process or in worker processes.

With ``workers > 1`` each worker process loads the bundle once (golden rows checked, one engine
thread) and parses, scores and formats what it is sent: a parsed :class:`Chunk` (Parquet input)
or a :class:`TextBlock` of CSV / JSON-lines records, so the parsing uses every core too. At most
``2 × workers`` items are in flight and results come back in input order, so memory stays flat
and the output is identical to one process with ``--threads 1``.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import IO, Any, Iterable, Iterator, Optional, Union

from .chunk import score_chunk
from .readers import read_csv_chunks, read_csv_header, read_jsonl_chunks, read_text_blocks
from .records import ON_ERROR, Chunk, Result
from .writers import ResultWriter


@dataclass
class ScoringJob:
    """What every chunk of one run is scored with (sent once to each worker process)."""

    bundle: str
    backend: str
    fmt: str  # input: csv | jsonl | parquet
    out_fmt: str  # output: csv | jsonl | parquet
    features: list[str]
    id_column: Optional[str]
    proba: bool
    on_error: str
    strict: bool = False


@dataclass
class TextBlock:
    """Unparsed CSV / JSON-lines records for a worker: ``before`` data rows precede them in the
    file (their numbers continue from there); ``header`` is the CSV header line ("" for JSON)."""

    before: int
    text: str
    header: str = ""


Item = Union[Chunk, TextBlock]

_MODELS: dict[tuple[str, str, Optional[int]], Any] = {}
_LOCK = threading.Lock()


def worker_model(bundle: str, backend: str, threads: Optional[int] = None) -> Any:
    """The bundle loaded once per process (and kept), for worker processes of this engine and
    of the Dask recipe: each checks the golden rows once, not once per chunk or partition."""
    key = (str(bundle), backend, threads)
    model = _MODELS.get(key)
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                from ..loader import load

                model = _MODELS[key] = load(bundle, backend=backend, threads=threads)
    return model


def text_blocks(fh: IO[str], job: ScoringJob, chunk_rows: int) -> Iterator[TextBlock]:
    """The text input cut into blocks of ``chunk_rows`` records for the workers; the CSV header
    is read and checked here first, with the message the one-process reader gives.

    Raises:
        InputError: a bad CSV header.
    """
    header = ""
    if job.fmt == "csv":
        header = fh.readline()
        if not header:
            return
        read_csv_header(header, job.features, job.id_column)
    for before, text in read_text_blocks(fh, chunk_rows, quoted=job.fmt == "csv"):
        yield TextBlock(before, text, header)


def score_item(model: Any, job: ScoringJob, item: Item, *, format_rows: bool) -> Result:
    """Parse (a text block), score and, with ``format_rows`` and a text output, format one item.

    Raises:
        InputError: a bad row under ``on_error="fail"``.
    """
    chunk = _parse(model, job, item) if isinstance(item, TextBlock) else item
    if chunk is None:
        return Result(None, "", [], 0, 0)
    scored = score_chunk(model, chunk, proba=job.proba, on_error=job.on_error, strict=job.strict)
    if not format_rows or job.out_fmt == "parquet":
        return Result.of(scored)
    buf = io.StringIO(newline="")
    writer = ResultWriter(buf, job.out_fmt, classes=model.manifest.classes, proba=job.proba,
                          task=model.task, id_column=job.id_column, header=False)
    if len(scored.values):
        writer.write(scored, scored.values, scored.probabilities)
    return Result(None, buf.getvalue(), scored.rejects, scored.rows_in, len(scored.values))


def _parse(model: Any, job: ScoringJob, block: TextBlock) -> Optional[Chunk]:
    if job.fmt == "csv":
        chunks = read_csv_chunks(io.StringIO(block.header + block.text), job.features,
                                 id_column=job.id_column, chunk_rows=1 << 30, first_row=block.before,
                                 schema=model.input_schema)
    else:
        chunks = read_jsonl_chunks(io.StringIO(block.text), id_column=job.id_column, chunk_rows=1 << 30,
                                   first_row=block.before)
    return next(iter(chunks), None)


def score(job: ScoringJob, items: Iterable[Item], *, model: Any = None, workers: int = 1) -> Iterator[Result]:
    """Score ``items`` in input order: in this process with ``model`` (``workers == 1``), else in
    ``workers`` processes that each load ``job.bundle`` and format text output themselves.

    Raises:
        InputError: a bad row under ``on_error="fail"`` (the earliest one in input order).
        ValueError: an unknown ``on_error`` policy.
    """
    if job.on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {job.on_error!r}")
    if workers <= 1:
        for item in items:
            yield score_item(model, job, item, format_rows=False)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked child would inherit the parent's engine thread pools mid-state
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(job,)) as pool:
        yield from _in_order(pool, workers, ((_worker_score, item) for item in items))


_JOB: Optional[ScoringJob] = None


def _worker_init(job: ScoringJob) -> None:
    global _JOB
    _JOB = job
    worker_model(job.bundle, job.backend, threads=1)


def _worker_score(item: Item) -> Result:
    job = _JOB
    assert job is not None, "worker used before its initializer ran"
    return score_item(worker_model(job.bundle, job.backend, threads=1), job, item, format_rows=True)


def _in_order(pool: Any, workers: int, calls: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
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
