//! The PyO3 binding: registers the module, converts types, maps errors. No Redis logic here.

mod bridge;
mod caches;
mod convert;
mod datetimes;
mod direct;
mod errors;
mod events;
mod log_bridge;
mod models;
mod pool;
mod streams;
mod sync;

use pyo3::prelude::*;

use crate::keys;

/// Return `token` unchanged, or raise `InvalidInputError`.
#[pyfunction]
fn validate_token(token: &str) -> PyResult<&str> {
    keys::validate_token(token).map_err(errors::to_py_err)?;
    Ok(token)
}

/// Return `address` unchanged if it is base58 of 32 bytes, or raise `InvalidInputError`.
#[pyfunction]
fn validate_address(address: &str) -> PyResult<&str> {
    keys::validate_address(address).map_err(errors::to_py_err)?;
    Ok(address)
}

#[pyfunction]
fn price_key(token: &str) -> PyResult<String> {
    keys::price_key(token).map_err(errors::to_py_err)
}

#[pyfunction]
fn pool_key(address: &str) -> PyResult<String> {
    keys::pool_key(address).map_err(errors::to_py_err)
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    log_bridge::install();
    m.add_function(wrap_pyfunction!(bridge::_in_flight_calls, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::_bridge_echo, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MVP_TOKENS", keys::MVP_TOKENS.to_vec())?;
    m.setattr("MVP_TOKENS", pyo3::types::PyTuple::new(m.py(), keys::MVP_TOKENS)?)?;
    m.add("TOKEN_PATTERN", keys::TOKEN_PATTERN)?;
    m.add("DEFAULT_TTL_MS", crate::cache::DEFAULT_TTL.as_millis() as u64)?;
    m.add_function(wrap_pyfunction!(validate_token, m)?)?;
    m.add_function(wrap_pyfunction!(validate_address, m)?)?;
    m.add_function(wrap_pyfunction!(price_key, m)?)?;
    m.add_function(wrap_pyfunction!(pool_key, m)?)?;
    m.add_function(wrap_pyfunction!(pool::open_pool, m)?)?;
    m.add_function(wrap_pyfunction!(pool::py_redact_url, m)?)?;
    m.add_class::<models::PyPriceData>()?;
    m.add_class::<models::PyPoolState>()?;
    m.add_class::<models::PySwapQuote>()?;
    m.add_class::<pool::PoolHandle>()?;
    m.add_class::<pool::PyRedisPool>()?;
    m.add_class::<pool::PyOperationStats>()?;
    m.add_class::<pool::PoolHealth>()?;
    m.add_class::<caches::PyPriceCache>()?;
    m.add_class::<caches::PyPoolStateCache>()?;
    m.add_class::<sync::PySyncRedisPool>()?;
    m.add_class::<sync::PySyncPriceCache>()?;
    m.add_class::<sync::PySyncPoolStateCache>()?;
    m.add("STREAM_PRICE_UPDATES", crate::events::PRICE_UPDATES)?;
    m.add("STREAM_TRADE_EVENTS", crate::events::TRADE_EVENTS)?;
    m.add("STREAM_UI_EVENTS", crate::events::UI_EVENTS)?;
    m.add("STREAM_DEAD_LETTER", crate::events::DEAD_LETTER)?;
    m.add("DEFAULT_MAXLEN", crate::event_stream::DEFAULT_MAXLEN)?;
    m.add_class::<events::PyTradingEvent>()?;
    m.add_class::<events::PyPriceUpdate>()?;
    m.add_class::<events::PyTradeExecuted>()?;
    m.add_class::<events::PyPositionUpdate>()?;
    m.add_class::<events::PySystemStatus>()?;
    m.add_class::<streams::PyStreamEntry>()?;
    m.add_class::<streams::PyGroupInfo>()?;
    m.add_class::<streams::PyStreamInfo>()?;
    m.add_class::<streams::PySubscriptionStats>()?;
    m.add_class::<streams::PyCoreSubscription>()?;
    m.add_class::<streams::PyEventStream>()?;
    // {type name: (class, default stream)}: the Python layer routes with this, never its own copy.
    let types = pyo3::types::PyDict::new(m.py());
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
