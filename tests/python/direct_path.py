"""Whether a loop's direct connection (``solcache-direct`` in ``CLIENT LIST``) is up.

Until it is, awaited reads take the pool through the runtime: a test that means to exercise
the direct path, or that fires more concurrent reads than the pool can lend within its
checkout timeout, waits for it first.
"""

from __future__ import annotations

import asyncio
import time

from conftest import RedisServer
from solcache import PriceCache


def direct_clients(server: RedisServer) -> int:
    """How many ``solcache-direct`` connections ``server`` has."""
    return sum("name=solcache-direct" in line for line in server.raw("CLIENT", "LIST").splitlines())


async def until_direct(server: RedisServer, cache: PriceCache, token: str = "SOL") -> None:
    """Read until the loop's direct connection is up (it opens in the background)."""
    deadline = time.monotonic() + 5
    while direct_clients(server) < 1:
        assert time.monotonic() < deadline, "no direct connection was opened"
        await cache.get(token)
        await asyncio.sleep(0.01)
    for _ in range(5):  # the install runs on the loop: let it land
        await cache.get(token)
