"""Time solcache's hot read path in several Python environments, side by side in one run.

Compares two builds of the extension (say, a version-specific wheel against an abi3 one), each
installed into its own venv:

    python scripts/time_hot_reads.py /tmp/a/bin/python /tmp/b/bin/python [--rounds 15]

It starts a private redis-server, then runs one short worker process per environment and round,
interleaved (a, b, a, b, ...), so a busy spell on a shared machine hits both alike. Each worker
times ``await cache.get``, ``await cache.get_many(5 tokens)``, the sync ``get``, reading
``price`` or ``timestamp`` off a ``PriceData`` (no I/O: the conversion to Decimal or datetime
alone) and building a ``PriceData`` from a Decimal and a datetime (the other direction). It
reports wall and CPU time (``time.process_time_ns``: every thread of the worker) per call. The
table gives medians over rounds and, per environment, the median of its per-round ratio to the
first environment, which is the figure to compare: absolute times vary with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

OPS = ("async get", "async get_many(5)", "sync get", ".price", ".timestamp", "PriceData()")
TTL_MS = 600_000  # the worker's prices outlive the run


def worker(url: str, calls: int) -> dict[str, dict[str, float]]:
    """One round in this interpreter: µs per call, wall and CPU, for every op in OPS."""
    from decimal import Decimal

    import solcache
    from solcache import sync

    def timed(batch: int, run: object) -> dict[str, float]:
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        run()  # type: ignore[operator]
        return {
            "wall_us": (time.perf_counter_ns() - wall) / batch / 1000,
            "cpu_us": (time.process_time_ns() - cpu) / batch / 1000,
        }

    results: dict[str, dict[str, float]] = {}
    prices = [
        solcache.PriceData(token, Decimal("187.2345") + n, source="bench")
        for n, token in enumerate(solcache.MVP_TOKENS)
    ]

    async def async_part() -> None:
        async with await solcache.RedisPool.connect(url) as pool:
            cache = solcache.PriceCache(pool, ttl_ms=TTL_MS)
            await cache.set_many(prices)
            tokens = list(solcache.MVP_TOKENS)

            async def gets(n: int) -> None:
                for _ in range(n):
                    await cache.get("SOL")

            async def get_manys(n: int) -> None:
                for _ in range(n):
                    await cache.get_many(tokens)

            for name, many in (("async get", gets), ("async get_many(5)", get_manys)):
                await many(calls // 10)  # warm up: connections, caches, branch predictors
                wall, cpu = time.perf_counter_ns(), time.process_time_ns()
                await many(calls)
                results[name] = {
                    "wall_us": (time.perf_counter_ns() - wall) / calls / 1000,
                    "cpu_us": (time.process_time_ns() - cpu) / calls / 1000,
                }

    asyncio.run(async_part())

    with sync.RedisPool.connect(url) as pool:
        cache = sync.PriceCache(pool, ttl_ms=TTL_MS)

        def sync_gets(n: int) -> None:
            for _ in range(n):
                cache.get("SOL")

        sync_gets(calls // 10)
        results["sync get"] = timed(calls, lambda: sync_gets(calls))
        held = cache.get("SOL")
        assert held is not None

    def prices_of(n: int) -> None:
        for _ in range(n):
            held.price  # noqa: B018 (the conversion is what is timed)

    def timestamps_of(n: int) -> None:
        for _ in range(n):
            held.timestamp  # noqa: B018

    price, stamp = held.price, held.timestamp

    def constructs(n: int) -> None:
        for _ in range(n):
            solcache.PriceData("SOL", price, stamp, "bench")

    for name, read in (
        (".price", prices_of),
        (".timestamp", timestamps_of),
        ("PriceData()", constructs),
    ):
        read(calls)
        results[name] = timed(calls * 10, lambda read=read: read(calls * 10))  # type: ignore[misc]
    return results


def describe(python: str) -> str:
    """The installed wheel's tag, so the table says which build each column is."""
    code = (
        "import importlib.metadata as m; d = m.distribution('solcache');"
        "print(next((l.split(': ')[1] for l in d.read_text('WHEEL').splitlines()"
        " if l.startswith('Tag:')), '?'))"
    )
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return run.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pythons", nargs="*", help="interpreters, one per build to compare")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5000, help="calls per op and round")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.calls)))
        return
    if len(args.pythons) < 2:
        parser.error("give at least two interpreters to compare")

    # The driver runs where solcache is installed (any of the builds will do): the package's
    # own launcher starts the server the workers share.
    from solcache.services.private_redis import PrivateRedis

    redis = PrivateRedis(tcp=True)
    redis.start()
    url = redis.tcp_url
    runs: dict[str, list[dict[str, dict[str, float]]]] = {p: [] for p in args.pythons}
    try:
        for n in range(args.rounds):
            for python in args.pythons:
                out = subprocess.run(
                    [python, __file__, "--worker", url, "--calls", str(args.calls)],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                )
                runs[python].append(json.loads(out.stdout))
            print(f"round {n + 1}/{args.rounds}", file=sys.stderr)
    finally:
        redis.close()

    base = args.pythons[0]
    for n, python in enumerate(args.pythons):
        print(f"[{n}] {python}  ({describe(python)})")
    print(f"{args.rounds} interleaved rounds x {args.calls} calls; µs per call, median over rounds")
    print(f"{'op':<20}{'build':>6}{'wall':>9}{'cpu':>9}{'wall ratio':>12}{'cpu ratio':>11}")
    for op in OPS:
        for n, python in enumerate(args.pythons):
            mine = runs[python]
            line = f"{op if n == 0 else '':<20}{n:>6}"
            for kind in ("wall_us", "cpu_us"):
                line += f"{statistics.median(r[op][kind] for r in mine):>9.2f}"
            for kind, width in (("wall_us", 12), ("cpu_us", 11)):
                ratios = [r[op][kind] / b[op][kind] for r, b in zip(mine, runs[base], strict=True)]
                line += f"{statistics.median(ratios):>{width}.3f}"
            print(line)


if __name__ == "__main__":
    main()
