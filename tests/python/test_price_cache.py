"""PriceCache against a real redis-server: every method, TTL, max_age, corrupt data."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import solcache
import solcache.sync
from solcache import PriceCache, PriceData, SerializationError

pytestmark = pytest.mark.topologies


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def price(token: str, value: str = "1.5", age_s: float = 0.0) -> PriceData:
    ts = datetime.now(UTC) - timedelta(seconds=age_s)
    return PriceData(token, value, ts, "test")


async def test_set_get_roundtrip(pool, redis_server) -> None:
    cache = PriceCache(pool)
    p = PriceData("SOL", "187.2345", source="pyth")
    await cache.set(p)
    got = await cache.get("SOL")
    assert got == p
    assert got is not None and got.price == Decimal("187.2345") and got.source == "pyth"
    assert redis_server.raw("GET", "price:SOL") == p.to_json()


async def test_get_missing_is_none(pool) -> None:
    assert await PriceCache(pool).get("SOL") is None


async def test_set_overwrites(pool) -> None:
    cache = PriceCache(pool)
    await cache.set(price("SOL", "1"))
    await cache.set(price("SOL", "2"))
    got = await cache.get("SOL")
    assert got is not None and got.price == 2


async def test_set_many_and_get_many(pool, redis_server) -> None:
    cache = PriceCache(pool)
    prices = [price(t, str(i + 1)) for i, t in enumerate(solcache.MVP_TOKENS)]
    await cache.set_many(p for p in prices)  # any iterable
    for p in prices:
        assert redis_server.raw("GET", f"price:{p.token}") == p.to_json()
        assert 0 < redis_server.raw("PTTL", f"price:{p.token}") <= 2000
    got = await cache.get_many(list(reversed(solcache.MVP_TOKENS)))
    assert list(got) == list(reversed(solcache.MVP_TOKENS))
    assert got == {p.token: p for p in prices}


async def test_get_many_with_missing_keys(pool) -> None:
    cache = PriceCache(pool)
    sol, usdc = price("SOL", "187"), price("USDC", "1")
    await cache.set_many([sol, usdc])
    got = await cache.get_many(["BONK", "SOL", "RAY", "USDC"])
    assert list(got) == ["BONK", "SOL", "RAY", "USDC"]
    assert got == {"BONK": None, "SOL": sol, "RAY": None, "USDC": usdc}


async def test_empty_batches(pool) -> None:
    cache = PriceCache(pool)
    await cache.set_many([])
    assert await cache.get_many([]) == {}


async def test_ttl_set_in_same_write(pool, redis_server) -> None:
    cache = PriceCache(pool)
    assert cache.ttl_ms == solcache.DEFAULT_TTL_MS == 2000
    await cache.set(price("SOL"))
    assert 0 < redis_server.raw("PTTL", "price:SOL") <= 2000


async def test_custom_ttl(pool, redis_server) -> None:
    cache = PriceCache(pool, ttl_ms=60_000)
    assert cache.ttl_ms == 60_000
    await cache.set(price("SOL"))
    await cache.set_many([price("RAY")])
    assert 2000 < redis_server.raw("PTTL", "price:SOL") <= 60_000
    assert 2000 < redis_server.raw("PTTL", "price:RAY") <= 60_000


async def test_present_at_1_5s_gone_by_2_5s(pool) -> None:
    cache = PriceCache(pool)
    start = time.monotonic()
    await cache.set(price("SOL"))
    written = time.monotonic()
    await sleep_until(start + 1.5)
    assert await cache.get("SOL") is not None
    await sleep_until(written + 2.5)
    assert await cache.get("SOL") is None


async def test_rewrite_refreshes_ttl(pool, redis_server) -> None:
    cache = PriceCache(pool)
    first = time.monotonic()
    await cache.set(price("SOL", "1"))
    await sleep_until(first + 1.0)
    await cache.set(price("SOL", "2"))
    assert 1000 < redis_server.raw("PTTL", "price:SOL") <= 2000
    await sleep_until(first + 2.5)
    got = await cache.get("SOL")
    assert got is not None and got.price == 2


async def test_short_ttl_expires(pool, eventually) -> None:
    cache = PriceCache(pool, ttl_ms=100)
    await cache.set(price("SOL"))

    async def gone() -> None:
        assert await cache.get("SOL") is None

    await eventually(gone)


async def test_max_age_hides_old_prices(pool, redis_server) -> None:
    cache = PriceCache(pool, ttl_ms=60_000)
    old, fresh = price("SOL", "1", age_s=10), price("USDC", "1")
    await cache.set_many([old, fresh])
    assert redis_server.raw("EXISTS", "price:SOL") == 1
    assert await cache.get("SOL") == old
    assert await cache.get("SOL", max_age_ms=5000) is None
    assert await cache.get("SOL", max_age_ms=60_000) == old
    got = await cache.get_many(["SOL", "USDC"], max_age_ms=5000)
    assert got == {"SOL": None, "USDC": fresh}


@pytest.mark.parametrize("junk", ["{not json", '{"token":"SOL"}', "187.2345", ""])
async def test_corrupt_json_names_key(pool, redis_server, junk: str) -> None:
    redis_server.raw("SET", "price:SOL", junk)
    with pytest.raises(SerializationError) as e:
        await PriceCache(pool).get("SOL")
    assert isinstance(e.value, ValueError)
    assert e.value.key == "price:SOL"
    assert "price:SOL" in str(e.value)


async def test_get_many_with_one_corrupt_key(pool, redis_server) -> None:
    cache = PriceCache(pool)
    await cache.set(price("SOL"))
    redis_server.raw("SET", "price:BONK", "garbage")
    with pytest.raises(SerializationError) as e:
        await cache.get_many(["SOL", "BONK", "RAY"])
    assert e.value.key == "price:BONK"
    assert "price:BONK" in str(e.value)


async def test_wrong_type_is_response_error(pool, redis_server) -> None:
    redis_server.raw("RPUSH", "price:SOL", "a")
    cache = PriceCache(pool)
    with pytest.raises(solcache.ResponseError):
        await cache.get("SOL")
    await cache.set(price("USDC"))  # the pool still works afterwards
    assert await cache.get("USDC") is not None


async def test_calls_that_return_nothing_return_none(pool) -> None:
    cache = solcache.PriceCache(pool)
    assert await cache.set(solcache.PriceData("SOL", "1")) is None
    assert await cache.set_many([solcache.PriceData("USDC", "1")]) is None


class Monitor:
    """``MONITOR`` on a raw socket: the arguments of the commands the server runs."""

    def __init__(self, port: int) -> None:
        import socket

        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.sendall(b"MONITOR\r\n")
        self._file = self._sock.makefile("rb")
        assert self._file.readline() == b"+OK\r\n"

    def next_mget_keys(self) -> list[str]:
        """The keys of the next MGET the server runs."""
        import shlex

        while True:
            line = self._file.readline().decode()
            assert line, "MONITOR closed"
            args = shlex.split(line.split("]", 1)[1])
            if args[0].upper() == "MGET":
                return args[1:]

    def close(self) -> None:
        self._file.close()
        self._sock.close()


@pytest.mark.only_on("standalone", reason="MONITOR of the one server's MGET")
@pytest.mark.parametrize("direct_reads", [True, False], ids=["direct", "runtime"])
async def test_get_many_sends_each_duplicated_token_once(redis_server, direct_reads: bool) -> None:
    async with await solcache.RedisPool.connect(
        redis_server.url, direct_reads=direct_reads
    ) as pool:
        cache = PriceCache(pool)
        sol, usdc = price("SOL", "187"), price("USDC", "1")
        await cache.set_many([sol, usdc])
        monitor = Monitor(redis_server.port)
        try:
            got = await cache.get_many(["SOL", "SOL", "USDC", "BONK", "USDC"])
            assert monitor.next_mget_keys() == ["price:SOL", "price:USDC", "price:BONK"]
        finally:
            monitor.close()
    # One entry per distinct token, in the order first asked (a dict cannot repeat keys).
    assert list(got.items()) == [("SOL", sol), ("USDC", usdc), ("BONK", None)]


@pytest.mark.only_on("standalone", reason="MONITOR of the one server's MGET")
def test_sync_get_many_sends_each_duplicated_token_once(redis_server) -> None:
    with solcache.sync.RedisPool.connect(redis_server.url) as pool:
        cache = solcache.sync.PriceCache(pool)
        sol = price("SOL", "187")
        cache.set(sol)
        monitor = Monitor(redis_server.port)
        try:
            got = cache.get_many(["SOL", "RAY", "SOL"])
            assert monitor.next_mget_keys() == ["price:SOL", "price:RAY"]
        finally:
            monitor.close()
    assert got == {"SOL": sol, "RAY": None}
