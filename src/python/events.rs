//! Python views of the trading events: a frozen base class and four frozen subclasses.

use pyo3::prelude::*;
use pyo3::PyClassInitializer;
use rust_decimal::Decimal;

use super::convert::{decimal_arg, json_arg, py_repr, timestamp_arg};
use super::datetimes::UtcDateTime;
use super::errors::{decode_error, IntoPyResult};
use crate::events::{PositionUpdate, PriceUpdate, SystemStatus, TradeAction, TradeExecuted, TradingEvent};
use crate::models::format_timestamp;

/// Base of the four event classes; immutable, hashable, comparable.
#[pyclass(
    name = "TradingEvent",
    module = "solcache._core",
    subclass,
    frozen,
    eq,
    hash,
    skip_from_py_object
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyTradingEvent {
    pub inner: TradingEvent,
}

#[pymethods]
impl PyTradingEvent {
    /// The snake_case name stored in the entry's `type` field.
    #[getter(r#type)]
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }
    #[getter]
    fn default_stream(&self) -> &'static str {
        self.inner.default_stream()
    }
    #[getter]
    fn timestamp(&self) -> UtcDateTime {
        UtcDateTime(self.inner.timestamp())
    }

    /// The JSON stored in the entry's `data` field.
    fn to_json(&self) -> String {
        self.inner.data_json()
    }

    /// Decode an entry's `type` and `data`; raises `SerializationError` when they are invalid.
    #[staticmethod]
    #[pyo3(signature = (r#type, data))]
    fn from_json(py: Python<'_>, r#type: &str, data: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let event = TradingEvent::decode(r#type, &json_arg(data)?).map_err(decode_error)?;
        event_to_py(py, event)
    }

    fn __repr__(&self) -> String {
        let fields = match &self.inner {
            TradingEvent::PriceUpdate(e) => format!("token={}, price=Decimal('{}')", py_repr(&e.token), e.price),
            TradingEvent::TradeExecuted(e) => format!(
                "id={}, action='{}', token_pair={}, amount=Decimal('{}'), price=Decimal('{}')",
                py_repr(&e.id),
                e.action.as_str(),
                py_repr(&e.token_pair),
                e.amount,
                e.price
            ),
            TradingEvent::PositionUpdate(e) => format!(
                "token={}, amount=Decimal('{}'), pnl=Decimal('{}')",
                py_repr(&e.token),
                e.amount,
                e.pnl
            ),
            TradingEvent::SystemStatus(e) => format!(
                "component={}, status={}, message={}",
                py_repr(&e.component),
                py_repr(&e.status),
                py_repr(&e.message)
            ),
        };
        let class = match &self.inner {
            TradingEvent::PriceUpdate(_) => "PriceUpdate",
            TradingEvent::TradeExecuted(_) => "TradeExecuted",
            TradingEvent::PositionUpdate(_) => "PositionUpdate",
            TradingEvent::SystemStatus(_) => "SystemStatus",
        };
        format!(
            "{class}({fields}, timestamp='{}')",
            format_timestamp(&self.inner.timestamp())
        )
    }
}

/// Build the Python subclass instance that matches the event's variant.
pub fn event_to_py(py: Python<'_>, event: TradingEvent) -> PyResult<Py<PyAny>> {
    // Pick the subclass first, then move the event into the base: no copy per event.
    enum Class {
        Price,
        Trade,
        Position,
        Status,
    }
    let class = match &event {
        TradingEvent::PriceUpdate(_) => Class::Price,
        TradingEvent::TradeExecuted(_) => Class::Trade,
        TradingEvent::PositionUpdate(_) => Class::Position,
        TradingEvent::SystemStatus(_) => Class::Status,
    };
    let base = PyClassInitializer::from(PyTradingEvent { inner: event });
    Ok(match class {
        Class::Price => Py::new(py, base.add_subclass(PyPriceUpdate))?.into_any(),
        Class::Trade => Py::new(py, base.add_subclass(PyTradeExecuted))?.into_any(),
        Class::Position => Py::new(py, base.add_subclass(PyPositionUpdate))?.into_any(),
        Class::Status => Py::new(py, base.add_subclass(PySystemStatus))?.into_any(),
    })
}

fn validated(event: TradingEvent) -> PyResult<PyClassInitializer<PyTradingEvent>> {
    event.validate().py()?;
    Ok(PyClassInitializer::from(PyTradingEvent { inner: event }))
}

/// Borrow the variant a subclass was built with (construction guarantees it matches).
macro_rules! variant {
    ($slf:expr, $variant:ident) => {
        match &$slf.as_super().get().inner {
            TradingEvent::$variant(e) => e,
            _ => unreachable!("subclass built with another variant"),
        }
    };
}

/// A token's new price.
#[pyclass(name = "PriceUpdate", module = "solcache._core", extends = PyTradingEvent, frozen)]
pub struct PyPriceUpdate;

#[pymethods]
impl PyPriceUpdate {
    #[new]
    #[pyo3(signature = (token, price, timestamp = None))]
    fn new(
        token: String,
        price: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let event = PriceUpdate {
            token,
            price: decimal_arg(price, "price")?,
            timestamp: timestamp_arg(timestamp)?,
        };
        Ok(validated(TradingEvent::PriceUpdate(event))?.add_subclass(PyPriceUpdate))
    }
    #[getter]
    fn token(slf: &Bound<'_, Self>) -> String {
        variant!(slf, PriceUpdate).token.clone()
    }
    #[getter]
    fn price(slf: &Bound<'_, Self>) -> Decimal {
        variant!(slf, PriceUpdate).price
    }
}

/// A filled trade.
#[pyclass(name = "TradeExecuted", module = "solcache._core", extends = PyTradingEvent, frozen)]
pub struct PyTradeExecuted;

#[pymethods]
impl PyTradeExecuted {
    #[new]
    #[pyo3(signature = (id, action, token_pair, amount, price, timestamp = None))]
    fn new(
        id: String,
        action: &str,
        token_pair: String,
        amount: &Bound<'_, PyAny>,
        price: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let event = TradeExecuted {
            id,
            action: TradeAction::parse(action).py()?,
            token_pair,
            amount: decimal_arg(amount, "amount")?,
            price: decimal_arg(price, "price")?,
            timestamp: timestamp_arg(timestamp)?,
        };
        Ok(validated(TradingEvent::TradeExecuted(event))?.add_subclass(PyTradeExecuted))
    }
    #[getter]
    fn id(slf: &Bound<'_, Self>) -> String {
        variant!(slf, TradeExecuted).id.clone()
    }
    #[getter]
    fn action(slf: &Bound<'_, Self>) -> &'static str {
        variant!(slf, TradeExecuted).action.as_str()
    }
    #[getter]
    fn token_pair(slf: &Bound<'_, Self>) -> String {
        variant!(slf, TradeExecuted).token_pair.clone()
    }
    #[getter]
    fn amount(slf: &Bound<'_, Self>) -> Decimal {
        variant!(slf, TradeExecuted).amount
    }
    #[getter]
    fn price(slf: &Bound<'_, Self>) -> Decimal {
        variant!(slf, TradeExecuted).price
    }
}

/// A position's new size and profit.
#[pyclass(name = "PositionUpdate", module = "solcache._core", extends = PyTradingEvent, frozen)]
pub struct PyPositionUpdate;

#[pymethods]
impl PyPositionUpdate {
    #[new]
    #[pyo3(signature = (token, amount, pnl, timestamp = None))]
    fn new(
        token: String,
        amount: &Bound<'_, PyAny>,
        pnl: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let event = PositionUpdate {
            token,
            amount: decimal_arg(amount, "amount")?,
            pnl: decimal_arg(pnl, "pnl")?,
            timestamp: timestamp_arg(timestamp)?,
        };
        Ok(validated(TradingEvent::PositionUpdate(event))?.add_subclass(PyPositionUpdate))
    }
    #[getter]
    fn token(slf: &Bound<'_, Self>) -> String {
        variant!(slf, PositionUpdate).token.clone()
    }
    #[getter]
    fn amount(slf: &Bound<'_, Self>) -> Decimal {
        variant!(slf, PositionUpdate).amount
    }
    #[getter]
    fn pnl(slf: &Bound<'_, Self>) -> Decimal {
        variant!(slf, PositionUpdate).pnl
    }
}

/// A component's health, for operators and the dashboard.
#[pyclass(name = "SystemStatus", module = "solcache._core", extends = PyTradingEvent, frozen)]
pub struct PySystemStatus;

#[pymethods]
impl PySystemStatus {
    #[new]
    #[pyo3(signature = (component, status, message = "", timestamp = None))]
    fn new(
        component: String,
        status: String,
        message: &str,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let event = SystemStatus {
            component,
            status,
            message: message.to_owned(),
            timestamp: timestamp_arg(timestamp)?,
        };
        Ok(validated(TradingEvent::SystemStatus(event))?.add_subclass(PySystemStatus))
    }
    #[getter]
    fn component(slf: &Bound<'_, Self>) -> String {
        variant!(slf, SystemStatus).component.clone()
    }
    #[getter]
    fn status(slf: &Bound<'_, Self>) -> String {
        variant!(slf, SystemStatus).status.clone()
    }
    #[getter]
    fn message(slf: &Bound<'_, Self>) -> String {
        variant!(slf, SystemStatus).message.clone()
    }
}
