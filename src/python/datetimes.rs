//! The aware UTC `datetime` handed to Python for every timestamp.
//!
//! Under the stable ABI (abi3) `datetime`'s C API is out of reach, and PyO3's chrono conversion
//! then calls the type with a `fold=` keyword plus two isinstance checks, about twice the cost of
//! this positional call of the cached type with the cached `timezone.utc` (UTC is never
//! ambiguous, so `fold` is always 0).

use chrono::{DateTime, Datelike, Timelike, Utc};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyType, PyTzInfo};

/// A UTC instant that converts to `datetime.datetime(..., tzinfo=timezone.utc)`, to the µs.
pub struct UtcDateTime(pub DateTime<Utc>);

impl<'py> IntoPyObject<'py> for UtcDateTime {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        let datetime = DATETIME.import(py, "datetime", "datetime")?;
        let (date, time) = (self.0.date_naive(), self.0.time());
        // A leap second (nanoseconds past 10^9) has no `datetime`: keep the last µs of its second.
        let micros = (time.nanosecond() / 1_000).min(999_999);
        datetime.call1((
            date.year(),
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second(),
            micros,
            PyTzInfo::utc(py)?,
        ))
    }
}
