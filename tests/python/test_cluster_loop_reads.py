"""Awaited cache reads on a Redis Cluster over the event loop's own connection to the key's
primary (one per primary, named ``solcache-direct``), on a real 3-primary cluster.

The core's per-primary sockets carry the same name, so a test tells the loop's connections
apart by their local port: the loop's selector lists the sockets registered with it, and
``CLIENT LIST`` on a primary names each client's address and its last command.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from conftest import RedisServer
from solcache import PoolStateCache, PriceCache, PriceData, RedisPool
from topologies import RedisCluster

pytestmark = pytest.mark.timeout(120)

TS = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
TOKENS = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF", "PYTH", "ORCA"]


def loop_connections() -> dict[int, int]:
    """The running loop's registered TCP sockets: the server's port -> the local port."""
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    found = {}
    for key in selector.get_map().values():
        with socket.socket(fileno=os.dup(key.fd)) as s:
            if s.family != socket.AF_INET:
                continue
            try:
                peer = s.getpeername()
            except OSError:
                continue
            found[peer[1]] = s.getsockname()[1]
    return found


def client_fields(node: RedisServer, local_port: int) -> dict[str, str] | None:
    """``CLIENT LIST``'s fields of the client connected from ``local_port``, if any."""
    for line in node.raw("CLIENT", "LIST").splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if fields.get("addr") == f"127.0.0.1:{local_port}":
            return fields
    return None


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    """Run ``check`` until it holds (reads in it open connections in the background)."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def one_token_per_primary(cluster: RedisCluster) -> dict[int, str]:
    """A token whose price key lives on each primary, by the primary's port."""
    by_port: dict[int, str] = {}
    for token in TOKENS:
        by_port.setdefault(cluster.node_of(f"price:{token}").port, token)
    assert len(by_port) == 3, by_port
    return by_port


async def read_over_loop_connection(
    cluster: RedisCluster, cache: PriceCache, token: str, want: PriceData
) -> bool:
    """Read ``token`` (the value must be right): whether the loop has a connection to its
    primary now, named ``solcache-direct``, whose last command was that ``GET``."""
    assert await cache.get(token) == want, token
    node = cluster.node_of(f"price:{token}")
    local = loop_connections().get(node.port)
    if local is None:
        return False
    fields = client_fields(node, local)
    return fields is not None and fields["name"] == "solcache-direct" and fields["cmd"] == "get"


async def test_gets_take_the_loops_connection_to_the_keys_primary(
    redis_cluster: RedisCluster,
) -> None:
    redis_cluster.flushall()
    by_port = one_token_per_primary(redis_cluster)
    pool = await RedisPool.connect(redis_cluster.url)
    cache = PriceCache(pool, ttl_ms=60_000)
    prices = {t: PriceData(t, Decimal(i + 1), TS, "test") for i, t in enumerate(TOKENS)}
    await cache.set_many(list(prices.values()))
    for token in by_port.values():
        await eventually(
            lambda t=token: read_over_loop_connection(redis_cluster, cache, t, prices[t]),
            f"no loop connection served {token}",
        )
    assert set(by_port) <= set(loop_connections())

    before = pool.cluster_direct_stats()
    assert before is not None
    for _ in range(20):
        for token in TOKENS:
            assert await cache.get(token) == prices[token]
    for token in by_port.values():
        assert await read_over_loop_connection(redis_cluster, cache, token, prices[token])
    after = pool.cluster_direct_stats()
    assert after is not None
    # A healthy cluster: every read direct (the loop's connections count there), none through
    # the cluster client.
    assert after["direct"] - before["direct"] == 20 * len(TOKENS) + 3, after
    assert after["fallbacks"] == before["fallbacks"], after

    # The pool-state cache reads the same way.
    states = PoolStateCache(pool)
    for _ in range(3):
        assert await states.get("58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2") is None

    local = loop_connections()
    await pool.close()
    assert not set(by_port) & set(loop_connections()), "closed with the pool"
    for port in by_port:
        node = next(n for n in redis_cluster.nodes if n.port == port)
        deadline = time.monotonic() + 5
        while client_fields(node, local[port]) is not None:
            assert time.monotonic() < deadline, "the server still lists a closed connection"
            await asyncio.sleep(0.01)


async def test_a_moved_slot_is_followed_with_no_error(redis_cluster: RedisCluster) -> None:
    redis_cluster.flushall()
    key = "price:SOL"
    src = redis_cluster.node_of(key)
    dst = next(
        redis_cluster.node_of(f"price:{t}")
        for t in TOKENS
        if redis_cluster.node_of(f"price:{t}") != src
    )
    slot = str(src.raw("CLUSTER", "KEYSLOT", key))
    src_id, dst_id = (str(n.raw("CLUSTER", "MYID")).strip() for n in (src, dst))
    pool = await RedisPool.connect(redis_cluster.url)
    cache = PriceCache(pool, ttl_ms=60_000)
    price = PriceData("SOL", Decimal("150.25"), TS, "test")
    await cache.set(price)
    await eventually(
        lambda: read_over_loop_connection(redis_cluster, cache, "SOL", price),
        "no loop connection served SOL",
    )

    async def move(frm: RedisServer, to: RedisServer, frm_id: str, to_id: str) -> None:
        """The steps of ``redis-cli --cluster reshard`` for one slot: IMPORTING / MIGRATING
        (ASK redirections), the key moved, then the slot (MOVED)."""
        run = asyncio.to_thread
        await run(to.raw, "CLUSTER", "SETSLOT", slot, "IMPORTING", frm_id)
        await run(frm.raw, "CLUSTER", "SETSLOT", slot, "MIGRATING", to_id)
        await asyncio.sleep(0.2)
        await run(frm.raw, "MIGRATE", "127.0.0.1", str(to.port), "", "0", "5000", "KEYS", key)
        await asyncio.sleep(0.2)
        for node in (to, frm):
            await run(node.raw, "CLUSTER", "SETSLOT", slot, "NODE", to_id)

    errors: list[str] = []
    stop = asyncio.Event()

    async def reader() -> int:
        reads = 0
        while not stop.is_set():
            try:
                got = await cache.get("SOL")
                if got != price:
                    errors.append(f"got {got!r}")
            except Exception as e:  # every error reaching the caller is the failure
                errors.append(repr(e))
            reads += 1
            await asyncio.sleep(0.001)
        return reads

    before = pool.cluster_direct_stats()
    assert before is not None
    task = asyncio.create_task(reader())
    try:
        await asyncio.sleep(0.1)
        await move(src, dst, src_id, dst_id)
        await asyncio.sleep(0.3)
        stop.set()
        reads = await task
        assert not errors, f"{len(errors)} of {reads} reads failed: {errors[:5]}"
        stats = pool.cluster_direct_stats()
        assert stats is not None
        # The redirections reached the runtime path (which sent those reads through the
        # cluster client) and the slot table was read again.
        assert stats["fallbacks"] > before["fallbacks"], stats
        assert stats["refreshes"] > before["refreshes"], stats
        # The slot table names the new primary: the loop reads the key there, directly.
        await eventually(
            lambda: read_over_loop_connection(redis_cluster, cache, "SOL", price),
            "reads of the moved key did not go direct to its new primary",
        )
        assert redis_cluster.node_of(key) == dst
        assert loop_connections().get(dst.port) is not None
    finally:
        stop.set()
        await task
        if redis_cluster.node_of(key) != src:
            await move(dst, src, dst_id, src_id)
        await pool.close()


async def test_a_killed_loop_connection_falls_back_and_recovers(
    redis_cluster: RedisCluster,
) -> None:
    redis_cluster.flushall()
    pool = await RedisPool.connect(redis_cluster.url)
    cache = PriceCache(pool, ttl_ms=60_000)
    price = PriceData("SOL", Decimal("150.25"), TS, "test")
    await cache.set(price)
    node = redis_cluster.node_of("price:SOL")
    await eventually(
        lambda: read_over_loop_connection(redis_cluster, cache, "SOL", price),
        "no loop connection served SOL",
    )
    killed = loop_connections()[node.port]
    assert node.raw("CLIENT", "KILL", "ADDR", f"127.0.0.1:{killed}") == 1
    # Every read meanwhile is answered (through the runtime while the loop reconnects).
    for _ in range(50):
        assert await cache.get("SOL") == price

    async def reconnected() -> bool:
        return await read_over_loop_connection(
            redis_cluster, cache, "SOL", price
        ) and loop_connections().get(node.port) not in (None, killed)

    await eventually(reconnected, "the loop did not open a new connection to the primary")
    await pool.close()


async def test_a_get_many_in_one_slot_takes_the_loops_connection(
    redis_cluster: RedisCluster,
) -> None:
    """With the tagged layout every price key is in one slot: its `get_many` is one `MGET` on
    the loop's connection to that slot's primary."""
    redis_cluster.flushall()
    pool = await RedisPool.connect(redis_cluster.url, key_layout="tagged")
    cache = PriceCache(pool, ttl_ms=60_000)
    prices = [PriceData(t, Decimal(i + 1), TS, "test") for i, t in enumerate(TOKENS)]
    await cache.set_many(prices)
    node = redis_cluster.node_of("price:{prices}:SOL")
    want = {p.token: p for p in prices}

    async def mget_over_loop_connection() -> bool:
        assert await cache.get_many(TOKENS) == want
        local = loop_connections().get(node.port)
        fields = None if local is None else client_fields(node, local)
        return (
            fields is not None and fields["name"] == "solcache-direct" and fields["cmd"] == "mget"
        )

    await eventually(mget_over_loop_connection, "no loop connection served the MGET")
    await pool.close()
