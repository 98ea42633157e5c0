//! Python views of the core models: immutable, hashable, typed in `_core.pyi`.

use pyo3::prelude::*;
use rust_decimal::Decimal;

use super::convert::{decimal_arg, json_arg, py_repr, timestamp_arg, Int};
use super::datetimes::UtcDateTime;
use super::errors::{decode_error, invalid_input, IntoPyResult};
use crate::models::{format_timestamp, PoolState, PriceData};
use crate::price_impact::{Direction, SwapQuote};

/// One token's price: an exact decimal, its confidence interval when the source gives one, an
/// aware UTC timestamp and the source's name.
#[pyclass(name = "PriceData", module = "solcache._core", frozen, eq, hash, skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyPriceData {
    pub inner: PriceData,
}

#[pymethods]
impl PyPriceData {
    #[new]
    #[pyo3(signature = (token, price, timestamp = None, source = "unknown", *, confidence = None))]
    fn new(
        token: String,
        price: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
        source: &str,
        confidence: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let price = decimal_arg(price, "price")?;
        let confidence = confidence
            .filter(|c| !c.is_none())
            .map(|c| decimal_arg(c, "confidence"))
            .transpose()?;
        let mut inner = PriceData::new(token, price, timestamp_arg(timestamp)?, source).py()?;
        if let Some(confidence) = confidence {
            inner = inner.with_confidence(confidence).py()?;
        }
        Ok(PyPriceData { inner })
    }

    #[getter]
    fn token(&self) -> &str {
        &self.inner.token
    }
    #[getter]
    fn price(&self) -> Decimal {
        self.inner.price
    }
    /// Half-width of the confidence interval around `price` (USD), or `None`.
    #[getter]
    fn confidence(&self) -> Option<Decimal> {
        self.inner.confidence
    }
    #[getter]
    fn timestamp(&self) -> UtcDateTime {
        UtcDateTime(self.inner.timestamp)
    }
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }

    /// The canonical JSON stored in Redis.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Decode and validate JSON; raises `SerializationError` when it is not a valid price.
    #[staticmethod]
    fn from_json(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyPriceData {
            inner: PriceData::from_json(&json_arg(data)?, "").map_err(decode_error)?,
        })
    }

    fn __repr__(&self) -> String {
        let p = &self.inner;
        let confidence = p
            .confidence
            .map(|c| format!(", confidence=Decimal('{c}')"))
            .unwrap_or_default();
        format!(
            "PriceData(token={}, price=Decimal('{}'), timestamp='{}', source={}{confidence})",
            py_repr(&p.token),
            p.price,
            format_timestamp(&p.timestamp),
            py_repr(&p.source)
        )
    }
}

/// A constant-product pool's reserves and volume at one instant.
#[pyclass(name = "PoolState", module = "solcache._core", frozen, eq, hash, skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyPoolState {
    pub inner: PoolState,
}

#[pymethods]
impl PyPoolState {
    #[new]
    #[pyo3(signature = (pool_address, liquidity, reserve_a, reserve_b, volume_24h, timestamp = None))]
    fn new(
        pool_address: String,
        liquidity: &Bound<'_, PyAny>,
        reserve_a: &Bound<'_, PyAny>,
        reserve_b: &Bound<'_, PyAny>,
        volume_24h: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let inner = PoolState::new(
            pool_address,
            decimal_arg(liquidity, "liquidity")?,
            decimal_arg(reserve_a, "reserve_a")?,
            decimal_arg(reserve_b, "reserve_b")?,
            decimal_arg(volume_24h, "volume_24h")?,
            timestamp_arg(timestamp)?,
        )
        .py()?;
        Ok(PyPoolState { inner })
    }

    #[getter]
    fn pool_address(&self) -> &str {
        &self.inner.pool_address
    }
    #[getter]
    fn liquidity(&self) -> Decimal {
        self.inner.liquidity
    }
    #[getter]
    fn reserve_a(&self) -> Decimal {
        self.inner.reserve_a
    }
    #[getter]
    fn reserve_b(&self) -> Decimal {
        self.inner.reserve_b
    }
    #[getter]
    fn volume_24h(&self) -> Decimal {
        self.inner.volume_24h
    }
    #[getter]
    fn timestamp(&self) -> UtcDateTime {
        UtcDateTime(self.inner.timestamp)
    }

    /// Quote a swap: fee and slippage in basis points (Raydium AMM v4 charges 25).
    #[pyo3(
        signature = (amount_in, *, a_to_b = true, fee_bps = Int(25), slippage_bps = Int(50)),
        text_signature = "($self, amount_in, *, a_to_b=True, fee_bps=25, slippage_bps=50)"
    )]
    fn quote_swap(
        &self,
        amount_in: &Bound<'_, PyAny>,
        a_to_b: bool,
        fee_bps: Int,
        slippage_bps: Int,
    ) -> PyResult<PySwapQuote> {
        let (fee_bps, slippage_bps) = (fee_bps.0, slippage_bps.0);
        let bps = |v: i64, name: &str| {
            u32::try_from(v).map_err(|_| invalid_input(format!("{name} must be between 0 and 10000, got {v}")))
        };
        let direction = if a_to_b { Direction::AToB } else { Direction::BToA };
        let quote = self
            .inner
            .quote_swap(
                decimal_arg(amount_in, "amount_in")?,
                direction,
                bps(fee_bps, "fee_bps")?,
                bps(slippage_bps, "slippage_bps")?,
            )
            .py()?;
        Ok(PySwapQuote { inner: quote })
    }

    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    #[staticmethod]
    fn from_json(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyPoolState {
            inner: PoolState::from_json(&json_arg(data)?, "").map_err(decode_error)?,
        })
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "PoolState(pool_address={}, liquidity=Decimal('{}'), reserve_a=Decimal('{}'), reserve_b=Decimal('{}'), volume_24h=Decimal('{}'), timestamp='{}')",
            py_repr(&s.pool_address),
            s.liquidity,
            s.reserve_a,
            s.reserve_b,
            s.volume_24h,
            format_timestamp(&s.timestamp)
        )
    }
}

/// Result of `PoolState.quote_swap`; amounts in token units, fractions in 0..1.
#[pyclass(name = "SwapQuote", module = "solcache._core", frozen)]
pub struct PySwapQuote {
    inner: SwapQuote,
}

#[pymethods]
impl PySwapQuote {
    #[getter]
    fn amount_in(&self) -> Decimal {
        self.inner.amount_in
    }
    #[getter]
    fn amount_in_after_fee(&self) -> Decimal {
        self.inner.amount_in_after_fee
    }
    #[getter]
    fn amount_out(&self) -> Decimal {
        self.inner.amount_out
    }
    #[getter]
    fn min_amount_out(&self) -> Decimal {
        self.inner.min_amount_out
    }
    #[getter]
    fn spot_price(&self) -> Decimal {
        self.inner.spot_price
    }
    #[getter]
    fn execution_price(&self) -> Decimal {
        self.inner.execution_price
    }
    #[getter]
    fn price_impact(&self) -> Decimal {
        self.inner.price_impact
    }
    #[getter]
    fn max_sandwich_loss(&self) -> Decimal {
        self.inner.max_sandwich_loss
    }

    fn __repr__(&self) -> String {
        let q = &self.inner;
        format!(
            "SwapQuote(amount_in={}, amount_out={}, min_amount_out={}, price_impact={}, max_sandwich_loss={})",
            q.amount_in, q.amount_out, q.min_amount_out, q.price_impact, q.max_sandwich_loss
        )
    }
}
