"""Trading events: construction, immutability, equality, routing, golden wire format, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import solcache
from solcache import (
    InvalidInputError,
    PositionUpdate,
    PriceUpdate,
    SerializationError,
    SolcacheError,
    SystemStatus,
    TradeExecuted,
    TradingEvent,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "events"
TS = datetime(2026, 11, 26, 15, 0, 0, 123000, tzinfo=UTC)
SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"
CLASSES: dict[str, type[TradingEvent]] = {
    "price_update": PriceUpdate,
    "trade_executed": TradeExecuted,
    "position_update": PositionUpdate,
    "system_status": SystemStatus,
}


def golden(type_name: str) -> str:
    """The golden `data` JSON of one event type (the file ends in exactly one newline)."""
    text = (GOLDEN / f"{type_name}.json").read_text()
    assert text.endswith("}\n")
    return text[:-1]


def samples() -> list[TradingEvent]:
    return [
        PriceUpdate("SOL", "187.2345", TS),
        TradeExecuted(SIG, "buy", "SOL/USDC", "12.5", "187.2345", TS),
        PositionUpdate("SOL", "-3.25", "-41.07", TS),
        SystemStatus("price-service", "degraded", "pyth source stale", TS),
    ]


# --- construction ------------------------------------------------------------------------------


def test_price_update_fields() -> None:
    e = PriceUpdate("SOL", "187.2345", TS)
    assert (e.token, e.price, e.timestamp) == ("SOL", Decimal("187.2345"), TS)
    assert isinstance(e.price, Decimal) and str(e.price) == "187.2345"
    assert isinstance(e, TradingEvent)
    assert PriceUpdate("SOL", 187).price == 187
    assert PriceUpdate("SOL", Decimal("0.000012345678901234567")).price == Decimal(
        "0.000012345678901234567"
    )


def test_trade_executed_fields() -> None:
    e = TradeExecuted(SIG, "sell", "SOL/USDC", Decimal("12.5"), 187, TS)
    assert (e.id, e.action, e.token_pair) == (SIG, "sell", "SOL/USDC")
    assert (e.amount, e.price, e.timestamp) == (Decimal("12.5"), Decimal(187), TS)
    assert isinstance(e.amount, Decimal) and isinstance(e.price, Decimal)


def test_position_update_fields_may_be_negative() -> None:
    e = PositionUpdate("JITOSOL", "-3.25", -41, TS)
    assert (e.token, e.amount, e.pnl, e.timestamp) == ("JITOSOL", Decimal("-3.25"), -41, TS)


def test_system_status_fields_and_default_message() -> None:
    e = SystemStatus("price-service", "healthy", timestamp=TS)
    assert (e.component, e.status, e.message, e.timestamp) == ("price-service", "healthy", "", TS)
    assert SystemStatus("web", "degraded", "slow", TS).message == "slow"


def test_timestamp_defaults_to_now_utc() -> None:
    before = datetime.now(UTC)
    events = [
        PriceUpdate("SOL", 1),
        TradeExecuted("t1", "buy", "SOL/USDC", 1, 1),
        PositionUpdate("SOL", 1, 0),
        SystemStatus("web", "healthy"),
    ]
    after = datetime.now(UTC)
    for e in events:
        assert e.timestamp.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= e.timestamp <= after + timedelta(seconds=1)


def test_aware_timestamp_converted_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    e = PriceUpdate("SOL", 1, datetime(2026, 11, 26, 17, 0, tzinfo=plus2))
    assert e.timestamp == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    assert e.timestamp.utcoffset() == timedelta(0)


# --- immutability, equality, hash, repr ------------------------------------------------------


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.type)
def test_events_are_immutable(event: TradingEvent) -> None:
    for attr in ["timestamp", "type", "default_stream", "token", "price", "status", "new_attr"]:
        with pytest.raises(AttributeError):
            setattr(event, attr, "x")
    assert event.timestamp == TS


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.type)
def test_equal_events_hash_alike(event: TradingEvent) -> None:
    twin = TradingEvent.from_json(event.type, event.to_json())
    assert twin == event and hash(twin) == hash(event) and len({twin, event}) == 1
    assert event != "not an event" and event != None  # noqa: E711


def test_events_differ_by_any_field_and_by_class() -> None:
    a = PriceUpdate("SOL", "187.2345", TS)
    assert a == PriceUpdate("SOL", Decimal("187.2345"), TS)
    assert a != PriceUpdate("SOL", "187.2346", TS)
    assert a != PriceUpdate("BONK", "187.2345", TS)
    assert a != PriceUpdate("SOL", "187.2345", TS + timedelta(milliseconds=1))
    p = PositionUpdate("SOL", 1, 2, TS)
    assert p != PositionUpdate("SOL", 1, 3, TS)
    assert len(set(samples()) | set(samples())) == 4
    t = TradeExecuted("t1", "buy", "SOL/USDC", 1, 1, TS)
    assert t != TradeExecuted("t1", "sell", "SOL/USDC", 1, 1, TS)
    assert PriceUpdate("SOL", 1, TS) != PositionUpdate("SOL", 1, 0, TS)
    # equal events hash alike, also when the decimals only differ in scale
    scaled = [PriceUpdate("SOL", "1.5", TS), PriceUpdate("SOL", "1.50", TS)]
    if scaled[0] == scaled[1]:
        assert hash(scaled[0]) == hash(scaled[1])


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.type)
def test_repr_names_class_and_fields(event: TradingEvent) -> None:
    text = repr(event)
    assert type(event).__name__ in text
    first_field = {
        "price_update": "SOL",
        "trade_executed": SIG,
        "position_update": "SOL",
        "system_status": "price-service",
    }[event.type]
    assert first_field in text


# --- type and routing --------------------------------------------------------------------------


def test_type_names_and_default_streams() -> None:
    routes = {e.type: e.default_stream for e in samples()}
    assert routes == {
        "price_update": "stream:price-updates",
        "trade_executed": "stream:trade-events",
        "position_update": "stream:trade-events",
        "system_status": "stream:ui-events",
    }
    assert solcache.STREAM_PRICE_UPDATES == "stream:price-updates"
    assert solcache.STREAM_TRADE_EVENTS == "stream:trade-events"
    assert solcache.STREAM_UI_EVENTS == "stream:ui-events"
    assert solcache.STREAM_DEAD_LETTER == "stream:dead-letter"
    assert solcache.DEFAULT_MAXLEN == 10_000


# --- golden wire format ------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(CLASSES))
def test_golden_decode_and_byte_identical_encode(type_name: str) -> None:
    data = golden(type_name)
    event = TradingEvent.from_json(type_name, data)
    assert type(event) is CLASSES[type_name]
    assert event.type == type_name
    assert event.to_json() == data
    assert TradingEvent.from_json(type_name, data.encode()) == event


def test_golden_fields() -> None:
    p = TradingEvent.from_json("price_update", golden("price_update"))
    assert isinstance(p, PriceUpdate)
    assert (p.token, str(p.price), p.timestamp) == ("SOL", "187.2345", TS)

    t = TradingEvent.from_json("trade_executed", golden("trade_executed"))
    assert isinstance(t, TradeExecuted)
    assert (t.id, t.action, t.token_pair) == (SIG, "buy", "SOL/USDC")
    assert (str(t.amount), str(t.price)) == ("12.5", "187.2345")
    assert t.timestamp == datetime(2026, 11, 26, 15, 0, 0, 456000, tzinfo=UTC)

    q = TradingEvent.from_json("position_update", golden("position_update"))
    assert isinstance(q, PositionUpdate)
    assert (q.token, str(q.amount), str(q.pnl)) == ("SOL", "-3.25", "-41.07")
    assert q.timestamp == datetime(2026, 11, 26, 15, 0, 1, tzinfo=UTC)

    s = TradingEvent.from_json("system_status", golden("system_status"))
    assert isinstance(s, SystemStatus)
    assert (s.component, s.status) == ("price-service", "degraded")
    assert s.message == "pyth source stale for 2.5 s"
    assert s.timestamp == datetime(2026, 11, 26, 15, 0, 2, 500000, tzinfo=UTC)


def test_constructed_events_encode_to_golden() -> None:
    built = {
        "price_update": PriceUpdate("SOL", "187.2345", TS),
        "trade_executed": TradeExecuted(
            SIG,
            "buy",
            "SOL/USDC",
            "12.5",
            "187.2345",
            datetime(2026, 11, 26, 15, 0, 0, 456000, UTC),
        ),
        "position_update": PositionUpdate(
            "SOL", "-3.25", "-41.07", datetime(2026, 11, 26, 15, 0, 1, tzinfo=UTC)
        ),
        "system_status": SystemStatus(
            "price-service",
            "degraded",
            "pyth source stale for 2.5 s",
            datetime(2026, 11, 26, 15, 0, 2, 500000, UTC),
        ),
    }
    for type_name, event in built.items():
        assert event.to_json() == golden(type_name), type_name


# --- invalid input -------------------------------------------------------------------------------

NAIVE = datetime(2026, 11, 26, 15, 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PriceUpdate("", 1),
        lambda: PriceUpdate("bad token!", 1),
        lambda: PriceUpdate("SOL/USDC", 1),
        lambda: PriceUpdate("SOL", float("nan")),
        lambda: PriceUpdate("SOL", "abc"),
        lambda: PriceUpdate("SOL", "-1"),
        lambda: PriceUpdate("SOL", 1, NAIVE),
        lambda: TradeExecuted("t1", "hold", "SOL/USDC", 1, 1),
        lambda: TradeExecuted("t1", "BUY", "SOL/USDC", 1, 1),
        lambda: TradeExecuted("t1", "buy", "SOLUSDC", 1, 1),
        lambda: TradeExecuted("t1", "buy", "SOL/", 1, 1),
        lambda: TradeExecuted("t1", "buy", "/USDC", 1, 1),
        lambda: TradeExecuted("t1", "buy", "SOL/USDC/RAY", 1, 1),
        lambda: TradeExecuted("t1", "buy", "SOL/USDC", float("inf"), 1),
        lambda: TradeExecuted("t1", "buy", "SOL/USDC", 1, True),
        lambda: TradeExecuted("", "buy", "SOL/USDC", 1, 1),
        lambda: TradeExecuted("t1", "buy", "SOL/USDC", 1, 1, NAIVE),
        lambda: PositionUpdate("bad token!", 1, 1),
        lambda: PositionUpdate("SOL", float("-inf"), 1),
        lambda: PositionUpdate("SOL", 1, False),
        lambda: PositionUpdate("SOL", 1, 1, NAIVE),
        lambda: SystemStatus("", "healthy"),
        lambda: SystemStatus("web", "BAD STATUS"),
        lambda: SystemStatus("web", ""),
        lambda: SystemStatus("web", "degraded", "x" * 1025),
        lambda: SystemStatus("web", "healthy", "", NAIVE),
    ],
)
def test_invalid_input_rejected(make) -> None:
    with pytest.raises(InvalidInputError) as e:
        make()
    assert isinstance(e.value, ValueError) and isinstance(e.value, SolcacheError)


def test_limits_are_inclusive() -> None:
    assert len(SystemStatus("web", "degraded", "x" * 1024).message) == 1024
    assert TradeExecuted("t" * 128, "sell", "BONK/SOL", 0, 0).id == "t" * 128


BAD_DATA = [
    ("price_update", "not json"),
    ("price_update", ""),
    ("price_update", b"\xff\xfe"),
    ("price_update", "[1, 2]"),
    ("price_update", '{"token":"SOL","timestamp":"2026-11-26T15:00:00Z"}'),
    ("price_update", '{"token":"SOL","price":"1","timestamp":"2026-11-26T15:00:00Z","x":1}'),
    ("price_update", '{"token":"SOL","price":"abc","timestamp":"2026-11-26T15:00:00Z"}'),
    ("price_update", '{"token":"SOL","price":"1","timestamp":"yesterday"}'),
    ("price_update", '{"token":"bad token!","price":"1","timestamp":"2026-11-26T15:00:00Z"}'),
    ("trade_executed", golden("trade_executed").replace('"buy"', '"hold"')),
    ("trade_executed", golden("trade_executed").replace("SOL/USDC", "SOLUSDC")),
    ("system_status", golden("system_status").replace("degraded", "BAD STATUS")),
    ("position_update", golden("price_update")),
    ("liquidation", "{}"),
    ("", golden("price_update")),
]


@pytest.mark.parametrize(("type_name", "data"), BAD_DATA)
def test_bad_json_is_a_value_error(type_name: str, data: str | bytes) -> None:
    # The binding raises SerializationError for undecodable data (InvalidInputError would do as
    # well): what matters to callers is that both are ValueError and SolcacheError.
    with pytest.raises((SerializationError, InvalidInputError)) as e:
        TradingEvent.from_json(type_name, data)
    assert isinstance(e.value, ValueError) and isinstance(e.value, SolcacheError)
    assert str(e.value)


def test_from_json_names_the_problem() -> None:
    with pytest.raises(ValueError, match="liquidation"):
        TradingEvent.from_json("liquidation", "{}")
    with pytest.raises(ValueError, match="price_update"):
        TradingEvent.from_json("price_update", "{")


@pytest.mark.parametrize("data", [123, None, ["{}"]])
def test_from_json_takes_str_or_bytes(data: object) -> None:
    with pytest.raises(InvalidInputError):
        TradingEvent.from_json("price_update", data)  # type: ignore[arg-type]
