"""A TUF fetcher for ``file://`` repositories (a USB stick, a mounted share): the same
ngclient checks (signatures, expiry, lengths, hashes) as over HTTP, only the transport differs.
HTTP(S) uses python-tuf's own fetcher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from tuf.api import exceptions
from tuf.ngclient.fetcher import FetcherInterface

CHUNK = 64 * 1024


class FileFetcher(FetcherInterface):
    """Reads ``file:///…`` URLs. A missing file is a 404, as a web server would say."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise exceptions.DownloadError(f"FileFetcher only reads file:// URLs, got {url}")
        path = Path(unquote(parsed.path))
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise exceptions.DownloadHTTPError(f"{path} not found", 404) from None
        except OSError as exc:
            raise exceptions.DownloadError(f"{path}: {exc}") from None
        return self._chunks(fh)

    @staticmethod
    def _chunks(fh) -> Iterator[bytes]:
        with fh:
            while True:
                block = fh.read(CHUNK)
                if not block:
                    return
                yield block
