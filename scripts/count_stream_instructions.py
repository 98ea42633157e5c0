"""Count the client instructions per event of a consumer-group read + ack, under callgrind.

    python scripts/count_stream_instructions.py [--small 2000] [--large 7000] [--read-price]
    python scripts/count_stream_instructions.py --publish

With ``--publish`` the measured process is the benchmark's publisher instead: ``publish_many``
of 1,000 price updates per call (``large`` events against ``small``, counted the same way).

It starts a private redis-server, publishes ``large`` events, then runs the benchmark's
consumer (``async for entry in sub``, batch 100, each entry's event read; with
``--read-price`` its price too, as the benchmark's second read row does) twice under
``valgrind --tool=callgrind``: once for ``small`` events, once for ``large``. The difference
of the two totals divided by ``large - small`` is the cost per event with the interpreter's
start-up, imports and connection set-up taken out. Instruction counts hardly move with the
machine's load, unlike the wall clock, so one comparison before and after a change is enough.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

STREAM = "stream:count-events"


def consume(url: str, total: int, count: int, read_price: bool) -> None:
    """The measured process: the benchmark row's consumer (``consume_rate`` of
    ``benches/comparison/streams.py``) reads and acknowledges ``total`` entries."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))
    import solcache
    from comparison.streams import consume_rate

    async def run() -> None:
        async with await solcache.RedisPool.connect(url) as pool:
            await consume_rate(
                solcache.EventStream(pool), STREAM, total, count, read_price=read_price
            )

    asyncio.run(run())


def publish(url: str, total: int, exact: bool = False) -> None:
    """Publish ``total`` events (rounded up to whole calls of 1,000 unless ``exact``)."""
    import solcache

    async def run() -> None:
        async with await solcache.RedisPool.connect(url) as pool:
            events = solcache.EventStream(pool, maxlen_per_stream={STREAM: total * 2})
            batch = [solcache.PriceUpdate("SOL", Decimal("187.2345") + i) for i in range(1000)]
            calls = total // 1000 if exact else total // 1000 + 1
            for _ in range(calls):
                await events.publish_many(batch, STREAM)

    asyncio.run(run())


def instructions(
    url: str, total: int, count: int, out_dir: Path, read_price: bool, publishing: bool = False
) -> int:
    """Total instructions (every thread) of one consumer (or publisher) process under callgrind."""
    out = out_dir / f"callgrind.{total}.out"
    mode = (
        ["--publish-only", url, str(total)]
        if publishing
        else [
            "--consume",
            url,
            str(total),
            str(count),
            "price" if read_price else "event",
        ]
    )
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        *mode,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in: {run.stderr[-500:]}")
    return int(found.group(1))


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--consume":
        consume(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "price")
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--publish-only":
        publish(sys.argv[2], int(sys.argv[3]), exact=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--large", type=int, default=7000)
    p.add_argument("--count", type=int, default=100, help="entries per read (100)")
    p.add_argument("--keep", type=Path, help="keep the callgrind output files here")
    p.add_argument("--read-price", action="store_true", help="the loop body reads each price too")
    p.add_argument("--publish", action="store_true", help="count publish_many instead")
    args = p.parse_args()
    from solcache.services.private_redis import PrivateRedis

    server = PrivateRedis(tcp=True)
    server.start()
    try:
        if not args.publish:
            publish(server.tcp_url, args.large)
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = args.keep or Path(tmp)
            small, large = (
                instructions(server.tcp_url, n, args.count, out_dir, args.read_price, args.publish)
                for n in (args.small, args.large)
            )
        per_event = (large - small) / (args.large - args.small)
        print(f"{args.small} events: {small:,} Ir; {args.large} events: {large:,} Ir")
        what = "publish_many" if args.publish else "read + ack"
        print(f"{what}: {per_event:,.0f} client instructions per event")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
