"""The simulated sources: reproducible, realistic, and always valid models. No Redis needed."""

from __future__ import annotations

import decimal
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from solcache import MVP_TOKENS, PoolState, PositionUpdate, PriceData, TradeExecuted
from solcache.sources import (
    DEFAULT_POOLS,
    REFERENCE_PRICES,
    TOKEN_MODELS,
    PoolSpec,
    SimulatedPoolSource,
    SimulatedPriceSource,
)
from solcache.sources.amm import ConstantProductPool
from solcache.sources.reference import TokenModel, round_significant
from solcache.sources.simulated_trades import SimulatedTradeSource

FIXED_NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED_NOW


async def price_run(source: SimulatedPriceSource, steps: int) -> list[tuple[PriceData, ...]]:
    return [(await source.snapshot()).prices for _ in range(steps)]


# --- prices --------------------------------------------------------------------------------


async def test_same_seed_same_prices_other_seed_other_prices() -> None:
    a = await price_run(SimulatedPriceSource(seed=7, clock=fixed_clock), 200)
    b = await price_run(SimulatedPriceSource(seed=7, clock=fixed_clock), 200)
    c = await price_run(SimulatedPriceSource(seed=8, clock=fixed_clock), 200)
    assert a == b
    assert [p.price for snap in a for p in snap] != [p.price for snap in c for p in snap]


async def test_random_seed_is_exposed_and_replays() -> None:
    first = SimulatedPriceSource()
    replay = SimulatedPriceSource(seed=first.seed)
    assert [[p.price for p in s] for s in await price_run(first, 50)] == [
        [p.price for p in s] for s in await price_run(replay, 50)
    ]


async def test_snapshot_is_valid_and_stamped_by_the_clock() -> None:
    source = SimulatedPriceSource(seed=1, clock=fixed_clock)
    assert source.tokens == MVP_TOKENS
    snap = await source.snapshot()
    assert [p.token for p in snap.prices] == list(MVP_TOKENS)
    assert snap.missing == () and snap.problems == () and snap.staleness_s == 0.0
    for p in snap.prices:
        assert isinstance(p.price, Decimal) and p.price > 0
        assert p.source == "simulated"
        assert p.timestamp == FIXED_NOW
        assert PriceData.from_json(p.to_json()) == p
        digits = TOKEN_MODELS[p.token].significant_digits
        assert len(p.price.as_tuple().digits) <= digits


async def test_ten_thousand_steps_stay_positive_and_near_real_levels() -> None:
    source = SimulatedPriceSource(seed=2024)
    lows = dict(REFERENCE_PRICES)
    highs = dict(REFERENCE_PRICES)
    for _ in range(10_000):
        for p in (await source.snapshot()).prices:
            lows[p.token] = min(lows[p.token], p.price)
            highs[p.token] = max(highs[p.token], p.price)
    for token in MVP_TOKENS:
        level = REFERENCE_PRICES[token]
        assert lows[token] > 0
        assert level * Decimal("0.8") < lows[token] <= highs[token] < level * Decimal("1.2")
    # USDC is pinned: within 1 % of 1.0000 at every step.
    assert Decimal("0.99") < lows["USDC"] <= highs["USDC"] < Decimal("1.01")
    # …and the others really move.
    assert highs["SOL"] - lows["SOL"] > Decimal("0.1")


async def test_prices_move_every_step_at_realistic_size() -> None:
    source = SimulatedPriceSource(seed=3)
    sol = [s[0].price for s in await price_run(source, 1000)]
    moves = [abs(b / a - 1) for a, b in itertools.pairwise(sol)]
    # 80 %/yr over 0.1 s is about 0.0045 % per step; allow a wide band.
    assert Decimal("0.000005") < sum(moves) / len(moves) < Decimal("0.0005")


async def test_volatility_override_and_step_size() -> None:
    calm = SimulatedPriceSource(["SOL"], seed=5, volatility={"SOL": 0.0})
    assert {p.price for s in await price_run(calm, 100) for p in s} == {Decimal("187.0000")}
    wild = SimulatedPriceSource(["SOL"], seed=5, volatility={"SOL": 5.0}, step_s=60.0)
    assert len({p.price for s in await price_run(wild, 100) for p in s}) > 90


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="no price model"):
        SimulatedPriceSource(["DOGE"])
    with pytest.raises(ValueError, match="unconfigured"):
        SimulatedPriceSource(["SOL"], volatility={"RAY": 0.5})
    with pytest.raises(ValueError, match="step_s"):
        SimulatedPriceSource(step_s=0)
    with pytest.raises(ValueError):
        SimulatedPriceSource(["bad token!"])


def test_round_significant() -> None:
    assert round_significant(187.123456789, 7) == Decimal("187.1235")
    assert str(round_significant(1.0, 6)) == "1.00000"
    assert str(round_significant(0.0000234567, 5)) == "0.000023457"
    with pytest.raises(ValueError):
        round_significant(0.0, 5)


# --- constant-product math -----------------------------------------------------------------


def test_swap_matches_the_core_quote_and_grows_k() -> None:
    amm = ConstantProductPool(Decimal("1000"), Decimal("187000"), decimals_a=9, decimals_b=6)
    state = PoolState(
        DEFAULT_POOLS[0].address, "374000", amm.reserve_a, amm.reserve_b, "0", timestamp=FIXED_NOW
    )
    quote = state.quote_swap("10", a_to_b=True, fee_bps=25)
    k_before = amm.k
    amount_in, out = amm.swap(Decimal("10"), a_to_b=True)
    assert amount_in == Decimal("10")
    # The core's exact quote, rounded down to USDC's 6 decimals as on chain.
    assert out == quote.amount_out.quantize(Decimal("0.000001"), rounding=decimal.ROUND_DOWN)
    assert amm.k > k_before
    assert amm.reserve_a == Decimal("1010") and amm.reserve_b == Decimal("187000") - out


def test_arbitrage_brings_spot_into_the_fee_band() -> None:
    amm = ConstantProductPool(Decimal("1000"), Decimal("187000"), decimals_a=9, decimals_b=6)
    for target in (Decimal("200"), Decimal("170"), Decimal("187.1")):
        trade = amm.arbitrage_trade(target)
        if trade is not None:
            amm.swap(trade[0], a_to_b=trade[1])
        keep = Decimal("0.9975")
        assert (
            target * keep * Decimal("0.999") <= amm.spot_price <= target / keep * Decimal("1.001")
        )
    assert amm.arbitrage_trade(amm.spot_price) is None


# --- pools ---------------------------------------------------------------------------------


async def test_default_pools_are_real_raydium_addresses() -> None:
    source = SimulatedPoolSource(seed=1)
    assert source.addresses[0] == "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
    assert [s.name for s in source.specs] == ["SOL-USDC", "RAY-USDC", "RAY-SOL"]
    states = await source.snapshot()
    assert [s.pool_address for s in states] == list(source.addresses)


async def test_pools_are_reproducible_with_a_seed() -> None:
    runs = []
    for seed in (11, 11, 12):
        source = SimulatedPoolSource(seed=seed, clock=fixed_clock)
        runs.append([await source.snapshot() for _ in range(300)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


async def test_invariant_never_decreases_and_states_stay_sane() -> None:
    prices = SimulatedPriceSource(seed=9)
    source = SimulatedPoolSource(seed=9, reference_prices=lambda: prices.last_prices)
    last_k: dict[str, Decimal] = {}
    with decimal.localcontext(prec=80):  # exact products of the reserves
        for _ in range(3000):
            await prices.snapshot()
            for state in await source.snapshot():
                assert state.reserve_a > 0 and state.reserve_b > 0
                assert state.liquidity > 0 and state.volume_24h >= 0
                assert state.timestamp.tzinfo is not None
                k = state.reserve_a * state.reserve_b
                assert k >= last_k.get(state.pool_address, k)
                last_k[state.pool_address] = k
                assert PoolState.from_json(state.to_json()) == state
    grown = [s for s in await source.snapshot() if s.reserve_a * s.reserve_b > 0]
    assert len(grown) == 3


async def test_pool_prices_track_the_reference() -> None:
    reference = dict(REFERENCE_PRICES)
    source = SimulatedPoolSource(seed=4, reference_prices=lambda: reference)
    for _ in range(200):
        states = await source.snapshot()
    sol_usdc = states[0]
    spot = sol_usdc.reserve_b / sol_usdc.reserve_a
    assert abs(spot / reference["SOL"] - 1) < Decimal("0.01")
    # SOL jumps 10 %: arbitrage follows within a step.
    reference["SOL"] = reference["SOL"] * Decimal("1.1")
    sol_usdc = (await source.snapshot())[0]
    spot = sol_usdc.reserve_b / sol_usdc.reserve_a
    assert abs(spot / reference["SOL"] - 1) < Decimal("0.01")
    # Liquidity is the USD value of both sides.
    expected = sol_usdc.reserve_a * reference["SOL"] + sol_usdc.reserve_b * reference["USDC"]
    assert abs(sol_usdc.liquidity - expected) <= Decimal("0.01")


async def test_volume_24h_accumulates_to_the_daily_level() -> None:
    spec = PoolSpec(
        address=DEFAULT_POOLS[0].address,
        token_a="SOL",
        token_b="USDC",
        decimals_a=9,
        decimals_b=6,
        reserve_a=Decimal("45000"),
        daily_volume_usd=Decimal("40000000"),
        trades_per_s=0.02,
    )
    source = SimulatedPoolSource([spec], seed=6, step_s=60.0)  # one simulated minute per step
    first = (await source.snapshot())[0].volume_24h
    assert Decimal("30000000") < first < Decimal("50000000")  # the typical day before the start
    volumes = [(await source.snapshot())[0].volume_24h for _ in range(2 * 1440)]
    assert all(v > 0 for v in volumes)
    # After two simulated days only simulated trades count: the typical daily flow, plus the
    # arbitrage that trades the pool back after the big ones (these trades are ~$46k each).
    assert Decimal("30000000") < volumes[-1] < Decimal("100000000")


def test_pool_configuration_is_validated() -> None:
    with pytest.raises(ValueError):
        PoolSpec("not-an-address", "SOL", "USDC", 9, 6, Decimal(1), Decimal(1))
    with pytest.raises(ValueError, match="duplicate"):
        SimulatedPoolSource([DEFAULT_POOLS[0], DEFAULT_POOLS[0]])
    with pytest.raises(ValueError, match="reference price"):
        SimulatedPoolSource(reference_prices=lambda: {"SOL": Decimal(0)})


def test_pools_know_their_pairs() -> None:
    pools = SimulatedPoolSource(seed=1)
    assert pools.pairs == {
        "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2": "SOL/USDC",
        "6UmmUiYoBjSrhakAobJw8BvkmJtDVxaeBtbt7rxWo1mg": "RAY/USDC",
        "AVs9TA4nWDzfPJE9gGVNJMVhcQy3V9PGazuz33BfG2RA": "RAY/SOL",
    }
    assert DEFAULT_POOLS[0].pair == "SOL/USDC" and DEFAULT_POOLS[0].name == "SOL-USDC"


# --- trades --------------------------------------------------------------------------------


def trade_run(source: SimulatedTradeSource, steps: int) -> list[TradeExecuted | PositionUpdate]:
    return [e for _ in range(steps) for e in source.step()]


def test_trades_are_reproducible_with_a_seed() -> None:
    a = trade_run(SimulatedTradeSource(seed=3, clock=fixed_clock), 200)
    b = trade_run(SimulatedTradeSource(seed=3, clock=fixed_clock), 200)
    c = trade_run(SimulatedTradeSource(seed=4, clock=fixed_clock), 200)
    assert a and a == b and a != c


def test_each_trade_comes_with_the_position_it_leaves() -> None:
    source = SimulatedTradeSource(seed=5, trades_per_s=4.0, clock=fixed_clock)
    events = trade_run(source, 500)
    trades, positions = events[0::2], events[1::2]
    assert all(isinstance(t, TradeExecuted) for t in trades)
    assert all(isinstance(p, PositionUpdate) for p in positions)
    assert {t.token_pair for t in trades} == {s.pair for s in DEFAULT_POOLS}
    held: dict[str, Decimal] = {}
    for trade, position in zip(trades, positions, strict=True):
        base, quote = trade.token_pair.split("/")
        assert trade.amount > 0 and trade.timestamp == FIXED_NOW
        assert len(trade.id) >= 80 and trade.id.isalnum(), "a signature-like id"
        mid = REFERENCE_PRICES[base] / REFERENCE_PRICES[quote]
        # Executed on the far side of the 25 bps fee.
        assert (trade.price > mid) if trade.action == "buy" else (trade.price < mid), trade
        signed = trade.amount if trade.action == "buy" else -trade.amount
        held[base] = held.get(base, Decimal(0)) + signed
        assert position.token == base and position.amount == held[base]
    assert source.trades == len(trades)
    # At constant prices the desk loses exactly the fees it paid.
    fees = sum(t.amount * REFERENCE_PRICES[t.token_pair.split("/")[0]] for t in trades)
    pnl = float(sum(p.pnl_usd for p in source.positions().values()))
    assert pnl == pytest.approx(-float(fees) * 0.0025, rel=1e-3)


def test_trade_rate_and_bounded_positions() -> None:
    source = SimulatedTradeSource(seed=6, trades_per_s=2.0, step_s=0.5, clock=fixed_clock)
    trades = [e for e in trade_run(source, 10_000) if isinstance(e, TradeExecuted)]
    assert len(trades) == pytest.approx(10_000, rel=0.05)  # 2/s over 5000 simulated s
    for token, position in source.positions().items():
        usd = abs(position.amount * REFERENCE_PRICES[token])
        assert usd < 150_000, f"{token} position {usd} USD drifted past the limit"


def test_trades_follow_the_reference_prices() -> None:
    prices = dict(REFERENCE_PRICES, SOL=Decimal("250"))
    source = SimulatedTradeSource(
        [DEFAULT_POOLS[0]], seed=7, trades_per_s=10.0, reference_prices=lambda: prices
    )
    trades = [e for e in trade_run(source, 50) if isinstance(e, TradeExecuted)]
    assert trades and all(abs(t.price - 250) < 1 for t in trades)
    with pytest.raises(ValueError):
        SimulatedTradeSource([], seed=1)
    with pytest.raises(ValueError):
        SimulatedTradeSource(seed=1, step_s=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"level": Decimal(0)}, "level must be positive"),
        ({"volatility": -0.1}, "volatility must not be negative"),
        ({"half_life_s": 0}, "half_life_s must be positive"),
        ({"significant_digits": 0}, "significant_digits must be 1..20"),
        ({"significant_digits": 21}, "significant_digits must be 1..20"),
        ({"market_correlation": 1.5}, "market_correlation must be in -1..1"),
    ],
)
def test_a_token_model_out_of_range_is_refused_with_the_field_named(
    change: dict[str, object], message: str
) -> None:
    valid = {
        "level": Decimal("187"),
        "volatility": 0.8,
        "half_life_s": 600.0,
        "significant_digits": 8,
        "market_correlation": 0.5,
    }
    assert TokenModel(**valid).level == Decimal("187")  # the baseline is accepted
    with pytest.raises(ValueError, match=message):
        TokenModel(**(valid | change))
