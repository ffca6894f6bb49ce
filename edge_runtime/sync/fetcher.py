"""TUF fetchers: ``file://`` repositories (a USB stick, a mounted share) get the same ngclient
checks (signatures, expiry, lengths, hashes) as HTTP, whose transport is python-tuf's own; and
every file gets a time limit, since TUF bounds how many bytes arrive but not how slowly (a
mirror dripping a byte a second would hold the agent, and its store lock, for days)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
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


def http_fetcher(socket_timeout: float = 30.0) -> FetcherInterface:
    """python-tuf's urllib3 fetcher (proxies from the environment, TLS), reading what each
    packet brings instead of whole chunks, so the deadline below is checked as bytes trickle in
    and not only once 8 KB have piled up."""
    import urllib3
    from tuf.ngclient import Urllib3Fetcher

    class PromptHttpFetcher(Urllib3Fetcher):
        def _chunks(self, response: Any) -> Iterator[bytes]:
            try:
                while data := response.read1(self.chunk_size):
                    yield data
            except urllib3.exceptions.TimeoutError as exc:
                raise exceptions.SlowRetrievalError from exc
            finally:
                response.release_conn()

    return PromptHttpFetcher(socket_timeout=socket_timeout)


class DeadlineFetcher(FetcherInterface):
    """Wraps another fetcher: a file that takes longer than ``max_seconds`` in all is a
    DownloadError (a stalled socket is the inner fetcher's own timeout)."""

    def __init__(self, inner: FetcherInterface, max_seconds: float):
        self.inner = inner
        self.max_seconds = max_seconds

    def _fetch(self, url: str) -> Iterator[bytes]:
        deadline = time.monotonic() + self.max_seconds
        for chunk in self.inner._fetch(url):
            if time.monotonic() > deadline:
                raise exceptions.DownloadError(f"{url} took longer than {self.max_seconds:g} s")
            yield chunk
