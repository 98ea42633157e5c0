"""A mutable constant-product (x·y = k) pool with Raydium AMM v4 swap semantics.

The fee is taken from the input and stays in the pool: with input dx, dx' = dx * (1 - fee),
out = y * dx' / (x + dx'), and the whole dx is added to x. So k never decreases: it grows by
the fees (and by the rounding of the output down to whole base units).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Context, Decimal

__all__ = ["BPS", "ConstantProductPool"]

#: Basis points in one whole.
BPS = 10_000
#: Working precision: reserves of 9-decimal tokens and their products fit with room to spare.
_CTX = Context(prec=60)


class ConstantProductPool:
    """Reserves of token A and token B, in token units, each with a fixed number of decimals."""

    def __init__(
        self,
        reserve_a: Decimal,
        reserve_b: Decimal,
        *,
        decimals_a: int,
        decimals_b: int,
        fee_bps: int = 25,
    ) -> None:
        if not 0 <= fee_bps < BPS:
            raise ValueError(f"fee_bps must be in 0..{BPS - 1}, got {fee_bps}")
        self._unit_a = Decimal(1).scaleb(-decimals_a)
        self._unit_b = Decimal(1).scaleb(-decimals_b)
        self.reserve_a = reserve_a.quantize(self._unit_a, rounding=ROUND_DOWN)
        self.reserve_b = reserve_b.quantize(self._unit_b, rounding=ROUND_DOWN)
        if self.reserve_a <= 0 or self.reserve_b <= 0:
            raise ValueError(f"reserves must be positive, got {reserve_a} and {reserve_b}")
        self.fee_bps = fee_bps
        self._keep = _CTX.divide(Decimal(BPS - fee_bps), Decimal(BPS))

    @property
    def k(self) -> Decimal:
        """The invariant ``reserve_a * reserve_b``, exact."""
        return _CTX.multiply(self.reserve_a, self.reserve_b)

    @property
    def spot_price(self) -> Decimal:
        """Token B per token A before any trade (reserve_b / reserve_a)."""
        return _CTX.divide(self.reserve_b, self.reserve_a)

    def swap(self, amount_in: Decimal, *, a_to_b: bool) -> tuple[Decimal, Decimal]:
        """Trade ``amount_in`` of A (``a_to_b``) or of B in; return ``(amount_in, amount_out)``.

        Both amounts are rounded down to whole base units, as on chain. A trade too small to
        move one unit of either token does nothing and returns zeros.
        """
        unit_in, unit_out = (self._unit_a, self._unit_b) if a_to_b else (self._unit_b, self._unit_a)
        reserve_in, reserve_out = (
            (self.reserve_a, self.reserve_b) if a_to_b else (self.reserve_b, self.reserve_a)
        )
        amount_in = amount_in.quantize(unit_in, rounding=ROUND_DOWN)
        if amount_in <= 0:
            return Decimal(0), Decimal(0)
        after_fee = _CTX.multiply(amount_in, self._keep)
        out = _CTX.divide(_CTX.multiply(reserve_out, after_fee), _CTX.add(reserve_in, after_fee))
        out = out.quantize(unit_out, rounding=ROUND_DOWN)
        if out <= 0 or out >= reserve_out:
            return Decimal(0), Decimal(0)
        if a_to_b:
            self.reserve_a = _CTX.add(self.reserve_a, amount_in)
            self.reserve_b = _CTX.subtract(self.reserve_b, out)
        else:
            self.reserve_b = _CTX.add(self.reserve_b, amount_in)
            self.reserve_a = _CTX.subtract(self.reserve_a, out)
        return amount_in, out

    def arbitrage_trade(self, target_price: Decimal) -> tuple[Decimal, bool] | None:
        """The trade an arbitrageur makes when the outside price is ``target_price`` (B per A).

        Returns ``(amount_in, a_to_b)``, or None when the spot price is already within the fee
        band around the target (no profit after fees). The trade moves the spot price to the
        edge of the band, where buying or selling more stops paying.
        """
        if target_price <= 0:
            raise ValueError(f"target_price must be positive, got {target_price}")
        spot = self.spot_price
        low = _CTX.multiply(target_price, self._keep)
        high = _CTX.divide(target_price, self._keep)
        k = self.k
        if spot < low:  # A is cheap in the pool: sell B, buy A until spot reaches `low`
            new_b = _CTX.sqrt(_CTX.multiply(k, low))
            return _CTX.divide(_CTX.subtract(new_b, self.reserve_b), self._keep), False
        if spot > high:  # A is dear in the pool: sell A until spot falls to `high`
            new_a = _CTX.sqrt(_CTX.divide(k, high))
            return _CTX.divide(_CTX.subtract(new_a, self.reserve_a), self._keep), True
        return None
