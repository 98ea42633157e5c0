"""PythPriceSource against a fake Hermes on 127.0.0.1 (real HTTP, real payload format).

No wall-clock upper bounds: every wait polls a condition until a generous deadline. Lower
bounds on backoff gaps are safe (a loaded machine only makes them longer).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from fake_hermes import FakeFeed, FakeHermes
from solcache import MVP_TOKENS
from solcache.backoff import Backoff
from solcache.sources import PYTH_FEED_IDS, PythPriceSource, SourceError
from solcache.sources.base import PriceSnapshot
from solcache.sources.feed_book import FeedBook
from solcache.sources.hermes import normalize_feed_id, parse_price_update, scaled_price
from solcache.sources.sse_decoder import SseDecoder, SseEvent

T0 = 1735689600  # 2025-01-01T00:00:00Z
SOL, USDC, BONK, JITOSOL, RAY = (PYTH_FEED_IDS[t] for t in MVP_TOKENS)
DEADLINE_S = 15.0


def real_feeds() -> dict[str, FakeFeed]:
    """The MVP feeds with the exponents Pyth uses for them."""
    return {
        SOL: FakeFeed(14523456789, -8, T0),
        USDC: FakeFeed(99995000, -8, T0),
        BONK: FakeFeed(234012, -10, T0),
        JITOSOL: FakeFeed(22112345678, -8, T0),
        RAY: FakeFeed(240123456, -8, T0),
    }


@pytest.fixture
def hermes() -> Iterator[FakeHermes]:
    with FakeHermes(real_feeds()) as fake:
        yield fake


def make_source(fake: FakeHermes, mode: str = "poll", **kwargs: object) -> PythPriceSource:
    options: dict[str, object] = {
        "base_url": fake.url,
        "mode": mode,
        "poll_interval_s": 0.05,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "rate_limit_backoff_s": 0.3,
        **kwargs,
    }
    return PythPriceSource(**options)  # type: ignore[arg-type]


async def wait_until(condition: Callable[[], object], within_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


async def snapshot_where(
    source: PythPriceSource,
    predicate: Callable[[PriceSnapshot], bool],
    within_s: float = DEADLINE_S,
) -> PriceSnapshot:
    """The first snapshot that satisfies ``predicate`` (SourceError counts as not yet)."""
    deadline = time.monotonic() + within_s
    last: object = None
    while True:
        try:
            snap = await source.snapshot()
            if predicate(snap):
                return snap
            last = snap
        except SourceError as e:
            last = e
        assert time.monotonic() < deadline, f"no matching snapshot; last: {last!r}"
        await asyncio.sleep(0.01)


def by_token(snap: PriceSnapshot) -> dict[str, Decimal]:
    return {p.token: p.price for p in snap.prices}


# --- polling -------------------------------------------------------------------------------


async def test_poll_values_are_exact(hermes: FakeHermes) -> None:
    # Ids in any case, with or without 0x, still match Hermes' bare lower-case ids.
    feed_ids = {"SOL": "0x" + SOL.upper(), "USDC": USDC, "BONK": "0x" + BONK, "RAY": RAY.upper()}
    source = make_source(hermes, feed_ids=feed_ids)
    async with source:
        snap = await snapshot_where(source, lambda s: len(s.prices) == 4)
    prices = by_token(snap)
    assert prices["SOL"] == Decimal("145.23456789")
    assert str(prices["SOL"]) == "145.23456789"
    assert prices["USDC"] == Decimal("0.99995")
    assert prices["BONK"] == Decimal("0.0000234012")
    assert prices["RAY"] == Decimal("2.40123456")
    for p in snap.prices:
        assert p.source == "pyth"
        assert p.timestamp == datetime(2025, 1, 1, tzinfo=UTC)
    # Pyth's confidence interval is kept, scaled like the price (conf 1000 at expo -8 / -10).
    confidence = {p.token: p.confidence for p in snap.prices}
    assert confidence["SOL"] == Decimal("0.00001") and confidence["BONK"] == Decimal("1E-7")
    assert snap.missing == () and snap.problems == ()
    assert hermes.latest_requests >= 1 and hermes.stream_connections == 0
    query = hermes.queries_seen[0]
    assert f"ids[]={SOL}" in query  # literal brackets, as in the Hermes docs
    assert "ignore_invalid_price_ids=true" in query and "parsed=true" in query


async def test_missing_feed_is_reported(hermes: FakeHermes) -> None:
    hermes.remove_feed(RAY)
    source = make_source(hermes)
    async with source:
        snap = await snapshot_where(source, lambda s: len(s.prices) == 4)
        assert snap.missing == ("RAY",)
        assert "RAY" not in by_token(snap)
        # A feed that disappears later turns missing at the next poll.
        hermes.remove_feed(BONK)
        snap = await snapshot_where(source, lambda s: "BONK" in s.missing)
        assert snap.missing == ("BONK", "RAY") and len(snap.prices) == 3


async def test_fake_hermes_answers_404_for_unknown_ids_without_the_ignore_flag(
    hermes: FakeHermes,
) -> None:
    hermes.remove_feed(RAY)
    async with httpx.AsyncClient(base_url=hermes.url) as client:
        response = await client.get(f"/v2/updates/price/latest?ids[]={SOL}&ids[]={RAY}")
    assert response.status_code == 404
    assert "Price ids not found" in response.text


async def test_429_backs_off_is_reported_then_recovers(hermes: FakeHermes) -> None:
    source = make_source(hermes, rate_limit_backoff_s=1.0)
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
        hermes.fail_next(1, status=429)
        limited = await snapshot_where(source, lambda s: any("429" in p for p in s.problems))
        assert len(limited.prices) == 5  # the last prices are still served
        await snapshot_where(source, lambda s: s.problems == ())
        assert source.stats.rate_limited == 1
    # The request after the 429 waited for the rate-limit backoff.
    gaps = [b - a for a, b in itertools.pairwise(hermes.request_times_s)]
    assert max(gaps) >= 0.9


async def test_429_before_any_price_raises_a_source_error_that_says_so(hermes: FakeHermes) -> None:
    hermes.fail_next(1, status=429)
    source = make_source(hermes, rate_limit_backoff_s=1.0)
    async with source:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            with pytest.raises(SourceError, match="no Pyth price yet") as error:
                await source.snapshot()
            if "HTTP 429" in str(error.value):
                break
            assert time.monotonic() < deadline, "the 429 never showed in the error"
            await asyncio.sleep(0.01)
        await snapshot_where(source, lambda s: len(s.prices) == 5)


@pytest.mark.parametrize(
    ("retry_after", "cap_s", "min_gap_s"),
    [("1", 300.0, 0.9), ("3600", 0.5, 0.45)],
    ids=["retry-after-respected", "retry-after-capped"],
)
async def test_retry_after_header(
    hermes: FakeHermes, retry_after: str, cap_s: float, min_gap_s: float
) -> None:
    hermes.fail_next(1, status=429, retry_after=retry_after)
    # The default 60 s backoff would time the test out: recovering proves Retry-After was used.
    source = make_source(hermes, rate_limit_backoff_s=60.0, retry_after_max_s=cap_s)
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
    first, second = hermes.request_times_s[:2]
    assert second - first >= min_gap_s


async def test_server_errors_are_reported_and_retried(hermes: FakeHermes) -> None:
    source = make_source(hermes)
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
        hermes.fail_next(2, status=503)
        snap = await snapshot_where(source, lambda s: any("HTTP 503" in p for p in s.problems))
        assert len(snap.prices) == 5
        await snapshot_where(source, lambda s: s.problems == ())
        assert source.stats.errors >= 2


async def test_staleness_grows_without_fresh_data(hermes: FakeHermes) -> None:
    source = make_source(hermes, stale_after_s=0.3)
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
        stale = await snapshot_where(source, lambda s: s.staleness_s >= 0.5)
        assert len(stale.prices) == 5  # same publish_time again and again: not fresh
        assert any("SOL: publish_time has not advanced" in p for p in stale.problems)
        # One feed moving on does not make the others fresh: staleness is the stalest feed's.
        hermes.set_feed(SOL, FakeFeed(15000000000, -8, T0 + 10))
        moved = await snapshot_where(source, lambda s: by_token(s)["SOL"] == Decimal(150))
        assert moved.staleness_s >= stale.staleness_s
        assert not any(p.startswith("SOL:") for p in moved.problems)
        assert any(p.startswith("USDC:") for p in moved.problems)
        for feed_id, feed in real_feeds().items():
            hermes.set_feed(feed_id, FakeFeed(feed.price, feed.expo, T0 + 20))
        fresh = await snapshot_where(source, lambda s: s.staleness_s < 0.3)
        assert fresh.staleness_s < stale.staleness_s and fresh.problems == ()


# --- streaming -----------------------------------------------------------------------------


async def test_stream_updates_ignore_comments_and_reconnect(
    hermes: FakeHermes, caplog: pytest.LogCaptureFixture
) -> None:
    hermes.sse_error_event = True  # one `event: error` per connection, as Hermes can send
    caplog.set_level(logging.INFO, logger="solcache")
    source = make_source(hermes, mode="stream")
    async with source:
        # The fake closes each stream after 3 updates: several connections means reconnects.
        await wait_until(lambda: source.stats.stream_connections >= 3)
        snap = await snapshot_where(source, lambda s: len(s.prices) == 5)
        stats = source.stats
    assert stats.stream_connections >= 3 and stats.requests >= 3
    assert stats.updates >= 5 and stats.errors == 0  # comments and error events are no errors
    # Each fake tick adds 1000 units (1e-5 USD at expo -8) and one second of publish time.
    sol = next(p for p in snap.prices if p.token == "SOL")
    ticks = int(sol.timestamp.timestamp()) - T0
    assert ticks >= 1
    assert sol.price == Decimal("145.23456789") + Decimal("0.00001") * ticks
    assert "Hermes stream error" in caplog.text
    assert "closed the price stream" in caplog.text
    assert hermes.latest_requests == 0


async def test_silent_stream_is_dropped_after_the_idle_timeout(hermes: FakeHermes) -> None:
    hermes.sse_silent = True
    source = make_source(hermes, mode="stream", stream_idle_timeout_s=0.3)
    async with source:
        await wait_until(lambda: hermes.stream_connections >= 2)
        with pytest.raises(SourceError, match="ReadTimeout"):
            await source.snapshot()
        hermes.sse_silent = False
        await snapshot_where(source, lambda s: len(s.prices) == 5)


async def test_stream_prices_expire_when_a_feed_stops(hermes: FakeHermes) -> None:
    hermes.sse_updates_per_connection = None
    source = make_source(hermes, mode="stream", price_max_age_s=0.5)
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
        hermes.remove_feed(RAY)
        snap = await snapshot_where(source, lambda s: s.missing == ("RAY",))
        assert len(snap.prices) == 4


async def test_stream_feed_whose_publish_time_stops_goes_stale_then_missing(
    hermes: FakeHermes,
) -> None:
    # Hermes re-sends a feed whose publishers stopped in every update, with the same
    # publish_time: arriving again must not count as fresh.
    hermes.sse_updates_per_connection = None
    source = make_source(hermes, mode="stream", stale_after_s=1.0, price_max_age_s=3.0)
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
        hermes.freeze_feed(RAY)
        sent = len(hermes.sse_sent)

        def stale_feeds(snap: PriceSnapshot) -> list[str]:
            return [p.split(":")[0] for p in snap.problems if "publish_time has not" in p]

        stale = await snapshot_where(
            source, lambda s: stale_feeds(s) == ["RAY"] and s.staleness_s > 1.5
        )
        assert len(stale.prices) == 5 and stale.missing == ()  # stale first, still served
        # Dropped once its publish_time stood still for price_max_age_s; the rest stay fresh.
        gone = await snapshot_where(source, lambda s: s.missing == ("RAY",) and s.staleness_s < 1.0)
        assert sorted(by_token(gone)) == ["BONK", "JitoSOL", "SOL", "USDC"]
        # RAY was in every update meanwhile, always with the same publish_time.
        later = hermes.sse_sent[sent:]
        assert len(later) >= 2
        ray = [e for payload in later for e in payload["parsed"] if e["id"] == RAY]
        assert len(ray) == len(later)
        assert len({e["price"]["publish_time"] for e in ray}) == 1


def test_feed_book_ages_a_feed_by_publish_time_not_by_arrival() -> None:
    now = [100.0]
    feed_ids = {"SOL": SOL, "USDC": USDC}
    book = FeedBook(feed_ids, source_name="pyth", max_age_s=10.0, monotonic=lambda: now[0])

    def send(sol_time: int, usdc_time: int) -> int:
        feeds = {SOL: FakeFeed(14523456789, -8, sol_time), USDC: FakeFeed(99995000, -8, usdc_time)}
        prices, problems = parse_price_update({"parsed": [f.entry(i, 1) for i, f in feeds.items()]})
        assert problems == []
        return book.apply(prices, complete=True)

    assert send(T0, T0) == 2
    assert book.staleness_s() == 0.0 and book.stale(1.0) == ()
    for step in range(1, 9):  # SOL re-sent unchanged every second, USDC advancing
        now[0] += 1.0
        assert send(T0, T0 + step) == 1
    assert book.staleness_s() == 8.0
    assert book.stale(1.0) == (("SOL", 8.0),)
    assert [p.token for p in book.prices()] == ["SOL", "USDC"]
    now[0] += 2.5
    assert send(T0, T0 + 20) == 1
    assert [p.token for p in book.prices()] == ["USDC"] and book.missing() == ("SOL",)
    assert book.staleness_s() == 0.0
    now[0] += 1.0
    assert send(T0 + 30, T0 + 30) == 2  # publishers back: fresh again at once
    assert book.missing() == () and book.staleness_s() == 0.0
    held = {p.token: p for p in book.prices()}
    assert held["SOL"].timestamp == datetime.fromtimestamp(T0 + 30, UTC)
    assert held["SOL"].confidence == Decimal("0.00001")


async def test_close_stops_the_background_task(hermes: FakeHermes) -> None:
    hermes.sse_updates_per_connection = None  # one stream that never ends by itself
    source = make_source(hermes, mode="stream")
    await source.start()
    assert await source.wait_ready(DEADLINE_S)
    assert hermes.open_streams == 1
    task = source._task
    assert task is not None
    await source.close()
    assert task.done()
    await wait_until(lambda: hermes.open_streams == 0)
    connections = hermes.stream_connections
    await asyncio.sleep(0.3)
    assert hermes.stream_connections == connections  # nothing reconnects after close
    with pytest.raises(SourceError, match="not started"):
        await source.snapshot()
    await source.close()  # idempotent


@pytest.mark.parametrize(
    ("header", "scheme", "expected"),
    [("Authorization", "Bearer", "Bearer sk-test-123"), ("x-api-key", None, "sk-test-123")],
)
async def test_api_key_is_sent_and_never_logged(
    hermes: FakeHermes,
    caplog: pytest.LogCaptureFixture,
    header: str,
    scheme: str | None,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    hermes.fail_next(1, status=403)  # something worth logging
    source = make_source(
        hermes, api_key="sk-test-123", api_key_header=header, api_key_scheme=scheme
    )
    async with source:
        await snapshot_where(source, lambda s: len(s.prices) == 5)
    assert hermes.headers_seen and all(
        h.get(header.lower()) == expected for h in hermes.headers_seen
    )
    assert "HTTP 403" in caplog.text and "check the API key" in caplog.text
    assert "sk-test-123" not in caplog.text
    assert "sk-test-123" not in repr(source)


async def test_a_secret_in_the_base_url_path_is_never_logged(
    hermes: FakeHermes, caplog: pytest.LogCaptureFixture
) -> None:
    # Some providers put the access token in the path (https://host/<token>/hermes).
    caplog.set_level(logging.DEBUG, logger="solcache")
    source = make_source(hermes, base_url=f"{hermes.url}/tok-secret-path/hermes")
    async with source:
        await wait_until(lambda: source.stats.errors >= 2)  # the fake has no such path: 404
        with pytest.raises(SourceError, match="HTTP 404") as error:
            await source.snapshot()
    assert "tok-secret-path" not in str(error.value)
    assert "tok-secret-path" not in repr(source)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("solcache")]
    assert ours and not any("tok-secret-path" in m for m in ours)


async def test_snapshot_before_start_and_wait_ready_timeout() -> None:
    source = PythPriceSource(base_url="http://127.0.0.1:9", backoff_initial_s=0.05)
    with pytest.raises(SourceError, match="not started"):
        await source.snapshot()
    async with source:
        assert not await source.wait_ready(0.2)  # nothing listens on the discard port
        with pytest.raises(SourceError, match="no Pyth price yet"):
            await source.snapshot()


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="mode"):
        PythPriceSource(mode="push")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        PythPriceSource(timeout_s=float("inf"))
    with pytest.raises(ValueError, match="poll_interval_s"):
        PythPriceSource(poll_interval_s=0)
    with pytest.raises(ValueError, match="64 hex digits"):
        PythPriceSource({"SOL": "0x1234"})
    with pytest.raises(ValueError, match="same feed id"):
        PythPriceSource({"SOL": SOL, "WSOL": "0x" + SOL})
    with pytest.raises(ValueError, match="base_url"):
        PythPriceSource(base_url="hermes.pyth.network")
    assert PythPriceSource().tokens == MVP_TOKENS


# --- format helpers ------------------------------------------------------------------------


def test_scaled_price_is_exact() -> None:
    assert scaled_price("14523456789", -8) == Decimal("145.23456789")
    assert scaled_price("234012", -10) == Decimal("0.0000234012")
    assert scaled_price("-5", 2) == Decimal(-500)
    assert scaled_price("9223372036854775807", -8) == Decimal("92233720368.54775807")
    for bad in (("1.5", -8), ("", -8), ("12", 99)):
        with pytest.raises(ValueError):
            scaled_price(*bad)


def test_normalize_feed_id() -> None:
    assert normalize_feed_id("0x" + SOL.upper()) == SOL
    assert normalize_feed_id(f"  {SOL} ") == SOL
    with pytest.raises(ValueError):
        normalize_feed_id("0x" + SOL[:-1] + "g")


def test_parse_price_update_skips_malformed_entries() -> None:
    good = FakeFeed(14523456789, -8, T0).entry(SOL, 1)
    bad_price = {**FakeFeed(1, -8, T0).entry(USDC, 1), "price": {"price": "1.5", "expo": -8}}
    prices, problems = parse_price_update({"parsed": [good, bad_price, "junk", {"id": "zz"}]})
    assert list(prices) == [SOL]
    assert prices[SOL].price == Decimal("145.23456789")
    assert prices[SOL].publish_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert len(problems) == 3
    with pytest.raises(SourceError):
        parse_price_update({"binary": {}})
    with pytest.raises(SourceError):
        parse_price_update([good])


def test_sse_decoder() -> None:
    decoder = SseDecoder()
    lines = [
        ": No update available",
        "",
        'data: {"a":',
        "data:1}",
        "",
        "event: error",
        "data: Error receiving update: x",
        "",
        ":",
        "",
        "retry: 10",
        "id: 7",
        "data: last",
        "",
    ]
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert events == [
        SseEvent("message", '{"a":\n1}'),
        SseEvent("error", "Error receiving update: x"),
        SseEvent("message", "last", id="7"),
    ]
    assert decoder.comments == 2
    small = SseDecoder(max_event_chars=10)
    with pytest.raises(SourceError):
        small.feed("data: " + "x" * 20)


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next_delay_s() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay_s() == 0.5
    jittery = Backoff(1.0, 1.0, jitter=0.1)
    assert all(0.9 <= jittery.next_delay_s() <= 1.1 for _ in range(100))


# --- recorded Hermes responses ---------------------------------------------------------------

#: A response of ``GET /v2/updates/price/latest`` captured from hermes.pyth.network (NEAR/USD
#: and ETH/USD; the ``binary`` data cut short), byte for byte.
RECORDED_LATEST = (
    '{"binary":{"encoding":"hex","data":["504e41550100000003b80100..."]},"parsed":[{"id":"c415de8d'
    '2eba7db216527dff4b60e8f3a5311c740dadb233e13e12547e226750","price":{"price":"183487211","conf'
    '":"211694","expo":-8,"publish_time":1785143368},"ema_price":{"price":"184242413","conf":"209'
    '509","expo":-8,"publish_time":1785143368},"metadata":{"slot":304918931,"proof_available_time'
    '":1785143370,"prev_publish_time":1785143368}},{"id":"ff61491a931112ddf1bd8147cd1b641375f79f5'
    '825126d665480874634fd0ace","price":{"price":"195656091864","conf":"87908136","expo":-8,"publ'
    'ish_time":1785143368},"ema_price":{"price":"196361740000","conf":"69342421","expo":-8,"publi'
    'sh_time":1785143368},"metadata":{"slot":304918931,"proof_available_time":1785143370,"prev_pu'
    'blish_time":1785143368}}]}'
)
RECORDED_FEEDS = {
    "NEAR": "0xc415de8d2eba7db216527dff4b60e8f3a5311c740dadb233e13e12547e226750",
    "ETH": "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
}
RECORDED_AT = datetime.fromtimestamp(1785143368, UTC)


def test_recorded_hermes_response_parses_exactly() -> None:
    prices, problems = parse_price_update(json.loads(RECORDED_LATEST))
    assert problems == []
    near, eth = (prices[normalize_feed_id(f)] for f in RECORDED_FEEDS.values())
    assert (near.price, near.conf) == (Decimal("1.83487211"), Decimal("0.00211694"))
    assert (eth.price, eth.conf) == (Decimal("1956.56091864"), Decimal("0.87908136"))
    assert near.publish_time == eth.publish_time == RECORDED_AT
    # metadata may be null or missing: nothing read from it.
    entry = json.loads(RECORDED_LATEST)["parsed"][0]
    for variant in (
        {**entry, "metadata": None},
        {k: v for k, v in entry.items() if k != "metadata"},
    ):
        assert parse_price_update({"parsed": [variant]})[0][
            normalize_feed_id(RECORDED_FEEDS["NEAR"])
        ]


@pytest.mark.parametrize("mode", ["poll", "stream"])
async def test_recorded_hermes_response_served_end_to_end(hermes: FakeHermes, mode: str) -> None:
    hermes.recorded = RECORDED_LATEST  # the same body for latest and as each SSE `data:` frame
    source = make_source(hermes, mode=mode, feed_ids=RECORDED_FEEDS)
    async with source:
        snap = await snapshot_where(source, lambda s: len(s.prices) == 2)
    got = {p.token: p for p in snap.prices}
    assert got["ETH"].price == Decimal("1956.56091864")
    assert got["ETH"].confidence == Decimal("0.87908136")
    assert got["NEAR"].confidence == Decimal("0.00211694")
    assert all(p.timestamp == RECORDED_AT and p.source == "pyth" for p in snap.prices)
    assert '"confidence":"0.87908136"' in got["ETH"].to_json()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from email.utils import format_datetime

    from solcache.sources.hermes_http import retry_after_s

    assert retry_after_s("7") == 7.0
    assert retry_after_s("-3") == 0.0  # a delay in the past: retry now
    assert retry_after_s(None) is None and retry_after_s("") is None
    assert retry_after_s("nan") is None and retry_after_s("inf") is None
    assert retry_after_s("soon") is None  # neither seconds nor a date
    later = datetime.fromtimestamp(time.time() + 30, UTC)
    assert 25 < (retry_after_s(format_datetime(later, usegmt=True)) or 0) <= 30
    # A date without a zone is taken as UTC (RFC 9110 dates are GMT).
    naive = format_datetime(later.replace(tzinfo=None))
    assert 25 < (retry_after_s(naive) or 0) <= 30
    assert retry_after_s("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
