"""Near cache numbers for docs/performance.md, in one run against a private redis-server.

``python benches/near_cache.py [--seconds 5] [--rounds 3] [--writes 600]`` prints three tables:

1. **Hit latency**: p50 / p99 of individually timed calls (each reads ``.price`` and
   ``.timestamp``): Python ``await get`` and sync ``get`` served by the near cache, the same
   calls with it off, redis-py's sync ``CacheConfig`` hit (its Redis >= 7.4 check lowered to
   6.0, where tracking came), and the raw round trip
   (``redis-benchmark -c 1 GET``) of the same server in the same run.
2. **Staleness**: a writer process SETs ``price:SOL`` (a plain pool: its ``set`` returns at the
   SET's reply) at 200 Hz and notes when each reply came; a reader process spins on ``get``
   and notes when it first sees each new value. Time from the SET reply to that first read,
   p50 / p99, for an async and a sync reader.
3. **Mixed workload**: a writer process at 10 Hz x 5 tokens (``set_many``), a reader process at
   10,000 reads/s round-robin over the five tokens, for ``--seconds`` per row; rows interleave
   in ``--rounds`` rounds, medians reported. Hit rate (1 - reader GET/MGET calls / reads, from
   Redis' ``INFO commandstats``), reader CPU per read (``time.process_time``), Redis CPU
   (``INFO cpu``) per second.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis as redis_py
from redis.cache import CacheConfig
from redis.connection import CacheProxyConnection

import solcache
from solcache import sync
from solcache.latency.redis_benchmark import run_redis_benchmark
from solcache.latency.target import Target
from solcache.services.private_redis import PrivateRedis

sys.path.insert(0, str(Path(__file__).parent))
from comparison.peers import decode_price

TOKENS = ("SOL", "USDC", "BONK", "JITOSOL", "RAY")

# redis-py refuses client-side caching below Redis 7.4 ("to maximize compatibility"); what it
# uses (RESP3 CLIENT TRACKING) is in Redis since 6.0, and this machine runs 7.0: lower the bar.
CacheProxyConnection.MIN_ALLOWED_VERSION = "6.0.0"
HOUR_MS = 3_600_000


def price(token: str, value: int | str) -> solcache.PriceData:
    return solcache.PriceData(
        token=token, price=Decimal(value), source="bench", timestamp=datetime.now(UTC)
    )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[int((len(ordered) - 1) * q)]


def timed(n: int, call: Callable[[], None]) -> tuple[float, float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        call()
        samples.append((clock() - t0) / 1e3)
    return pct(samples, 0.5), pct(samples, 0.99)


async def atimed(n: int, call: Callable[[], Any]) -> tuple[float, float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await call()
        samples.append((clock() - t0) / 1e3)
    return pct(samples, 0.5), pct(samples, 0.99)


def touch(p: Any) -> None:
    """The work every row does with a read: its price and its timestamp."""
    if p is not None:
        _ = (p.price, p.timestamp)


# --- 1. hit latency ---------------------------------------------------------------------------


def hit_latency(url: str, port: int, n: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []

    async def run_async() -> None:
        async with (
            await solcache.RedisPool.connect(url, near_cache=True) as near,
            await solcache.RedisPool.connect(url) as plain,
        ):
            on, off = solcache.PriceCache(near), solcache.PriceCache(plain)
            await off.set(price("SOL", "187.25"))

            async def hit() -> None:
                touch(await on.get("SOL"))

            async def miss() -> None:
                touch(await off.get("SOL"))

            await atimed(1000, hit)
            rows.append(("Python `await get`, near cache hit", *await atimed(n, hit)))
            rows.append(("Python `await get`, near cache off", *await atimed(n // 20, miss)))

    asyncio.run(run_async())
    with sync.RedisPool.connect(url, near_cache=True) as near, sync.RedisPool.connect(url) as plain:
        on, off = sync.PriceCache(near), sync.PriceCache(plain)
        on.get("SOL")
        rows.append(("Python sync `get`, near cache hit", *timed(n, lambda: touch(on.get("SOL")))))
        rows.append(
            ("Python sync `get`, near cache off", *timed(n // 20, lambda: touch(off.get("SOL"))))
        )
    cached = redis_py.Redis(port=port, protocol=3, cache_config=CacheConfig())
    cached.get("price:SOL")
    rows.append(
        (
            "redis-py sync `CacheConfig` hit (+ json, Decimal, datetime)",
            *timed(n, lambda: touch(decode_price(cached.get("price:SOL")))),
        )
    )
    cached.close()
    raw, _ = run_redis_benchmark(Target.from_url(url), "price:SOL", clients=1, requests=20_000)
    rows.append(("raw round trip, `redis-benchmark -c 1 GET`", raw.p50_us, raw.p99_us or 0.0))
    return rows


# --- 2. staleness -----------------------------------------------------------------------------


def _stale_writer(url: str, writes: int, acked_ns: Any, ready: Any) -> None:
    ready.wait()
    with sync.RedisPool.connect(url) as pool:
        cache = sync.PriceCache(pool, ttl_ms=HOUR_MS)
        for seq in range(1, writes + 1):
            cache.set(price("SOL", seq))
            acked_ns[seq] = time.monotonic_ns()
            time.sleep(0.005)


def _stale_reader(url: str, kind: str, writes: int, acked_ns: Any, ready: Any, out: Any) -> None:
    # The reader spins; on a small machine Redis and the writer must still get a core first.
    os.nice(10)
    seen_ns = [0] * (writes + 1)

    def note(p: Any) -> int:
        seq = int(p.price) if p is not None else 0
        if seq and not seen_ns[seq]:
            seen_ns[seq] = time.monotonic_ns()
        return seq

    if kind == "sync":
        with sync.RedisPool.connect(url, near_cache=True) as pool:
            cache = sync.PriceCache(pool, ttl_ms=HOUR_MS)
            cache.get("SOL")
            ready.set()
            while note(cache.get("SOL")) < writes:
                pass
            stats = pool.near_cache_stats()
    else:

        async def main() -> dict[str, int] | None:
            async with await solcache.RedisPool.connect(url, near_cache=True) as pool:
                cache = solcache.PriceCache(pool, ttl_ms=HOUR_MS)
                await cache.get("SOL")
                ready.set()
                while note(await cache.get("SOL")) < writes:
                    pass
                return pool.near_cache_stats()

        stats = asyncio.run(main())
    # Let the writer record the last acknowledgement.
    time.sleep(0.05)
    lags = [max(0, seen_ns[s] - acked_ns[s]) / 1e3 for s in range(1, writes + 1) if seen_ns[s]]
    out.put((kind, lags, stats))


def staleness(url: str, writes: int) -> list[tuple[str, float, float, int]]:
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for kind in ("async", "sync"):
        with sync.RedisPool.connect(url) as pool:
            sync.PriceCache(pool, ttl_ms=HOUR_MS).set(price("SOL", 0))
        acked_ns = ctx.Array("q", writes + 1, lock=False)
        ready, out = ctx.Event(), ctx.Queue()
        reader = ctx.Process(target=_stale_reader, args=(url, kind, writes, acked_ns, ready, out))
        writer = ctx.Process(target=_stale_writer, args=(url, writes, acked_ns, ready))
        reader.start()
        writer.start()
        _, lags, _stats = out.get(timeout=120)
        writer.join(timeout=60)
        reader.join(timeout=60)
        rows.append((f"{kind} reader", pct(lags, 0.5), pct(lags, 0.99), len(lags)))
    return rows


# --- 3. mixed workload ------------------------------------------------------------------------


def _mixed_writer(url: str, stop: Any) -> None:
    with sync.RedisPool.connect(url) as pool:
        cache = sync.PriceCache(pool)
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            n += 1
            cache.set_many([price(t, n) for t in TOKENS])
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))


def _paced(seconds: float, rate: int, read: Callable[[str], Any]) -> int:
    reads, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(50):
            touch(read(TOKENS[reads % 5]))
            reads += 1
        ahead = reads / rate - elapsed
        if ahead > 0:
            time.sleep(ahead)
    return reads


async def _apaced(seconds: float, rate: int, read: Callable[[str], Any]) -> int:
    reads, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(50):
            touch(await read(TOKENS[reads % 5]))
            reads += 1
        ahead = reads / rate - elapsed
        await asyncio.sleep(max(0.0, ahead))
    return reads


def _mixed_reader(url: str, port: int, row: str, seconds: float, rate: int, out: Any) -> None:
    cpu0 = time.process_time()
    if row.startswith("solcache async"):

        async def main() -> int:
            near = "on" in row
            async with await solcache.RedisPool.connect(url, near_cache=near) as pool:
                cache = solcache.PriceCache(pool)
                return await _apaced(seconds, rate, cache.get)

        reads = asyncio.run(main())
    elif row.startswith("solcache sync"):
        with sync.RedisPool.connect(url, near_cache="on" in row) as pool:
            reads = _paced(seconds, rate, sync.PriceCache(pool).get)
    else:
        client = redis_py.Redis(port=port, protocol=3, cache_config=CacheConfig())
        reads = _paced(seconds, rate, lambda t: decode_price(client.get(f"price:{t}")))
        client.close()
    out.put((reads, time.process_time() - cpu0))


MIXED_ROWS = (
    "solcache async, near cache off",
    "solcache async, near cache on",
    "solcache sync, near cache off",
    "solcache sync, near cache on",
    "redis-py sync, CacheConfig (RESP3)",
)


def _redis_counters(client: redis_py.Redis) -> tuple[int, float]:
    stats = client.info("commandstats")
    calls = sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "mget"))
    cpu = client.info("cpu")
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def mixed(url: str, port: int, seconds: float, rounds: int, rate: int) -> list[tuple[str, ...]]:
    ctx = multiprocessing.get_context("spawn")
    admin = redis_py.Redis(port=port)
    stop = ctx.Event()
    writer = ctx.Process(target=_mixed_writer, args=(url, stop))
    writer.start()
    time.sleep(0.5)
    results: dict[str, list[tuple[float, float, float, float]]] = {r: [] for r in MIXED_ROWS}
    for _ in range(rounds):
        for row in MIXED_ROWS:
            out = ctx.Queue()
            reader = ctx.Process(target=_mixed_reader, args=(url, port, row, seconds, rate, out))
            calls0, cpu0 = _redis_counters(admin)
            t0 = time.monotonic()
            reader.start()
            reads, cpu_s = out.get(timeout=seconds + 60)
            reader.join(timeout=30)
            wall = time.monotonic() - t0
            calls1, cpu1 = _redis_counters(admin)
            hit_rate = 1 - (calls1 - calls0) / reads
            results[row].append(
                (hit_rate, cpu_s / reads * 1e6, (cpu1 - cpu0) / wall * 1e3, reads / seconds)
            )
    stop.set()
    writer.join(timeout=10)
    admin.close()
    table = []
    for row, samples in results.items():
        med = [statistics.median(s[i] for s in samples) for i in range(4)]
        table.append((row, f"{med[0]:.1%}", f"{med[1]:.1f}", f"{med[2]:.0f}", f"{med[3]:.0f}"))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per mixed-workload row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=600, help="staleness samples per reader")
    parser.add_argument("--calls", type=int, default=100_000, help="hit latency samples")
    parser.add_argument("--rate", type=int, default=10_000, help="mixed-workload reads/s")
    args = parser.parse_args()
    with PrivateRedis(tcp=True) as server:
        assert server.port is not None
        url, port = server.tcp_url, server.port
        print(
            f"redis-server {redis_py.Redis(port=port).info('server')['redis_version']}, "
            f"python {sys.version.split()[0]}, solcache {solcache.__version__}\n"
        )
        print("| call (reads .price and .timestamp) | p50 µs | p99 µs |\n|---|---:|---:|")
        for name, p50, p99 in hit_latency(url, port, args.calls):
            print(f"| {name} | {p50:.2f} | {p99:.2f} |")
        print(
            "\n| staleness: SET reply → first read showing the value | p50 µs | p99 µs | writes |"
        )
        print("|---|---:|---:|---:|")
        for name, p50, p99, n in staleness(url, args.writes):
            print(f"| {name} | {p50:.0f} | {p99:.0f} | {n} |")
        print(
            f"\n| mixed: 10 Hz x 5 writes, {args.rate} reads/s, {args.seconds:.0f} s x "
            f"{args.rounds} rounds (medians) | hit rate | reader CPU µs/read | "
            "Redis CPU ms/s | reads/s |"
        )
        print("|---|---:|---:|---:|---:|")
        for cells in mixed(url, port, args.seconds, args.rounds, args.rate):
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
