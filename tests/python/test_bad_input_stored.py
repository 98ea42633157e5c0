"""Whatever is stored in Redis: arbitrary bytes under a price or pool key read as a
``SerializationError`` naming the key; arbitrary stream entries read with a reason and are
dead-lettered; the event decoder gives events or ``SerializationError``."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import solcache
from bad_input_support import (
    EXAMPLES,
    FEW_EXAMPLES,
    POOL_JSON,
    PRICE_JSON,
    RAYDIUM_POOL,
    TS,
    Live,
    hostile_text,
    mutated,
)
from solcache import PoolState, PriceData, SerializationError, SolcacheError, TradingEvent

pytest_plugins = ["bad_input_support"]


# --- values in Redis that are not what the key says --------------------------------------------


def stored_values(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    text = json.dumps(template, separators=(",", ":")).encode()
    return st.one_of(
        st.binary(max_size=300),
        mutated(template),
        st.integers(0, len(text) - 1).map(lambda n: text[:n]),  # a truncated write
        st.tuples(st.integers(0, len(text) - 1), st.integers(0, 255)).map(
            lambda p: text[: p[0]] + bytes([p[1]]) + text[p[0] + 1 :]
        ),
    )


@EXAMPLES
@given(value=stored_values(PRICE_JSON))
def test_any_bytes_under_a_price_key(live: Live, value: bytes) -> None:
    live.server.raw("SET", "price:SOL", value)
    live.server.raw("SET", "price:USDC", json.dumps({**PRICE_JSON, "token": "USDC"}))
    results = []
    for read in (
        lambda: live.prices.get("SOL"),
        lambda: live.prices.get("SOL", max_age_ms=10**12),
        lambda: live.prices.get_many(["USDC", "SOL", "BONK"]),
    ):
        try:
            results.append(live.run(read))
        except SolcacheError as e:
            results.append(e)
    try:
        expected: PriceData | None = PriceData.from_json(value)
    except SerializationError:
        expected = None
    if expected is not None and expected.token == "SOL":
        assert results[0] == results[1] == expected
        assert results[2]["SOL"] == expected and results[2]["BONK"] is None
    else:
        # One bad value fails the whole get_many, naming its key (cache.rs `decode_many`).
        for e in results:
            assert isinstance(e, SerializationError), repr(e)
            assert e.key == "price:SOL" and len(str(e)) <= 1024


@FEW_EXAMPLES
@given(value=stored_values(POOL_JSON))
def test_any_bytes_under_a_pool_key(live: Live, value: bytes) -> None:
    key = f"pool:{RAYDIUM_POOL}"
    live.server.raw("SET", key, value)
    try:
        got: Any = live.run(lambda: live.pools.get(RAYDIUM_POOL))
    except SolcacheError as e:
        got = e
    try:
        expected: PoolState | None = PoolState.from_json(value)
    except SerializationError:
        expected = None
    if expected is not None and expected.pool_address == RAYDIUM_POOL:
        assert got == expected
    else:
        assert isinstance(got, SerializationError), repr(got)
        assert got.key == key


def test_huge_and_special_values_under_a_price_key(live: Live) -> None:
    cases = {
        "10 MB": json.dumps({**PRICE_JSON, "source": "s" * (10 << 20)}).encode(),
        "10 MB garbage": b"{" * (10 << 20),
        "NaN literal": b'{"token":"SOL","price":NaN,"timestamp":"%s","source":"x"}' % TS.encode(),
        "year 10000": json.dumps({**PRICE_JSON, "timestamp": "+10000-01-01T00:00:00Z"}).encode(),
        "9999 + offset": json.dumps(
            {**PRICE_JSON, "timestamp": "9999-12-31T23:59:59-01:00"}
        ).encode(),
        "leap second": json.dumps({**PRICE_JSON, "timestamp": "2016-12-31T23:59:60.5Z"}).encode(),
        "rounded": json.dumps({**PRICE_JSON, "price": "0.00000000000000000000000000001"}).encode(),
        "invalid UTF-8": b'{"token":"SO\xff\xfe","price":"1"}',
    }
    for what, value in cases.items():
        live.server.raw("SET", "price:SOL", value)
        with pytest.raises(SerializationError) as e:
            got = live.run(lambda: live.prices.get("SOL"))
            pytest.fail(f"{what}: read as {got!r}")
        assert e.value.key == "price:SOL", what
        assert len(str(e.value)) <= 1024, (what, len(str(e.value)))


# --- stream entries ----------------------------------------------------------------------------

EVENT_DATA = {
    "price_update": {"token": "SOL", "price": "187.2345", "timestamp": TS},
    "trade_executed": {
        "id": "sig-1",
        "action": "buy",
        "token_pair": "SOL/USDC",
        "amount": "12.5",
        "price": "187.23",
        "timestamp": TS,
    },
    "position_update": {"token": "SOL", "amount": "-3", "pnl": "12.5", "timestamp": TS},
    "system_status": {"component": "svc", "status": "healthy", "message": "", "timestamp": TS},
}
field_names = st.one_of(st.sampled_from([b"type", b"data"]), st.binary(min_size=1, max_size=6))
field_values = st.one_of(
    st.sampled_from([t.encode() for t in EVENT_DATA]),
    st.sampled_from([json.dumps(d).encode() for d in EVENT_DATA.values()]),
    st.sampled_from(sorted(EVENT_DATA)).flatmap(lambda t: mutated(EVENT_DATA[t])),
    st.binary(max_size=48),
)
entries = st.lists(
    st.lists(st.tuples(field_names, field_values), min_size=1, max_size=4), min_size=1, max_size=5
)
_streams = itertools.count()


@FEW_EXAMPLES
@given(batch=entries)
def test_any_stream_entries_read_with_reasons_and_are_dead_lettered(
    live: Live, batch: list[list[tuple[bytes, bytes]]]
) -> None:
    stream = f"stream:fuzz-{next(_streams)}"
    live.run(lambda: live.events.ensure_group(stream, "g", "0"))
    for fields in batch:
        live.server.raw("XADD", stream, "*", *itertools.chain.from_iterable(fields))
    read = live.run(lambda: live.events.read(stream, "0", block_ms=0))
    assert len(read) == len(batch)
    for entry in read:
        assert (entry.event is None) != (entry.error is None)
        if entry.error is not None:
            assert entry.error and len(entry.error) <= 1024
        else:
            assert isinstance(entry.event, TradingEvent)
    good = sum(entry.event is not None for entry in read)

    async def consume() -> tuple[int, solcache.SubscriptionStats]:
        delivered = 0
        async with live.events.subscribe(stream, "g", "c", block_ms=10) as sub:
            for _ in range(10):
                got = await sub.next_batch()
                sub.ack(*got)
                delivered += len(got)
                if delivered + sub.stats.dead_lettered == len(batch):
                    break
            return delivered, sub.stats

    delivered, stats = live.run(consume)
    assert delivered == good
    assert stats.dead_lettered == stats.bad_entries == len(batch) - good


@EXAMPLES
@given(type_name=st.one_of(st.sampled_from(sorted(EVENT_DATA)), hostile_text), data=field_values)
def test_event_decoder_gives_events_or_serialization_errors(type_name: str, data: bytes) -> None:
    try:
        event = TradingEvent.from_json(type_name, data)
    except SerializationError as e:
        assert len(str(e)) <= 1024
        return
    assert event.type == type_name
    assert TradingEvent.from_json(type_name, event.to_json()) == event
