"""solcache: sub-millisecond Solana price and pool-state reads from Redis, with a Rust core.

Quick start::

    import asyncio, solcache

    async def main() -> None:
        async with await solcache.RedisPool.connect() as pool:
            prices = solcache.PriceCache(pool)
            await prices.set(solcache.PriceData("SOL", "187.2345", source="pyth"))
            print(await prices.get("SOL"))

    asyncio.run(main())
"""

from __future__ import annotations

import logging

from solcache._core import (
    DEFAULT_MAXLEN,
    DEFAULT_TTL_MS,
    MVP_TOKENS,
    STREAM_DEAD_LETTER,
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    STREAM_UI_EVENTS,
    TOKEN_PATTERN,
    GroupInfo,
    OperationStats,
    PoolHealth,
    PoolState,
    PoolStateCache,
    PositionUpdate,
    PriceCache,
    PriceData,
    PriceUpdate,
    StreamEntry,
    StreamInfo,
    SubscriptionStats,
    SwapQuote,
    SystemStatus,
    TradeExecuted,
    TradingEvent,
    __version__,
    pool_key,
    price_key,
    validate_address,
    validate_token,
)
from solcache.config import Settings
from solcache.exceptions import (
    AuthenticationError,
    ConnectionError,
    InternalError,
    InvalidInputError,
    PoolExhaustedError,
    ResponseError,
    SerializationError,
    SolcacheError,
    TimeoutError,
    UnsupportedServerError,
)
from solcache.redis_pool import RedisPool
from solcache.streams import EventStream, Subscription, Tail
from solcache.subscriptions import ManagerStats, SubscriptionManager

# Library convention: no output unless the application configures logging.
logging.getLogger("solcache").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_TTL_MS",
    "MVP_TOKENS",
    "STREAM_DEAD_LETTER",
    "STREAM_PRICE_UPDATES",
    "STREAM_TRADE_EVENTS",
    "STREAM_UI_EVENTS",
    "TOKEN_PATTERN",
    "AuthenticationError",
    "ConnectionError",
    "EventStream",
    "GroupInfo",
    "InternalError",
    "InvalidInputError",
    "ManagerStats",
    "OperationStats",
    "PoolExhaustedError",
    "PoolHealth",
    "PoolState",
    "PoolStateCache",
    "PositionUpdate",
    "PriceCache",
    "PriceData",
    "PriceUpdate",
    "RedisPool",
    "ResponseError",
    "SerializationError",
    "Settings",
    "SolcacheError",
    "StreamEntry",
    "StreamInfo",
    "Subscription",
    "SubscriptionManager",
    "SubscriptionStats",
    "SwapQuote",
    "SystemStatus",
    "Tail",
    "TimeoutError",
    "TradeExecuted",
    "TradingEvent",
    "UnsupportedServerError",
    "__version__",
    "pool_key",
    "price_key",
    "validate_address",
    "validate_token",
]
