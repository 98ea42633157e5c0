//! The PyO3 binding: registers the module, converts types, maps errors. No Redis logic here.

mod backoff;
mod bridge;
mod caches;
mod convert;
mod datetimes;
mod direct;
mod errors;
mod events;
mod log_bridge;
mod models;
mod near;
mod pool;
mod publish;
mod streams;
mod sync;
mod tail;

use pyo3::prelude::*;

use crate::keys;

/// Return `token` unchanged, or raise `InvalidInputError`.
#[pyfunction]
fn validate_token(token: &str) -> PyResult<&str> {
    keys::validate_token(token)?;
    Ok(token)
}

/// Return `address` unchanged if it is base58 of 32 bytes, or raise `InvalidInputError`.
#[pyfunction]
fn validate_address(address: &str) -> PyResult<&str> {
    keys::validate_address(address)?;
    Ok(address)
}

/// The Redis key of `token`'s price in key layout `layout` (`"spread"` or `"tagged"`).
#[pyfunction]
#[pyo3(signature = (token, *, layout = "spread"))]
fn price_key(token: &str, layout: &str) -> PyResult<String> {
    Ok(keys::KeyLayout::parse(layout)?.price_key(token)?)
}

/// The Redis key of `address`'s pool state in key layout `layout` (`"spread"` or `"tagged"`).
#[pyfunction]
#[pyo3(signature = (address, *, layout = "spread"))]
fn pool_key(address: &str, layout: &str) -> PyResult<String> {
    Ok(keys::KeyLayout::parse(layout)?.pool_key(address)?)
}

/// The extension module `solcache._core`: everything it exports, declared in one place.
#[pymodule]
mod _core {
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyTuple};

    #[pymodule_export]
    use super::backoff::PyBackoff;
    #[pymodule_export]
    use super::bridge::{_bridge_echo, _in_flight_calls};
    #[pymodule_export]
    use super::caches::{PyPoolStateCache, PyPriceCache};
    #[pymodule_export]
    use super::events::{PyPositionUpdate, PyPriceUpdate, PySystemStatus, PyTradeExecuted, PyTradingEvent};
    #[pymodule_export]
    use super::models::{PyPoolState, PyPriceData, PySwapQuote};
    #[pymodule_export]
    use super::pool::{open_pool, py_redact_url, PoolHandle, PoolHealth, PyOperationStats, PyRedisPool};
    #[pymodule_export]
    use super::streams::{
        PyCoreSubscription, PyEventStream, PyGroupInfo, PyStreamEntry, PyStreamInfo, PySubscriptionStats,
    };
    #[pymodule_export]
    use super::sync::{PySyncPoolStateCache, PySyncPriceCache, PySyncRedisPool};
    #[pymodule_export]
    use super::tail::PyCoreTail;
    #[pymodule_export]
    use super::{pool_key, price_key, validate_address, validate_token};

    #[pymodule_export]
    const TOKEN_PATTERN: &str = crate::keys::TOKEN_PATTERN;
    #[pymodule_export]
    const DEFAULT_TTL_MS: u64 = crate::cache::DEFAULT_TTL.as_millis() as u64;
    #[pymodule_export]
    const DEFAULT_DIRECT_SPIN_US: u64 = crate::transport::direct::DEFAULT_SPIN.as_micros() as u64;
    #[pymodule_export]
    const DEFAULT_NEAR_CACHE_MAX_BYTES: usize = crate::near_cache::DEFAULT_MAX_BYTES;
    #[pymodule_export]
    const STREAM_PRICE_UPDATES: &str = crate::events::PRICE_UPDATES;
    #[pymodule_export]
    const STREAM_TRADE_EVENTS: &str = crate::events::TRADE_EVENTS;
    #[pymodule_export]
    const STREAM_UI_EVENTS: &str = crate::events::UI_EVENTS;
    #[pymodule_export]
    const STREAM_DEAD_LETTER: &str = crate::events::DEAD_LETTER;
    #[pymodule_export]
    const DEFAULT_MAXLEN: usize = crate::event_stream::DEFAULT_MAXLEN;

    /// What cannot be a `const`: the version, the token tuple and the event routing table.
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        super::log_bridge::install();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("MVP_TOKENS", PyTuple::new(m.py(), crate::keys::MVP_TOKENS)?)?;
        // {type name: (class, default stream)}: the Python layer routes with this, never its own copy.
        let types = PyDict::new(m.py());
        let classes = [
            m.getattr("PriceUpdate")?,
            m.getattr("TradeExecuted")?,
            m.getattr("PositionUpdate")?,
            m.getattr("SystemStatus")?,
        ];
        for ((name, stream), class) in crate::events::EVENT_TYPES.into_iter().zip(classes) {
            types.set_item(name, (class, stream))?;
        }
        m.add("EVENT_TYPES", types)?;
        Ok(())
    }
}
