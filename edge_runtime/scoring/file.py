"""``score_file``: one input file scored into one output file, as ``edgert predict`` does it.

The outputs are written under a temporary name and renamed only when every row is scored
(:func:`~edge_runtime.fsutil.atomic_output`), so a failure (a bad row, a full disk, Ctrl-C)
leaves nothing behind; stdout, when it is the output, is written as rows come.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import IO, Any, Iterable, Optional

from ..errors import InputError, ScoringOptionError
from .engine import Item, ScoringJob, score, text_blocks
from .progress import Progress
from .readers import detect_format, open_text_in, read_chunks
from .records import CHUNK_ROWS
from .writers import RejectWriter, ResultWriter, open_text_out


def _is_stdout(path: Optional[str]) -> bool:
    return path in (None, "-")


@dataclass
class ScoreRequest:
    """One run's options (``edgert predict``'s, by the same names). The formats are resolved
    from the file names when not given; :meth:`check` refuses combinations that cannot work."""

    bundle: str
    input: str  # a file, or "-" for stdin (not Parquet)
    output: Optional[str] = None  # None or "-": stdout
    fmt: Optional[str] = None  # csv | jsonl | parquet (default: from the input's name; stdin is CSV)
    out_fmt: Optional[str] = None  # default: from the output's name, else the input's
    proba: bool = False
    backend: str = "auto"
    id_column: Optional[str] = None
    chunk_rows: int = CHUNK_ROWS
    on_error: str = "fail"
    reject_file: Optional[str] = None  # default with on_error="skip": OUTPUT.rejects.jsonl
    workers: int = 1
    threads: Optional[int] = None
    progress: Optional[bool] = False  # None: when stderr is a terminal
    strict: bool = False

    def __post_init__(self) -> None:
        self.fmt = detect_format(self.input, self.fmt)
        if self.out_fmt is None:
            self.out_fmt = detect_format(self.output, None) if not _is_stdout(self.output) else self.fmt
            if self.out_fmt == "parquet" and _is_stdout(self.output):
                self.out_fmt = "csv"

    @property
    def formats(self) -> tuple[str, str]:
        """(input format, output format), both resolved."""
        return str(self.fmt), str(self.out_fmt)

    def check(self) -> ScoreRequest:
        """Refuse what cannot work before any model is loaded; fill in the default reject file.

        Raises:
            ScoringOptionError: Parquet from stdin or to stdout; ``skip`` to stdout without a
                reject file.
        """
        if self.fmt == "parquet" and self.input == "-":
            raise ScoringOptionError("Parquet input must be a file, not stdin")
        if self.out_fmt == "parquet" and _is_stdout(self.output):
            raise ScoringOptionError("Parquet output needs a file (-o out.parquet)")
        if self.on_error == "skip" and self.reject_file is None:
            if _is_stdout(self.output):
                raise ScoringOptionError("--on-error skip writing to stdout needs --reject-file")
            self.reject_file = f"{self.output}.rejects.jsonl"
        return self


@dataclass
class ScoreSummary:
    """What a run did: rows written, rows read, and rows skipped into the reject file."""

    rows: int
    seen: int
    rejected: Optional[int]  # None: no reject file (on_error="fail")
    reject_file: Optional[str]
    output: Optional[str]


def load_for_scoring(req: ScoreRequest, model: Any = None) -> Any:
    """The bundle loaded for ``req`` (one engine thread when worker processes score), or the
    ``model`` already loaded from it, checked for what the options need, so a run that cannot
    work stops before reading a row.

    Raises:
        ScoringOptionError: probabilities asked of a model that is no classifier.
        BundleError: ``strict`` and the bundle has no training min/max.
    """
    from ..inputs import InputSchema
    from ..loader import load

    if model is None:
        model = load(req.bundle, backend=req.backend, threads=1 if req.workers > 1 else req.threads)
    if req.strict:  # a bundle without training min/max would refuse every row: say so once, up front
        InputSchema(model.manifest.features).require_training()
    if req.proba and model.task != "classification":
        raise ScoringOptionError("--proba needs a classification model")
    return model


def score_file(req: ScoreRequest, model: Any = None) -> ScoreSummary:
    """Score ``req.input`` into ``req.output`` chunk by chunk (memory stays flat), output rows
    in input order; with ``on_error="skip"`` bad rows go to the reject file instead. ``model``:
    ``req.bundle`` already loaded (a worker's cached copy), else it is loaded here.

    Raises:
        ScoringOptionError: see :meth:`ScoreRequest.check` and :func:`load_for_scoring`.
        InputError: a bad row under ``on_error="fail"`` (its 1-based row number and the reason),
            a bad header, or an input without data rows.
    """
    req.check()
    model = load_for_scoring(req, model)
    fmt, out_fmt = req.formats
    with contextlib.ExitStack() as files:
        fin = None if fmt == "parquet" else open_text_in(req.input)
        if fin is not None and req.input != "-":
            files.callback(fin.close)
        fout: IO[Any] = (open_text_out(None) if _is_stdout(req.output)
                         else files.enter_context(_atomic(req.output, binary=out_fmt == "parquet")))
        frej = files.enter_context(_atomic(req.reject_file, binary=False)) if req.reject_file else None
        rows, seen, rejected = _run(model, req, fin, fout, frej)
        if seen == 0:
            raise InputError(f"{req.input}: no data rows (an empty input is refused, not scored)")
    return ScoreSummary(rows, seen, rejected, req.reject_file, req.output)


def _atomic(path: Optional[str], *, binary: bool) -> Any:
    from ..fsutil import atomic_output

    assert path is not None
    return atomic_output(path, binary=binary)


def _run(model: Any, req: ScoreRequest, fin: Optional[IO[str]], fout: IO[Any],
         frej: Optional[IO[str]]) -> tuple[int, int, Optional[int]]:
    """Score the open input into the open outputs: (rows written, rows read, rows rejected or
    None without a reject file)."""
    fmt, out_fmt = req.formats
    features = model.feature_names
    job = ScoringJob(bundle=req.bundle, backend=req.backend, fmt=fmt, out_fmt=out_fmt, features=features,
                     id_column=req.id_column, proba=req.proba, on_error=req.on_error, strict=req.strict)
    items: Iterable[Item]
    if req.workers > 1 and fin is not None:  # text: workers parse, score and format; we split lines
        items = text_blocks(fin, job, req.chunk_rows)
    else:
        items = read_chunks(fmt, req.input, fin, features, id_column=req.id_column,
                            chunk_rows=req.chunk_rows, schema=model.input_schema)
    progress = Progress.start(req.progress, fmt, req.input, fin)
    writer = None
    try:
        writer = ResultWriter(fout, out_fmt, classes=model.manifest.classes, proba=req.proba,
                              task=model.task, id_column=req.id_column)
        rejects = RejectWriter(frej) if frej is not None else None
        for result in score(job, items, model=model, workers=req.workers):
            writer.write_result(result)
            if rejects is not None and result.rejects:
                rejects.write(result.rejects)
            progress.advance(result.rows_in)
        writer.close()
        return writer.rows, progress.rows, rejects.count if rejects is not None else None
    finally:
        if writer is not None:
            writer.close()
        progress.close()
