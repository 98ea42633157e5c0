"""Arguments the binding must refuse before converting them: text Python cannot encode,
out-of-range integers, a bool for an int and a sub-second UTC offset."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import solcache
from bad_input_support import RAYDIUM_POOL, Live
from solcache import InvalidInputError, PoolState, PriceData, PriceUpdate

pytest_plugins = ["bad_input_support"]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda live: live.prices.get("\ud800"), id="lone surrogate token"),
        pytest.param(lambda live: live.pools.get("\udcff" * 40), id="lone surrogate address"),
        pytest.param(
            lambda live: live.prices.get_many(["SOL", "\ud800"]), id="lone surrogate in a list"
        ),
        pytest.param(
            lambda live: live.events.read("stream:\ud800", "0"), id="lone surrogate stream"
        ),
        pytest.param(lambda live: live.prices.get("SOL", max_age_ms=-1), id="negative max_age_ms"),
        pytest.param(lambda live: live.prices.get("SOL", max_age_ms=2**70), id="huge max_age_ms"),
    ],
)
def test_unholdable_text_and_out_of_range_reads_are_invalid_input(
    live: Live, call: Callable[[Live], Any]
) -> None:
    before = live.data_commands()
    with pytest.raises(InvalidInputError):
        result = call(live)
        if isinstance(result, Awaitable):
            live.run(result)
    assert live.data_commands() == before


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda live: solcache.PriceCache(live.pool, ttl_ms=-1), id="negative ttl_ms"),
        pytest.param(lambda live: live.events.read("stream:x", "0", count=-1), id="negative count"),
        pytest.param(lambda live: solcache.EventStream(live.pool, maxlen=-1), id="negative maxlen"),
        pytest.param(
            lambda live: live.events.subscribe("stream:x", "g", "c", max_deliveries=2**64),
            id="huge max_deliveries",
        ),
        pytest.param(
            lambda live: PoolState(RAYDIUM_POOL, 1, 1, 1, 1).quote_swap(1, fee_bps=2**70),
            id="huge fee_bps",
        ),
    ],
)
def test_out_of_range_arguments_are_invalid_input(live: Live, call: Callable[[Live], Any]) -> None:
    before = live.data_commands()
    with pytest.raises(InvalidInputError):
        result = call(live)
        if isinstance(result, Awaitable):
            live.run(result)
    assert live.data_commands() == before


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda live: solcache.PriceCache(live.pool, ttl_ms=True), id="ttl_ms"),
        pytest.param(lambda live: live.prices.get("SOL", max_age_ms=True), id="max_age_ms"),
        pytest.param(lambda live: live.events.read("stream:x", "0", count=True), id="count"),
        pytest.param(
            lambda live: PoolState(RAYDIUM_POOL, 1, 1, 1, 1).quote_swap(1, fee_bps=False),
            id="fee_bps",
        ),
    ],
)
def test_a_bool_is_no_int_argument(live: Live, call: Callable[[Live], Any]) -> None:
    """``True`` is an ``int`` to Python, but ``ttl_ms=True`` is a mistake, not 1 ms."""
    before = live.data_commands()
    with pytest.raises(TypeError, match="not bool"):
        result = call(live)
        if isinstance(result, Awaitable):
            live.run(result)
    assert live.data_commands() == before


def test_a_sub_second_utc_offset_is_refused() -> None:
    """Python offsets may carry microseconds; chrono's FixedOffset has whole seconds, so the
    conversion would move the instant (by under a second) without a word: refused instead."""
    ts = datetime(2000, 1, 1, tzinfo=timezone(timedelta(microseconds=1)))
    with pytest.raises(InvalidInputError, match="whole number of seconds"):
        PriceData("SOL", 1, ts)
    with pytest.raises(InvalidInputError, match="whole number of seconds"):
        PriceUpdate("SOL", 1, ts)
    whole = datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=5, seconds=7)))
    assert PriceData("SOL", 1, whole).timestamp == whole
