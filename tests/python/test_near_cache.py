"""The near cache from Python (async and sync pools), against real redis-server processes:
hits answered from memory, writes by another client seen by the next read, every loss of
the tracking connection flushing before the next hit, and a linearizability check against
a writer process at 1 kHz."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import solcache
from conftest import RedisServer
from solcache import sync

pytestmark = pytest.mark.timeout(120)


def price(token: str, value: str | int) -> solcache.PriceData:
    return solcache.PriceData(
        token=token, price=Decimal(value), source="test", timestamp=datetime.now(UTC)
    )


def stats(pool: Any) -> dict[str, int]:
    got = pool.near_cache_stats()
    assert got is not None
    return got


def sent_out(server: RedisServer) -> None:
    """Return once Redis has sent the invalidations of the writes acknowledged so far.

    Redis writes a write's reply before the invalidations it caused (same event-loop iteration):
    a plain writer (no near cache, so no PING of its own after a write) gets Redis' order. A
    command answered after that reply is answered once they have gone out.
    """
    server.raw("PING")


async def test_async_hits_are_ready_awaitables_and_writes_are_seen(
    redis_server: RedisServer,
) -> None:
    async with await solcache.RedisPool.connect(redis_server.url, near_cache=True) as pool:
        assert pool.near_cache
        async with await solcache.RedisPool.connect(redis_server.url) as plain:
            assert not plain.near_cache and plain.near_cache_stats() is None
            reader, writer = solcache.PriceCache(pool), solcache.PriceCache(plain)
            await writer.set(price("SOL", 1))
            first = await reader.get("SOL")
            assert first is not None and first.price == 1
            before = stats(pool)
            hit = await reader.get("SOL")
            assert hit == first
            after = stats(pool)
            assert after["hits"] == before["hits"] + 1 and after["fills"] == before["fills"]
            for n in range(2, 30):
                await writer.set(price("SOL", n))
                sent_out(redis_server)
                got = await reader.get("SOL")
                assert got is not None and got.price == n
            many = await reader.get_many(["SOL", "RAY", "SOL"])
            assert list(many) == ["SOL", "RAY"] and many["RAY"] is None
            fills = stats(pool)["fills"]
            many = await reader.get_many(["SOL"])
            assert many["SOL"] is not None and stats(pool)["fills"] == fills, "all hits"
            with pytest.raises(solcache.InvalidInputError):
                await reader.get("not a token!")


async def test_async_misses_waited_for_off_the_loop(redis_server: RedisServer) -> None:
    """With no poll budget every async miss waits for its fill on a runtime worker."""
    url = redis_server.url
    async with await solcache.RedisPool.connect(url, near_cache=True, direct_spin_us=0) as pool:
        reader, writer = solcache.PriceCache(pool), solcache.PriceCache(pool)
        for n in range(1, 20):
            await writer.set(price("BONK", n))
            misses = stats(pool)["misses"]
            got = await reader.get("BONK")
            assert got is not None and got.price == n and stats(pool)["misses"] == misses + 1
            hit = await reader.get("BONK")
            assert hit == got
        await writer.set(price("RAY", 1))
        await asyncio.gather(*(reader.get("RAY") for _ in range(20)))
        got = await reader.get("RAY")
        assert got is not None and got.price == 1


def test_sync_pool_from_the_environment(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOLCACHE_NEAR_CACHE", "true")
    monkeypatch.setenv("SOLCACHE_NEAR_CACHE_MAX_BYTES", "65536")
    with (
        sync.RedisPool.connect(redis_server.url) as pool,
        sync.RedisPool.connect(redis_server.url, near_cache=False) as plain,
    ):
        assert pool.near_cache and not plain.near_cache
        reader, writer = sync.PriceCache(pool), sync.PriceCache(plain)
        writer.set(price("SOL", 1))
        assert reader.get("SOL") is not None
        hits = stats(pool)["hits"]
        got = reader.get("SOL")
        assert got is not None and got.price == 1 and stats(pool)["hits"] == hits + 1
        writer.set(price("SOL", 2))
        sent_out(redis_server)
        got = reader.get("SOL")
        assert got is not None and got.price == 2
        for i in range(2000):
            writer.set(price(f"T{i}", 1))
        reader.get_many([f"T{i}" for i in range(2000)])
        assert 0 < stats(pool)["bytes"] <= 65536


def _hits_again(reader: sync.PriceCache, pool: sync.RedisPool, expected: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        hits = stats(pool)["hits"]
        got = reader.get("SOL")
        assert got is not None and got.price == expected
        if stats(pool)["hits"] > hits:
            return
        assert time.monotonic() < deadline, "the near cache never served hits again"
        time.sleep(0.005)


@pytest.mark.parametrize("event", ["flushall", "client_kill", "pause", "sigkill_restart"])
def test_no_stale_hit_after_losing_the_tracking_path(fresh_redis: RedisServer, event: str) -> None:
    url = fresh_redis.url
    with sync.RedisPool.connect(url, near_cache=True, response_timeout_ms=200) as pool:
        reader = sync.PriceCache(pool)
        with sync.RedisPool.connect(url, response_timeout_ms=200) as plain:
            sync.PriceCache(plain).set(price("SOL", 1))
        _hits_again(reader, pool, 1)
        flushes = stats(pool)["flushes"]
        if event == "flushall":
            fresh_redis.raw("FLUSHALL")
            # Redis writes the reply before the null invalidation; a command answered after
            # the reply is answered once the invalidation has gone out.
            fresh_redis.raw("PING")
        elif event == "client_kill":
            fresh_redis.raw("CLIENT", "KILL", "TYPE", "normal")
        elif event == "pause":
            fresh_redis.pause()
            time.sleep(0.1 + 2 * 0.2)  # the PING interval and twice its response timeout
            fresh_redis.resume()
        else:
            fresh_redis.kill()
            fresh_redis.start()
        # A new client: the writer's own connection may be gone too.
        with sync.RedisPool.connect(url) as plain:
            sync.PriceCache(plain).set(price("SOL", 2))
        got = reader.get("SOL")
        assert got is not None and got.price == 2, f"stale hit after {event}"
        assert stats(pool)["flushes"] > flushes
        _hits_again(reader, pool, 2)


# --- linearizability: a writer process at 1 kHz, readers in other processes -----------------


def _writer(url: str, acked: Any, stop: Any) -> None:
    # A pool with the near cache acknowledges a write once Redis has sent its invalidations.
    with sync.RedisPool.connect(url, response_timeout_ms=5000, near_cache=True) as pool:
        cache = sync.PriceCache(pool)
        seq = 0
        next_at = time.monotonic()
        while not stop.is_set():
            seq += 1
            cache.set(price("SOL", seq))
            acked.value = seq  # acknowledged by Redis
            next_at += 0.001
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _check(before: int, got: solcache.PriceData | None, violations: list[tuple[int, int]]) -> None:
    seen = 0 if got is None else int(got.price)
    if seen < before:
        violations.append((before, seen))


def _sync_reader(url: str, acked: Any, stop: Any, out: Any) -> None:
    violations: list[tuple[int, int]] = []
    reads = 0
    with sync.RedisPool.connect(url, near_cache=True) as pool:
        cache = sync.PriceCache(pool)
        while not stop.is_set():
            before = acked.value
            _check(before, cache.get("SOL"), violations)
            reads += 1
            if reads % 32 == 0:
                time.sleep(0.001)  # leave the 2-core test machine to Redis and the writer
        out.put(("sync", reads, violations[:10], len(violations), pool.near_cache_stats()))


def _async_reader(url: str, acked: Any, stop: Any, out: Any) -> None:
    async def main() -> None:
        violations: list[tuple[int, int]] = []
        reads = 0
        async with await solcache.RedisPool.connect(url, near_cache=True) as pool:
            cache = solcache.PriceCache(pool)
            while not stop.is_set():
                before = acked.value
                _check(before, await cache.get("SOL"), violations)
                reads += 1
                if reads % 32 == 0:
                    await asyncio.sleep(0.001)
            out.put(("async", reads, violations[:10], len(violations), pool.near_cache_stats()))

    asyncio.run(main())


def test_linearizable_against_a_1_khz_writer(fresh_redis: RedisServer) -> None:
    """No read returns a value older than the writer's last acknowledged one when the read
    began. Runs SOLCACHE_LINEARIZABILITY_S seconds (30 by default)."""
    seconds = float(os.environ.get("SOLCACHE_LINEARIZABILITY_S", "30"))
    ctx = multiprocessing.get_context("spawn")
    acked, stop, out = ctx.Value("q", 0, lock=False), ctx.Event(), ctx.Queue()
    writer = ctx.Process(target=_writer, args=(fresh_redis.url, acked, stop))
    readers = [
        ctx.Process(target=target, args=(fresh_redis.url, acked, stop, out))
        for target in (_sync_reader, _async_reader)
    ]
    for p in [writer, *readers]:
        p.start()
    time.sleep(seconds)
    stop.set()
    results = [out.get(timeout=30) for _ in readers]
    for p in [writer, *readers]:
        p.join(timeout=30)
    writes = acked.value
    assert writes > seconds * 300, f"the writer made only {writes} writes"
    for kind, reads, sample, count, near in results:
        assert reads > writes, f"{kind}: {reads} reads"
        assert near["hits"] > 0 and near["invalidations"] > 0, near
        assert count == 0, f"{kind}: {count} stale reads in {reads}, e.g. {sample}; {near}"


async def test_prometheus_exports_the_near_cache_only_when_on(redis_server: RedisServer) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from solcache.prometheus import build_registry

    def scrape(pool: solcache.RedisPool) -> dict[str, float]:
        registry, _ = build_registry(pool)
        text = generate_latest(registry).decode()
        return {
            s.name + (f"{{{s.labels['quantile']}}}" if "quantile" in s.labels else ""): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("solcache_near_cache")
        }

    async with await solcache.RedisPool.connect(redis_server.url, near_cache=True) as pool:
        cache = solcache.PriceCache(pool)
        await cache.set(price("SOL", 1))
        for _ in range(3):
            await cache.get("SOL")
        got = scrape(pool)
        assert got["solcache_near_cache_hits_total"] == 2
        assert got["solcache_near_cache_misses_total"] == 1
        assert got["solcache_near_cache_connected"] == 1 and got["solcache_near_cache_bytes"] > 0
        assert got["solcache_near_cache_served_age_seconds{0.5}"] > 0
        assert got["solcache_near_cache_io_uring"] in (0, 1)  # 1 where io_uring can be set up
    async with await solcache.RedisPool.connect(redis_server.url) as plain:
        assert scrape(plain) == {}
