"""The dashboard in real headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright):
the page loads, prices change at 10 Hz, and after the gateway restarts the page resumes by
itself (EventSource reconnects with Last-Event-ID) without a reload."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import solcache
from solcache import PoolState, PriceData, PriceUpdate, SystemStatus, TradeExecuted

CHROMIUM = "/usr/bin/chromium"
EMPTY = "\u2013"  # what the page shows before a value arrives (an en dash)
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing (apt-get install chromium; `make test` installs it)",
)

T = TypeVar("T")
SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
LEVELS = {"SOL": 187.23, "USDC": 1.0001, "BONK": 0.00002345, "JitoSOL": 221.5, "RAY": 4.12}
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


class LoopThread:
    """An asyncio loop in a background thread (Playwright's sync API owns the test thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Backend:
    """Redis pool, a 10 Hz publisher and a restartable gateway, all in the loop thread."""

    def __init__(self, url: str, port: int) -> None:
        self.url = url
        self.port = port
        self.pool: solcache.RedisPool | None = None
        self.publisher: asyncio.Task[None] | None = None
        self.gateway: Any = None
        self.serving: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.pool = await solcache.RedisPool.connect(self.url)
        self.publisher = asyncio.create_task(self._publish())

    async def _publish(self) -> None:
        """Prices for five tokens and the SOL-USDC pool at 10 Hz, plus the odd trade."""
        assert self.pool is not None
        rng = random.Random(7)
        events = solcache.EventStream(self.pool)
        prices, pools = solcache.PriceCache(self.pool), solcache.PoolStateCache(self.pool)
        px = dict(LEVELS)
        reserve = 41250.0
        await events.publish(SystemStatus("price-service", "healthy", "started"))
        for tick in range(1_000_000):
            for token in px:
                px[token] *= 1 + rng.gauss(0, 0.001)
            reserve *= 1 + rng.gauss(0, 0.0005)
            await prices.set_many(
                PriceData(t, f"{v:.10g}", source="simulated") for t, v in px.items()
            )
            await events.publish_many(PriceUpdate(t, f"{v:.10g}") for t, v in px.items())
            await pools.set(
                PoolState(
                    SOL_USDC,
                    "12500000.5",
                    f"{reserve:.6f}",
                    f"{reserve * px['SOL']:.6f}",
                    "98765432.1",
                )
            )
            if tick % 7 == 3:
                side = rng.choice(["buy", "sell"])
                await events.publish(
                    TradeExecuted(f"tx{tick}", side, "SOL/USDC", "12.5", f"{px['SOL']:.4f}")
                )
            await asyncio.sleep(0.1)

    async def start_gateway(self) -> None:
        from solcache.web import GatewayServer, create_app

        assert self.pool is not None
        app = create_app(
            self.pool,
            solcache.EventStream(self.pool),
            prices=solcache.PriceCache(self.pool),
            pools=solcache.PoolStateCache(self.pool),
            tokens=list(LEVELS),
            pool_addresses=[SOL_USDC],
            status=lambda: {"price_service": {"degraded": False, "source": "simulated"}},
        )
        self.gateway = GatewayServer(app, port=self.port, install_signal_handlers=False)
        self.serving = asyncio.create_task(self.gateway.serve())
        deadline = time.monotonic() + 10
        while not self.gateway.started:
            assert not self.serving.done() and time.monotonic() < deadline, "gateway did not start"
            await asyncio.sleep(0.01)

    async def stop_gateway(self) -> None:
        if self.serving is not None and not self.serving.done():
            self.gateway.should_exit = True
            await asyncio.wait_for(self.serving, 10)

    async def close(self) -> None:
        await self.stop_gateway()
        if self.publisher is not None:
            self.publisher.cancel()
            await asyncio.gather(self.publisher, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()


@pytest.fixture
def backend(redis_server: Any) -> Iterator[tuple[LoopThread, Backend]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    loop = LoopThread()
    backend = Backend(redis_server.url, port)
    try:
        loop.run(backend.open())
        loop.run(backend.start_gateway())
        yield loop, backend
    finally:
        loop.run(backend.close())
        loop.close()


def wait_until(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def distinct_values(read: Callable[[], str], for_s: float) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        seen.add(read())
        time.sleep(0.05)
    return seen


def test_dashboard_is_live_and_resumes_after_a_gateway_restart(
    backend: tuple[LoopThread, Backend],
) -> None:
    from playwright.sync_api import sync_playwright

    loop, server = backend
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
            page.goto(f"http://127.0.0.1:{server.port}/")
            conn = page.locator('[data-testid="conn"]')
            sol = page.locator('[data-testid="price-SOL"]')

            def state() -> str | None:
                return conn.get_attribute("data-state")

            wait_until(lambda: state() == "live", 10, "the event stream to open")
            wait_until(lambda: sol.inner_text() not in ("", EMPTY), 10, "a SOL price")
            values = distinct_values(sol.inner_text, 2.0)
            assert len(values) >= 5, f"SOL barely changed in 2 s at 10 Hz: {values}"
            for token in LEVELS:
                assert page.locator(f'[data-testid="price-{token}"]').inner_text() not in (
                    "",
                    EMPTY,
                )
            wait_until(
                lambda: page.locator('[data-testid="status-redis"]').inner_text() == "reachable",
                5,
                "the health panel",
            )
            page.wait_for_timeout(1500)  # longer sparklines for the screenshot
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.evaluate("window.__notReloaded = true")
            loop.run(server.stop_gateway())
            wait_until(lambda: state() == "reconnecting", 5, "the page to notice the restart")
            assert page.locator("#banner").is_visible()
            page.screenshot(path=str(SCREENSHOT.with_name("solcache-dashboard-reconnecting.png")))
            frozen = sol.inner_text()
            page.wait_for_timeout(300)  # events keep being published while the gateway is down

            loop.run(server.start_gateway())
            wait_until(lambda: state() == "live", 10, "the page to reconnect")
            wait_until(lambda: sol.inner_text() != frozen, 5, "SOL to change after the restart")
            values = distinct_values(sol.inner_text, 1.5)
            assert len(values) >= 4, f"SOL stopped changing after the restart: {values}"
            assert page.evaluate("window.__notReloaded") is True  # resumed, not reloaded
            hub = server.gateway.config.app.state.hub
            assert hub.totals().messages_replayed > 0  # Last-Event-ID replayed the gap
            assert not page.locator("#banner").is_visible()
            assert errors == []
        finally:
            context.close()


def test_demo_on_a_phone_shows_pairs_and_every_event_type(fresh_redis: Any) -> None:
    """`solcache serve` as `make demo` runs it (simulated market), seen 420 px wide."""
    from playwright.sync_api import sync_playwright

    from service_process import serve

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
