"""`solcache bench` and :mod:`solcache.latency` (solcache against the raw round trip) against
real redis-servers.

Tiny call counts: these check the rows and the numbers' sanity, never a timing threshold.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from solcache.latency import (
    BenchConfig,
    Report,
    Target,
    parse_redis_benchmark,
    percentile,
    run_benchmark,
)
from solcache.latency.redis_benchmark import RawUnavailable, connection_args

HAS_REDIS_BENCHMARK = shutil.which("redis-benchmark") is not None

# Real outputs of redis-benchmark 7.0.15 (-c 1 GET price:SOL), one per format.
CSV_OUTPUT = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n'
    '"GET price:SOL","29069.77","0.032","0.024","0.031","0.047","0.079","4.183"\n'
)
SUMMARY_OUTPUT = (
    "GET: rps=31255.0 (overall: 31306.8) avg_msec=0.029 (overall: 0.029)\r"
    "99.980% <= 1.103 milliseconds (cumulative count 4999)\n"
    "100.000% <= 3.103 milliseconds (cumulative count 5000)\n\n"
    "Summary:\n"
    "  throughput summary: 30487.80 requests per second\n"
    "  latency summary (msec):\n"
    "          avg       min       p50       p95       p99       max\n"
    "        0.030     0.024     0.031     0.031     0.063     2.375\n"
)
QUIET_OUTPUT = (
    "GET price:SOL: rps=0.0 (overall: inf) avg_msec=0.035 (overall: 0.035)\r"
    "GET price:SOL: 28248.59 requests per second, p50=0.031 msec\n"
)


def test_parse_redis_benchmark_reads_every_output_format() -> None:
    csv = parse_redis_benchmark(CSV_OUTPUT, requests=5000, clients=1)
    assert csv is not None
    assert (csv.ops_per_s, csv.p50_us, csv.p99_us, csv.mean_us) == (29069.77, 31.0, 79.0, 32.0)
    summary = parse_redis_benchmark(SUMMARY_OUTPUT, requests=5000, clients=20)
    assert summary is not None and summary.callers == 20
    assert (summary.ops_per_s, summary.p50_us, summary.p99_us) == (30487.8, 31.0, 63.0)
    quiet = parse_redis_benchmark(QUIET_OUTPUT, requests=5000, clients=1)
    assert quiet is not None and quiet.p99_us is None and quiet.mean_us is None
    assert (quiet.ops_per_s, quiet.p50_us) == (28248.59, 31.0)
    assert parse_redis_benchmark("Could not connect to Redis at 127.0.0.1:1", 1, 1) is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_targets_and_redis_benchmark_arguments() -> None:
    tcp = Target.from_url("redis://127.0.0.1:6390/2")
    assert (tcp.host, tcp.port, tcp.db, tcp.tls) == ("127.0.0.1", 6390, 2, False)
    assert connection_args(tcp) == ["-h", "127.0.0.1", "-p", "6390", "--dbnum", "2"]
    unix = Target.from_url("unix:///tmp/r.sock?db=1")
    assert connection_args(unix) == ["-s", "/tmp/r.sock", "--dbnum", "1"]
    tls = Target.from_url("rediss://cache.example:6380#insecure")
    assert connection_args(tls)[-2:] == ["--tls", "--insecure"]
    secret = Target.from_url("redis://alice:pw@127.0.0.1:6379/0")
    assert (secret.username, secret.password) == ("alice", "pw")
    assert "pw" not in repr(secret) and "pw" not in secret.redacted_url
    with pytest.raises(RawUnavailable, match="password"):
        connection_args(secret)  # never on a command line
    with pytest.raises(ValueError):
        Target.from_url("http://127.0.0.1/")


def assert_sane(report: Report, calls: int) -> None:
    """Every row measured with plausible numbers, or unmeasured with a note saying why."""
    for row in report.rows:
        if row.timing is None:
            assert row.note, row
            continue
        t = row.timing
        assert t.calls > 0 and t.ops_per_s > 0 and math.isfinite(t.ops_per_s), row
        assert t.p50_us > 0, row
        if t.p99_us is not None:
            assert t.p50_us <= t.p99_us, row
        if row.section == "sequential" and not row.key.startswith("raw"):
            assert t.calls == calls and t.errors == 0, row


@pytest.mark.skipif(not HAS_REDIS_BENCHMARK, reason="redis-benchmark is not installed")
def test_benchmark_over_a_unix_socket(redis_server) -> None:
    cfg = BenchConfig(
        redis_server.unix_url,
        ("bench-SOL", "bench-USDC"),
        calls=30,
        warmup=3,
        raw_requests=1000,
        callers=(4,),
        use_uvloop=True,
    )
    report = run_benchmark(cfg)
    raw = report.row("raw.c1.before")
    assert raw is not None and raw.timing is not None, raw  # redis-benchmark -s
    assert any("-s " in c for c in report.commands)
    keys = {r.key for r in report.rows}
    assert {"solcache-async.get.c4", "solcache-async.get_many", "solcache-sync.get"} <= keys
    assert all(k.startswith(("raw.", "solcache-")) for k in keys), keys  # no other client
    assert_sane(report, 30)
    uvloop = importlib.util.find_spec("uvloop") is not None
    assert report.machine["event_loop"].startswith("uvloop" if uvloop else "asyncio")


def test_cli_bench_writes_only_throwaway_keys_and_json(redis_server, tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    # fmt: off
    cmd = [
        sys.executable, "-m", "solcache", "bench", "--redis-url", redis_server.url,
        "--calls", "40", "--json", str(out_json),
    ]
    # fmt: on
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for row in ("solcache async get ", "solcache async get_many (5)", "200 callers", "p50/raw"):
        assert row in run.stdout, run.stdout
    assert "solcache bench --redis-url" in run.stdout  # the exact command line
    # solcache against the raw round trip only: no other client, no goals.
    for absent in ("redis-py", "coredis", "glide", "Goals", "goal"):
        assert absent not in run.stdout, run.stdout
    data = json.loads(out_json.read_text())
    assert {r["key"] for r in data["rows"]} >= {"solcache-async.get", "solcache-async.set"}
    assert all(r["key"].startswith(("raw.", "solcache-")) for r in data["rows"]), data["rows"]
    assert "goals" not in data
    keys = set(redis_server.raw("KEYS", "*"))
    assert keys and all(k.startswith("price:bench-") or k == "stream:solcache-bench" for k in keys)
    assert 0 < redis_server.raw("PTTL", "price:bench-USDC") <= 60_000


def test_cli_bench_on_an_unreachable_server_says_so() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "solcache", "bench", "--redis-url", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "cannot use Redis at redis://127.0.0.1:1/0" in run.stderr
