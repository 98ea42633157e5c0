"""RedisPool: URLs, auth, redaction, timeouts, health, metrics, slow-op logs, outages."""

from __future__ import annotations

import asyncio
import builtins
import logging
import time

import pytest

import solcache
from solcache import PriceCache, PriceData, RedisPool, sync

PASSWORD = "s3cret-pw"  # the password of conftest's `auth_redis`


async def roundtrip(pool: RedisPool, value: str = "1") -> None:
    cache = PriceCache(pool)
    await cache.set(PriceData("SOL", value))
    got = await cache.get("SOL")
    assert got is not None and got.price == int(value)


# --- connecting ------------------------------------------------------------------------------


async def test_connect_tcp(redis_server) -> None:
    pool = await RedisPool.connect(redis_server.url, max_size=3)
    try:
        assert pool.max_size == 3 and not pool.closed
        assert pool.redis_version == redis_server.version
        assert str(redis_server.port) in pool.url
        await roundtrip(pool)
        assert redis_server.raw("EXISTS", "price:SOL") == 1
    finally:
        await pool.close()
    assert pool.closed


async def test_connect_unix_socket(redis_server) -> None:
    async with await RedisPool.connect(redis_server.unix_url) as pool:
        await roundtrip(pool, "7")
        assert redis_server.raw("EXISTS", "price:SOL") == 1
    assert pool.closed


async def test_use_after_close_raises(redis_server) -> None:
    pool = await RedisPool.connect(redis_server.url)
    cache = PriceCache(pool)
    await pool.close()
    await pool.close()  # idempotent
    assert pool.closed and "closed" in repr(pool)
    with pytest.raises(solcache.ConnectionError):
        await cache.get("SOL")
    with pytest.raises(solcache.ConnectionError):
        await cache.set(PriceData("SOL", 1))


async def test_unreachable_server_fails_within_connect_timeout(unused_tcp_port: int) -> None:
    url = f"redis://127.0.0.1:{unused_tcp_port}/0"
    start = time.monotonic()
    with pytest.raises(solcache.ConnectionError) as e:
        await RedisPool.connect(url, connect_timeout_ms=1000)
    assert time.monotonic() - start < 1.0 + 2.0
    assert isinstance(e.value, builtins.ConnectionError)


# --- credentials -----------------------------------------------------------------------------


URLS = [  # {secret} is the password, {port} and {sock} those of conftest's `auth_redis`
    "redis://:{secret}@127.0.0.1:{port}/0",
    "redis://alice:{secret}@127.0.0.1:{port}/0",
    "unix://{sock}?pass={secret}",
    "unix://{sock}?user=alice&pass={secret}",
]


def auth_url(template: str, server, secret: str, user: str = "alice") -> str:
    url = template.format(secret=secret, port=server.port, sock=server.unix_socket)
    return url.replace("alice", user)


@pytest.mark.parametrize("template", URLS)
async def test_password_never_shown(auth_redis, template: str, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="solcache")
    async with await RedisPool.connect(auth_url(template, auth_redis, PASSWORD)) as pool:
        await roundtrip(pool)
        assert PASSWORD not in pool.url and "***" in pool.url
        assert PASSWORD not in repr(pool)
        health = await pool.health()
        assert health.reachable and health.error is None
        assert not any(PASSWORD in name for name in pool.metrics())
    assert PASSWORD not in caplog.text


WRONG = [(url, "alice", "wrong-pw-1") for url in URLS]
WRONG += [(url, "mallory", PASSWORD) for url in URLS if "alice" in url]  # unknown ACL user


@pytest.mark.parametrize(("template", "user", "secret"), WRONG)
async def test_wrong_password_is_authentication_error(
    auth_redis, template: str, user: str, secret: str, caplog
) -> None:
    caplog.set_level(logging.DEBUG, logger="solcache")
    with pytest.raises(solcache.AuthenticationError) as e:
        await RedisPool.connect(auth_url(template, auth_redis, secret, user))
    assert isinstance(e.value, solcache.ConnectionError)
    assert isinstance(e.value, builtins.ConnectionError)
    message = str(e.value).lower()
    assert any(word in message for word in ("auth", "password", "credential"))
    for text in (str(e.value), repr(e.value), repr(e.value.args), caplog.text):
        assert secret not in text


def test_settings_from_env_and_redaction(monkeypatch) -> None:
    monkeypatch.setenv("SOLCACHE_REDIS_URL", f"redis://alice:{PASSWORD}@db.example:6380/2")
    monkeypatch.setenv("SOLCACHE_POOL_MAX_SIZE", "7")
    s = solcache.Settings()
    assert s.pool_max_size == 7
    assert s.redis_url.endswith("@db.example:6380/2")
    assert PASSWORD not in s.redacted_redis_url and "***" in s.redacted_redis_url
    assert "db.example:6380" in s.redacted_redis_url
    assert PASSWORD not in repr(s) and PASSWORD not in str(s)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@127.0.0.1:6379/0",
        f"redis://alice:{PASSWORD}@127.0.0.1:6379/0",
        f"rediss://alice:{PASSWORD}@cache.example:6380",
        f"unix:///tmp/redis.sock?pass={PASSWORD}",
    ],
)
def test_redacted_url(url: str) -> None:
    settings = solcache.Settings(redis_url=url)
    assert PASSWORD not in settings.redacted_redis_url and "***" in settings.redacted_redis_url
    assert PASSWORD not in repr(settings)


def test_url_without_password_is_unchanged() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert solcache.Settings(redis_url=url).redacted_redis_url == url


async def test_connect_without_args_uses_env(redis_server, monkeypatch) -> None:
    monkeypatch.setenv("SOLCACHE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SOLCACHE_POOL_MAX_SIZE", "3")
    async with await RedisPool.connect() as pool:
        assert pool.max_size == 3
        assert str(redis_server.port) in pool.url
        await roundtrip(pool, "5")
    assert redis_server.raw("EXISTS", "price:SOL") == 1  # it really used that server


def test_error_tree() -> None:
    assert issubclass(solcache.TimeoutError, builtins.TimeoutError)
    assert issubclass(solcache.ConnectionError, builtins.ConnectionError)
    assert issubclass(solcache.AuthenticationError, solcache.ConnectionError)
    assert issubclass(solcache.PoolExhaustedError, solcache.TimeoutError)
    assert issubclass(solcache.SerializationError, ValueError)
    assert issubclass(solcache.InvalidInputError, ValueError)
    for name in solcache.exceptions.__all__:
        assert issubclass(getattr(solcache, name), solcache.SolcacheError)


# --- health and metrics ----------------------------------------------------------------------


async def test_health(pool, redis_server) -> None:
    await roundtrip(pool)
    h = await pool.health()
    assert h.reachable is True and h.error is None
    assert h.rtt_ms is not None and h.rtt_ms > 0
    assert h.redis_version == redis_server.version
    # Nothing is in flight or waiting once the round trip is done: every connection is idle.
    assert (h.in_use, h.waiting) == (0, 0)
    assert h.connections == h.idle + h.in_use
    assert 1 <= h.connections <= pool.max_size


async def test_metrics_per_operation(pool) -> None:
    prices, pools = PriceCache(pool), solcache.PoolStateCache(pool)
    address = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
    state = solcache.PoolState(address, 1, 1, 1, 1)
    calls = {
        "price_set": lambda: prices.set(PriceData("SOL", 1)),
        "price_get": lambda: prices.get("SOL"),
        "price_set_many": lambda: prices.set_many([PriceData("RAY", 2)]),
        "price_get_many": lambda: prices.get_many(["SOL", "RAY"]),
        "pool_set": lambda: pools.set(state),
        "pool_get": lambda: pools.get(address),
        "pool_set_many": lambda: pools.set_many([state]),
        "pool_get_many": lambda: pools.get_many([address]),
    }
    for call in calls.values():
        for _ in range(5):
            await call()
    metrics = pool.metrics()
    for op in calls:
        stats = metrics[op]
        assert stats.count >= 5, op
        assert stats.errors == 0, op
        assert stats.mean_us > 0, op
        assert 0 < stats.p50_us <= stats.p99_us <= stats.p999_us <= stats.max_us, op


async def test_slow_operations_logged_rate_limited(redis_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="solcache")
    async with await RedisPool.connect(redis_server.url, slow_threshold_ms=0.001) as pool:
        cache = PriceCache(pool)
        for _ in range(200):
            await cache.get("SOL")
        slow = pool.metrics()["price_get"].slow
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name.split(".")[0] == "solcache" and r.levelno == logging.WARNING
    ]
    assert slow >= 200  # every slow call is counted ...
    assert 1 <= len(warnings) <= 20  # ... but only a few are logged
    assert any("price_get" in m for m in warnings), warnings


# --- outages ---------------------------------------------------------------------------------


async def test_stopped_server_errors_then_recovers(fresh_redis, eventually) -> None:
    timeouts = {"connect_timeout_ms": 500, "response_timeout_ms": 500, "checkout_timeout_ms": 500}
    async with await RedisPool.connect(fresh_redis.url, **timeouts) as pool:
        cache = PriceCache(pool)
        await roundtrip(pool)
        fresh_redis.stop()
        for call in [lambda: cache.get("SOL"), lambda: cache.set(PriceData("SOL", 2))] * 3:
            start = time.monotonic()
            with pytest.raises((solcache.ConnectionError, solcache.TimeoutError)):
                await call()
            assert time.monotonic() - start < 2.0
        health = await pool.health()
        assert health.reachable is False and health.error

        fresh_redis.start()  # same port
        await eventually(lambda: roundtrip(pool, "3"))
        assert (await pool.health()).reachable is True
        assert pool.metrics()["price_get"].errors >= 1


async def test_pool_exhaustion(fresh_redis, eventually) -> None:
    # Pooled reads only: direct reads share one pipelined connection and never wait for one.
    async with await RedisPool.connect(
        fresh_redis.url,
        max_size=2,
        checkout_timeout_ms=200,
        response_timeout_ms=5000,
        direct_reads=False,
    ) as pool:
        cache = PriceCache(pool)
        await cache.set(PriceData("SOL", 1))
        await asyncio.gather(*(cache.get("SOL") for _ in range(10)))
        fresh_redis.pause()
        try:
            start = time.monotonic()
            calls = [asyncio.ensure_future(cache.get("SOL")) for _ in range(3)]
            done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            elapsed = time.monotonic() - start
            assert all(isinstance(t.exception(), solcache.PoolExhaustedError) for t in done)
            assert elapsed < 2.5  # the 200 ms checkout timeout, not the 5 s response timeout
        finally:
            fresh_redis.resume()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert any(isinstance(r, PriceData) for r in results)  # the held calls finish
        await eventually(lambda: roundtrip(pool, "4"))


async def test_errors_are_counted_by_kind(pool: RedisPool) -> None:
    cache = PriceCache(pool)
    with pytest.raises(solcache.InvalidInputError):
        await cache.get("not a token")
    with pytest.raises(solcache.InvalidInputError):
        await cache.get("still bad!")
    counts = pool.error_counts()
    assert counts["invalid_input"] == 2
    assert counts["timeout"] == 0 and counts["connection"] == 0
    assert set(counts) >= {"serialization", "response", "pool_exhausted", "authentication"}


async def test_every_connection_names_its_transport(fresh_redis) -> None:
    """`CLIENT LIST` tells pooled, blocking and direct connections apart: each transport
    sends the same handshake with its own name."""
    async with await RedisPool.connect(fresh_redis.url) as pool:
        cache = PriceCache(pool)
        await cache.set(PriceData("SOL", "1"))
        with sync.RedisPool.connect(fresh_redis.url) as blocking:
            assert sync.PriceCache(blocking).get("SOL") is not None
            deadline = time.monotonic() + 5
            while True:
                await cache.get("SOL")  # the direct connection opens in the background
                names = {
                    field.split("=", 1)[1]
                    for line in fresh_redis.raw("CLIENT", "LIST").splitlines()
                    for field in line.split()
                    if field.startswith("name=")
                }
                if {"solcache-pool", "solcache-sync", "solcache-direct"} <= names:
                    break
                assert time.monotonic() < deadline, names
                await asyncio.sleep(0.01)
