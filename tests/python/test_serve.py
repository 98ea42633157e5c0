"""`solcache serve` end to end: the real CLI in a subprocess against private Redis servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from fake_hermes import FakeFeed, FakeHermes
from service_process import serve
from solcache import MVP_TOKENS
from solcache.sources import PYTH_FEED_IDS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.topologies


def test_serve_keeps_prices_fresh_publishes_10hz_and_serves_metrics_and_sse(redis_server) -> None:
    with serve("--redis-url", redis_server.url, "--duration", "20", "--seed", "3") as svc:
        port = svc.port
        window_start_ms = redis_ms(redis_server)
        started = time.monotonic()
        # Every MVP price exists with a TTL of at most 2 s, sampled for ~2 s.
        while time.monotonic() - started < 2.0:
            for token in MVP_TOKENS:
                pttl = redis_server.raw("PTTL", f"price:{token}")
                assert 0 < pttl <= 2000, f"price:{token} PTTL {pttl}"
            time.sleep(0.1)

        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        names = {f.name for f in text_string_to_metric_families(metrics)}
        assert "solcache_operation_latency_seconds" in names, sorted(names)

        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=5) as sse:
            lines = []
            for line in sse.iter_lines():
                lines.append(line)
                if sum(1 for x in lines if x.startswith("id:")) >= 3:
                    break
        assert any(x.startswith("event: price_update") for x in lines), lines[:20]
        last_id = [x for x in lines if x.startswith("id:")][-1].split(":", 1)[1].strip()
        # Reconnect with Last-Event-ID: the first event replayed comes after that id.
        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/events", headers={"Last-Event-ID": last_id}, timeout=5
        ) as sse:
            for line in sse.iter_lines():
                if line.startswith("id:"):
                    assert line.split(":", 1)[1].strip() != last_id
                    break
        # 10 Hz per token: ticks of each token per second, from the ids (ms) of its entries.
        deadline = time.monotonic() + 30
        while redis_ms(redis_server) - window_start_ms < RATE_WINDOW_MS:
            assert time.monotonic() < deadline, "the Redis clock did not advance"
            time.sleep(0.2)
        rates = tick_rates_hz(redis_server, window_start_ms, window_start_ms + RATE_WINDOW_MS)
        assert set(rates) == set(MVP_TOKENS), rates
        for token, rate_hz in rates.items():
            assert 10 - RATE_TOLERANCE_HZ <= rate_hz <= 10 + RATE_TOLERANCE_HZ, (token, rates)
    out = svc.output()
    assert svc.proc.returncode == 0, out
    assert "dashboard at http://127.0.0.1:" in out


# A window of several seconds, and ±25 %: the grid-scheduled ticks cannot exceed 10 Hz over a
# window, and a loaded 2-core machine skips a tick now and then, not one in four.
RATE_WINDOW_MS = 6000
RATE_TOLERANCE_HZ = 2.5


def redis_ms(server) -> int:
    """The server's clock in ms (the clock stream entry ids are made from)."""
    seconds, micros = server.raw("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


def tick_rates_hz(server, from_ms: int, to_ms: int) -> dict[str, float]:
    """Per token, price-updates entries per second between its first and last entry ids
    within [from_ms, to_ms]: (entries - 1) / span."""
    stamps: dict[str, list[int]] = {}
    for entry_id, flat in server.raw("XRANGE", "stream:price-updates", from_ms, to_ms):
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        token = json.loads(fields["data"])["token"]
        stamps.setdefault(token, []).append(int(entry_id.split("-")[0]))
    return {
        token: (len(ms) - 1) * 1000 / (ms[-1] - ms[0])
        for token, ms in stamps.items()
        if len(ms) > 1 and ms[-1] > ms[0]
    }


def test_serve_with_the_pyth_source_against_a_fake_hermes(redis_server) -> None:
    now = int(time.time())
    feeds = {
        fid: FakeFeed(price=14523456789 + i, expo=-8, publish_time=now)
        for i, fid in enumerate(PYTH_FEED_IDS.values())
    }
    with FakeHermes(feeds, sse_updates_per_connection=None, sse_interval_s=0.05) as hermes:
        env = {
            "SOLCACHE_PRICE_SOURCE": "pyth",
            "SOLCACHE_PYTH_BASE_URL": hermes.url,
        }
        with serve("--redis-url", redis_server.url, "--duration", "6", env=env) as svc:
            deadline = time.monotonic() + 10
            sol = None
            while time.monotonic() < deadline:
                sol = redis_server.raw("GET", "price:SOL")
                if sol:
                    break
                time.sleep(0.1)
            assert sol is not None, "the Pyth price reached Redis"
            assert '"source":"pyth"' in sol
            # price * 10^expo exactly: 8 decimals, near 145.23 (the fake walks the price).
            assert re.search(r'"price":"145\.\d{8}"', sol), sol
        assert hermes.stream_connections >= 1
    assert svc.proc.returncode == 0, svc.output()


def test_embedded_redis_starts_and_stops() -> None:
    with serve("--embedded-redis", "--duration", "3") as svc:
        assert svc.get("/healthz").status_code == 200
    out = svc.output()
    assert svc.proc.returncode == 0, out
    match = re.search(r"started a private redis-server \(unix://(\S+)/redis\.sock", out)
    assert match, out
    assert "private redis-server stopped" in out
    assert not Path(match.group(1)).exists(), "its temp dir is removed"


def test_an_unreachable_explicit_url_fails_clearly() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "solcache",
            "serve",
            "--redis-url",
            f"redis://127.0.0.1:{free_port()}/0",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "cannot use Redis at redis://127.0.0.1:" in run.stderr
    assert "solcache doctor" in run.stderr
