"""Numbers and timestamps through the constructors: NaN, infinite, oversized and inexact numbers
and out-of-range timestamps are refused with ``InvalidInputError``; what is accepted is exact and
round-trips; swap quotes stay within their bounds."""

from __future__ import annotations

import json
import math
import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bad_input_support import EXAMPLES, PRICE_JSON, RAYDIUM_POOL
from solcache import (
    InvalidInputError,
    PoolState,
    PositionUpdate,
    PriceData,
    PriceUpdate,
    SerializationError,
    SystemStatus,
    TradeExecuted,
    TradingEvent,
)

pytest_plugins = ["bad_input_support"]


numbers = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=0, max_value=Decimal(10) ** 30, places=30),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.from_regex(r"-?\d{1,35}(\.\d{1,35})?", fullmatch=True),
    st.sampled_from(
        [
            *("NaN", "-NaN", "sNaN", "Infinity", "-inf", "1e400", "1E-29", "1e28", "1e29"),
            *("1_000", "", "0.0000000000000000000000000001", "0.00000000000000000000000000001"),
            *("-0", "79228162514264337593543950335", "79228162514264337593543950336", " 1", "0x10"),
        ]
    ),
    st.text(max_size=20),
    st.floats(),
    st.booleans(),
    st.none(),
)


def fits(d: Decimal) -> bool:
    """Whether `d`, as written, fits a rust_decimal: scale at most 28, mantissa under 2**96."""
    _, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        return abs(int(d)) < 2**96
    return -exponent <= 28 and int("".join(map(str, digits)) or "0") < 2**96


def plain(value: Any) -> bool:
    """A decimal spelled the way both Python and Rust read it (ASCII, no padding)."""
    return not isinstance(value, str) or (value.isascii() and value == value.strip())


def exact(value: Any) -> Decimal | None:
    """The exact value the binding should store for `value`, or None if it must refuse it: a
    finite float is read by its shortest repr (pydantic's ``Decimal(repr(x))``), a bool is no
    number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    try:
        d = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


@EXAMPLES
@given(value=numbers)
def test_prices_are_exact_finite_non_negative_or_invalid_input(value: Any) -> None:
    outcomes = []
    for build in (
        lambda: PriceData("SOL", value).price,
        lambda: PriceUpdate("SOL", value).price,
        lambda: TradeExecuted("sig", "sell", "SOL/USDC", value, 1).amount,
        lambda: PositionUpdate("SOL", value, value).pnl,
        lambda: PoolState(RAYDIUM_POOL, value, value, value, value).reserve_a,
    ):
        try:
            outcomes.append(build())
        except InvalidInputError as e:
            assert len(str(e)) <= 1024
            outcomes.append(None)
    wanted = exact(value)
    for got in outcomes:
        if got is not None:
            assert wanted is not None, f"{value!r} was accepted as {got!r}"
            assert got == wanted and got.is_finite(), f"{value!r} became {got!r}"
    if wanted is not None and wanted >= 0 and outcomes[0] is None and plain(value):
        # Refused: it must not fit (over 28 digits of scale or 96 bits of mantissa).
        assert not fits(wanted), f"{value!r} fits but was refused"
    if outcomes[3] is not None and wanted is not None and wanted < 0:
        assert outcomes[0] is None  # negative: a position may be short, a price never


# Whole seconds: a sub-second offset is refused (test_bad_input_arguments.py).
offsets = st.integers(-86_399, 86_399).map(lambda s: timezone(timedelta(seconds=s)))
timestamps = st.one_of(
    st.datetimes(timezones=offsets),
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(
        [
            datetime.max.replace(tzinfo=UTC),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),  # year 10000 in UTC
            datetime.min.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),  # year 0 in UTC
        ]
    ),
)


@EXAMPLES
@given(ts=timestamps)
def test_timestamps_round_trip_or_are_invalid_input(ts: datetime) -> None:
    utc_ok = True
    try:
        ts.astimezone(UTC)
    except OverflowError:
        utc_ok = False  # the instant is outside what datetime (and the wire format) holds
    for build in (
        lambda: PriceData("SOL", 1, ts),
        lambda: PoolState(RAYDIUM_POOL, 1, 1, 1, 1, ts),
        lambda: PriceUpdate("SOL", 1, ts),
        lambda: SystemStatus("svc", "healthy", "", ts),
    ):
        try:
            item = build()
        except InvalidInputError:
            assert not utc_ok, f"{ts!r} is representable but was refused"
            continue
        assert utc_ok, f"{ts!r} is outside years 1-9999 in UTC but was accepted"
        assert item.timestamp == ts and item.timestamp.utcoffset() == timedelta(0)
        if isinstance(item, TradingEvent):
            assert TradingEvent.from_json(item.type, item.to_json()) == item
        else:
            assert type(item).from_json(item.to_json()) == item
    with pytest.raises(InvalidInputError):
        PriceData("SOL", 1, ts.replace(tzinfo=None))


timestamp_texts = st.one_of(
    st.from_regex(
        r"[+-]?\d{4,6}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,12})?(Z|z|[+-]\d\d:\d\d)", fullmatch=True
    ),
    st.from_regex(
        r"(0000|0001|9999)-(01|12)-(01|31)T(00|23):(00|59):(00|59|60)(\.\d{1,9})?"
        r"(Z|[+-](00|23):(00|59))",
        fullmatch=True,
    ),
    st.text(max_size=40),
)


@EXAMPLES
@given(text=timestamp_texts)
def test_decoded_timestamps_are_what_python_can_hold(text: str) -> None:
    data = json.dumps({**PRICE_JSON, "timestamp": text})
    try:
        price = PriceData.from_json(data)
    except SerializationError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. pyo3's "ignored leap-second"
        ts = price.timestamp
    assert 1 <= ts.year <= 9999 and ts.utcoffset() == timedelta(0)
    assert PriceData.from_json(price.to_json()) == price


@EXAMPLES
@given(
    reserves=st.tuples(numbers, numbers),
    amount=numbers,
    a_to_b=st.booleans(),
    fee=st.one_of(st.integers(0, 10_001), st.integers(-(2**63), 2**63 - 1)),
    slippage=st.one_of(st.integers(0, 10_001), st.integers(-(2**63), 2**63 - 1)),
)
def test_swap_quotes_are_sane_or_invalid_input(
    reserves: tuple[Any, Any], amount: Any, a_to_b: bool, fee: int, slippage: int
) -> None:
    try:
        state = PoolState(RAYDIUM_POOL, 1, reserves[0], reserves[1], 0)
    except InvalidInputError:
        return
    try:
        q = state.quote_swap(amount, a_to_b=a_to_b, fee_bps=fee, slippage_bps=slippage)
    except InvalidInputError:
        return
    out_reserve = state.reserve_b if a_to_b else state.reserve_a
    assert 0 <= fee < 10_000 and 0 <= slippage <= 10_000
    assert 0 <= q.price_impact <= 1
    assert 0 <= q.min_amount_out <= q.amount_out <= out_reserve
    assert 0 <= q.max_sandwich_loss <= q.amount_out
    assert 0 <= q.amount_in_after_fee <= q.amount_in == exact(amount)
