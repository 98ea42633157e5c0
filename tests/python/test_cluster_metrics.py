"""A cluster pool's direct-read counters in `RedisPool.cluster_direct_stats()` and /metrics,
on a real 3-primary cluster; absent on one server."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import solcache.cluster_metrics
from conftest import RedisServer
from solcache import PriceCache, PriceData, RedisPool
from solcache.prometheus import build_registry
from topologies import RedisCluster

pytestmark = pytest.mark.timeout(120)

TS = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
TOKENS = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF"]
KEYS = {"direct", "fallbacks", "refreshes", "sockets", "polled", "poll_hits"}
DOCUMENTED = re.compile(r"``(solcache_cluster_[a-z0-9_]*[a-z0-9])``")


def scrape(pool: RedisPool) -> tuple[dict[str, float], dict[str, str]]:
    """The `solcache_cluster_*` samples of the text /metrics serves, and their families' types."""
    registry, _ = build_registry(pool)
    text = generate_latest(registry).decode()
    families = [
        f for f in text_string_to_metric_families(text) if f.name.startswith("solcache_cluster_")
    ]
    samples = {s.name: s.value for f in families for s in f.samples}
    return samples, {f.name: f.type for f in families}


async def test_cluster_reads_count_as_direct_and_reach_metrics(
    redis_cluster: RedisCluster,
) -> None:
    redis_cluster.flushall()
    async with await RedisPool.connect(redis_cluster.url) as pool:
        cache = PriceCache(pool)
        batch = [PriceData(t, Decimal("1.5"), TS, "test") for t in TOKENS]
        await cache.set_many(batch)
        before = pool.cluster_direct_stats()
        assert before is not None and set(before) == KEYS, before
        for item in batch:
            assert await cache.get(item.token) == item, item.token
        assert list((await cache.get_many(TOKENS)).values()) == batch
        stats = pool.cluster_direct_stats()
        assert stats is not None and set(stats) == KEYS, stats
        # A fresh pool on a healthy cluster: every read direct, one socket per primary at least.
        assert stats["direct"] - before["direct"] == len(TOKENS) + 1, stats
        assert stats["fallbacks"] == before["fallbacks"], stats
        assert stats["sockets"] >= 3 and stats["refreshes"] >= 1, stats
        assert stats["poll_hits"] <= stats["polled"] <= stats["direct"], stats

        samples, types = scrape(pool)
        assert samples["solcache_cluster_direct_reads_total"] == stats["direct"]
        assert samples["solcache_cluster_fallback_reads_total"] == stats["fallbacks"]
        assert samples["solcache_cluster_slot_refreshes_total"] >= stats["refreshes"]
        assert samples["solcache_cluster_direct_polled_total"] >= stats["polled"]
        assert samples["solcache_cluster_direct_poll_hits_total"] >= stats["poll_hits"]
        assert samples["solcache_cluster_direct_sockets"] >= 3
        assert types["solcache_cluster_direct_sockets"] == "gauge"
        assert {t for n, t in types.items() if n != "solcache_cluster_direct_sockets"} == {
            "counter"
        }
        # Every documented family is exported, and every exported one documented.
        documented = set(DOCUMENTED.findall(solcache.cluster_metrics.__doc__ or ""))
        assert set(samples) == documented


async def test_cluster_reads_off_the_direct_path_count_nothing(
    redis_cluster: RedisCluster,
) -> None:
    redis_cluster.flushall()
    async with await RedisPool.connect(redis_cluster.url, direct_reads=False) as pool:
        cache = PriceCache(pool)
        item = PriceData("SOL", Decimal("1.5"), TS, "test")
        await cache.set(item)
        assert await cache.get("SOL") == item
        assert pool.cluster_direct_stats() == dict.fromkeys(KEYS, 0)
        samples, _ = scrape(pool)
        assert samples["solcache_cluster_direct_reads_total"] == 0


async def test_one_server_has_no_cluster_stats_or_families(redis_server: RedisServer) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        await PriceCache(pool).get("SOL")
        assert pool.cluster_direct_stats() is None
        samples, _ = scrape(pool)
        assert samples == {}
