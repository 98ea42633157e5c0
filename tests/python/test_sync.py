"""`solcache.sync`: the blocking API, against real redis-server processes."""

from __future__ import annotations

import builtins
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import solcache
from conftest import PASSWORD, RedisServer, free_port
from solcache import sync
from solcache.redis_pool import RedisPool as AsyncPool

pytestmark = pytest.mark.timeout(60)


def price(token: str, value: str = "187.25", age_s: float = 0.0) -> solcache.PriceData:
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    return solcache.PriceData(token=token, price=Decimal(value), source="test", timestamp=at)


@pytest.fixture
def sync_pool(redis_server: RedisServer):
    with sync.RedisPool.connect(redis_server.url) as pool:
        yield pool


def test_round_trip_get_many_and_metrics(sync_pool: sync.RedisPool) -> None:
    prices = sync.PriceCache(sync_pool)
    assert prices.get("SOL") is None
    prices.set(price("SOL"))
    prices.set_many([price("USDC", "1.0001"), price("BONK", "0.00002345")])
    got = prices.get("SOL")
    assert got is not None and got.price == Decimal("187.25") and got.token == "SOL"
    many = prices.get_many(["BONK", "RAY", "USDC"])
    assert list(many) == ["BONK", "RAY", "USDC"]
    assert many["RAY"] is None and many["USDC"] is not None
    assert many["USDC"].price == Decimal("1.0001")
    stats = sync_pool.metrics()
    assert stats["price_get"].count == 2 and stats["price_get_many"].count == 1
    assert sync_pool.counts()["connections"] >= 1


def test_max_age_and_ttl(sync_pool: sync.RedisPool, redis_server: RedisServer) -> None:
    prices = sync.PriceCache(sync_pool, ttl_ms=1500)
    prices.set(price("SOL", age_s=5))
    assert prices.get("SOL") is not None
    assert prices.get("SOL", max_age_ms=1000) is None
    assert 0 < int(redis_server.raw("PTTL", "price:SOL")) <= 1500


async def test_same_keys_and_json_as_the_async_api(
    sync_pool: sync.RedisPool, redis_server: RedisServer
) -> None:
    async with await AsyncPool.connect(redis_server.url) as pool:
        await solcache.PriceCache(pool).set(price("SOL", "150.5"))
        got = sync.PriceCache(sync_pool).get("SOL")
        assert got is not None and got.price == Decimal("150.5")
        sync.PriceCache(sync_pool).set(price("JitoSOL", "201.1"))
        back = await solcache.PriceCache(pool).get("JitoSOL")
        assert back == sync.PriceCache(sync_pool).get("JitoSOL")


def test_bad_input_is_rejected_before_redis(
    sync_pool: sync.RedisPool, redis_server: RedisServer
) -> None:
    redis_server.raw("CONFIG", "RESETSTAT")
    prices = sync.PriceCache(sync_pool)
    with pytest.raises(solcache.InvalidInputError):
        prices.get("not a token\r\nFLUSHALL")
    with pytest.raises(solcache.InvalidInputError):
        prices.get_many(["SOL", ""])
    with pytest.raises(solcache.InvalidInputError):
        sync.PoolStateCache(sync_pool).get("not-base58-0OIl")
    after = redis_server.raw("INFO", "commandstats")
    assert "cmdstat_get:" not in after and "cmdstat_mget:" not in after
    assert sync_pool.error_counts()["invalid_input"] == 3


def test_undecodable_value_is_serialization_error(
    sync_pool: sync.RedisPool, redis_server: RedisServer
) -> None:
    redis_server.raw("SET", "price:SOL", b"\xff{not json")
    with pytest.raises(solcache.SerializationError) as e:
        sync.PriceCache(sync_pool).get("SOL")
    assert e.value.key == "price:SOL"


def test_paused_server_times_out_without_holding_the_gil(fresh_redis: RedisServer) -> None:
    with sync.RedisPool.connect(fresh_redis.url, response_timeout_ms=300) as pool:
        prices = sync.PriceCache(pool)
        prices.set(price("SOL"))
        ticks = 0
        stop = threading.Event()

        def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                time.sleep(0.001)

        thread = threading.Thread(target=ticker)
        fresh_redis.pause()
        try:
            thread.start()
            started = time.monotonic()
            with pytest.raises(solcache.TimeoutError) as e:
                prices.get("SOL")
            elapsed = time.monotonic() - started
        finally:
            fresh_redis.resume()
            stop.set()
            thread.join()
        assert isinstance(e.value, builtins.TimeoutError)
        assert 0.25 < elapsed < 3.0
        # The ticker ran while the call waited: the GIL was released.
        assert ticks > 20
        assert prices.get("SOL") is not None  # the timed-out connection was discarded


def test_restart_fails_fast_then_recovers(fresh_redis: RedisServer) -> None:
    with sync.RedisPool.connect(fresh_redis.url, connect_timeout_ms=300) as pool:
        prices = sync.PriceCache(pool)
        prices.set(price("SOL"))
        fresh_redis.kill()
        started = time.monotonic()
        with pytest.raises(solcache.ConnectionError):
            prices.get("SOL")
        assert time.monotonic() - started < 3.0
        fresh_redis.start()
        # The stale idle connection is replaced: the first call after the restart succeeds.
        assert prices.get("SOL") is None  # no persistence: the key is gone
        prices.set(price("SOL"))
        assert prices.get("SOL") is not None
        assert pool.error_counts()["connection"] >= 1


def test_exhausted_pool_raises_pool_exhausted(fresh_redis: RedisServer) -> None:
    pool = sync.RedisPool.connect(
        fresh_redis.url, max_size=1, response_timeout_ms=800, checkout_timeout_ms=100
    )
    prices = sync.PriceCache(pool)
    errors: list[BaseException] = []

    def blocked_call() -> None:
        try:
            prices.get("SOL")
        except BaseException as e:
            errors.append(e)

    fresh_redis.pause()
    holder = threading.Thread(target=blocked_call)
    try:
        holder.start()
        deadline = time.monotonic() + 2
        while pool.counts()["in_use"] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(solcache.PoolExhaustedError):
            prices.get("USDC")
        # It gave up on the checkout (100 ms), before any reply could have timed out (800 ms).
        assert time.monotonic() - started < 0.8
        holder.join()  # still paused: the holder's call times out
    finally:
        fresh_redis.resume()
        holder.join()
    assert len(errors) == 1 and isinstance(errors[0], solcache.TimeoutError)
    assert prices.get("SOL") is None  # recovered on a fresh connection
    assert pool.counts() == {"connections": 1, "idle": 1, "in_use": 0, "waiting": 0}
    pool.close()


def test_threads_share_one_pool(sync_pool: sync.RedisPool) -> None:
    prices = sync.PriceCache(sync_pool)
    prices.set_many([price(t) for t in solcache.MVP_TOKENS])
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                assert all(p is not None for p in prices.get_many(solcache.MVP_TOKENS).values())
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    counts = sync_pool.counts()
    assert counts["in_use"] == 0 and 1 <= counts["connections"] <= sync_pool.max_size


def test_closed_pool_refuses_calls(redis_server: RedisServer) -> None:
    pool = sync.RedisPool.connect(redis_server.url)
    pool.close()
    assert pool.closed and "closed" in repr(pool)
    with pytest.raises(solcache.ConnectionError):
        sync.PriceCache(pool).get("SOL")


def test_connect_errors_and_password_redaction(auth_redis: RedisServer) -> None:
    with pytest.raises(solcache.ConnectionError):
        sync.RedisPool.connect(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_ms=300)
    wrong = f"redis://alice:wrong-pw-9@127.0.0.1:{auth_redis.port}/0"
    with pytest.raises(solcache.AuthenticationError) as e:
        sync.RedisPool.connect(wrong)
    assert "wrong-pw-9" not in str(e.value)
    url = f"redis://alice:{PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    with sync.RedisPool.connect(url) as pool:
        assert PASSWORD not in repr(pool) and PASSWORD not in pool.url
        sync.PriceCache(pool).set(price("SOL"))
    with pytest.raises(solcache.InvalidInputError):
        sync.RedisPool.connect(url, response_timeout_ms=0)


def test_core_log_records_reach_logging_from_blocking_calls_alone(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A program that only makes blocking calls sees the core's log records, each under the
    dotted logger of its part (the slow-call warning: `solcache.pool`)."""
    caplog.set_level(logging.WARNING, logger="solcache")
    with sync.RedisPool.connect(redis_server.url, slow_threshold_ms=0.001) as pool:
        prices = sync.PriceCache(pool)
        for _ in range(20):
            prices.get("SOL")
        records = [r for r in caplog.records if r.name == "solcache.pool"]
    assert any("slow Redis operation: price_get" in r.getMessage() for r in records), [
        (r.name, r.getMessage()) for r in caplog.records
    ]


def _sync_clients(server: RedisServer) -> list[str]:
    lines = server.raw("CLIENT", "LIST").splitlines()
    return [line for line in lines if " name=solcache-sync " in line]


def test_reads_take_a_polled_socket_of_their_own(fresh_redis: RedisServer) -> None:
    with sync.RedisPool.connect(fresh_redis.url, max_size=1) as pool:
        assert (pool.direct_reads, pool.direct_spin_us) == (True, 100)  # Settings' defaults
        prices = sync.PriceCache(pool)
        prices.set(price("SOL"))
        assert len(_sync_clients(fresh_redis)) == 1
        fresh_redis.raw("CONFIG", "RESETSTAT")
        for _ in range(40):
            assert prices.get("SOL") is not None
        clients = _sync_clients(fresh_redis)
        readers = [c for c in clients if " cmd=get " in c]
        assert len(clients) == 2 and len(readers) == 1, clients  # beside the pooled connection
        assert "cmdstat_get:calls=40," in fresh_redis.raw("INFO", "commandstats")
        assert pool.counts()["connections"] == 1  # counted as the connection it belongs to
    with sync.RedisPool.connect(fresh_redis.url, direct_reads=False, direct_spin_us=0) as off:
        assert (off.direct_reads, off.direct_spin_us) == (False, 0)
        for _ in range(5):
            assert sync.PriceCache(off).get("SOL") is not None
        # Only the pooled connection (the closed pool's two go away by themselves).
        deadline = time.monotonic() + 5
        while len(_sync_clients(fresh_redis)) != 1:
            assert time.monotonic() < deadline, _sync_clients(fresh_redis)
            time.sleep(0.01)
    with pytest.raises(solcache.InvalidInputError, match="direct_spin_us"):
        sync.RedisPool.connect(fresh_redis.url, direct_spin_us=1001)
