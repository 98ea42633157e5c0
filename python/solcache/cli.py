"""The `solcache` command (also `python -m solcache`): serve, doctor, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from solcache.config import Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="solcache",
        description="Solana price and pool-state cache on Redis. Settings also come from "
        "SOLCACHE_* environment variables (see README).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the services, the live dashboard and /metrics")
    serve.add_argument("--host", help="HTTP bind address (SOLCACHE_HTTP_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (SOLCACHE_HTTP_PORT, default 8000)")
    serve.add_argument("--redis-url", help="Redis URL (SOLCACHE_REDIS_URL)")
    serve.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    serve.add_argument(
        "--embedded-redis",
        action="store_true",
        help="always start a private redis-server (default: only when no URL is configured "
        "and nothing listens on 127.0.0.1:6379)",
    )
    serve.add_argument("--source", choices=["simulated", "pyth"], help="price source")
    serve.add_argument("--seed", type=int, help="seed of the simulated random walk")
    serve.add_argument("--quiet", action="store_true", help="no live status line")

    doctor = sub.add_parser("doctor", help="check the configured Redis and say what to fix")
    doctor.add_argument("--redis-url", help="Redis URL (SOLCACHE_REDIS_URL)")

    bench = sub.add_parser("bench", help="latency and throughput against your Redis")
    bench.add_argument("--redis-url", help="Redis URL (SOLCACHE_REDIS_URL)")
    bench.add_argument("--calls", type=int, default=2000, help="calls per sequential benchmark")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for arg, field in (
        ("redis_url", "redis_url"),
        ("host", "http_host"),
        ("port", "http_port"),
        ("source", "price_source"),
        ("seed", "simulation_seed"),
    ):
        value = getattr(args, arg, None)
        if value is not None:
            overrides[field] = value
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(args)
    if args.command == "doctor":
        from solcache.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    if args.command == "bench":
        from solcache.bench import run_bench

        asyncio.run(run_bench(settings, calls=args.calls))
        return 0
    from solcache.services.runner import serve

    try:
        return asyncio.run(
            serve(
                settings,
                duration_s=args.duration,
                force_embedded=args.embedded_redis,
                status_line=not args.quiet and sys.stderr.isatty(),
            )
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
