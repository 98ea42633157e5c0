"""Keeps `pool:*` fresh from a pool source at a fixed rate."""

from __future__ import annotations

import logging

from solcache._core import PoolStateCache
from solcache.exceptions import SolcacheError
from solcache.services.periodic import Periodic
from solcache.sources.base import PoolSource, SourceError

__all__ = ["PoolStateUpdater"]

logger = logging.getLogger("solcache")


class PoolStateUpdater:
    """Each tick: read the pool source and write every state with ``set_many`` (2 s TTL)."""

    component = "pool-updater"

    def __init__(
        self, source: PoolSource, pools: PoolStateCache, *, update_hz: float = 10.0
    ) -> None:
        self._source = source
        self._pools = pools
        self._loop = Periodic(self.component, update_hz, self._tick)
        self.ticks = 0
        self.written = 0
        self.errors = 0
        self.last_error = ""

    async def start(self) -> None:
        await self._source.start()
        self._loop.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        await self._loop.stop(timeout_s)
        await self._source.close()

    async def _tick(self) -> None:
        self.ticks += 1
        try:
            states = await self._source.snapshot()
            await self._pools.set_many(states)
            self.written += len(states)
            self.last_error = ""
        except (SourceError, SolcacheError) as e:
            self.errors += 1
            if str(e) != self.last_error:
                logger.warning("%s: %s", self.component, e)
            self.last_error = str(e)
