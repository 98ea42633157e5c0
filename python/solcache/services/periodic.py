"""A drift-free fixed-rate loop that can be stopped cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

logger = logging.getLogger("solcache")


class Periodic:
    """Call ``tick()`` ``rate_hz`` times a second until :meth:`stop`.

    Ticks are scheduled on the loop clock from the start time, so a slow tick does not shift
    the ones after it; when a tick overruns a whole period, missed ticks are skipped rather
    than run in a burst.
    """

    def __init__(self, name: str, rate_hz: float, tick: Callable[[], Awaitable[None]]) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.name = name
        self.period_s = 1.0 / rate_hz
        self._tick = tick
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start ticking in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Let the current tick finish (up to ``timeout_s``), then stop."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stopping.is_set():
            try:
                await self._tick()
            except Exception:  # one bad tick must not end the service
                logger.exception("%s: tick failed", self.name)
            next_at += self.period_s
            now = loop.time()
            if next_at < now:  # overran: skip to the next slot on the original grid
                next_at += math.ceil((now - next_at) / self.period_s) * self.period_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next_at - now)
