"""The Sentinel switch watcher (one subscription per sentinel) in `pool.health()` and /metrics:
subscriptions up, subscriptions lost, switches announced, failovers followed, on a real group."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import solcache.sentinel_metrics
from conftest import RedisServer
from solcache import PoolHealth, RedisPool
from solcache.prometheus import SolcacheCollector
from topologies import MASTER_NAME, SentinelGroup, started_sentinels

pytestmark = pytest.mark.timeout(120)

DOCUMENTED = re.compile(r"``(solcache_sentinel_[a-z0-9_]*[a-z0-9])``")


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    """A group of this test's own: the test kills one of its sentinels."""
    with started_sentinels() as g:
        yield g


async def _until(pool: RedisPool, done, what: str, within_s: float = 20.0) -> PoolHealth:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while True:
        health = await pool.health()
        if done(health):
            return health
        assert time.monotonic() < deadline, f"{what}: {health!r}"
        await asyncio.sleep(0.05)


def _samples(collector: SolcacheCollector) -> dict[str, float]:
    return {s.name: s.value for family in collector.collect() for s in family.samples}


async def test_subscriptions_losses_and_switches_reach_health_and_metrics(
    group: SentinelGroup,
) -> None:
    async with await RedisPool.connect(group.url) as pool:
        collector = SolcacheCollector(pool)
        registry = CollectorRegistry()
        registry.register(collector)
        health = await _until(pool, lambda h: h.switch_watches_up == 3, "every sentinel watched")
        assert (health.switch_watch_errors, health.switches_seen) == (0, 0)
        await collector.refresh()
        samples = _samples(collector)
        assert samples["solcache_sentinel_watches_up"] == 3
        assert samples["solcache_sentinel_watch_errors_total"] == 0
        assert samples["solcache_sentinel_switches_total"] == 0
        assert samples["solcache_sentinel_promotions_taken_total"] == 0
        assert samples["solcache_pool_failovers_followed_total"] == 0
        # Every documented family is exported, and every exported one documented.
        documented = set(DOCUMENTED.findall(solcache.sentinel_metrics.__doc__ or ""))
        assert {n for n in samples if n.startswith("solcache_sentinel_")} == documented

        # One sentinel dies: its subscription is lost, counted and retried under backoff.
        group.sentinels[2].kill()
        group.sentinels[2].wait()
        await _until(
            pool,
            lambda h: h.switch_watches_up == 2 and h.switch_watch_errors >= 1,
            "the lost subscription counted",
        )
        # The two left announce a failover; the pool follows it.
        group.sentinel_raw(group.sentinel_ports[0], "SENTINEL", "FAILOVER", MASTER_NAME)
        health = await _until(
            pool,
            lambda h: h.switches_seen == 1 and h.failovers_followed >= 1,
            "the switch seen and followed",
        )
        await collector.refresh()
        samples = _samples(collector)
        assert samples["solcache_sentinel_watches_up"] == 2
        assert samples["solcache_sentinel_watch_errors_total"] >= 1
        assert samples["solcache_sentinel_switches_total"] == 1
        assert samples["solcache_pool_failovers_followed_total"] >= 1
        assert "switch_watch_errors=" in repr(health)
        # The same families in the text /metrics serves.
        text = generate_latest(registry).decode()
        assert "# TYPE solcache_sentinel_watch_errors_total counter" in text
        assert "solcache_sentinel_watches_up 2.0" in text
        assert "solcache_sentinel_switches_total 1.0" in text


async def test_one_server_has_no_sentinel_families(redis_server: RedisServer) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        health = await pool.health()
        assert (health.switch_watches_up, health.switch_watch_errors) == (0, 0)
        collector = SolcacheCollector(pool)
        await collector.refresh()
        samples = _samples(collector)
        assert samples["solcache_pool_failovers_followed_total"] == 0
        assert not any(name.startswith("solcache_sentinel_") for name in samples)
