"""The Redis commands the caches send, counted by the server (`INFO commandstats`).

`get_many` is one `MGET` (never N `GET`s or a pipeline of them), and every write sets its TTL
in the same command (`SET key json PX ttl`, never `SET` then `PEXPIRE`), on each path: the
async direct connection, the async pool (runtime) and the blocking API.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import solcache
from conftest import RedisServer
from solcache import sync

pytestmark = pytest.mark.timeout(60)

TOKENS = ["SOL", "USDC", "BONK", "RAY"]
POOLS = [
    "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
    "So11111111111111111111111111111111111111112",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
]
TTL_MS = 2750
# Commands that would set an expiry apart from the value (or set it some other way than SET … PX).
EXPIRY_COMMANDS = ("pexpire", "expire", "psetex", "setex", "pexpireat", "expireat")


def calls(server: RedisServer) -> dict[str, int]:
    """Calls per command since the last `CONFIG RESETSTAT`."""
    text = server.raw("INFO", "commandstats")
    return {name: int(n) for name, n in re.findall(r"^cmdstat_([^:]+):calls=(\d+)", text, re.M)}


def price(token: str, value: str = "187.25") -> solcache.PriceData:
    return solcache.PriceData(
        token=token, price=Decimal(value), source="test", timestamp=datetime.now(UTC)
    )


def state(address: str, reserve_a: str = "41250.5") -> solcache.PoolState:
    return solcache.PoolState(
        address, "12500000.50", reserve_a, "7723456.12", "98765432.10", datetime.now(UTC)
    )


def direct_last_commands(server: RedisServer) -> list[str]:
    """The last command of each `solcache-direct` client (`CLIENT LIST` field `cmd`)."""
    lines = server.raw("CLIENT", "LIST").splitlines()
    return [re.search(r" cmd=(\S+)", line)[1] for line in lines if "name=solcache-direct" in line]  # type: ignore[index]


async def until_direct(server: RedisServer, read: Callable[[], Any]) -> None:
    """Read until the loop's direct connection is up (it opens in the background)."""
    deadline = time.monotonic() + 10
    while not direct_last_commands(server):
        assert time.monotonic() < deadline, "no direct connection was opened"
        await read()
        await asyncio.sleep(0.01)
    for _ in range(5):  # the install runs on the loop: let it land
        await read()


def assert_one_mget(server: RedisServer, got: dict[str, Any], ids: list[str]) -> None:
    stats = calls(server)
    assert stats.get("mget") == 1, stats
    assert stats.get("get", 0) == 0, stats
    assert list(got) == ids and all(v is not None for v in got.values())


def assert_set_px(server: RedisServer, keys: list[str], ttl_ms: int) -> None:
    stats = calls(server)
    assert stats.get("set") == len(keys), stats
    assert not [c for c in EXPIRY_COMMANDS if stats.get(c)], stats
    for key in keys:
        assert 0 < server.raw("PTTL", key) <= ttl_ms, key


# --- get_many is one MGET ----------------------------------------------------------------


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "pool"])
async def test_async_price_get_many_is_one_mget(redis_server: RedisServer, direct: bool) -> None:
    async with await solcache.RedisPool.connect(redis_server.url, direct_reads=direct) as pool:
        cache = solcache.PriceCache(pool)
        await cache.set_many([price(t) for t in TOKENS])
        if direct:
            await until_direct(redis_server, lambda: cache.get_many(TOKENS))
            await cache.get(TOKENS[0])  # the direct connection's last command is now a GET
            assert direct_last_commands(redis_server) == ["get"]
        redis_server.raw("CONFIG", "RESETSTAT")
        got = await cache.get_many(TOKENS)
        assert_one_mget(redis_server, got, TOKENS)
        # The MGET took the path under test: the direct connection's last command, or no
        # direct connection at all.
        assert direct_last_commands(redis_server) == (["mget"] if direct else [])


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "pool"])
async def test_async_pool_state_get_many_is_one_mget(
    redis_server: RedisServer, direct: bool
) -> None:
    async with await solcache.RedisPool.connect(redis_server.url, direct_reads=direct) as pool:
        cache = solcache.PoolStateCache(pool)
        await cache.set_many([state(a) for a in POOLS])
        if direct:
            await until_direct(redis_server, lambda: cache.get_many(POOLS))
            await cache.get(POOLS[0])  # the direct connection's last command is now a GET
            assert direct_last_commands(redis_server) == ["get"]
        redis_server.raw("CONFIG", "RESETSTAT")
        got = await cache.get_many(POOLS)
        assert_one_mget(redis_server, got, POOLS)
        assert direct_last_commands(redis_server) == (["mget"] if direct else [])


def test_sync_get_many_is_one_mget(redis_server: RedisServer) -> None:
    with sync.RedisPool.connect(redis_server.url) as pool:
        prices, pools = sync.PriceCache(pool), sync.PoolStateCache(pool)
        prices.set_many([price(t) for t in TOKENS])
        pools.set_many([state(a) for a in POOLS])
        redis_server.raw("CONFIG", "RESETSTAT")
        assert_one_mget(redis_server, prices.get_many(TOKENS), TOKENS)
        redis_server.raw("CONFIG", "RESETSTAT")
        assert_one_mget(redis_server, pools.get_many(POOLS), POOLS)


# --- the TTL is set in the same write (SET … PX) ----------------------------------------


async def test_async_writes_are_set_px(redis_server: RedisServer) -> None:
    async with await solcache.RedisPool.connect(redis_server.url) as pool:
        prices = solcache.PriceCache(pool, ttl_ms=TTL_MS)
        pools = solcache.PoolStateCache(pool, ttl_ms=TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        await prices.set(price("SOL"))
        assert_set_px(redis_server, ["price:SOL"], TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        await prices.set_many([price(t) for t in TOKENS])
        assert_set_px(redis_server, [f"price:{t}" for t in TOKENS], TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        await pools.set(state(POOLS[0]))
        assert_set_px(redis_server, [f"pool:{POOLS[0]}"], TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        await pools.set_many([state(a) for a in POOLS])
        assert_set_px(redis_server, [f"pool:{a}" for a in POOLS], TTL_MS)


def test_sync_writes_are_set_px(redis_server: RedisServer) -> None:
    with sync.RedisPool.connect(redis_server.url) as pool:
        prices = sync.PriceCache(pool, ttl_ms=TTL_MS)
        pools = sync.PoolStateCache(pool, ttl_ms=TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        prices.set(price("SOL"))
        assert_set_px(redis_server, ["price:SOL"], TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        prices.set_many([price(t) for t in TOKENS])
        assert_set_px(redis_server, [f"price:{t}" for t in TOKENS], TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        pools.set(state(POOLS[0]))
        assert_set_px(redis_server, [f"pool:{POOLS[0]}"], TTL_MS)
        redis_server.raw("CONFIG", "RESETSTAT")
        pools.set_many([state(a) for a in POOLS])
        assert_set_px(redis_server, [f"pool:{a}" for a in POOLS], TTL_MS)
