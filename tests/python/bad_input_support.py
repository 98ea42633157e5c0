"""What the bad-input property tests share (``test_bad_input_*.py``, with hypothesis).

Hypothesis and function-scoped async fixtures do not mix: each test is synchronous and drives
the pool on one module-scoped event loop, against one module-scoped redis-server. A test module
gets the fixtures ``loop``, ``live`` and ``dead`` with ``pytest_plugins = ["bad_input_support"]``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st

import solcache
from conftest import RedisServer
from solcache import InvalidInputError

# Small enough for all test_bad_input_* files to run in well under a minute on two busy cores.
EXAMPLES = settings(max_examples=60, deadline=None)
FEW_EXAMPLES = settings(max_examples=25, deadline=None)

RAYDIUM_POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TS = "2026-11-26T15:00:00.123Z"
PRICE_JSON = {"token": "SOL", "price": "187.2345", "timestamp": TS, "source": "pyth"}
POOL_JSON = {
    "pool_address": RAYDIUM_POOL,
    "liquidity": "12500000.50",
    "reserve_a": "41250.123456789",
    "reserve_b": "7723456.123456",
    "volume_24h": "98765432.10",
    "timestamp": TS,
}
# Commands that do not read or write data (connection setup, the pool's health check, and the
# INFO this module sends itself).
HOUSEKEEPING = ("ping", "info", "hello", "client", "select", "auth", "command", "config")


# --- fixtures: one server, one loop, one live pool and one dead pool per module ----------------


@dataclass
class Live:
    server: RedisServer
    loop: asyncio.AbstractEventLoop
    pool: solcache.RedisPool
    prices: solcache.PriceCache
    pools: solcache.PoolStateCache
    events: solcache.EventStream

    def run(self, call: Callable[[], Any]) -> Any:
        """Make the call inside the module's loop (the core's awaitables need a running loop)
        and await its result if it is awaitable; a hang fails after 30 s, it does not stall."""

        async def inside() -> Any:
            result = call()
            if isinstance(result, Awaitable):
                return await asyncio.wait_for(result, 30)
            return result

        return self.loop.run_until_complete(inside())

    def data_commands(self) -> dict[str, int]:
        """Calls per command so far, housekeeping left out."""
        text = self.server.raw("INFO", "commandstats")
        counts = {}
        for name, calls in re.findall(r"^cmdstat_([^:]+):calls=(\d+)", text, re.M):
            if not name.split("|")[0].lower().startswith(HOUSEKEEPING):
                counts[name] = int(calls)
        return counts


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _open(loop: asyncio.AbstractEventLoop, server: RedisServer) -> Live:
    pool = loop.run_until_complete(
        solcache.RedisPool.connect(
            server.url,
            connect_timeout_ms=300,
            response_timeout_ms=5000,
            checkout_timeout_ms=300,
        )
    )
    return Live(
        server,
        loop,
        pool,
        solcache.PriceCache(pool, ttl_ms=600_000),
        solcache.PoolStateCache(pool, ttl_ms=600_000),
        solcache.EventStream(pool),
    )


@pytest.fixture(scope="module")
def live(loop: asyncio.AbstractEventLoop) -> Iterator[Live]:
    with RedisServer() as server:
        live = _open(loop, server)
        yield live
        live.run(live.pool.close)


@pytest.fixture(scope="module")
def dead(loop: asyncio.AbstractEventLoop) -> Iterator[Live]:
    """A pool whose server is gone: any call that reaches for Redis is a ConnectionError."""
    with RedisServer() as server:
        dead = _open(loop, server)
        server.stop()
        yield dead
        dead.run(dead.pool.close)


def assert_rejected_before_redis(
    pools: tuple[Live, Live], *calls: Callable[[Live], Awaitable[Any] | Any]
) -> None:
    """Each call raises InvalidInputError on the live pool without moving Redis' command
    counters, and raises it on the dead pool too (not ConnectionError)."""
    live, dead = pools
    before = live.data_commands()
    for target in (live, dead):
        for call in calls:
            with pytest.raises(InvalidInputError):
                target.run(lambda: call(target))  # noqa: B023 (run calls it at once)
    assert live.data_commands() == before


# --- strategies -------------------------------------------------------------------------------

PIECES = [
    "SOL", "price:", "pool:", "stream:", ":", "{", "}", "*", "?", "[", "]", " ", "\t", "\r\n",
    "\n", "\x00", "\x7f", "é", "\uff33", "\u202e", "\ufeff", "/", "-", ".", "_", "$", '"',
    "\\", "0", "1", "O", "l",
]  # fmt: skip

hostile_text = st.one_of(
    st.text(max_size=48),
    st.text(st.characters(codec="ascii"), max_size=48),
    st.from_regex(r"[A-Za-z0-9:{}*?\[\] \t\r\n._-]{0,48}", fullmatch=True),
    st.lists(st.sampled_from(PIECES), max_size=10).map("".join),
    st.binary(max_size=48).map(lambda b: b.decode("latin-1")),
)
valid_tokens = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", fullmatch=True)


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str) -> bytes | None:
    if any(c not in B58 for c in text):
        return None
    n = 0
    for c in text:
        n = n * 58 + B58.index(c)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


valid_addresses = st.binary(min_size=32, max_size=32).map(b58encode)
addresses = st.one_of(
    hostile_text,
    valid_addresses,
    st.binary(min_size=20, max_size=40).map(b58encode),  # base58 of the wrong length
    st.text(B58, min_size=28, max_size=48),
    st.text("0OIl" + B58, min_size=32, max_size=44),
)


def group_name_ok(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9:._-]{1,128}", name, re.ASCII) is not None


def stream_name_ok(name: str) -> bool:
    # Streams also stay out of the caches' key spaces.
    return group_name_ok(name) and not name.startswith(("price:", "pool:"))


def stream_id_ok(entry_id: str) -> bool:
    return entry_id == "$" or re.fullmatch(r"\d{1,20}(-\d{1,20})?", entry_id, re.ASCII) is not None


# --- bad values of a JSON template ------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities are written as the non-JSON literals NaN / Infinity
    | st.text(max_size=20)
    | st.sampled_from(
        ["NaN", "Infinity", "-1", "1e400", "1e-29", "9" * 40, "+10000-01-01T00:00:00Z"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def mutated(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    def mutate(field: str, value: Any, how: int) -> bytes:
        data = dict(template)
        if how == 0:
            data[field] = value
        elif how == 1:
            del data[field]
        elif how == 2:
            data["extra"] = value
        else:
            data[field] = json.dumps(value)
        return json.dumps(data).encode()

    return st.builds(mutate, st.sampled_from(sorted(template)), json_values, st.integers(0, 3))
