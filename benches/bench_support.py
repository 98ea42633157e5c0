"""Helpers shared by the Python benchmarks: a private redis-server, percentiles, redis-benchmark."""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime

import solcache
from solcache.services.private_redis import PrivateRedis


class BenchRedis(PrivateRedis):
    """solcache's private redis-server, on TCP (127.0.0.1:port) and its unix socket."""

    def __init__(self) -> None:
        super().__init__(tcp=True)

    def url(self, transport: str = "tcp") -> str:
        return self.unix_url if transport == "unix" else self.tcp_url

    def command(self, *args: str) -> str | None:
        """One command over a plain socket; the first reply line, or None when unreachable."""
        payload = b"".join(
            [f"*{len(args)}\r\n".encode()]
            + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
        )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(payload)
                return sock.makefile("rb").readline().decode().strip().lstrip("+")
        except OSError:
            return None


@dataclass
class Latency:
    """Percentiles of individually timed calls, in microseconds."""

    calls: int
    mean: float
    p50: float
    p99: float
    rate: float = 0.0  # calls per second, where it applies

    @classmethod
    def of(cls, ns: list[int], rate: float = 0.0) -> Latency:
        ns = sorted(ns)

        def pct(p: int) -> float:
            return ns[min(len(ns) * p // 100, len(ns) - 1)] / 1000

        return cls(len(ns), statistics.fmean(ns) / 1000, pct(50), pct(99), rate)


def median_of(rounds: list[Latency]) -> Latency:
    """Median of each field over rounds (timings on a small shared machine are noisy)."""
    return Latency(
        sum(r.calls for r in rounds),
        statistics.median(r.mean for r in rounds),
        statistics.median(r.p50 for r in rounds),
        statistics.median(r.p99 for r in rounds),
        statistics.median(r.rate for r in rounds),
    )


def redis_benchmark(
    server: BenchRedis, *, clients: int = 1, n: int = 20_000, unix: bool = False
) -> Latency | None:
    """``redis-benchmark -t get -P 1`` against ``server``; None when it is not installed."""
    if shutil.which("redis-benchmark") is None:
        return None
    where = ["-s", server.unix_socket] if unix else ["-h", "127.0.0.1", "-p", str(server.port)]
    # fmt: off
    cmd = [
        "redis-benchmark", *where, "-t", "get", "-P", "1", "-c", str(clients), "-n", str(n),
        "--csv",
    ]
    # fmt: on
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_..."
    for line in out.splitlines():
        if line.startswith('"GET"'):
            f = [float(v.strip('"')) for v in line.split(",")[1:]]
            return Latency(n, f[1] * 1000, f[3] * 1000, f[5] * 1000, f[0])
    return None


def prices() -> list[solcache.PriceData]:
    now = datetime.now(UTC)
    return [solcache.PriceData(t, "187.234500001", now, "bench") for t in solcache.MVP_TOKENS]


@dataclass
class Caches:
    """A pool per transport; ``cache[transport]`` writes with the production 2 s TTL."""

    pools: dict[str, solcache.RedisPool]
    cache: dict[str, solcache.PriceCache]
    prices: list[solcache.PriceData]
