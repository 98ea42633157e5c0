"""Arbitrary text as tokens, addresses, stream, group and consumer names and stream ids raises
``InvalidInputError`` before Redis is touched: Redis' command counters do not move, and the same
calls on a pool whose server is gone still raise ``InvalidInputError``, not ``ConnectionError``."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import solcache
from bad_input_support import (
    EXAMPLES,
    RAYDIUM_POOL,
    Live,
    addresses,
    assert_rejected_before_redis,
    b58decode,
    b58encode,
    group_name_ok,
    hostile_text,
    stream_id_ok,
    stream_name_ok,
    valid_tokens,
)
from solcache import (
    ConnectionError,
    InvalidInputError,
    PoolState,
    PositionUpdate,
    PriceData,
    PriceUpdate,
    TimeoutError,
    TradeExecuted,
)

pytest_plugins = ["bad_input_support"]


@EXAMPLES
@given(token=st.one_of(hostile_text, valid_tokens))
def test_tokens_are_validated_before_redis(live: Live, dead: Live, token: str) -> None:
    valid = re.fullmatch(solcache.TOKEN_PATTERN, token) is not None
    assert valid == (re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", token, re.ASCII) is not None)
    if valid:
        assert solcache.validate_token(token) == token
        assert solcache.price_key(token) == f"price:{token}"
        assert PriceData(token, 1).token == token
        return
    for check in (solcache.validate_token, solcache.price_key):
        with pytest.raises(InvalidInputError) as e:
            check(token)
        assert isinstance(e.value, ValueError) and len(str(e.value)) <= 1024
    for build in (
        lambda: PriceData(token, 1),
        lambda: PriceUpdate(token, 1),
        lambda: PositionUpdate(token, 1, -1),
        lambda: TradeExecuted("sig", "buy", f"{token}/USDC", 1, 1),
        lambda: TradeExecuted("sig", "buy", f"SOL/{token}", 1, 1),
    ):
        with pytest.raises(InvalidInputError):
            build()
    assert_rejected_before_redis(
        (live, dead),
        lambda t: t.prices.get(token),
        lambda t: t.prices.get(token, max_age_ms=1000),
        lambda t: t.prices.get_many(["SOL", token]),
    )


@EXAMPLES
@given(address=addresses)
def test_addresses_are_validated_before_redis(live: Live, dead: Live, address: str) -> None:
    decoded = b58decode(address) if 32 <= len(address) <= 44 else None
    valid = decoded is not None and len(decoded) == 32
    if valid:
        assert solcache.validate_address(address) == address
        assert solcache.pool_key(address) == f"pool:{address}"
        assert b58encode(decoded) == address  # canonical: one account, one key
        return
    for check in (solcache.validate_address, solcache.pool_key):
        with pytest.raises(InvalidInputError):
            check(address)
    with pytest.raises(InvalidInputError):
        PoolState(address, 1, 1, 1, 1)
    assert_rejected_before_redis(
        (live, dead),
        lambda t: t.pools.get(address),
        lambda t: t.pools.get_many([RAYDIUM_POOL, address]),
    )


@EXAMPLES
@given(a=st.one_of(hostile_text, valid_tokens), b=st.one_of(hostile_text, valid_tokens))
def test_distinct_tokens_never_share_a_key(a: str, b: str) -> None:
    try:
        ka, kb = solcache.price_key(a), solcache.price_key(b)
    except InvalidInputError:
        return
    assert (ka == kb) == (a == b)
    assert ka.count(":") == 1 and not set(ka) & set(' \t\r\n{}*?[]"\\')


@EXAMPLES
@given(name=st.one_of(hostile_text, st.from_regex(r"[a-z:._-]{100,160}", fullmatch=True)))
def test_stream_group_and_consumer_names_are_validated_before_redis(
    live: Live, dead: Live, name: str
) -> None:
    if stream_name_ok(name):
        return
    event = PriceUpdate("SOL", 1)
    with pytest.raises(InvalidInputError):
        solcache.EventStream(live.pool, maxlen_per_stream={name: 10})
    assert_rejected_before_redis(
        (live, dead),
        lambda t: t.events.read(name, "0", block_ms=0),
        lambda t: t.events.read(name, "$", block_ms=50),
        lambda t: t.events.ensure_group(name, "g"),
        lambda t: t.events.info(name),
        lambda t: t.events.publish(event, stream=name),
        lambda t: t.events.publish_many([event], stream=name),
        lambda t: t.events.subscribe(name, "g", "c"),
        lambda t: t.events.subscribe(["stream:x", name], "g", "c"),
    )
    if group_name_ok(name):
        return
    assert_rejected_before_redis(
        (live, dead),
        lambda t: t.events.ensure_group("stream:x", name),
        lambda t: t.events.subscribe("stream:x", name, "c"),
        lambda t: t.events.subscribe("stream:x", "g", name),
    )


@EXAMPLES
@given(entry_id=st.one_of(hostile_text, st.from_regex(r"\d{1,22}(-\d{0,22})?", fullmatch=True)))
def test_stream_ids_are_validated_before_redis(live: Live, dead: Live, entry_id: str) -> None:
    if stream_id_ok(entry_id):
        # Well-formed but perhaps out of Redis' range: an entry list or a typed error.
        with contextlib.suppress(solcache.ResponseError):
            live.run(lambda: live.events.read("stream:ids", entry_id, block_ms=0))
        return
    assert_rejected_before_redis(
        (live, dead),
        lambda t: t.events.read("stream:ids", entry_id, block_ms=0),
        lambda t: t.events.ensure_group("stream:ids", "g", entry_id),
    )


def test_the_dead_pool_would_fail_any_real_call(dead: Live) -> None:
    """The control of the proofs above: a valid call on the dead pool does reach for Redis."""
    for call in (
        lambda: dead.prices.get("SOL"),
        lambda: dead.pools.get(RAYDIUM_POOL),
        lambda: dead.events.read("stream:x", "0", block_ms=0),
    ):
        with pytest.raises((ConnectionError, TimeoutError)):
            dead.run(call)
