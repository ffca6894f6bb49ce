"""The uploader: outbox → sink, one bounded batch at a time, deleting only what was acked.

Usable from the CLI (``edgert telemetry flush``) and from a sync daemon: build an
:class:`Uploader` once and call :meth:`Uploader.flush` whenever the network is up. Failures
back off exponentially with jitter; the backoff state lives in the outbox, so a restarted
daemon does not hammer a collector that is down.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .outbox import Outbox
from .sinks import BatchRejected, Sink, SinkAuthError, SinkError


@dataclass
class FlushResult:
    batches: int = 0
    segments: int = 0
    calls: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)  # one per failure, in order
    rejected: int = 0  # batches the collector refused for good (kept aside in the outbox)
    rejections: list[str] = field(default_factory=list)  # one per rejected batch
    retry_after_s: Optional[float] = None  # set when it stopped because of a failure/backoff
    remaining_segments: int = 0
    fatal: Optional[str] = None  # credentials refused: retrying cannot help
    timed_out: bool = False  # stopped by the total time limit

    @property
    def complete(self) -> bool:
        return self.retry_after_s is None and self.remaining_segments == 0


class Uploader:
    """Sends the outbox through one sink.

    ``batch_segments``/``batch_bytes`` bound a batch; the delay after the n-th consecutive
    failure is ``d/2 + uniform(0, d/2)`` with ``d = min(max_delay_s, base_delay_s * 2**(n-1))``.
    """

    def __init__(self, outbox: Outbox, sink: Sink, *, batch_segments: int = 50,
                 batch_bytes: int = 512 * 1024, base_delay_s: float = 1.0,
                 max_delay_s: float = 600.0, rng: Optional[random.Random] = None,
                 sleep: Callable[[float], None] = time.sleep):
        if batch_segments < 1 or batch_bytes < 1:
            raise ValueError("batch_segments and batch_bytes must be positive")
        self.outbox, self.sink = outbox, sink
        self.batch_segments, self.batch_bytes = int(batch_segments), int(batch_bytes)
        self.base_delay_s, self.max_delay_s = float(base_delay_s), float(max_delay_s)
        self._rng = rng or random.Random()
        self._sleep = sleep

    def delay_for(self, failures: int) -> float:
        d = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, failures - 1))
        return d / 2 + self._rng.uniform(0, d / 2)

    def flush(self, max_batches: Optional[int] = None, *, max_attempts: int = 1,
              respect_backoff: bool = True, max_time_s: Optional[float] = None,
              progress: Optional[Callable[[str], None]] = None) -> FlushResult:
        """Send up to ``max_batches`` batches (all if None).

        ``max_attempts`` consecutive failures are tolerated within this call (sleeping the
        backoff delay between them) before it returns with ``retry_after_s`` set. With
        ``respect_backoff`` a call made before the stored retry time sends nothing.
        ``max_time_s`` bounds the whole call (sleeps included); refused credentials stop it at
        once (``fatal``). ``progress`` gets one line per batch sent and per failure.
        """
        res = FlushResult()
        say = progress or (lambda line: None)
        end = None if max_time_s is None else time.monotonic() + max_time_s
        failures, next_at = self.outbox.backoff_state()
        if respect_backoff and failures and time.time() < next_at:
            res.retry_after_s = next_at - time.time()
            res.remaining_segments = self.outbox.stats()["segments"]
            return res
        attempts = 0
        try:
            while max_batches is None or res.batches < max_batches:
                if end is not None and time.monotonic() >= end:
                    res.timed_out = True
                    res.retry_after_s = res.retry_after_s or 0.0
                    break
                batch = self.outbox.next_batch(self.batch_segments, self.batch_bytes)
                if batch is None:
                    break
                try:
                    self.sink.send(batch)
                except BatchRejected as exc:
                    self.outbox.reject(batch, str(exc))
                    res.rejected += 1
                    res.rejections.append(str(exc))
                    say(f"batch {batch.batch_id} rejected for good: {exc}")
                    continue
                except SinkError as exc:
                    failures += 1
                    attempts += 1
                    res.failures += 1
                    res.errors.append(str(exc))
                    delay = self.delay_for(failures)
                    self.outbox.set_backoff_state(failures, time.time() + delay)
                    if isinstance(exc, SinkAuthError):
                        res.fatal = str(exc)
                        res.retry_after_s = delay
                        say(f"failed: {exc}")
                        break
                    if attempts >= max_attempts:
                        res.retry_after_s = delay
                        say(f"attempt {attempts} failed: {exc}; giving up for now")
                        break
                    if end is not None and time.monotonic() + delay >= end:
                        res.timed_out = True
                        res.retry_after_s = delay
                        say(f"attempt {attempts} failed: {exc}; time limit reached")
                        break
                    say(f"attempt {attempts} failed: {exc}; retrying in {delay:.1f} s")
                    self._sleep(delay)
                    continue
                self.outbox.ack(batch.batch_id)
                if failures:
                    failures = 0
                    self.outbox.set_backoff_state(0, 0.0)
                attempts = 0
                res.batches += 1
                res.segments += batch.segments
                res.calls += batch.calls
                say(f"sent batch {res.batches}: {batch.segments} windows, {batch.calls} calls")
        finally:
            self.sink.close()
        res.remaining_segments = self.outbox.stats()["segments"]
        return res
