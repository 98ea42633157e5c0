"""The embedded default price source: a seeded random walk around real-world price levels."""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from solcache._core import MVP_TOKENS, PriceData, validate_token
from solcache.sources.base import PriceSnapshot, PriceSource
from solcache.sources.clock import utc_now
from solcache.sources.reference import (
    SECONDS_PER_YEAR,
    TOKEN_MODELS,
    TokenModel,
    round_significant,
)
from solcache.sources.simulated_pools import SimulatedPoolSource

__all__ = ["SimulatedPoolSource", "SimulatedPriceSource"]

#: Largest log deviation from the reference level the walk may reach.
_MAX_DEVIATION = 10.0


class SimulatedPriceSource(PriceSource):
    """Prices that move like real ones, reproducibly.

    Each :meth:`snapshot` advances the walk by one step of ``step_s`` simulated seconds: the log
    price of every token moves by a normal shock scaled by ``volatility * sqrt(step_s / year)``
    (correlated with SOL as the market factor) and is pulled back towards the token's reference
    level (see :class:`~solcache.sources.reference.TokenModel`). The randomness depends only on
    ``seed`` and the number of steps, never on wall-clock time: the same seed gives the same
    prices for the same sequence of calls. Timestamps come from ``clock``.

    Call :meth:`snapshot` about every ``step_s`` seconds for moves of a realistic size.
    """

    name = "simulated"

    def __init__(
        self,
        tokens: Iterable[str] = MVP_TOKENS,
        seed: int | None = None,
        volatility: Mapping[str, float] | None = None,
        *,
        step_s: float = 0.1,
        models: Mapping[str, TokenModel] = TOKEN_MODELS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Simulate ``tokens``; ``volatility`` overrides annualised volatilities per token.

        ``models`` must hold a :class:`TokenModel` for every token. A ``seed`` of None picks a
        random one, readable afterwards from :attr:`seed` to replay the run.
        """
        self._tokens = tuple(validate_token(t) for t in tokens)
        if not self._tokens:
            raise ValueError("at least one token is needed")
        if len(set(self._tokens)) != len(self._tokens):
            raise ValueError(f"duplicate tokens in {self._tokens}")
        unknown = [t for t in self._tokens if t not in models]
        if unknown:
            raise ValueError(f"no price model for {unknown}; known: {sorted(models)}")
        if not step_s > 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        overrides = dict(volatility or {})
        for token, vol in overrides.items():
            if token not in self._tokens:
                raise ValueError(f"volatility given for unconfigured token {token!r}")
            if not vol >= 0:
                raise ValueError(f"volatility of {token} must not be negative, got {vol}")
        self._models = {t: models[t] for t in self._tokens}
        self._volatility = {t: overrides.get(t, self._models[t].volatility) for t in self._tokens}
        self._seed = secrets.randbits(63) if seed is None else seed
        self._rng = random.Random(self._seed)
        self._step_s = step_s
        self._clock = clock
        self._steps = 0
        #: Log deviation of each token's price from its level.
        self._deviation = dict.fromkeys(self._tokens, 0.0)
        self._prices = {t: self._quantize(t) for t in self._tokens}

    @property
    def tokens(self) -> tuple[str, ...]:
        return self._tokens

    @property
    def seed(self) -> int:
        """The seed in use (a random one when None was given)."""
        return self._seed

    @property
    def steps(self) -> int:
        """How many steps the walk has taken (one per :meth:`snapshot`)."""
        return self._steps

    @property
    def step_s(self) -> float:
        """Simulated seconds per step."""
        return self._step_s

    @property
    def last_prices(self) -> Mapping[str, Decimal]:
        """The prices of the latest step (the reference levels before the first one).

        Handy as ``reference_prices`` of a :class:`SimulatedPoolSource`, so pools follow the
        simulated market.
        """
        return MappingProxyType(self._prices)

    async def snapshot(self) -> PriceSnapshot:
        """Advance one step and return every token's new price."""
        self.step()
        now = self._clock()
        prices = tuple(
            PriceData(t, self._prices[t], timestamp=now, source=self.name) for t in self._tokens
        )
        return PriceSnapshot(prices=prices)

    def step(self) -> None:
        """Advance the walk by one step without building a snapshot."""
        dt = self._step_s
        # Draw in a fixed order (market factor, then one shock per token) so a seed replays.
        market = self._rng.gauss(0.0, 1.0)
        for token in self._tokens:
            model = self._models[token]
            rho = model.market_correlation
            shock = rho * market + math.sqrt(1.0 - rho * rho) * self._rng.gauss(0.0, 1.0)
            sigma_step = self._volatility[token] * math.sqrt(dt / SECONDS_PER_YEAR)
            pull = 1.0 - math.exp(-math.log(2.0) * dt / model.half_life_s)
            x = self._deviation[token]
            x = x - pull * x + sigma_step * shock
            # Bound the walk (a factor of e^±10 from the level) even for absurd volatilities.
            self._deviation[token] = min(_MAX_DEVIATION, max(-_MAX_DEVIATION, x))
            self._prices[token] = self._quantize(token)
        self._steps += 1

    def _quantize(self, token: str) -> Decimal:
        model = self._models[token]
        value = float(model.level) * math.exp(self._deviation[token])
        return round_significant(value, model.significant_digits)

    def __repr__(self) -> str:
        tokens = ", ".join(self._tokens)
        return f"SimulatedPriceSource(tokens=[{tokens}], seed={self._seed}, steps={self._steps})"
