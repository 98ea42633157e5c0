"""The quickstart as a live demo: five MVP prices and a pool state written and read at 10 Hz.

Uses `SOLCACHE_REDIS_URL` when set; otherwise starts a private redis-server (unix socket in a
temp dir, nothing persisted) and stops it on exit. Runs for `DEMO_SECONDS` (default 5).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import solcache

START_PRICES = {
    "SOL": "187.23",
    "USDC": "1.0000",
    "BONK": "0.00002345",
    "JitoSOL": "221.40",
    "RAY": "2.41",
}
SOL_USDC_POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server child on a unix socket in a temp dir; yields its URL."""
    workdir = Path(tempfile.mkdtemp(prefix="solcache-demo-"))
    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def walk(price: Decimal, rng: random.Random) -> Decimal:
    """One random-walk step of at most ±0.1 %, keeping the price's precision."""
    step = Decimal(str(round(rng.uniform(-0.001, 0.001), 6)))
    return (price * (1 + step)).quantize(price)


async def run(url: str, seconds: float) -> None:
    rng = random.Random(7)
    prices_now = {t: Decimal(p) for t, p in START_PRICES.items()}
    async with await solcache.RedisPool.connect(url) as pool:
        print(f"connected to {pool.url} (Redis {pool.redis_version})")
        prices = solcache.PriceCache(pool)
        pools = solcache.PoolStateCache(pool)
        reserve_a, reserve_b = Decimal("41250.5"), Decimal("7723456.25")
        ticks = int(seconds * 10)
        for tick in range(ticks):
            prices_now = {t: walk(p, rng) for t, p in prices_now.items()}
            await prices.set_many(
                [solcache.PriceData(t, p, source="demo") for t, p in prices_now.items()]
            )
            reserve_a = walk(reserve_a, rng)
            await pools.set(
                solcache.PoolState(SOL_USDC_POOL, "12500000", reserve_a, reserve_b, "98765432")
            )
            read = await prices.get_many(solcache.MVP_TOKENS, max_age_ms=1000)
            line = "  ".join(f"{t} {p.price}" for t, p in read.items() if p is not None)
            print(f"\r[{tick + 1:3}/{ticks}] {line}", end="", flush=True)
            await asyncio.sleep(0.1)
        print()
        state = await pools.get(SOL_USDC_POOL)
        assert state is not None
        quote = state.quote_swap(Decimal("100"), fee_bps=25, slippage_bps=50)
        print(
            f"swap 100 SOL in {SOL_USDC_POOL[:8]}…: {quote.amount_out:.2f} USDC out, "
            f"impact {quote.price_impact:.4%}, sandwich risk ≤ {quote.max_sandwich_loss:.2f} USDC"
        )
        health = await pool.health()
        print(
            f"health: reachable={health.reachable} rtt={health.rtt_ms:.3f} ms "
            f"connections={health.connections} idle={health.idle}"
        )
        print(f"{'operation':<16}{'count':>7}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
        for name, s in sorted(pool.metrics().items()):
            print(f"{name:<16}{s.count:>7}{s.p50_us:>10.1f}{s.p99_us:>10.1f}{s.max_us:>10.1f}")


def main() -> None:
    seconds = float(os.environ.get("DEMO_SECONDS", "5"))
    url = os.environ.get("SOLCACHE_REDIS_URL")
    if url:
        asyncio.run(run(url, seconds))
        return
    print("SOLCACHE_REDIS_URL not set: starting a private redis-server for the demo")
    with private_redis() as private_url:
        asyncio.run(run(private_url, seconds))


if __name__ == "__main__":
    main()
