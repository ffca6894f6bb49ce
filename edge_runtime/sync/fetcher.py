"""TUF fetchers: ``file://`` repositories (a USB stick, a mounted share) get the same ngclient
checks (signatures, expiry, lengths, hashes) as HTTP; and every file, metadata and targets
alike, gets a time limit, since TUF bounds how many bytes arrive but not how slowly (a mirror
dripping a byte a second, or accepting the connection and sending nothing, would hold the
agent, and its store lock, for days).

Over HTTP the limit is enforced by the socket itself: the connect timeout and every read's
timeout are the time left before the file's deadline, and urllib3 does not retry a timed-out
read (its default of three retries made a silent mirror cost 4 x 30 s per file). A per-packet
check alone never fires when no packet comes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlparse

from tuf.api import exceptions
from tuf.ngclient import Urllib3Fetcher
from tuf.ngclient.fetcher import FetcherInterface

CHUNK = 64 * 1024
#: Longest silence tolerated between two packets, whatever the file's deadline.
GAP_S = 30.0


class StalledError(exceptions.SlowRetrievalError):
    """The mirror sent nothing for the rest of the file's time limit (connection open, no bytes)."""


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
    def _chunks(fh: Any) -> Iterator[bytes]:
        with fh:
            while True:
                block = fh.read(CHUNK)
                if not block:
                    return
                yield block


class HttpFetcher(Urllib3Fetcher):
    """HTTP(S) through python-tuf's urllib3 fetcher (proxies from the environment, TLS), each
    file bounded by ``max_seconds`` in all: the socket timeouts follow the time left, so a
    silent mirror is cut off at the deadline, not after the next packet that never comes."""

    def __init__(self, max_seconds: float, *, gap_s: float = GAP_S, chunk_size: int = CHUNK):
        super().__init__(socket_timeout=int(gap_s), chunk_size=chunk_size, app_user_agent="edge-runtime")
        self.max_seconds = float(max_seconds)
        self.gap_s = float(gap_s)
        if getattr(self, "_proxy_env", None) is None:  # python-tuf's proxy-aware pool, if it has one
            import urllib3

            # tuf types the attribute as its ProxyEnvironment; a PoolManager has the same request()
            self._proxy_env = urllib3.PoolManager()  # type: ignore[assignment]

    def _timeout(self, url: str, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StalledError(_too_slow(url, self.max_seconds))
        return min(self.gap_s, left)

    def _stalled(self, url: str, what: str, deadline: float) -> StalledError:
        if deadline - time.monotonic() <= 0.05:
            return StalledError(f"{_too_slow(url, self.max_seconds)}: the mirror {what} "
                                "(connection open: stalled)")
        return StalledError(f"{url}: the mirror {what} for {self.gap_s:g} s (stalled)")

    def _fetch(self, url: str) -> Iterator[bytes]:
        import urllib3

        deadline = time.monotonic() + self.max_seconds
        t = self._timeout(url, deadline)
        try:
            response = self._proxy_env.request(
                "GET", url, preload_content=False, timeout=urllib3.Timeout(connect=t, read=t),
                retries=urllib3.Retry(total=3, connect=0, read=0, status=0, other=0, redirect=3))
        except (urllib3.exceptions.TimeoutError, urllib3.exceptions.MaxRetryError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
                raise self._stalled(url, "did not accept the connection", deadline) from exc
            if isinstance(reason, urllib3.exceptions.TimeoutError):
                raise self._stalled(url, "sent no response", deadline) from exc
            raise exceptions.DownloadError(f"{url}: {reason}") from exc
        if response.status >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(f"HTTP error occurred with status {response.status}",
                                               response.status)
        return self._read_within(url, response, deadline)

    def _read_within(self, url: str, response: Any, deadline: float) -> Iterator[bytes]:
        """What each packet brings (``read1``), each read bounded by the time left."""
        import urllib3

        try:
            while True:
                t = self._timeout(url, deadline)
                sock = getattr(response.connection, "sock", None)
                if sock is not None:
                    sock.settimeout(t)
                try:
                    data = response.read1(self.chunk_size)
                except urllib3.exceptions.TimeoutError as exc:
                    raise self._stalled(url, "sent no more bytes", deadline) from exc
                if not data:
                    return
                yield data
        finally:
            response.release_conn()


def _too_slow(url: str, max_seconds: float) -> str:
    return f"{url} took longer than {max_seconds:g} s"


class DeadlineFetcher(FetcherInterface):
    """Wraps another fetcher: a file that takes longer than ``max_seconds`` in all is a
    DownloadError (checked as chunks arrive; for a source that can go silent, use one whose
    reads are bounded too, as :class:`HttpFetcher` is)."""

    def __init__(self, inner: FetcherInterface, max_seconds: float):
        self.inner = inner
        self.max_seconds = max_seconds

    def _fetch(self, url: str) -> Iterator[bytes]:
        deadline = time.monotonic() + self.max_seconds
        for chunk in self.inner._fetch(url):
            if time.monotonic() > deadline:
                raise exceptions.DownloadError(_too_slow(url, self.max_seconds))
            yield chunk


def fetcher_for(repo_url: str, max_seconds: float, *, gap_s: Optional[float] = None) -> FetcherInterface:
    """The fetcher for a repository base URL: every file within ``max_seconds``."""
    if repo_url.startswith("file://"):
        return DeadlineFetcher(FileFetcher(), max_seconds)
    return HttpFetcher(max_seconds, gap_s=GAP_S if gap_s is None else gap_s)
