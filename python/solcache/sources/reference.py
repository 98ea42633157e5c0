"""Real-world reference levels and price dynamics of the MVP tokens, for the simulated sources.

Levels are round numbers near recent market prices; they anchor the simulation, they are not
quotes. Volatilities are annualised (0.80 = 80 % per year, the usual way SOL's is quoted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

__all__ = ["REFERENCE_PRICES", "TOKEN_MODELS", "TokenModel", "round_significant"]

#: Seconds in a (365.25-day) year: the unit of annualised volatility.
SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True, slots=True)
class TokenModel:
    """How one token's simulated price moves.

    The log price follows a mean-reverting random walk around ``level``: geometric Brownian
    motion with ``volatility`` plus a weak pull back to the level, so a demo that runs for days
    stays near real-world prices. Pegged tokens (USDC) use a strong pull and a tiny volatility.
    """

    #: Real-world reference price, in USD.
    level: Decimal
    #: Annualised volatility of the log price (0.80 = 80 % per year).
    volatility: float
    #: Seconds for a deviation from ``level`` to halve (the strength of the pull).
    half_life_s: float
    #: Significant digits the price is rounded to (Pyth publishes about 7 to 10).
    significant_digits: int
    #: Correlation of the token's moves with the market factor (SOL), in -1..1.
    market_correlation: float = 0.0

    def __post_init__(self) -> None:
        if self.level <= 0:
            raise ValueError(f"level must be positive, got {self.level}")
        if self.volatility < 0:
            raise ValueError(f"volatility must not be negative, got {self.volatility}")
        if self.half_life_s <= 0:
            raise ValueError(f"half_life_s must be positive, got {self.half_life_s}")
        if not 1 <= self.significant_digits <= 20:
            raise ValueError(f"significant_digits must be 1..20, got {self.significant_digits}")
        if not -1.0 <= self.market_correlation <= 1.0:
            raise ValueError(f"market_correlation must be in -1..1, got {self.market_correlation}")


_HOURS_6_S = 6 * 3600.0

#: Price dynamics of the MVP tokens. JitoSOL is staked SOL, so it moves with SOL almost exactly.
TOKEN_MODELS: Mapping[str, TokenModel] = MappingProxyType(
    {
        "SOL": TokenModel(Decimal("187"), 0.80, _HOURS_6_S, 7, 1.0),
        "USDC": TokenModel(Decimal("1"), 0.10, 30.0, 6, 0.0),
        "BONK": TokenModel(Decimal("0.0000234"), 1.50, _HOURS_6_S, 5, 0.6),
        "JitoSOL": TokenModel(Decimal("221"), 0.80, _HOURS_6_S, 7, 0.98),
        "RAY": TokenModel(Decimal("2.4"), 1.10, _HOURS_6_S, 6, 0.7),
    }
)

#: Reference USD price of every token in :data:`TOKEN_MODELS`.
REFERENCE_PRICES: Mapping[str, Decimal] = MappingProxyType(
    {token: model.level for token, model in TOKEN_MODELS.items()}
)


def round_significant(value: float | Decimal, digits: int) -> Decimal:
    """``value`` as a Decimal rounded half-even to ``digits`` significant digits.

    Trailing zeros are kept, so every price of a token has the same precision
    (``round_significant(1.0, 6) == Decimal("1.00000")``).
    """
    exact = Decimal(repr(value)) if isinstance(value, float) else value
    if not exact.is_finite() or exact == 0:
        raise ValueError(f"cannot round {value!r} to significant digits")
    exponent = exact.adjusted() - digits + 1
    return exact.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)
