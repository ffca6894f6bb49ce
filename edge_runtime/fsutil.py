"""Power-safe file writes: write-temp -> fsync -> rename -> fsync(dir), the only way the
runtime writes anything that must survive a crash or power loss."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def fsync_dir(path: PathLike) -> None:
    """Make a rename or create inside ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # Windows, some browser file systems
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: PathLike, *, binary: bool = True, mode: int = 0o644) -> Iterator[IO[Any]]:
    """An open temporary file beside ``path`` that replaces ``path`` when the block succeeds and
    is deleted when it fails, so a failed write (bad row, full disk, Ctrl-C) leaves nothing."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with (os.fdopen(fd, "wb") if binary
              else os.fdopen(fd, "w", newline="", encoding="utf-8")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: PathLike, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half of one."""
    with atomic_output(path, mode=mode) as fh:
        fh.write(data)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as pretty, key-sorted JSON (stable bytes for digests and diffs)."""
    data = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
    atomic_write_bytes(path, data)
