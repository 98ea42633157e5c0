"""The dashboard in real headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright)
against `solcache serve` in a subprocess on a private redis-server: the page shows the prices
Redis holds (within one tick), and after the service restarts the page resumes by itself
(EventSource reconnects with Last-Event-ID, the gap is replayed) without a reload."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conftest import RedisServer, free_port
from service_process import serve

CHROMIUM = "/usr/bin/chromium"
EMPTY = "\u2013"  # what the page shows before a value arrives (an en dash)
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing (apt-get install chromium; `make test` installs it)",
)

SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
TOKENS = ("SOL", "USDC", "BONK", "JitoSOL", "RAY")
SCREENSHOT = Path(tempfile.gettempdir()) / "solcache-dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# 4 ticks a second: a tick (250 ms) outlasts the page's render interval (100 ms) plus the
# event's way through the gateway even on a busy 2-core machine; the comparison below is by
# the order of the ticks in Redis, never by a clock.
SERVE_ENV = {"SOLCACHE_PUBLISH_HZ": "4"}


def wait_until(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def redis_ticks(server: RedisServer, token: str) -> list[tuple[str, Decimal]]:
    """`token`'s latest price updates in Redis, newest first: (entry id, price)."""
    entries = server.raw("XREVRANGE", "stream:price-updates", "+", "-", "COUNT", "100")
    ticks = []
    for entry_id, fields in entries:
        data = json.loads(dict(zip(fields[::2], fields[1::2], strict=True))["data"])
        if data["token"] == token:
            ticks.append((entry_id, Decimal(data["price"])))
    return ticks


def entry_order(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


def assert_page_shows_redis(page: Any, server: RedisServer, samples: int = 8) -> None:
    """Each token's price on the page is the one Redis held when the page was read, or the
    tick before it; and `price:{token}` holds the latest tick."""
    for n in range(samples):
        token = TOKENS[n % len(TOKENS)]
        before = redis_ticks(server, token)
        shown = page.locator(f'[data-testid="price-{token}"]').get_attribute("data-price")
        after = redis_ticks(server, token)
        key = Decimal(json.loads(server.raw("GET", f"price:{token}"))["price"])
        assert len(before) >= 2 and shown, (token, before, shown)
        # Ticks no older than the one before the latest at the time of reading.
        oldest = entry_order(before[1][0])
        allowed = [price for entry_id, price in after if entry_order(entry_id) >= oldest]
        assert Decimal(shown) in allowed, f"{token}: page {shown}, Redis {after[:4]}"
        newest = [price for _, price in redis_ticks(server, token)[:2]]
        assert key in newest, f"price:{token} holds {key}, the stream's latest {newest}"
        time.sleep(0.1)


def test_dashboard_shows_what_redis_holds_and_resumes_after_serve_restarts(
    fresh_redis: RedisServer,
) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    args = ("--redis-url", fresh_redis.url, "--seed", "7")
    with (
        tempfile.TemporaryDirectory(prefix="solcache-chromium-") as profile,
        sync_playwright() as p,
    ):
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900},
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            conn = page.locator('[data-testid="conn"]')
            sol = page.locator('[data-testid="price-SOL"]')

            def state() -> str | None:
                return conn.get_attribute("data-state")

            def sol_price() -> str | None:
                return sol.get_attribute("data-price")

            with serve(*args, env=SERVE_ENV, port=port) as served:
                page.goto(served.url + "/")
                wait_until(lambda: state() == "live", 15, "the event stream to open")
                for token in TOKENS:
                    shown = page.locator(f'[data-testid="price-{token}"]')
                    wait_until(
                        lambda shown=shown: shown.inner_text() not in ("", EMPTY),
                        15,
                        f"a {token} price",
                    )
                first = sol_price()
                wait_until(lambda: sol_price() != first, 10, "SOL to change")
                assert_page_shows_redis(page, fresh_redis)
                wait_until(
                    lambda: (
                        page.locator('[data-testid="status-redis"]').inner_text() == "reachable"
                    ),
                    10,
                    "the health panel",
                )
                page.screenshot(path=str(SCREENSHOT), full_page=True)
                page.evaluate("window.__notReloaded = true")
            # The service is gone: the page says so and keeps what it showed.
            wait_until(lambda: state() == "reconnecting", 10, "the page to notice the restart")
            assert page.locator("#banner").is_visible()
            page.screenshot(path=str(SCREENSHOT.with_name("solcache-dashboard-reconnecting.png")))
            frozen = sol_price()
            # Published while the service is down: only a Last-Event-ID replay brings it.
            gap = {"id": "gap-1", "action": "buy", "token_pair": "SOL/USDC", "amount": "777.25",
                   "price": "187.5", "timestamp": "2026-12-01T15:00:00Z"}  # fmt: skip
            fresh_redis.raw(
                "XADD", "stream:trade-events", "*", "type", "trade_executed", "data",
                json.dumps(gap),
            )  # fmt: skip

            with serve(*args, env=SERVE_ENV, port=port) as served:
                wait_until(lambda: state() == "live", 15, "the page to reconnect")
                trades = page.locator('#log li[data-type="trade_executed"]')
                wait_until(
                    lambda: "777.25" in " ".join(trades.all_inner_texts()),
                    10,
                    "the trade published during the restart",
                )
                wait_until(lambda: sol_price() != frozen, 10, "SOL to change after the restart")
                assert_page_shows_redis(page, fresh_redis)
                assert page.evaluate("window.__notReloaded") is True  # resumed, not reloaded
                assert served.metrics()["solcache_sse_messages_replayed_total"] > 0
                assert not page.locator("#banner").is_visible()
            assert errors == []
        finally:
            context.close()


def test_demo_on_a_phone_shows_pairs_and_every_event_type(fresh_redis: Any) -> None:
    """`solcache serve` as `make demo` runs it (simulated market), seen 420 px wide."""
    from playwright.sync_api import sync_playwright

    with (
        serve("--redis-url", fresh_redis.url, "--seed", "11") as served,
        tempfile.TemporaryDirectory(prefix="solcache-chromium-") as profile,
        sync_playwright() as p,
    ):
        assert served.get("/api/pools").json()["pairs"][SOL_USDC] == "SOL/USDC"
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 420, "height": 900},
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(served.url + "/")
            pool_row = page.locator(f'[data-testid="pool-{SOL_USDC}"]')
            wait_until(lambda: "SOL/USDC" in pool_row.inner_text(), 15, "the SOL/USDC pool row")
            # Trades and positions every ~2 s, the simulator's status every 5 s.
            for kind in ("trade_executed", "position_update", "system_status"):
                entry = page.locator(f'#log li[data-type="{kind}"]')
                wait_until(lambda entry=entry: entry.count() > 0, 20, f"a {kind} event")
            assert "SOL/USDC" in page.locator("#impact").inner_text()
            widths = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            page.screenshot(
                path=str(SCREENSHOT.with_name("solcache-dashboard-420px.png")), full_page=True
            )
            assert widths[0] <= widths[1], f"the page scrolls sideways at 420 px: {widths}"
            # Tiny and huge values read as plain decimals, never "1.000e-7".
            shown = page.evaluate(
                "[fmtPrice(0.0000001234), fmtPrice(0.5), fmtNum(0.0000000665), fmtNum(-0.00002)]"
            )
            assert shown == ["0.0000001234", "0.5", "0.0000000665", "-0.00002"], shown
            assert errors == []
        finally:
            context.close()
