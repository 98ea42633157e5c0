"""A private redis-server for the Python benchmarks, and a report printed after the run.

Run with ``pytest benches --benchmark-enable``. Never touches the redis-server on 6379: the
session starts its own on a free port (plus a unix socket) and kills it at the end. The
``report`` tests print p50 / p99 tables in the terminal summary (no ``-s`` needed); they are
skipped while benchmarks are disabled (the default ``addopts`` has ``--benchmark-disable``).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import solcache
from bench_support import BenchRedis, Caches, prices

REPORT_KEY = pytest.StashKey[list[str]]()
#: Long enough that the seeded prices outlive every benchmark (production TTL is 2 s).
SEED_TTL_MS = 3_600_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "report: prints a latency report; asserts no timings")
    config.stash[REPORT_KEY] = []


def _benchmarks_disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable")) and not config.getoption("benchmark_enable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _benchmarks_disabled(config):
        return
    skip = pytest.mark.skip(reason="latency report: run with --benchmark-enable")
    for item in items:
        if "report" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(REPORT_KEY, [])
    if lines:
        terminalreporter.section("solcache latency report")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: print now (seen with ``-s``) and again in the terminal summary."""
    lines = request.config.stash[REPORT_KEY]

    def emit(line: str = "") -> None:
        print(line)
        lines.append(line)

    return emit


# ------------------------------------------------------------------------------ the server


@pytest.fixture(scope="session")
def bench_redis() -> Iterator[BenchRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make redis installs it)")
    with BenchRedis() as server:
        yield server


# ------------------------------------------------------------------------------ the caches


@pytest.fixture
def aloop() -> Iterator[asyncio.AbstractEventLoop]:
    """A plain asyncio loop: pytest-benchmark is synchronous, so calls go through it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def caches(bench_redis: BenchRedis, aloop: asyncio.AbstractEventLoop) -> Iterator[Caches]:
    async def open_all() -> Caches:
        pools = {t: await solcache.RedisPool.connect(bench_redis.url(t)) for t in ("tcp", "unix")}
        seeded = prices()
        await solcache.PriceCache(pools["tcp"], ttl_ms=SEED_TTL_MS).set_many(seeded)
        cache = {t: solcache.PriceCache(p) for t, p in pools.items()}
        # Correctness before timing: every read is a hit.
        assert await cache["tcp"].get("SOL") == seeded[0]
        return Caches(pools, cache, seeded)

    opened = aloop.run_until_complete(open_all())
    # redis-benchmark's GET reads the literal key `key:__rand_int__`: give it our JSON.
    bench_redis.command("SET", "key:__rand_int__", opened.prices[0].to_json())
    yield opened

    async def close_all() -> None:
        for pool in opened.pools.values():
            await pool.close()

    aloop.run_until_complete(close_all())
