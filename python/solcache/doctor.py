"""`solcache doctor`: check the configured Redis and say what to fix."""

from __future__ import annotations

import statistics
import sys
from typing import TextIO

from solcache.config import Settings
from solcache.exceptions import (
    AuthenticationError,
    InvalidInputError,
    ResponseError,
    SolcacheError,
    UnsupportedServerError,
)
from solcache.redis_pool import RedisPool

__all__ = ["connect_fix", "run_doctor"]

#: Round trips above this suggest a remote or overloaded server.
RTT_WARN_MS = 1.0


def connect_fix(error: SolcacheError, url: str) -> str:
    """What to do about ``error`` from connecting to ``url``, by what the error means."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if isinstance(error, InvalidInputError):
        if scheme in ("http", "https"):
            return (
                f"that is an {scheme}:// URL (a web address, e.g. the dashboard's); Redis URLs "
                "look like redis://127.0.0.1:6379/0, rediss://host:6380/0 (TLS) or "
                "unix:///run/redis/redis.sock"
            )
        return (
            "write the URL as redis://[user:password@]host:port/db, rediss://… (TLS), "
            "unix:///path/to/redis.sock, redis+cluster://host:port,host:port (Redis Cluster) "
            "or redis+sentinel://host:port,host:port/primary_name (Sentinel)"
        )
    if isinstance(error, AuthenticationError):
        return (
            "check the user and password in the URL (redis://user:password@host:port/db) "
            "against the server's ACL users or requirepass"
        )
    if isinstance(error, UnsupportedServerError):
        return "upgrade the server to Redis 6.2 or newer (streams need XAUTOCLAIM)"
    if isinstance(error, ResponseError):
        return "the server refused the connection's setup: check the database number in the URL"
    return "start redis-server, or set SOLCACHE_REDIS_URL to a reachable server"


async def run_doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print one line per check; return 0 when nothing needs fixing, 1 otherwise."""
    problems = 0

    def say(mark: str, text: str) -> None:
        print(f"{mark} {text}", file=out)

    url = settings.redacted_redis_url
    try:
        pool = await RedisPool.connect(settings=settings, max_size=2)
    except SolcacheError as e:
        say("✗", f"cannot use Redis at {url}: {e}")
        say(" ", f"fix: {connect_fix(e, settings.effective_redis_url)}")
        return 1
    async with pool:
        say("✓", f"reachable: {url}")
        say("✓", f"Redis {pool.redis_version} (solcache needs 6.2 or newer)")
        rtts = [h.rtt_ms for h in [await pool.health() for _ in range(20)] if h.rtt_ms is not None]
        rtt = statistics.median(rtts) if rtts else float("nan")
        if rtt > RTT_WARN_MS:
            problems += 1
            say("!", f"round trip {rtt:.3f} ms (median of 20 PINGs): sub-millisecond reads need a")
            say(" ", "  Redis on the same host or network; prefer a unix:// socket locally")
        else:
            say("✓", f"round trip {rtt:.3f} ms (median of 20 PINGs)")
        memory = await pool.info("memory")
        maxmemory = int(memory.get("maxmemory", "0"))
        policy = memory.get("maxmemory_policy", "?")
        if maxmemory == 0:
            problems += 1
            say("!", "maxmemory is 0 (unlimited): set maxmemory so the cache cannot exhaust the")
            say(" ", "  host, with maxmemory-policy volatile-lru (evicts only TTL'd cache keys)")
        elif policy not in ("volatile-lru", "volatile-lfu", "volatile-ttl"):
            problems += 1
            say("!", f"maxmemory-policy {policy}: use volatile-lru so only TTL'd cache keys are")
            say(" ", "  evicted; streams have no TTL and must not be evicted (allkeys-*) nor block")
            say(" ", "  writes when full (noeviction)")
        else:
            say("✓", f"maxmemory {maxmemory} bytes, policy {policy}")
        persistence = await pool.info("persistence")
        if persistence.get("aof_enabled") == "1":
            say("✓", "AOF persistence on: published events survive a restart")
        else:
            problems += 1
            say("!", "AOF persistence off: events in streams are lost when Redis restarts; set")
            say(
                " ",
                "  appendonly yes (appendfsync everysec) if at-least-once must survive restarts",
            )
    say("✓" if problems == 0 else "!", f"{problems} thing(s) to fix" if problems else "all good")
    return 0 if problems == 0 else 1
