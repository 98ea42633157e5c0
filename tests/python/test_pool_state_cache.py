"""PoolStateCache against a real redis-server: every method, TTL, max_age, corrupt data."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from solcache import PoolState, PoolStateCache, ResponseError, SerializationError

pytestmark = pytest.mark.topologies

POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
OTHER = "So11111111111111111111111111111111111111112"
THIRD = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def state(address: str = POOL, reserve_a: str = "41250.123456789", age_s: float = 0.0) -> PoolState:
    ts = datetime.now(UTC) - timedelta(seconds=age_s)
    return PoolState(address, "12500000.50", reserve_a, "7723456.123456", "98765432.10", ts)


async def test_set_get_roundtrip(pool, redis_server) -> None:
    cache = PoolStateCache(pool)
    s = state()
    await cache.set(s)
    got = await cache.get(POOL)
    assert got == s
    assert got is not None and str(got.reserve_a) == "41250.123456789"
    assert redis_server.raw("GET", f"pool:{POOL}") == s.to_json()


async def test_get_missing_is_none(pool) -> None:
    assert await PoolStateCache(pool).get(POOL) is None


async def test_set_many_get_many_with_missing(pool, redis_server) -> None:
    cache = PoolStateCache(pool)
    a, b = state(POOL, "1"), state(OTHER, "2")
    await cache.set_many(iter([a, b]))
    for s in (a, b):
        assert redis_server.raw("GET", f"pool:{s.pool_address}") == s.to_json()
        assert 0 < redis_server.raw("PTTL", f"pool:{s.pool_address}") <= 2000
    got = await cache.get_many([THIRD, OTHER, POOL])
    assert list(got) == [THIRD, OTHER, POOL]
    assert got == {THIRD: None, OTHER: b, POOL: a}


async def test_empty_batches(pool) -> None:
    cache = PoolStateCache(pool)
    await cache.set_many([])
    assert await cache.get_many([]) == {}


async def test_ttl_default_and_custom(pool, redis_server) -> None:
    cache = PoolStateCache(pool)
    assert cache.ttl_ms == 2000
    await cache.set(state())
    assert 0 < redis_server.raw("PTTL", f"pool:{POOL}") <= 2000
    long = PoolStateCache(pool, ttl_ms=60_000)
    assert long.ttl_ms == 60_000
    await long.set(state(OTHER))
    assert 2000 < redis_server.raw("PTTL", f"pool:{OTHER}") <= 60_000


async def test_present_at_1_5s_gone_by_2_5s(pool) -> None:
    cache = PoolStateCache(pool)
    start = time.monotonic()
    await cache.set(state())
    written = time.monotonic()
    await sleep_until(start + 1.5)
    assert await cache.get(POOL) is not None
    await sleep_until(written + 2.5)
    assert await cache.get(POOL) is None


async def test_rewrite_refreshes_ttl(pool, redis_server) -> None:
    cache = PoolStateCache(pool)
    first = time.monotonic()
    await cache.set(state(reserve_a="1"))
    await sleep_until(first + 1.0)
    await cache.set(state(reserve_a="2"))
    assert 1000 < redis_server.raw("PTTL", f"pool:{POOL}") <= 2000
    await sleep_until(first + 2.5)
    got = await cache.get(POOL)
    assert got is not None and got.reserve_a == 2


async def test_max_age_hides_old_states(pool, redis_server) -> None:
    cache = PoolStateCache(pool, ttl_ms=60_000)
    old, fresh = state(POOL, age_s=10), state(OTHER)
    await cache.set_many([old, fresh])
    assert redis_server.raw("EXISTS", f"pool:{POOL}") == 1
    assert await cache.get(POOL) == old
    assert await cache.get(POOL, max_age_ms=5000) is None
    assert await cache.get(POOL, max_age_ms=60_000) == old
    assert await cache.get_many([POOL, OTHER], max_age_ms=5000) == {POOL: None, OTHER: fresh}


@pytest.mark.parametrize("junk", ["{not json", '{"pool_address":"x"}', "[]"])
async def test_corrupt_json_names_key(pool, redis_server, junk: str) -> None:
    redis_server.raw("SET", f"pool:{POOL}", junk)
    with pytest.raises(SerializationError) as e:
        await PoolStateCache(pool).get(POOL)
    assert isinstance(e.value, ValueError)
    assert e.value.key == f"pool:{POOL}"
    assert f"pool:{POOL}" in str(e.value)


async def test_get_many_with_one_corrupt_key(pool, redis_server) -> None:
    cache = PoolStateCache(pool)
    await cache.set(state())
    redis_server.raw("SET", f"pool:{OTHER}", "garbage")
    with pytest.raises(SerializationError) as e:
        await cache.get_many([POOL, OTHER])
    assert e.value.key == f"pool:{OTHER}"
    assert f"pool:{OTHER}" in str(e.value)


async def test_wrong_type_is_response_error(pool, redis_server) -> None:
    redis_server.raw("RPUSH", f"pool:{POOL}", "a")
    with pytest.raises(ResponseError):
        await PoolStateCache(pool).get(POOL)
