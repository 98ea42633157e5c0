"""A simulated trading desk: seeded random trades on the simulated pools' pairs, and the
positions and profit and loss they add up to."""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from solcache._core import PositionUpdate, TradeExecuted
from solcache.sources.clock import utc_now
from solcache.sources.reference import REFERENCE_PRICES, round_significant
from solcache.sources.simulated_pools import DEFAULT_POOLS, PoolSpec

__all__ = ["DeskPosition", "SimulatedTradeSource"]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_SIG_BYTES = 64  # a Solana transaction signature
_AMOUNT_STEP = Decimal("0.001")
_CENT = Decimal("0.01")
#: Spread of trade sizes (sigma of the log of the USD size).
_SIZE_SIGMA = 0.8


@dataclass(frozen=True, slots=True)
class DeskPosition:
    """What the desk holds of one token, and how that went."""

    #: Token units held (negative: short).
    amount: Decimal
    #: Profit and loss in USD: what was paid and received, plus the holding at the current
    #: price (fees included, since trades execute on the far side of the fee).
    pnl_usd: Decimal


class SimulatedTradeSource:
    """Trades of one simulated desk, reproducible from ``seed``.

    Each :meth:`step` covers ``step_s`` simulated seconds and returns the events of the
    trades made in it: a :class:`TradeExecuted` (pair ``A/B`` of one of ``pools``, the price in
    B per A, on the far side of the pool's fee) followed by the :class:`PositionUpdate` of
    token A. Trades arrive at ``trades_per_s`` on average (Poisson), with log-normal USD sizes
    around ``median_trade_usd``; the desk leans against its position beyond
    ``max_position_usd``, so positions stay bounded. Prices come from ``reference_prices()``
    (tokens it lacks keep their reference level); timestamps from ``clock``.
    """

    name = "simulated"

    def __init__(
        self,
        pools: Iterable[PoolSpec] = DEFAULT_POOLS,
        seed: int | None = None,
        *,
        reference_prices: Callable[[], Mapping[str, Decimal]] | None = None,
        trades_per_s: float = 0.5,
        step_s: float = 0.5,
        median_trade_usd: float = 5_000.0,
        max_position_usd: float = 100_000.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._specs = tuple(pools)
        if not self._specs:
            raise ValueError("at least one pool is needed")
        if not (trades_per_s >= 0 and step_s > 0 and median_trade_usd > 0):
            raise ValueError("trades_per_s must be >= 0, step_s and median_trade_usd > 0")
        if not max_position_usd > 0:
            raise ValueError(f"max_position_usd must be positive, got {max_position_usd}")
        self._reference = reference_prices
        self._trades_per_s = trades_per_s
        self._step_s = step_s
        self._median_usd = median_trade_usd
        self._max_position_usd = max_position_usd
        self._clock = clock
        self._seed = secrets.randbits(63) if seed is None else seed
        self._rng = random.Random(self._seed)
        self._amount: dict[str, Decimal] = {}
        #: USD received minus USD paid, per token.
        self._cash: dict[str, Decimal] = {}
        self._trades = 0

    @property
    def seed(self) -> int:
        """The seed in use (a random one when None was given)."""
        return self._seed

    @property
    def trades(self) -> int:
        """Trades made so far."""
        return self._trades

    def positions(self) -> dict[str, DeskPosition]:
        """Every token traded so far, at the current prices."""
        prices = self._prices()
        return {token: self._position(token, prices) for token in self._amount}

    def step(self) -> list[TradeExecuted | PositionUpdate]:
        """Advance ``step_s`` simulated seconds; the events of the trades made meanwhile."""
        prices = self._prices()
        now = self._clock()
        out: list[TradeExecuted | PositionUpdate] = []
        for _ in range(self._poisson(self._trades_per_s * self._step_s)):
            spec = self._specs[self._rng.randrange(len(self._specs))]
            base, quote = spec.token_a, spec.token_b
            held_usd = float(self._amount.get(base, Decimal(0)) * prices[base])
            # Lean against the position: at +max only sells, at -max only buys.
            lean = max(-1.0, min(1.0, held_usd / self._max_position_usd))
            buy = self._rng.random() < 0.5 * (1.0 - lean)
            usd = self._median_usd * math.exp(self._rng.gauss(0.0, _SIZE_SIGMA))
            amount = (Decimal(repr(usd)) / prices[base]).quantize(_AMOUNT_STEP)
            if amount <= 0:
                continue
            fee = Decimal(spec.fee_bps) / 10_000
            side = 1 + fee if buy else 1 - fee
            pair_price = round_significant(prices[base] / prices[quote] * side, 7)
            usd_price = prices[base] * side
            sign = 1 if buy else -1
            self._amount[base] = self._amount.get(base, Decimal(0)) + sign * amount
            self._cash[base] = self._cash.get(base, Decimal(0)) - sign * amount * usd_price
            self._trades += 1
            out.append(
                TradeExecuted(
                    self._signature(),
                    "buy" if buy else "sell",
                    f"{base}/{quote}",
                    amount,
                    pair_price,
                    timestamp=now,
                )
            )
            position = self._position(base, prices)
            out.append(PositionUpdate(base, position.amount, position.pnl_usd, timestamp=now))
        return out

    def _position(self, token: str, prices: Mapping[str, Decimal]) -> DeskPosition:
        amount = self._amount[token]
        pnl = (self._cash[token] + amount * prices[token]).quantize(_CENT)
        return DeskPosition(amount, pnl)

    def _signature(self) -> str:
        n = int.from_bytes(self._rng.randbytes(_SIG_BYTES), "big")
        digits = []
        while n:
            n, r = divmod(n, 58)
            digits.append(_B58[r])
        return "".join(reversed(digits)) or "1"

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
        return prices

    def __repr__(self) -> str:
        pairs = ", ".join(s.pair for s in self._specs)
        return f"SimulatedTradeSource(pairs=[{pairs}], seed={self._seed}, trades={self._trades})"
