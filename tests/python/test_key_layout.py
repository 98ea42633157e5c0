"""The opt-in key layout (`key_layout="tagged"`, `SOLCACHE_KEY_LAYOUT`): one Redis Cluster hash
tag per cache family, so a family lives in one slot and `get_many` is one MGET on one node."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

import solcache
from conftest import SOL_USDC_POOL, RedisServer
from solcache import (
    InvalidInputError,
    PoolState,
    PoolStateCache,
    PriceCache,
    PriceData,
    RedisPool,
    Settings,
    sync,
)
from topologies import RedisCluster, started_cluster

pytestmark = pytest.mark.timeout(120)

TS = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
TOKENS = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF"]


def prices(value: str = "1.5") -> list[PriceData]:
    return [PriceData(t, Decimal(value), TS, "test") for t in TOKENS]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with started_cluster() as c:
        yield c


def test_the_setting_defaults_to_spread_and_refuses_other_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().key_layout == "spread"
    monkeypatch.setenv("SOLCACHE_KEY_LAYOUT", "tagged")
    assert Settings().key_layout == "tagged"
    monkeypatch.setenv("SOLCACHE_KEY_LAYOUT", "hash")
    with pytest.raises(ValidationError, match="key_layout"):
        Settings()


def test_key_names_in_either_layout() -> None:
    assert solcache.price_key("SOL") == solcache.price_key("SOL", layout="spread") == "price:SOL"
    assert solcache.price_key("SOL", layout="tagged") == "price:{prices}:SOL"
    assert solcache.pool_key(SOL_USDC_POOL, layout="tagged") == f"pool:{{pools}}:{SOL_USDC_POOL}"
    with pytest.raises(InvalidInputError, match="key layout"):
        solcache.price_key("SOL", layout="hash")
    with pytest.raises(InvalidInputError):
        solcache.price_key("{SOL}", layout="tagged")


async def test_an_unknown_layout_is_refused_before_connecting(redis_server: RedisServer) -> None:
    with pytest.raises(InvalidInputError, match="key layout"):
        await RedisPool.connect(redis_server.url, key_layout="hash")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="key layout"):
        sync.RedisPool.connect(redis_server.url, key_layout="Tagged")  # type: ignore[arg-type]


@pytest.mark.parametrize("near_cache", [False, True])
async def test_tagged_keys_are_written_and_read_by_every_api(
    redis_server: RedisServer, near_cache: bool
) -> None:
    settings = Settings(key_layout="tagged")
    async with await RedisPool.connect(
        redis_server.url, settings=settings, near_cache=near_cache
    ) as pool:
        assert pool.key_layout == "tagged"
        cache = PriceCache(pool)
        await cache.set_many(prices())
        assert redis_server.raw("EXISTS", "price:{prices}:SOL") == 1
        assert redis_server.raw("EXISTS", "price:SOL") == 0
        # The loop's direct reads and the pool's reads plan the same keys.
        assert await cache.get("SOL") == prices()[0]
        got = await cache.get_many(TOKENS)
        assert list(got.values()) == prices()
        pools = PoolStateCache(pool)
        state = PoolState(SOL_USDC_POOL, Decimal(1000), Decimal(5), Decimal(935), Decimal(10), TS)
        await pools.set(state)
        assert redis_server.raw("EXISTS", f"pool:{{pools}}:{SOL_USDC_POOL}") == 1
        assert await pools.get(SOL_USDC_POOL) == state

    with sync.RedisPool.connect(redis_server.url, key_layout="tagged") as blocking:
        assert blocking.key_layout == "tagged"
        assert sync.PriceCache(blocking).get("SOL") == prices()[0]
    async with await RedisPool.connect(redis_server.url) as spread:
        assert spread.key_layout == "spread"
        assert await PriceCache(spread).get("SOL") is None, "the default layout names other keys"


def _mget_calls(cluster: RedisCluster) -> dict[int, int]:
    calls = {}
    for node in cluster.running():
        stats = node.raw("INFO", "commandstats")
        line = next((x for x in stats.splitlines() if x.startswith("cmdstat_mget:")), "")
        calls[node.port] = int(line.split("calls=")[1].split(",")[0]) if line else 0
    return calls


async def test_on_a_cluster_a_family_is_one_slot_and_get_many_one_mget(
    cluster: RedisCluster,
) -> None:
    cluster.flushall()
    async with await RedisPool.connect(cluster.url, key_layout="tagged") as pool:
        cache = PriceCache(pool)
        await cache.set_many(prices("2"))
        node = cluster.running()[0]
        slots = {node.raw("CLUSTER", "KEYSLOT", f"price:{{prices}}:{t}") for t in TOKENS}
        assert len(slots) == 1
        owner = cluster.primary_of("price:{prices}:SOL")
        assert all(owner.raw("EXISTS", f"price:{{prices}}:{t}") == 1 for t in TOKENS)

        for n in cluster.running():
            n.raw("CONFIG", "RESETSTAT")
        got = await cache.get_many(TOKENS)
        assert list(got.values()) == prices("2")
        calls = _mget_calls(cluster)
        assert sum(calls.values()) == 1 and calls[owner.port] == 1, calls


def test_solcache_bench_reads_the_keys_it_seeds_whatever_the_layout_setting(
    redis_server: RedisServer,
) -> None:
    # The bench compares against raw `GET price:<token>`: it keeps the default layout.
    env = {**os.environ, "SOLCACHE_KEY_LAYOUT": "tagged"}
    cmd = [sys.executable, "-m", "solcache", "bench", "--redis-url", redis_server.url]
    run = subprocess.run(
        [*cmd, "--calls", "40"], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "solcache sync get" in run.stdout, run.stdout
    assert not [k for k in redis_server.raw("KEYS", "*") if "{" in k]
