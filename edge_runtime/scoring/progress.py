"""The progress bar of batch scoring: tqdm on stderr (an optional extra), advanced by bytes read
for text input and by rows for Parquet, with the row count beside it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any, Callable, Optional

from .readers import parquet_row_count


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


class Progress:
    """The bar of one run (or none): :meth:`advance` after each chunk, :meth:`close` at the end."""

    def __init__(self, bar: Optional[Any], position: Optional[Callable[[], Optional[int]]]):
        self.bar, self.position = bar, position
        self.rows = 0

    @classmethod
    def start(cls, enabled: Optional[bool], fmt: str, path: str, fh: Optional[IO[str]]) -> Progress:
        """Parquet input counts rows (the file says how many); text input counts bytes read of
        the file's size (unknown for stdin)."""
        if fmt == "parquet":
            return cls(progress_bar(enabled, total=parquet_row_count(path), unit="row"), None)
        size = Path(path).stat().st_size if path != "-" else None
        return cls(progress_bar(enabled, total=size, unit="B"), position_reader(fh))

    def advance(self, rows_in: int) -> None:
        self.rows += rows_in
        bar = self.bar
        if bar is None:
            return
        if self.position is None:
            bar.update(rows_in)
        else:
            at = self.position()
            if at is not None:
                bar.update(max(0, min(at, bar.total or at) - bar.n))
        bar.set_postfix(rows=self.rows, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
