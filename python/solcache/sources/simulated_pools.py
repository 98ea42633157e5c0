"""Simulated constant-product pools at real Raydium AMM v4 addresses."""

from __future__ import annotations

import math
import random
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from solcache._core import PoolState, validate_address
from solcache.sources.amm import ConstantProductPool
from solcache.sources.base import PoolSource, SourceError
from solcache.sources.clock import utc_now
from solcache.sources.reference import REFERENCE_PRICES

__all__ = ["DEFAULT_POOLS", "PoolSpec", "SimulatedPoolSource"]

_DAY_S = 86_400.0
_BUCKET_S = 60.0
_CENT = Decimal("0.01")
#: Spread of simulated trade sizes (sigma of the log of the USD size).
_SIZE_SIGMA = 1.0


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One simulated pool: where it lives, what it holds and how busy it is."""

    #: Base58 address of the pool account.
    address: str
    #: Symbol of token A (Raydium's "coin", the base), e.g. ``SOL``.
    token_a: str
    #: Symbol of token B (Raydium's "pc", the quote), e.g. ``USDC``.
    token_b: str
    #: Decimals of the token A and token B mints.
    decimals_a: int
    decimals_b: int
    #: Starting reserve of token A, in token units; token B's is set to the same USD value.
    reserve_a: Decimal
    #: Typical traded volume per day, in USD, of the random flow (sets the trade sizes);
    #: arbitrage volume comes on top.
    daily_volume_usd: Decimal
    #: Simulated trades per second, on average (arbitrage comes on top).
    trades_per_s: float = 1.0
    #: Swap fee, in basis points (Raydium AMM v4: 25).
    fee_bps: int = 25

    def __post_init__(self) -> None:
        validate_address(self.address)
        if self.reserve_a <= 0 or self.daily_volume_usd < 0 or self.trades_per_s < 0:
            raise ValueError(f"reserve, volume and trade rate must be positive in {self}")

    @property
    def name(self) -> str:
        """``A-B``, e.g. ``SOL-USDC``."""
        return f"{self.token_a}-{self.token_b}"

    @property
    def pair(self) -> str:
        """``A/B``, e.g. ``SOL/USDC``: what is traded here, as trade events spell it."""
        return f"{self.token_a}/{self.token_b}"


#: Three Raydium AMM v4 pools (program ``675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8``).
#: Reserves and volumes are of a realistic order, not copies of the chain.
DEFAULT_POOLS: tuple[PoolSpec, ...] = (
    PoolSpec(
        address="58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
        token_a="SOL",
        token_b="USDC",
        decimals_a=9,
        decimals_b=6,
        reserve_a=Decimal("45000"),
        daily_volume_usd=Decimal("40000000"),
        trades_per_s=4.0,
    ),
    PoolSpec(
        address="6UmmUiYoBjSrhakAobJw8BvkmJtDVxaeBtbt7rxWo1mg",
        token_a="RAY",
        token_b="USDC",
        decimals_a=6,
        decimals_b=6,
        reserve_a=Decimal("1500000"),
        daily_volume_usd=Decimal("4000000"),
    ),
    PoolSpec(
        address="AVs9TA4nWDzfPJE9gGVNJMVhcQy3V9PGazuz33BfG2RA",
        token_a="RAY",
        token_b="SOL",
        decimals_a=6,
        decimals_b=9,
        reserve_a=Decimal("2000000"),
        daily_volume_usd=Decimal("6000000"),
    ),
)


class _SimulatedPool:
    """One pool's reserves plus its rolling 24 h volume, in simulated time."""

    def __init__(self, spec: PoolSpec, prices: Mapping[str, Decimal]) -> None:
        self.spec = spec
        reserve_b = spec.reserve_a * prices[spec.token_a] / prices[spec.token_b]
        self.amm = ConstantProductPool(
            spec.reserve_a,
            reserve_b,
            decimals_a=spec.decimals_a,
            decimals_b=spec.decimals_b,
            fee_bps=spec.fee_bps,
        )
        mean_trade_usd = float(spec.daily_volume_usd) / _DAY_S / max(spec.trades_per_s, 1e-9)
        self.median_trade_usd = mean_trade_usd / math.exp(_SIZE_SIGMA**2 / 2)
        #: (minute index, USD traded in that minute) for the last 24 h of simulated time.
        self.buckets: deque[tuple[int, Decimal]] = deque()
        self.window_usd = Decimal(0)

    def record(self, minute: int, usd: Decimal) -> None:
        """Add a trade worth ``usd`` made during simulated minute ``minute``."""
        self.window_usd += usd
        if self.buckets and self.buckets[-1][0] == minute:
            usd += self.buckets.pop()[1]
        self.buckets.append((minute, usd))

    def expire(self, minute: int) -> None:
        """Forget the minutes that left the 24 h window ending at ``minute``."""
        oldest_kept = minute - int(_DAY_S / _BUCKET_S) + 1
        while self.buckets and self.buckets[0][0] < oldest_kept:
            self.window_usd -= self.buckets.popleft()[1]

    def volume_24h(self, elapsed_s: float) -> Decimal:
        # Before the simulation has run a day, the day before it counts at its typical volume.
        prior = self.spec.daily_volume_usd * Decimal(repr(max(0.0, 1.0 - elapsed_s / _DAY_S)))
        return (prior + self.window_usd).quantize(_CENT)


class SimulatedPoolSource(PoolSource):
    """Constant-product pools whose reserves move with simulated trades.

    Each :meth:`snapshot` advances ``step_s`` simulated seconds. Every pool sees random trades
    (Poisson arrivals, log-normal USD sizes, either direction) and then one arbitrage trade that
    brings its spot price back within the fee band around the outside price
    ``reference_prices()[A] / reference_prices()[B]``. Fees stay in the pool, so k = x·y never
    decreases. ``liquidity`` is the USD value of both reserves at the reference prices;
    ``volume_24h`` sums the USD value of the trades over the last 24 simulated hours (plus, during
    the first simulated day, a fading share of the pool's typical daily volume).

    Randomness depends only on ``seed`` and the number of steps; timestamps come from ``clock``.
    Without ``reference_prices`` the outside prices are the fixed reference levels; pass e.g.
    ``reference_prices=lambda: prices.last_prices`` (a :class:`SimulatedPriceSource`) to make
    the pools follow a price source. Tokens it has no price for keep their reference level.
    """

    name = "simulated"

    def __init__(
        self,
        pools: Iterable[PoolSpec] = DEFAULT_POOLS,
        seed: int | None = None,
        *,
        reference_prices: Callable[[], Mapping[str, Decimal]] | None = None,
        step_s: float = 0.1,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._specs = tuple(pools)
        if not self._specs:
            raise ValueError("at least one pool is needed")
        self._addresses = tuple(s.address for s in self._specs)
        if len(set(self._addresses)) != len(self._addresses):
            raise ValueError(f"duplicate pool addresses in {self._addresses}")
        if not step_s > 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        self._reference = reference_prices
        self._step_s = step_s
        self._clock = clock
        self._seed = secrets.randbits(63) if seed is None else seed
        self._rng = random.Random(self._seed)
        self._steps = 0
        try:
            prices = self._prices()
        except SourceError as exc:
            raise ValueError(str(exc)) from None
        self._pools = [_SimulatedPool(spec, prices) for spec in self._specs]

    @property
    def addresses(self) -> tuple[str, ...]:
        return self._addresses

    @property
    def pairs(self) -> dict[str, str]:
        """Each pool's pair (``SOL/USDC``) by address."""
        return {s.address: s.pair for s in self._specs}

    @property
    def specs(self) -> tuple[PoolSpec, ...]:
        """What each pool holds, in the order of :attr:`addresses` (token symbols, decimals)."""
        return self._specs

    @property
    def seed(self) -> int:
        """The seed in use (a random one when None was given)."""
        return self._seed

    @property
    def steps(self) -> int:
        """How many steps have been simulated (one per :meth:`snapshot`)."""
        return self._steps

    async def snapshot(self) -> tuple[PoolState, ...]:
        """Advance one step and return every pool's new state."""
        self.step()
        prices = self._prices()
        now = self._clock()
        elapsed_s = self._steps * self._step_s
        states = []
        for pool in self._pools:
            spec, amm = pool.spec, pool.amm
            liquidity = amm.reserve_a * prices[spec.token_a] + amm.reserve_b * prices[spec.token_b]
            states.append(
                PoolState(
                    spec.address,
                    liquidity.quantize(_CENT),
                    amm.reserve_a,
                    amm.reserve_b,
                    pool.volume_24h(elapsed_s),
                    timestamp=now,
                )
            )
        return tuple(states)

    def step(self) -> None:
        """Advance every pool by one step without building states."""
        prices = self._prices()
        minute = int(self._steps * self._step_s // _BUCKET_S)
        for pool in self._pools:
            spec = pool.spec
            pool.expire(minute)
            for _ in range(self._poisson(spec.trades_per_s * self._step_s)):
                usd = pool.median_trade_usd * math.exp(self._rng.gauss(0.0, _SIZE_SIGMA))
                a_to_b = self._rng.random() < 0.5
                token_in = spec.token_a if a_to_b else spec.token_b
                amount = Decimal(repr(usd)) / prices[token_in]
                self._trade(pool, amount, a_to_b, prices, minute)
            arbitrage = pool.amm.arbitrage_trade(prices[spec.token_a] / prices[spec.token_b])
            if arbitrage is not None:
                self._trade(pool, arbitrage[0], arbitrage[1], prices, minute)
        self._steps += 1

    def _trade(
        self,
        pool: _SimulatedPool,
        amount: Decimal,
        a_to_b: bool,
        prices: Mapping[str, Decimal],
        minute: int,
    ) -> None:
        amount_in, _ = pool.amm.swap(amount, a_to_b=a_to_b)
        if amount_in > 0:
            token_in = pool.spec.token_a if a_to_b else pool.spec.token_b
            pool.record(minute, amount_in * prices[token_in])

    def _poisson(self, mean: float) -> int:
        """A Poisson-distributed count (Knuth's method; normal approximation for large means)."""
        if mean > 30.0:
            return max(0, round(self._rng.gauss(mean, math.sqrt(mean))))
        limit, count, product = math.exp(-mean), 0, self._rng.random()
        while product > limit:
            count += 1
            product *= self._rng.random()
        return count

    def _prices(self) -> dict[str, Decimal]:
        prices = dict(REFERENCE_PRICES)
        if self._reference is not None:
            prices.update(self._reference())
        for spec in self._specs:
            for token in (spec.token_a, spec.token_b):
                if prices.get(token, Decimal(0)) <= 0:
                    raise SourceError(f"no positive reference price for {token} ({spec.name})")
        return prices

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self._specs)
        return f"SimulatedPoolSource(pools=[{names}], seed={self._seed}, steps={self._steps})"
