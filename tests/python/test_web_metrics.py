"""`/metrics`, `/api/status`, `/api/prices`, `/api/pools` and `/healthz` over real HTTP against a
real redis-server; the Prometheus collector and its refresher on their own."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

import solcache
import solcache.prometheus
import solcache.web.limit_metrics
import solcache.web.metrics
from solcache import (
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    EventStream,
    PoolState,
    PriceData,
    PriceUpdate,
    TradeExecuted,
)
from solcache.prometheus import (
    MetricsRefresher,
    ServiceSnapshot,
    SolcacheCollector,
    build_registry,
)

SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
DOCUMENTED = re.compile(r"``(solcache_[a-z0-9_]*[a-z0-9])(?:\{[a-z,]*\})?``")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


def families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(family: Metric, suffix: str = "", **labels: str) -> float:
    """The one sample of `family` named `family.name + suffix` whose labels include `labels`."""
    found = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, f"{family.name}{suffix}{labels}: {found}"
    return found[0]


def exposed_names(fams: dict[str, Metric]) -> set[str]:
    """Family names as written in the docs (counters with their `_total`)."""
    return {f"{n}_total" if f.type == "counter" else n for n, f in fams.items()}


async def some_traffic(pool: solcache.RedisPool, events: EventStream, reads: int = 50) -> None:
    prices = solcache.PriceCache(pool)
    await prices.set_many([PriceData(t, "1.5", source="test") for t in solcache.MVP_TOKENS])
    for _ in range(reads):
        await prices.get_many(solcache.MVP_TOKENS)
    await events.publish_many([PriceUpdate("SOL", str(i)) for i in range(30)])
    await events.publish(TradeExecuted("t1", "buy", "SOL/USDC", "1", "2"))
    await events.ensure_group(STREAM_PRICE_UPDATES, "dashboard", "0")


# --- /metrics ----------------------------------------------------------------------------------


async def test_metrics_parse_and_hold_the_documented_families(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    snapshot = ServiceSnapshot(
        events_published_total=31,
        events_consumed_total=29,
        source_staleness_seconds=0.25,
        degraded=True,
        consumer_retrying=True,
        consumer_outages_total=2,
        consumer_retries_total=7,
        consumer_group_recreations_total=1,
    )
    registry, refresher = build_registry(pool, events, lambda: snapshot, interval_s=0.1)
    refresher.start()
    try:
        await some_traffic(pool, events)
        gw = await start_gateway(pool, registry=registry)
        deadline = time.monotonic() + 5
        while True:  # until a refresh after the traffic
            response = await http.get(f"{gw.url}/metrics")
            assert response.status_code == 200
            fams = families(response.text)
            if fams["solcache_stream_group_lag"].samples or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        await refresher.stop()
    assert response.headers["content-type"].startswith("text/plain")

    # Every documented family is exported, and every exported family is documented.
    documented = set(DOCUMENTED.findall(solcache.prometheus.__doc__ or ""))
    documented |= set(DOCUMENTED.findall(solcache.web.metrics.__doc__ or ""))
    documented |= set(DOCUMENTED.findall(solcache.web.limit_metrics.__doc__ or ""))
    assert exposed_names(fams) == documented

    latency = fams["solcache_operation_latency_seconds"]
    assert latency.type == "summary"
    p50 = value(latency, operation="price_get_many", quantile="0.5")
    p99 = value(latency, operation="price_get_many", quantile="0.99")
    p999 = value(latency, operation="price_get_many", quantile="0.999")
    assert 0 < p50 <= p99 <= p999 < 1.0  # seconds, not microseconds
    assert value(latency, "_count", operation="price_get_many") == 50
    assert 0 < value(latency, "_sum", operation="price_get_many") < 50 * 1.0
    assert math.isnan(value(latency, operation="stream_dead_letter", quantile="0.5"))
    ops = fams["solcache_operations"]
    assert ops.type == "counter"
    assert value(ops, "_total", operation="price_get_many") == 50
    assert value(ops, "_total", operation="price_set_many") == 1
    assert value(fams["solcache_operation_errors"], "_total", operation="price_get_many") == 0
    slow = pool.metrics()["price_get_many"].slow  # load-dependent here: exported as counted
    assert value(fams["solcache_slow_operations"], "_total", operation="price_get_many") == slow

    assert value(fams["solcache_redis_up"]) == 1
    assert 0 < value(fams["solcache_redis_rtt_seconds"]) < 1.0
    assert value(fams["solcache_pool_max_connections"]) == pool.max_size
    connections = value(fams["solcache_pool_connections"])
    assert 1 <= connections <= pool.max_size
    idle = value(fams["solcache_pool_idle_connections"])
    assert idle + value(fams["solcache_pool_in_use_connections"]) == connections
    assert value(fams["solcache_pool_waiting_requests"]) == 0
    assert 0 <= value(fams["solcache_snapshot_age_seconds"]) < 2.0

    assert value(fams["solcache_stream_length"], stream=STREAM_PRICE_UPDATES) == 30
    assert value(fams["solcache_stream_length"], stream=STREAM_TRADE_EVENTS) == 1
    group = {"stream": STREAM_PRICE_UPDATES, "group": "dashboard"}
    assert value(fams["solcache_stream_group_lag"], **group) == 30
    assert value(fams["solcache_stream_group_pending"], **group) == 0
    assert value(fams["solcache_stream_group_consumers"], **group) == 0

    assert value(fams["solcache_events_published"], "_total") == 31
    assert value(fams["solcache_events_consumed"], "_total") == 29
    assert value(fams["solcache_source_staleness_seconds"]) == 0.25
    assert value(fams["solcache_service_degraded"]) == 1
    assert value(fams["solcache_consumer_retrying"]) == 1
    assert value(fams["solcache_consumer_outages"], "_total") == 2
    assert value(fams["solcache_consumer_retries"], "_total") == 7
    assert value(fams["solcache_consumer_group_recreations"], "_total") == 1

    assert value(fams["solcache_sse_clients"]) == 0
    # The reader starts at the streams' end: only entries published after the gateway started.
    assert value(fams["solcache_sse_stream_entries"], "_total") == 0
    await events.publish_many([PriceUpdate("BONK", str(i)) for i in range(3)])
    deadline = time.monotonic() + 10
    while True:
        fams = families((await http.get(f"{gw.url}/metrics")).text)
        if value(fams["solcache_sse_stream_entries"], "_total") == 3:
            break
        assert time.monotonic() < deadline, "the 3 entries published were not counted"
        await asyncio.sleep(0.05)


async def test_slow_operations_count_the_calls_over_the_threshold(redis_server: Any) -> None:
    # A 1 µs threshold: every cache call (a Redis round trip) is slow, stream calls never count.
    async with await solcache.RedisPool.connect(redis_server.url, slow_threshold_ms=0.001) as pool:
        prices = solcache.PriceCache(pool)
        await prices.set(PriceData("SOL", "1.5", source="test"))
        for _ in range(5):
            await prices.get_many(["SOL", "USDC"])
        await EventStream(pool).publish(PriceUpdate("SOL", "1.5"))
        registry = CollectorRegistry()
        registry.register(SolcacheCollector(pool))
        slow = families(generate_latest(registry).decode())["solcache_slow_operations"]
        assert value(slow, "_total", operation="price_get_many") == 5
        assert value(slow, "_total", operation="price_set") == 1
        assert value(slow, "_total", operation="stream_publish") == 0


async def test_app_makes_its_own_registry_and_refresher(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    await some_traffic(pool, events, reads=3)
    gw = await start_gateway(pool)  # no registry: the app builds one and refreshes it
    fams = families((await http.get(f"{gw.url}/metrics")).text)
    assert value(fams["solcache_operations"], "_total", operation="price_get_many") == 3
    assert value(fams["solcache_redis_up"]) == 1
    assert "solcache_events_published" not in fams  # no services: no service families
    assert "solcache_sse_clients" in fams


async def test_collector_before_refresh_and_with_a_failing_extra(
    pool: solcache.RedisPool, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> ServiceSnapshot:
        raise RuntimeError("boom")

    collector = SolcacheCollector(pool, broken)
    registry = CollectorRegistry()
    registry.register(collector)
    fams = families(generate_latest(registry).decode())
    assert "solcache_operations" in fams  # the core families do not depend on the services
    assert "solcache_events_published" not in fams
    assert not fams["solcache_redis_up"].samples  # no snapshot yet: absent, not a guess
    assert "the services' metrics callable failed" in caplog.text
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(SolcacheCollector(pool))


async def test_refresher_reports_redis_down_and_stops(fresh_redis: Any) -> None:
    async with await solcache.RedisPool.connect(fresh_redis.url) as pool:
        registry, refresher = build_registry(pool, interval_s=0.05, timeout_s=1.0)
        refresher.start()
        assert refresher.running
        await asyncio.sleep(0.2)
        assert value(families(generate_latest(registry).decode())["solcache_redis_up"]) == 1
        fresh_redis.stop()
        deadline = time.monotonic() + 5
        while value(families(generate_latest(registry).decode())["solcache_redis_up"]) != 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await refresher.stop()
        assert not refresher.running
    with pytest.raises(ValueError):
        MetricsRefresher(SolcacheCollector(pool), interval_s=math.inf)


# --- JSON endpoints and /healthz -----------------------------------------------------------------


async def test_api_status_reports_health_latency_service_and_streams(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    await some_traffic(pool, events, reads=20)
    gw = await start_gateway(pool, status=lambda: {"price_service": {"degraded": False}, "x": 1})
    status = (await http.get(f"{gw.url}/api/status")).json()
    redis = status["redis"]
    assert redis["reachable"] is True and redis["rtt_ms"] > 0
    assert redis["redis_version"] == pool.redis_version
    assert redis["connections"] >= 1 and redis["waiting"] == 0
    latency = status["read_latency_us"]["price_get_many"]
    assert latency["count"] == 20 and 0 < latency["p50"] <= latency["p99"]
    assert status["service"] == {"price_service": {"degraded": False}, "x": 1}
    assert status["streams"][STREAM_PRICE_UPDATES]["length"] == 30
    assert status["gateway"]["reader"] == "running"


async def test_api_prices_and_pools_are_cache_snapshots(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any], http: Any
) -> None:
    sol = PriceData("SOL", "187.2345", source="test")
    state = PoolState(SOL_USDC, "12500000.50", "41250.123456789", "7723456.123456", "98765432.10")
    await solcache.PriceCache(pool).set(sol)
    await solcache.PoolStateCache(pool).set(state)
    gw = await start_gateway(pool)
    prices = (await http.get(f"{gw.url}/api/prices")).json()["prices"]
    assert list(prices) == list(solcache.MVP_TOKENS)
    assert prices["SOL"] == json.loads(sol.to_json())
    assert prices["SOL"]["price"] == "187.2345"  # a string: no float rounding
    assert prices["BONK"] is None
    pools = (await http.get(f"{gw.url}/api/pools")).json()["pools"]
    assert PoolState.from_json(json.dumps(pools[SOL_USDC])) == state


async def test_healthz_is_200_then_503_when_redis_stops(
    fresh_redis: Any, start_gateway: Callable[..., Any], http: Any
) -> None:
    async with await solcache.RedisPool.connect(fresh_redis.url) as pool:
        gw = await start_gateway(pool, read_timeout_s=1.0)
        ok = await http.get(f"{gw.url}/healthz")
        assert (ok.status_code, ok.text) == (200, "ok\n")
        fresh_redis.stop()
        down = await http.get(f"{gw.url}/healthz")
        assert down.status_code == 503 and "redis unreachable" in down.text
        assert (await http.get(f"{gw.url}/api/prices")).status_code == 503
        status = (await http.get(f"{gw.url}/api/status")).json()
        assert status["redis"]["reachable"] is False
