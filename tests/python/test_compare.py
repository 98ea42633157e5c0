"""The peer comparison of ``make compare`` (``benches/compare.py`` and its ``comparison``
package) against real redis-servers.

Tiny call counts: these check the rows, the numbers' sanity and the goals' wording, never a
timing threshold. ``make test`` installs the peers (requirements-dev.txt, the same pins as
``make compare``), so every peer row must be measured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import solcache
from comparison import GOALS, PeerPrice, decode_price, run_comparison
from solcache.latency import BenchConfig
from solcache.latency.clients import read_fields
from test_latency import assert_sane

ROOT = Path(__file__).resolve().parents[2]
HAS_REDIS_BENCHMARK = shutil.which("redis-benchmark") is not None


def test_peers_decode_what_solcache_writes() -> None:
    data = solcache.PriceData("SOL", "187.234500001", source="pyth")
    got = decode_price(data.to_json().encode())
    assert isinstance(got, PeerPrice)
    assert (got.token, got.price, got.source) == ("SOL", data.price, "pyth")
    assert abs((got.timestamp - data.timestamp).total_seconds()) < 1e-5
    assert decode_price(None) is None


def test_every_row_reads_price_and_timestamp() -> None:
    class Probe:
        def __init__(self) -> None:
            self.read: list[str] = []

        def __getattr__(self, name: str) -> object:
            self.read.append(name)
            return name

    one, many = Probe(), {"SOL": Probe(), "USDC": None}
    assert read_fields(one) is one and one.read == ["price", "timestamp"]
    assert read_fields(many) is many and many["SOL"].read == ["price", "timestamp"]  # type: ignore[union-attr]


@pytest.mark.skipif(not HAS_REDIS_BENCHMARK, reason="redis-benchmark is not installed")
def test_comparison_table_against_a_real_server(redis_server, tmp_path: Path) -> None:
    calls, rounds = 60, 2
    comparison = run_comparison(
        BenchConfig(
            redis_server.url,
            tuple(solcache.MVP_TOKENS),
            calls=calls,
            warmup=5,
            raw_requests=2000,
            title="test comparison",
            command="pytest",
        ),
        rounds=rounds,
    )
    report = comparison.report
    keys = {r.key for r in report.rows}
    expected = {"raw.c1.before", "raw.throughput", "raw.throughput.c200"}
    clients = (
        "solcache-async",
        "solcache-sync",
        "redis-py-asyncio",
        "redis-py-asyncio-default-pool",
        "redis-py-sync",
    )
    for client in clients:
        expected |= {f"{client}.get", f"{client}.get_many"}
    expected |= {"coredis.get", "valkey-glide.get_many"}
    concurrent = ("solcache-async", "redis-py-asyncio", "redis-py-asyncio-default-pool")
    expected |= {f"{c}.get.c{n}" for c in concurrent for n in (20, 200)}
    assert expected <= keys, sorted(expected - keys)
    assert_sane(report, calls)
    # Rounds: each row and the raw run measured in every round, ratios taken per round.
    assert report.settings["rounds"] == rounds
    assert len(report.machine["raw_c1_p50_us_per_round"].split(", ")) == rounds
    for key in ("solcache-async.get", "solcache-sync.get", "redis-py-asyncio.get"):
        assert len(comparison.ratios[key]) == rounds, (key, comparison.ratios)
    # CPU time per call beside the wall time, for every client row (not redis-benchmark's).
    for row in report.rows:
        if row.timing is not None and not row.key.startswith("raw."):
            assert row.timing.cpu_us is not None and row.timing.cpu_us > 0, row
    # Each concurrent row is compared with redis-benchmark at as many connections.
    for n in (20, 200):
        row = report.row(f"solcache-async.get.c{n}")
        assert row is not None and report.baseline(row)[0] == f"-c {n}"
    # The raw round trip and solcache's async rows are always measured.
    for key in ("raw.c1.before", "raw.throughput", "solcache-async.get", "solcache-async.get.c200"):
        row = report.row(key)
        assert row is not None and row.timing is not None, row
    assert report.raw_p50_us is not None and report.raw_ops_per_s is not None
    # make test installs the peers (requirements-dev.txt): every row is measured, and a peer
    # that fails is a failure here, not a row that says so.
    for key in sorted(expected):
        row = report.row(key)
        assert row is not None and row.timing is not None, row
    # Goals: one line each, judged whenever their row was measured.
    goals = comparison.goals
    assert [g.goal for g in goals] == list(GOALS)
    by_key = {(g.goal.key, g.goal.metric): g for g in goals}
    assert by_key["solcache-async.get", "p50"].met is not None
    assert by_key["solcache-async.get.c20", "share"].met is not None
    text = comparison.render()
    assert "Goals, against this run's raw round trip:" in text
    assert text.index("Goals") < text.index("Machine and software:")
    assert ("met" in text) and ("p50/raw" in text) and ("CPU µs" in text) and ("-c 200" in text)
    assert "redis-benchmark -h 127.0.0.1" in text and "GET price:SOL" in text
    assert report.machine["redis_server"] == redis_server.version
    assert report.machine["nproc"].isdigit()
    assert report.machine["peers"].startswith("redis ")
    data = json.loads(json.dumps(comparison.to_json()))
    assert len(data["rows"]) == len(report.rows) and len(data["goals"]) == len(GOALS)
    c200 = next(r for r in data["rows"] if r["key"] == "solcache-async.get.c200")
    assert c200["raw_throughput_baseline"] == "redis-benchmark -c 200 -P 1"
    # Seeded the way solcache writes, under the real keys.
    assert redis_server.raw("EXISTS", "price:SOL", "price:RAY") == 2


@pytest.mark.skipif(not HAS_REDIS_BENCHMARK, reason="redis-benchmark is not installed")
def test_compare_script_runs_on_its_own_server_and_writes_json(tmp_path: Path) -> None:
    out_json = tmp_path / "compare.json"
    # fmt: off
    cmd = [
        sys.executable, str(ROOT / "benches" / "compare.py"), "--no-install", "--calls", "20",
        "--warmup", "2", "--raw-requests", "1000", "--callers", "4", "--rounds", "2",
        "--json", str(out_json),
    ]
    # fmt: on
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "solcache compare: private redis-server on 127.0.0.1:" in run.stdout, run.stdout
    assert "Goals, against this run's raw round trip:" in run.stdout, run.stdout
    assert "redis-py asyncio" in run.stdout and "valkey-glide asyncio" in run.stdout, run.stdout
    data = json.loads(out_json.read_text())
    assert [g["goal"] for g in data["goals"]] == [g.text for g in GOALS]
    assert {"solcache-async.get", "solcache-sync.get", "coredis.get"} <= {
        r["key"] for r in data["rows"]
    }
    assert "peers" in data["machine"] and "redis" in data["machine"]["peers"]


def test_make_test_installs_the_peers_make_compare_measures() -> None:
    from comparison.peers import PEER_REQUIREMENTS

    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    pinned = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert set(PEER_REQUIREMENTS.values()) <= pinned, set(PEER_REQUIREMENTS.values()) - pinned
