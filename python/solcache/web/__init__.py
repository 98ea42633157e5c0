"""The HTTP gateway: live dashboard, Server-Sent Events, JSON snapshots, Prometheus metrics.

Quick start (inside a running event loop, with an open pool)::

    app = create_app(pool, EventStream(pool), prices=PriceCache(pool),
                     pools=PoolStateCache(pool), tokens=MVP_TOKENS, pool_addresses=[...])
    await GatewayServer(app, port=8000).serve()
"""

from __future__ import annotations

from solcache.web.app import create_app
from solcache.web.hub import EventHub, HubTotals
from solcache.web.ids import STREAMS
from solcache.web.server import GatewayServer

__all__ = ["STREAMS", "EventHub", "GatewayServer", "HubTotals", "create_app"]
