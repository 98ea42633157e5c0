//! Constant-product (x·y = k) swap math for MEV-risk checks.
//!
//! With input reserve x, output reserve y, input Δx and fee f:
//! Δx′ = Δx(1 − f); out = y·Δx′ / (x + Δx′); price impact against spot = Δx′ / (x + Δx′).
//! A sandwich can push the victim's output down to the slippage floor, so it can take at most
//! `out × slippage` (in output-token units) from the victim.

use rust_decimal::Decimal;

use crate::error::{Error, Result};
use crate::models::PoolState;

/// Basis points in one whole (100 % = 10 000 bps).
pub const BPS: u32 = 10_000;

/// Which way a swap goes through a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Token A in, token B out.
    AToB,
    /// Token B in, token A out.
    BToA,
}

/// Expected result of one swap. Amounts in token units; fractions in 0..1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapQuote {
    pub amount_in: Decimal,
    /// Δx′: what reaches the pool after the fee.
    pub amount_in_after_fee: Decimal,
    pub amount_out: Decimal,
    /// The least the trader accepts: `amount_out × (1 − slippage)`.
    pub min_amount_out: Decimal,
    /// Output per input before the trade (y / x).
    pub spot_price: Decimal,
    /// Output per input the trade gets (`amount_out / amount_in`).
    pub execution_price: Decimal,
    /// Δx′ / (x + Δx′): how far the trade moves the price against spot, fee excluded.
    pub price_impact: Decimal,
    /// The most a sandwich attack can take from this trade, in output-token units.
    pub max_sandwich_loss: Decimal,
}

/// Quote a swap of `amount_in` against reserves `reserve_in` / `reserve_out`.
pub fn quote_constant_product(
    reserve_in: Decimal,
    reserve_out: Decimal,
    amount_in: Decimal,
    fee_bps: u32,
    slippage_bps: u32,
) -> Result<SwapQuote> {
    if reserve_in <= Decimal::ZERO || reserve_out <= Decimal::ZERO {
        return Err(Error::invalid(format!(
            "reserves must be positive, got {reserve_in} and {reserve_out}"
        )));
    }
    if amount_in <= Decimal::ZERO {
        return Err(Error::invalid(format!("amount_in must be positive, got {amount_in}")));
    }
    if fee_bps >= BPS {
        return Err(Error::invalid(format!("fee_bps must be below {BPS}, got {fee_bps}")));
    }
    if slippage_bps > BPS {
        return Err(Error::invalid(format!(
            "slippage_bps must be at most {BPS}, got {slippage_bps}"
        )));
    }
    let overflow = || Error::invalid("amounts too large for exact decimal arithmetic");
    let bps = Decimal::from(BPS);
    let fee = Decimal::from(fee_bps) / bps;
    let slippage = Decimal::from(slippage_bps) / bps;

    let after_fee = amount_in.checked_mul(Decimal::ONE - fee).ok_or_else(overflow)?;
    let new_reserve_in = reserve_in.checked_add(after_fee).ok_or_else(overflow)?;
    let price_impact = after_fee.checked_div(new_reserve_in).ok_or_else(overflow)?;
    let amount_out = reserve_out.checked_mul(price_impact).ok_or_else(overflow)?;
    let min_amount_out = amount_out.checked_mul(Decimal::ONE - slippage).ok_or_else(overflow)?;
    Ok(SwapQuote {
        amount_in,
        amount_in_after_fee: after_fee,
        amount_out,
        min_amount_out,
        spot_price: reserve_out.checked_div(reserve_in).ok_or_else(overflow)?,
        execution_price: amount_out.checked_div(amount_in).ok_or_else(overflow)?,
        price_impact,
        max_sandwich_loss: amount_out - min_amount_out,
    })
}

impl PoolState {
    /// Quote a swap through this pool (fee and slippage in basis points; Raydium AMM v4 = 25).
    pub fn quote_swap(
        &self,
        amount_in: Decimal,
        direction: Direction,
        fee_bps: u32,
        slippage_bps: u32,
    ) -> Result<SwapQuote> {
        let (x, y) = match direction {
            Direction::AToB => (self.reserve_a, self.reserve_b),
            Direction::BToA => (self.reserve_b, self.reserve_a),
        };
        quote_constant_product(x, y, amount_in, fee_bps, slippage_bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn close(a: Decimal, b: Decimal) {
        assert!((a - b).abs() < d("0.000000000000000001"), "{a} != {b}");
    }

    #[test]
    fn matches_hand_computed_quote() {
        // x = 1000, y = 2000, Δx = 10, fee 0.25 %, slippage 1 %.
        // Δx′ = 9.975; out = 2000·9.975/1009.975 = 19.7529641822817...; impact = 9.975/1009.975.
        let q = quote_constant_product(d("1000"), d("2000"), d("10"), 25, 100).unwrap();
        assert_eq!(q.amount_in_after_fee, d("9.975"));
        close(q.price_impact, d("0.0098764820911408698234114706"));
        close(q.amount_out, d("19.752964182281739646822941162"));
        close(q.min_amount_out, q.amount_out * d("0.99"));
        close(q.max_sandwich_loss, q.amount_out * d("0.01"));
        assert_eq!(q.spot_price, d("2"));
        close(q.execution_price, q.amount_out / d("10"));
        assert!(q.execution_price < q.spot_price);
    }

    #[test]
    fn zero_fee_keeps_invariant() {
        let (x, y) = (d("500"), d("500"));
        let q = quote_constant_product(x, y, d("500"), 0, 0).unwrap();
        assert_eq!(q.amount_out, d("250")); // (500+500)(500-250) = 500·500
        assert_eq!(q.price_impact, d("0.5"));
        assert_eq!(q.max_sandwich_loss, Decimal::ZERO);
    }

    #[test]
    fn direction_swaps_reserves() {
        let now = chrono::Utc::now();
        let pool = PoolState::new(
            "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
            d("1"),
            d("100"),
            d("200"),
            d("0"),
            now,
        )
        .unwrap();
        let ab = pool.quote_swap(d("1"), Direction::AToB, 25, 50).unwrap();
        let ba = pool.quote_swap(d("1"), Direction::BToA, 25, 50).unwrap();
        assert_eq!(ab.spot_price, d("2"));
        assert_eq!(ba.spot_price, d("0.5"));
    }

    #[test]
    fn rejects_bad_inputs() {
        for (x, y, a, fee, slip) in [
            ("0", "1", "1", 25, 50),
            ("1", "-1", "1", 25, 50),
            ("1", "1", "0", 25, 50),
            ("1", "1", "-2", 25, 50),
            ("1", "1", "1", 10_000, 50),
            ("1", "1", "1", 25, 10_001),
        ] {
            assert!(matches!(
                quote_constant_product(d(x), d(y), d(a), fee, slip),
                Err(Error::InvalidInput(_))
            ));
        }
        let huge = Decimal::MAX;
        assert!(quote_constant_product(huge, huge, huge, 0, 0).is_err());
    }
}
