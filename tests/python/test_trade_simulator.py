"""The demo's trade simulator against real redis-servers: trades, positions and status reach
their streams, and a Redis outage delays them without losing or piling them up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import solcache
from conftest import RedisServer
from solcache import (
    STREAM_TRADE_EVENTS,
    STREAM_UI_EVENTS,
    PositionUpdate,
    SystemStatus,
    TradeExecuted,
)
from solcache.services.trade_simulator import TradeSimulator, simulated_desk
from solcache.sources import (
    PYTH_FEED_IDS,
    PythPriceSource,
    SimulatedPoolSource,
    SimulatedPriceSource,
)
from solcache.sources.simulated_trades import SimulatedTradeSource


async def read_all(events: solcache.EventStream, stream: str) -> list[object]:
    return [e.event for e in await events.read(stream, "0", count=10_000, block_ms=0)]


async def test_trades_positions_and_status_reach_their_streams(pool: solcache.RedisPool) -> None:
    events = solcache.EventStream(pool)
    source = SimulatedTradeSource(seed=2, trades_per_s=20.0, step_s=0.05)
    sim = TradeSimulator(source, events, step_s=0.05, status_every_s=0.2)
    await sim.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ui = await read_all(events, STREAM_UI_EVENTS)
        if sum(isinstance(e, SystemStatus) and e.status == "healthy" for e in ui) >= 2:
            break
        await asyncio.sleep(0.05)
    await sim.stop()
    trade_events = await read_all(events, STREAM_TRADE_EVENTS)
    trades = [e for e in trade_events if isinstance(e, TradeExecuted)]
    positions = [e for e in trade_events if isinstance(e, PositionUpdate)]
    assert trades and len(trades) == len(positions) == source.trades
    statuses = [(e.component, e.status) for e in await read_all(events, STREAM_UI_EVENTS)]
    assert statuses[0] == ("trade-simulator", "starting")
    assert statuses[-1] == ("trade-simulator", "stopped")
    assert ("trade-simulator", "healthy") in statuses
    healthy = [e for e in await read_all(events, STREAM_UI_EVENTS) if e.status == "healthy"]
    assert "trades; positions:" in healthy[-1].message, healthy[-1]
    assert sim.status()["events_published"] == len(trade_events) + len(statuses)
    assert sim.errors == 0 and not sim.running


async def test_an_outage_delays_events_counts_errors_and_bounds_the_backlog(
    fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await solcache.RedisPool.connect(
        fresh_redis.url, connect_timeout_ms=200, response_timeout_ms=200, checkout_timeout_ms=200
    ) as pool:
        events = solcache.EventStream(pool)
        source = SimulatedTradeSource(seed=3, trades_per_s=40.0, step_s=0.05)
        sim = TradeSimulator(source, events, step_s=0.05, status_every_s=60, max_unsent=50)
        await sim.start()
        fresh_redis.stop()

        async def dropping() -> None:
            assert sim.dropped > 0, sim.status()

        await eventually(dropping, 20)
        assert sim.errors > 0 and sim.last_error, sim.status()
        assert sim.dropped > 0 and sim.status()["unsent"] <= 50, sim.status()
        assert sim.running, "an outage does not end the simulator"
        fresh_redis.start()

        async def recovered() -> None:
            assert sim.last_error == "", sim.status()

        await eventually(recovered, 20)
        await sim.stop()
        kept = await read_all(events, STREAM_TRADE_EVENTS)
        # Everything published after the restart arrived (the server restarted empty; only
        # `starting` was published before), and nothing beyond the backlog was dropped.
        published = sim.status()["events_published"]
        assert len(kept) + len(await read_all(events, STREAM_UI_EVENTS)) == published - 1
        produced = 2 * source.trades + 2  # each trade and its position, starting, stopped
        assert published + sim.dropped == produced


def test_only_a_fully_simulated_market_gets_simulated_trades(pool: solcache.RedisPool) -> None:
    events = solcache.EventStream(pool)
    prices = SimulatedPriceSource(seed=1)
    pools = SimulatedPoolSource(seed=1)
    desk = simulated_desk(prices, pools, events, seed=1)
    assert desk is not None and desk.component == "trade-simulator"
    pyth = PythPriceSource({"SOL": PYTH_FEED_IDS["SOL"]}, base_url="http://127.0.0.1:1")
    assert simulated_desk(pyth, pools, events) is None, "no made-up trades next to real prices"
