"""The `solcache` command (also `python -m solcache`): serve, doctor, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solcache.config import Settings

__all__ = ["main"]

#: What `solcache serve` needs beyond the library (module → distribution): the `serve` extra.
SERVE_EXTRA = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "httpx": "httpx",
    "prometheus_client": "prometheus-client",
}


def _missing_serve_extra() -> list[str]:
    """The distributions of the `serve` extra that are not installed here."""
    return [
        dist for module, dist in SERVE_EXTRA.items() if importlib.util.find_spec(module) is None
    ]


def _version() -> str:
    """The installed package's version (the extension is built from the same Cargo.toml)."""
    try:
        return importlib.metadata.version("solcache")
    except importlib.metadata.PackageNotFoundError:  # imported from a tree pip never installed
        from solcache import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="solcache",
        description="Solana price and pool-state cache on Redis. Settings also come from "
        "SOLCACHE_* environment variables (see README).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the services, the live dashboard and /metrics (pip install 'solcache[serve]')",
    )
    serve.add_argument("--host", help="HTTP bind address (SOLCACHE_HTTP_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (SOLCACHE_HTTP_PORT, default 8000)")
    serve.add_argument(
        "--redis-url", help="Redis URL (SOLCACHE_REDIS_URL; unset: a private redis-server)"
    )
    serve.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    serve.add_argument(
        "--embedded-redis",
        action="store_true",
        help="start a private redis-server even when a URL is configured (without a URL "
        "serve always does: it never writes into a Redis it was not pointed at)",
    )
    serve.add_argument("--source", choices=["simulated", "pyth"], help="price source")
    serve.add_argument("--seed", type=int, help="seed of the simulated random walk")
    serve.add_argument("--quiet", action="store_true", help="no live status line")

    doctor = sub.add_parser("doctor", help="check the configured Redis and say what to fix")
    doctor.add_argument("--redis-url", help="Redis URL (SOLCACHE_REDIS_URL)")

    bench = sub.add_parser(
        "bench",
        help="solcache's latency and throughput against the raw round trip of your Redis "
        "(redis-benchmark)",
    )
    bench.add_argument("--redis-url", help="Redis URL (SOLCACHE_REDIS_URL)")
    bench.add_argument("--calls", type=int, default=2000, help="calls per sequential benchmark")
    bench.add_argument(
        "--uvloop", action="store_true", help="run the asyncio rows on uvloop (if installed)"
    )
    bench.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    return p


def _redacted_command(argv: Sequence[str]) -> str:
    """``solcache ARGS`` with any password in a URL argument replaced by ``***``."""
    from solcache._core import redact_url

    def redact(arg: str) -> str:
        name, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if "://" in value:
            return f"{name}{eq}{redact_url(value)}"
        return arg

    return shlex.join(["solcache", *(redact(a) for a in argv)])


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
        from solcache.exceptions import SolcacheError
        from solcache.latency import run_bench

        if args.calls < 1:
            print("solcache bench: --calls must be at least 1", file=sys.stderr)
            return 2
        # The bench loads the server on purpose: its slow-call warnings would only interleave
        # with the progress lines (the table has the latencies).
        logging.getLogger("solcache").setLevel(logging.ERROR)
        try:
            run_bench(
                settings,
                calls=args.calls,
                use_uvloop=args.uvloop,
                json_path=args.json,
                command=_redacted_command(sys.argv[1:] if argv is None else argv),
            )
        except SolcacheError as e:
            print(f"✗ cannot use Redis at {settings.redacted_redis_url}: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        return 0
    if missing := _missing_serve_extra():
        print(
            f"solcache serve needs {', '.join(missing)}: pip install 'solcache[serve]'",
            file=sys.stderr,
        )
        return 2
    from solcache.services.serve import serve

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
