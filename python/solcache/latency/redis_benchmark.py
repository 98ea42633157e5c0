"""``redis-benchmark``: the raw round trip that every ratio is taken against.

It sends ``GET <key>`` for the very key the clients read (``redis-benchmark … GET price:SOL``),
so the raw reply carries the same bytes as a cached read. Its latency histogram is coarse at
tens of microseconds (it reports 31, 39, 47, 63 µs … on a fast loopback), so a ratio to its
p50 carries that step too; its average (``avg_latency_ms``) is exact and printed alongside.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from dataclasses import dataclass

from solcache.latency.target import Target
from solcache.latency.timing import Timing

__all__ = [
    "RawUnavailable",
    "connection_args",
    "parse_redis_benchmark",
    "run_redis_benchmark",
]


class RawUnavailable(Exception):
    """``redis-benchmark`` cannot measure this target; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    rps: float
    p50_ms: float
    p99_ms: float | None
    avg_ms: float | None


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def _from_csv(lines: list[str]) -> _Parsed | None:
    # redis-benchmark ≥ 7 with --csv:
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",...
    for i, line in enumerate(lines):
        if "p50_latency_ms" not in line:
            continue
        header = next(csv.reader([line]))
        for data in lines[i + 1 :]:
            values = next(csv.reader([data]), [])
            if len(values) != len(header):
                continue
            row = dict(zip(header, values, strict=True))
            try:
                return _Parsed(
                    rps=float(row["rps"]),
                    p50_ms=float(row["p50_latency_ms"]),
                    p99_ms=float(row["p99_latency_ms"]) if "p99_latency_ms" in row else None,
                    avg_ms=float(row["avg_latency_ms"]) if "avg_latency_ms" in row else None,
                )
            except (KeyError, ValueError):
                continue
    return None


def _from_summary(lines: list[str]) -> _Parsed | None:
    # Normal output of redis-benchmark ≥ 7:
    #   throughput summary: 52493.44 requests per second
    #   latency summary (msec):
    #           avg       min       p50       p95       p99       max
    #         0.232     0.080     0.231     0.327     0.431     3.239
    rps: float | None = None
    for i, line in enumerate(lines):
        m = re.search(rf"throughput summary:\s*{_NUMBER} requests per second", line)
        if m:
            rps = float(m.group(1))
        if "latency summary" in line and i + 2 < len(lines):
            names = lines[i + 1].split()
            values = lines[i + 2].split()
            if "p50" in names and len(names) == len(values) and rps is not None:
                try:
                    cols = {n: float(v) for n, v in zip(names, values, strict=True)}
                except ValueError:
                    return None
                return _Parsed(rps, cols["p50"], cols.get("p99"), cols.get("avg"))
    return None


def _from_quiet(lines: list[str]) -> _Parsed | None:
    # redis-benchmark -q:  "GET: 29629.63 requests per second, p50=0.031 msec"
    for line in reversed(lines):
        m = re.search(rf"{_NUMBER} requests per second, p50={_NUMBER} msec", line)
        if m:
            return _Parsed(float(m.group(1)), float(m.group(2)), None, None)
    return None


def parse_redis_benchmark(output: str, requests: int, clients: int) -> Timing | None:
    """Throughput and latency from ``redis-benchmark`` output (``--csv``, normal or ``-q``).

    Returns a :class:`Timing` in microseconds and requests per second, or None when the
    output holds no result. ``p99_us``/``mean_us`` are None where the format lacks them.
    """
    lines = [ln.strip() for ln in output.replace("\r", "\n").splitlines() if ln.strip()]
    parsed = _from_csv(lines) or _from_summary(lines) or _from_quiet(lines)
    if parsed is None:
        return None
    return Timing(
        calls=requests,
        p50_us=parsed.p50_ms * 1000,
        p99_us=parsed.p99_ms * 1000 if parsed.p99_ms is not None else None,
        mean_us=parsed.avg_ms * 1000 if parsed.avg_ms is not None else None,
        ops_per_s=parsed.rps,
        callers=clients,
    )


def connection_args(target: Target) -> list[str]:
    """The ``redis-benchmark`` options that reach ``target`` (``-s`` for a unix socket).

    Raises :class:`RawUnavailable` for a password-protected server: ``redis-benchmark`` only
    takes a password on its command line, where every local user could read it.
    """
    if target.password is not None:
        raise RawUnavailable(
            "not measured: the URL has a password and redis-benchmark would show it in the "
            "process list"
        )
    if target.unix_socket is not None:
        args = ["-s", target.unix_socket]
    else:
        args = ["-h", str(target.host), "-p", str(target.port)]
    if target.db:
        args += ["--dbnum", str(target.db)]
    if target.tls:
        args.append("--tls")
        if target.insecure:
            args.append("--insecure")
    return args


def run_redis_benchmark(
    target: Target, key: str, *, clients: int, requests: int, timeout_s: float = 300.0
) -> tuple[Timing, str]:
    """Run ``redis-benchmark -c CLIENTS -P 1 -n REQUESTS --csv GET KEY``.

    Returns the result and the command line that produced it. Raises
    :class:`RawUnavailable` when ``redis-benchmark`` is not on ``PATH``, cannot reach the
    target, or prints nothing parsable.
    """
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise RawUnavailable("not measured: redis-benchmark is not on PATH")
    # fmt: off
    cmd = [
        "redis-benchmark", *connection_args(target), "-c", str(clients), "-P", "1",
        "-n", str(requests), "--csv", "GET", key,
    ]
    # fmt: on
    try:
        run = subprocess.run(
            [exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise RawUnavailable(f"redis-benchmark did not finish within {timeout_s:.0f} s") from e
    timing = parse_redis_benchmark(run.stdout, requests, clients)
    if timing is None:
        # Also try stderr: errors ("Could not connect…") land there.
        detail = (run.stderr.strip() or run.stdout.strip()).splitlines()
        last = detail[-1] if detail else f"exit status {run.returncode}"
        raise RawUnavailable(f"redis-benchmark gave no result: {last[:120]}")
    return timing, " ".join(cmd)
