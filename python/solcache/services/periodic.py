"""A drift-free fixed-rate loop that never dies of an error and can be stopped cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from solcache.backoff import Backoff
from solcache.exceptions import SolcacheError
from solcache.sources.base import SourceError

__all__ = ["Periodic"]

logger = logging.getLogger("solcache")


class Periodic:
    """Call ``tick()`` ``rate_hz`` times a second until :meth:`stop`.

    Ticks are scheduled on the loop clock from the start time, so a slow tick does not shift
    the ones after it; when a tick overruns a whole period, missed ticks are skipped rather
    than run in a burst.

    A tick that raises is a failure: it is counted (``errors``, ``last_error``), logged once
    per distinct message (Redis and source errors without a traceback, anything else with
    one), and the loop backs off (one period, doubling up to ``backoff_max_s``) until a tick
    succeeds again. Nothing but :meth:`stop` ends the loop.
    """

    def __init__(
        self,
        name: str,
        rate_hz: float,
        tick: Callable[[], Awaitable[None]],
        *,
        backoff_max_s: float = 1.0,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.name = name
        self.period_s = 1.0 / rate_hz
        self._tick = tick
        self._backoff = Backoff(self.period_s, max(self.period_s, backoff_max_s), jitter=0.0)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        #: Ticks that raised since the loop was created.
        self.errors = 0
        #: The last tick's error ("" once a tick succeeded again).
        self.last_error = ""
        #: ``time.monotonic()`` of the last tick that succeeded (None before the first).
        self.last_ok_monotonic_s: float | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start ticking in a background task (again, after :meth:`stop`)."""
        if not self.running:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Let the current tick finish (up to ``timeout_s``), then stop."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stopping.is_set():
            delay_s = 0.0
            try:
                await self._tick()
            except Exception as e:  # one bad tick must not end the service: retry, backed off
                delay_s = self._failed(e)
            else:
                self._succeeded()
            next_at += self.period_s
            now = loop.time()
            if next_at < now:  # overran: skip to the next slot on the original grid
                next_at += math.ceil((now - next_at) / self.period_s) * self.period_s
            if now + delay_s > next_at:  # backing off: resume on the grid after the delay
                next_at += math.ceil((now + delay_s - next_at) / self.period_s) * self.period_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next_at - now)

    def _failed(self, error: Exception) -> float:
        self.errors += 1
        message = str(error) or type(error).__name__
        delay_s = self._backoff.next_delay_s()
        if message != self.last_error:
            expected = isinstance(error, SolcacheError | SourceError)
            logger.warning(
                "%s: tick failed: %s; retrying with backoff (now %.2f s)",
                self.name,
                message,
                delay_s,
                exc_info=None if expected else error,
            )
        self.last_error = message
        return delay_s

    def _succeeded(self) -> None:
        if self.last_error:
            logger.info(
                "%s: ticking again after %d failed tick(s)", self.name, self._backoff.failures
            )
        self._backoff.reset()
        self.last_error = ""
        self.last_ok_monotonic_s = time.monotonic()
