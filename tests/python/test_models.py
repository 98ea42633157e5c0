"""PriceData, PoolState and SwapQuote: construction, immutability, wire format, impact math."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

import solcache
from solcache import InvalidInputError, PoolState, PriceData, SerializationError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
TS = datetime(2026, 11, 26, 15, 0, 0, 123000, tzinfo=UTC)


def golden(name: str) -> str:
    return (GOLDEN / name).read_text().strip()


# --- PriceData -------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [Decimal("187.2345"), "187.2345", 187, Decimal("1e-20")])
def test_price_accepts_decimal_int_str(price: Decimal | int | str) -> None:
    p = PriceData("SOL", price, TS, "pyth")
    assert isinstance(p.price, Decimal)
    assert p.price == Decimal(price)
    assert (p.token, p.timestamp, p.source) == ("SOL", TS, "pyth")


def test_price_keeps_every_digit() -> None:
    p = PriceData("BONK", "0.00001234567890123456789012")
    assert str(p.price) == "0.00001234567890123456789012"
    assert str(PriceData.from_json(p.to_json()).price) == "0.00001234567890123456789012"


@pytest.mark.parametrize("price", ["abc", "", None, [1], b"1"])
def test_price_rejects_garbage(price: object) -> None:
    with pytest.raises(InvalidInputError):
        PriceData("SOL", price)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "exact"),
    [
        (187.2345, "187.2345"),
        (0.1, "0.1"),  # the shortest repr, not 0.1000000000000000055511151231257827
        (1.0, "1"),
        (2634567.89, "2634567.89"),
        (6.65e-7, "0.000000665"),
        (1e20, "100000000000000000000"),
        (0.0, "0"),
    ],
)
def test_finite_floats_are_read_by_their_shortest_repr(value: float, exact: str) -> None:
    assert Decimal(repr(value)) == Decimal(exact)  # the semantics of pydantic's Decimal
    assert PriceData("SOL", value).price == Decimal(exact)
    s = PoolState(POOL, value, value, value, value)
    assert (s.liquidity, s.reserve_a, s.reserve_b, s.volume_24h) == (Decimal(exact),) * 4
    assert solcache.PriceUpdate("SOL", value).price == Decimal(exact)
    trade = solcache.TradeExecuted("sig", "buy", "SOL/USDC", value, value)
    assert (trade.amount, trade.price) == (Decimal(exact), Decimal(exact))
    position = solcache.PositionUpdate("SOL", -value, -value)
    assert (position.amount, position.pnl) == (-Decimal(exact), -Decimal(exact))
    assert PriceData("SOL", 1, confidence=value).confidence == Decimal(exact)


def test_the_issue_example_of_a_float_pool_state() -> None:
    state = PoolState(
        POOL, liquidity=2634567.89, reserve_a=41250.5, reserve_b=7723456.25, volume_24h=98765432.0
    )
    assert state.liquidity == Decimal("2634567.89") and state.volume_24h == Decimal("98765432")
    assert '"liquidity":"2634567.89"' in state.to_json()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    ("field", "build"),
    [
        ("price", lambda v: PriceData("SOL", v)),
        ("confidence", lambda v: PriceData("SOL", 1, confidence=v)),
        ("liquidity", lambda v: PoolState(POOL, v, 1, 1, 1)),
        ("reserve_b", lambda v: PoolState(POOL, 1, 1, v, 1)),
        ("volume_24h", lambda v: PoolState(POOL, 1, 1, 1, v)),
        ("price", lambda v: solcache.PriceUpdate("SOL", v)),
        ("amount", lambda v: solcache.TradeExecuted("s", "buy", "SOL/USDC", v, 1)),
        ("pnl", lambda v: solcache.PositionUpdate("SOL", 1, v)),
        ("amount_in", lambda v: PoolState(POOL, 1, 1, 1, 1).quote_swap(v)),
    ],
)
def test_nan_and_infinities_are_refused_naming_the_field(
    value: float, field: str, build: object
) -> None:
    with pytest.raises(InvalidInputError, match=f"^invalid input: {field} must be a finite number"):
        build(value)  # type: ignore[operator]


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number_and_the_message_says_bool(value: bool) -> None:
    for build in (
        lambda: PriceData("SOL", value),
        lambda: PoolState(POOL, 1, value, 1, 1),
        lambda: solcache.PositionUpdate("SOL", value, 1),
    ):
        with pytest.raises(InvalidInputError) as error:
            build()
        message = str(error.value)
        assert "bool" in message and "float" not in message, message


def test_floats_too_large_or_too_fine_for_28_digits_are_refused() -> None:
    for value in (1e300, 5e-324, 1e-29):
        with pytest.raises(InvalidInputError, match="price"):
            PriceData("SOL", value)


def test_naive_datetime_rejected() -> None:
    with pytest.raises(InvalidInputError):
        PriceData("SOL", 1, datetime(2026, 11, 26, 15, 0))


def test_aware_datetime_converted_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    p = PriceData("SOL", 1, datetime(2026, 11, 26, 17, 0, tzinfo=plus2))
    assert p.timestamp == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    assert p.timestamp.utcoffset() == timedelta(0)


def test_timestamp_defaults_to_now_utc() -> None:
    before = datetime.now(UTC)
    p = PriceData("SOL", 1)
    after = datetime.now(UTC)
    assert p.timestamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= p.timestamp <= after + timedelta(seconds=1)
    assert p.source == "unknown"


@pytest.mark.parametrize("attr", ["token", "price", "timestamp", "source", "other"])
def test_price_is_immutable(attr: str) -> None:
    p = PriceData("SOL", 1, TS)
    with pytest.raises(AttributeError):
        setattr(p, attr, "x")
    assert p.token == "SOL"


def test_price_equality_hash_repr() -> None:
    a = PriceData("SOL", "187.2345", TS, "pyth")
    b = PriceData("SOL", Decimal("187.2345"), TS, "pyth")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != PriceData("SOL", "187.2346", TS, "pyth")
    assert a != PriceData("SOL", "187.2345", TS + timedelta(seconds=1), "pyth")
    assert a != "SOL"
    assert "SOL" in repr(a) and "187.2345" in repr(a)


def test_price_golden_roundtrip() -> None:
    text = golden("price_data.json")
    p = PriceData.from_json(text)
    assert p.token == "SOL"
    assert p.price == Decimal("187.2345") and str(p.price) == "187.2345"
    assert p.confidence == Decimal("0.0712")
    assert p.timestamp == TS
    assert p.source == "pyth"
    assert p.to_json() == text
    assert PriceData.from_json(text.encode()) == p
    assert PriceData("SOL", "187.2345", TS, "pyth", confidence="0.0712").to_json() == text
    assert "confidence=Decimal('0.0712')" in repr(p)


def test_confidence_is_optional_and_absent_from_the_json_when_none() -> None:
    p = PriceData("SOL", "187.2345", TS, "simulated")
    assert p.confidence is None
    assert p.to_json() == (
        '{"token":"SOL","price":"187.2345","timestamp":"2026-11-26T15:00:00.123000Z",'
        '"source":"simulated"}'
    )
    assert "confidence" not in repr(p)
    assert PriceData("SOL", 1, TS, confidence=None) == PriceData("SOL", 1, TS)
    with_conf = PriceData("SOL", "187.2345", TS, "pyth", confidence=Decimal("0.5"))
    assert with_conf != PriceData("SOL", "187.2345", TS, "pyth")
    assert PriceData.from_json(with_conf.to_json()) == with_conf
    with pytest.raises(InvalidInputError, match="confidence"):
        PriceData("SOL", 1, confidence=-1)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("2026-11-26T15:00:00Z", datetime(2026, 11, 26, 15, 0, tzinfo=UTC)),
        ("2026-11-26T15:00:00.5Z", datetime(2026, 11, 26, 15, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-26T15:00:00.123Z", TS),
        ("2026-11-26T15:00:00.123456789Z", datetime(2026, 11, 26, 15, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T16:00:00.123+01:00", TS),
    ],
)
def test_timestamps_of_any_precision_read_and_are_written_with_microseconds(
    written: str, read: datetime
) -> None:
    p = PriceData.from_json(
        f'{{"token":"SOL","price":"1","timestamp":"{written}","source":"other-client"}}'
    )
    assert p.timestamp == read
    stamp = read.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert f'"timestamp":"{stamp}"' in p.to_json()
    assert PriceData.from_json(p.to_json()) == p


def test_default_timestamps_are_whole_microseconds_everywhere() -> None:
    # now() in Rust has nanoseconds; what is written and what Python sees must agree.
    for item in (
        PriceData("SOL", 1),
        PoolState(POOL, 1, 1, 1, 1),
        solcache.SystemStatus("svc", "healthy"),
        solcache.PriceUpdate("SOL", 1),
    ):
        json_text = item.to_json()
        stamp = json_text.split('"timestamp":"')[1].split('"')[0]
        assert len(stamp) == len("2026-11-26T15:00:00.123456Z"), stamp
        assert item.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == stamp


GARBAGE = [
    "",
    "not json",
    b"\xff\xfe",
    "[1, 2]",
    "{}",
    '{"token":"SOL"}',
    '{"token":"SOL","price":"abc","timestamp":"2026-11-26T15:00:00Z","source":"x"}',
    '{"token":"SOL","price":"1","timestamp":"yesterday","source":"x"}',
]


@pytest.mark.parametrize("data", GARBAGE)
def test_from_json_garbage_raises_serialization_error(data: str | bytes) -> None:
    with pytest.raises(SerializationError) as e:
        PriceData.from_json(data)
    assert isinstance(e.value, ValueError)
    with pytest.raises(SerializationError):
        PoolState.from_json(data)


# --- PoolState -------------------------------------------------------------------------------


def test_pool_state_golden_roundtrip() -> None:
    text = golden("pool_state.json")
    s = PoolState.from_json(text)
    assert s.pool_address == POOL
    assert str(s.liquidity) == "12500000.50"
    assert str(s.reserve_a) == "41250.123456789"
    assert str(s.reserve_b) == "7723456.123456"
    assert str(s.volume_24h) == "98765432.10"
    assert s.timestamp == datetime(2026, 11, 26, 15, 0, 0, 123456, tzinfo=UTC)
    assert s.to_json() == text
    assert PoolState.from_json(text.encode()) == s
    rebuilt = PoolState(
        POOL, "12500000.50", "41250.123456789", "7723456.123456", "98765432.10", s.timestamp
    )
    assert rebuilt == s and hash(rebuilt) == hash(s)
    assert rebuilt.to_json() == text


def test_pool_state_construction_and_immutability() -> None:
    s = PoolState(POOL, 10, Decimal(1000), "2000", 0)
    assert (s.liquidity, s.reserve_a, s.reserve_b, s.volume_24h) == (10, 1000, 2000, 0)
    assert all(isinstance(v, Decimal) for v in (s.liquidity, s.reserve_a, s.volume_24h))
    assert s.timestamp.utcoffset() == timedelta(0)
    with pytest.raises(AttributeError):
        s.reserve_a = Decimal(1)  # type: ignore[misc]
    assert POOL in repr(s)
    assert s != PoolState(POOL, 10, 1000, 2001, 0, s.timestamp)


def test_pool_state_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        PoolState(POOL, "1.5.0", 1, 1, 1)
    with pytest.raises(InvalidInputError):
        PoolState(POOL, 1, 1, 1, 1, datetime(2026, 1, 1))


# --- SwapQuote -------------------------------------------------------------------------------


def assert_close(actual: Decimal, expected: Decimal) -> None:
    assert isinstance(actual, Decimal)
    with localcontext() as ctx:
        ctx.prec = 60
        assert abs(actual - expected) <= abs(expected) * Decimal("1e-20"), (actual, expected)


def expected_quote(
    x: int, y: int, amount: int, fee_bps: int, slippage_bps: int
) -> dict[str, Decimal]:
    with localcontext() as ctx:
        ctx.prec = 60
        dx = Decimal(amount) * (1 - Decimal(fee_bps) / 10000)
        out = y * dx / (x + dx)
        slip = Decimal(slippage_bps) / 10000
        return {
            "amount_in": Decimal(amount),
            "amount_in_after_fee": dx,
            "amount_out": out,
            "price_impact": dx / (x + dx),
            "min_amount_out": out * (1 - slip),
            "max_sandwich_loss": out * slip,
            "spot_price": Decimal(y) / x,
            "execution_price": out / amount,
        }


def check_quote(quote: solcache.SwapQuote, expected: dict[str, Decimal]) -> None:
    for name, value in expected.items():
        assert_close(getattr(quote, name), value)


def test_quote_swap_hand_computed() -> None:
    pool = PoolState(POOL, 10**6, 1000, 2000, 0)
    q = pool.quote_swap(10, fee_bps=25, slippage_bps=100)
    assert_close(q.amount_in_after_fee, Decimal("9.975"))
    assert_close(q.amount_out, Decimal(2000) * Decimal("9.975") / Decimal("1009.975"))
    assert_close(q.spot_price, Decimal(2))
    check_quote(q, expected_quote(1000, 2000, 10, 25, 100))


def test_quote_swap_reverse_direction_swaps_reserves() -> None:
    pool = PoolState(POOL, 10**6, 1000, 2000, 0)
    q = pool.quote_swap("10", a_to_b=False, fee_bps=25, slippage_bps=100)
    check_quote(q, expected_quote(2000, 1000, 10, 25, 100))
    assert_close(q.spot_price, Decimal("0.5"))


def test_quote_swap_defaults_and_edges() -> None:
    pool = PoolState(POOL, 10**6, 1000, 2000, 0)
    check_quote(pool.quote_swap(Decimal(10)), expected_quote(1000, 2000, 10, 25, 50))
    check_quote(pool.quote_swap(10, fee_bps=0), expected_quote(1000, 2000, 10, 0, 50))
    q = pool.quote_swap(10, fee_bps=9999, slippage_bps=10000)
    check_quote(q, expected_quote(1000, 2000, 10, 9999, 10000))
    assert q.min_amount_out == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount_in": 0},
        {"amount_in": -1},
        {"amount_in": 10, "fee_bps": 10000},
        {"amount_in": 10, "fee_bps": 10001},
        {"amount_in": 10, "slippage_bps": 10001},
    ],
)
def test_quote_swap_invalid_inputs(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidInputError):
        PoolState(POOL, 10**6, 1000, 2000, 0).quote_swap(**kwargs)


@pytest.mark.parametrize("reserves", [(0, 2000), (1000, 0), (0, 0)])
def test_quote_swap_zero_reserves(reserves: tuple[int, int]) -> None:
    with pytest.raises(InvalidInputError):
        PoolState(POOL, 10**6, *reserves, 0).quote_swap(10)
    with pytest.raises(InvalidInputError):
        PoolState(POOL, 10**6, *reserves, 0).quote_swap(10, a_to_b=False)
