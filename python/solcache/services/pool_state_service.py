"""Keeps `pool:*` fresh from a pool source at a fixed rate."""

from __future__ import annotations

import time

from solcache._core import PoolStateCache
from solcache.services.periodic import Periodic
from solcache.sources.base import PoolSource

__all__ = ["PoolStateUpdater"]


class PoolStateUpdater:
    """Each tick: read the pool source and write every state with ``set_many`` (2 s TTL).

    A source or Redis error fails the tick: it is counted (``errors``, ``last_error``) and the
    loop backs off (up to ``backoff_max_s``) until a tick succeeds again.
    """

    component = "pool-updater"

    def __init__(
        self,
        source: PoolSource,
        pools: PoolStateCache,
        *,
        update_hz: float = 10.0,
        backoff_max_s: float = 1.0,
    ) -> None:
        self._source = source
        self._pools = pools
        self._loop = Periodic(self.component, update_hz, self._tick, backoff_max_s=backoff_max_s)
        self.ticks = 0
        self.written = 0
        #: ``time.monotonic()`` of the last successful write (None before the first).
        self.last_write_monotonic_s: float | None = None

    @property
    def period_s(self) -> float:
        """Seconds between ticks."""
        return self._loop.period_s

    @property
    def running(self) -> bool:
        """True while the loop runs."""
        return self._loop.running

    @property
    def errors(self) -> int:
        """Ticks that failed, each retried with backoff."""
        return self._loop.errors

    @property
    def last_error(self) -> str:
        """The last failed tick's error, until a tick succeeds again (empty when none)."""
        return self._loop.last_error

    async def start(self) -> None:
        await self._source.start()
        self._loop.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        await self._loop.stop(timeout_s)
        await self._source.close()

    async def _tick(self) -> None:
        self.ticks += 1
        states = await self._source.snapshot()
        await self._pools.set_many(states)
        self.written += len(states)
        self.last_write_monotonic_s = time.monotonic()
