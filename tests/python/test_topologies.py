"""The same Python API on one server, a Redis Cluster and a Sentinel-managed primary: only the
URL changes. The cluster and the sentinel group start once per session (conftest.py,
topologies.py); the cache, stream, subscription and service modules run on all three too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import solcache
from solcache import (
    EventStream,
    InvalidInputError,
    PoolState,
    PriceCache,
    PriceData,
    PriceUpdate,
    RedisPool,
    Settings,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.topologies]

TS = datetime(2026, 11, 26, 15, 0, 0, 123000, tzinfo=UTC)
RAYDIUM_SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


async def test_caches_streams_and_groups_work_the_same_on_every_topology(redis_server) -> None:
    topology_url = redis_server.url
    async with await RedisPool.connect(topology_url) as pool:
        health = await pool.health()
        assert health.reachable and health.failovers_followed == 0
        kinds = {"redis": "standalone", "redis+cluster": "cluster", "redis+sentinel": "sentinel"}
        assert health.topology == kinds[topology_url.split("://")[0]]
        cache = PriceCache(pool)
        prices = [PriceData(t, str(i + 1), TS, "test") for i, t in enumerate(solcache.MVP_TOKENS)]
        await cache.set_many(prices)
        asked = [*reversed(solcache.MVP_TOKENS), "NOPE"]
        got = await cache.get_many(asked)
        assert list(got) == asked
        assert got == {**{p.token: p for p in prices}, "NOPE": None}
        assert await cache.get("SOL") == prices[0]

        events = EventStream(pool)
        stream = "stream:topology"
        batch = [PriceUpdate("SOL", str(n), TS) for n in range(300)]
        ids = await events.publish_many(batch, stream)
        assert len(ids) == 300
        await events.ensure_group(stream, "g", "0")
        sub = events.subscribe(stream, "g", "c1", count=50, block_ms=50)
        seen: list[str] = []
        async for entry in sub:
            seen.append(entry.id)
            if len(seen) == 300:
                sub.ack(entry)
                break
        await sub.close()
        assert seen == ids, "every entry once, in publish order"
        info = await events.info(stream)
        assert info.length == 300 and info.groups[0].pending == 0


async def test_malformed_topology_urls_fail_before_connecting() -> None:
    for url, says in [
        ("redis+cluster://u:secret@127.0.0.1:99999", "not 1-65535"),
        ("redis+cluster://127.0.0.1:7000/2", "only database 0"),
        ("redis+sentinel://u:secret@127.0.0.1:26379", "primary's name"),
        ("redis+sentinel://127.0.0.1:26379/m?sentinel_user=a", "needs sentinel_password"),
    ]:
        # Nothing listens at these addresses: only the parser can answer InvalidInputError.
        with pytest.raises(InvalidInputError, match=says) as caught:
            await RedisPool.connect(url)
        assert "secret" not in str(caught.value)
    settings = Settings(redis_url="redis+sentinel://u:secret@s1,s2/m?sentinel_password=spw")
    assert settings.redacted_redis_url == "redis+sentinel://u:***@s1,s2/m?sentinel_password=***"


def test_the_blocking_api_works_the_same_on_every_topology(redis_server) -> None:
    from solcache import sync

    with sync.RedisPool.connect(redis_server.url) as pool:
        cache = sync.PriceCache(pool)
        prices = [PriceData(t, str(i + 1), TS, "test") for i, t in enumerate(solcache.MVP_TOKENS)]
        cache.set_many(prices)
        asked = [*reversed(solcache.MVP_TOKENS), "NOPE", "SOL"]
        got = cache.get_many(asked)
        assert list(got) == asked[:-1], "one entry per id, in request order"
        assert got == {**{p.token: p for p in prices}, "NOPE": None}
        cache.set(PriceData("SOL", "3", TS, "test"))
        sol = cache.get("SOL")
        assert sol is not None and sol.price == PriceData("SOL", "3", TS, "test").price
        states = sync.PoolStateCache(pool)
        addresses = [RAYDIUM_SOL_USDC, USDC_MINT]
        written = [
            PoolState(a, "12500000.5", "41250.1", "7723456.5", "9876543.1", TS) for a in addresses
        ]
        states.set_many(written)
        backwards = dict(zip(addresses[::-1], written[::-1], strict=True))
        assert states.get_many(addresses[::-1]) == backwards
        assert pool.counts()["in_use"] == 0


def test_the_raw_checks_find_the_slot_a_cluster_finds(redis_cluster) -> None:
    """The tests' raw commands go to the primary owning the key's slot, computed here."""
    from topologies import key_slot

    node = redis_cluster.running()[0]
    for key in ["price:SOL", "stream:price-updates", "pool:{p}:x", "a{}b{c}", "{x", "ü"]:
        assert key_slot(key) == node.raw("CLUSTER", "KEYSLOT", key), key
    owner = redis_cluster.node_of("price:SOL")
    redis_cluster.raw("SET", "price:SOL", "1")
    assert owner.raw("GET", "price:SOL") == "1"  # no MOVED: it was sent there
    with pytest.raises(AssertionError, match="no key"):
        redis_cluster.raw("INFO", "commandstats")  # one node's view: raw_all says which
