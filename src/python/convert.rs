//! Argument conversion shared by the binding: exact decimals (floats read by their shortest
//! repr), and aware timestamps normalised to UTC.

use chrono::{DateTime, FixedOffset, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};
use rust_decimal::Decimal;

use super::errors::invalid_input;

/// Accept `decimal.Decimal`, `int`, a decimal `str` or a finite `float`. A float is read by its
/// shortest repr, as `Decimal(repr(x))` and pydantic do: `0.1` is 0.1, not the binary
/// 0.1000000000000000055…. `bool`, NaN and infinities are refused, naming the argument.
pub fn decimal_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Decimal> {
    if value.is_instance_of::<PyBool>() {
        return Err(invalid_input(format!(
            "{name} must be a number, not a bool ({})",
            value.str()?.to_cow()?
        )));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        let x = float.value();
        if !x.is_finite() {
            return Err(invalid_input(format!("{name} must be a finite number, got {x}")));
        }
        // Rust's `Display` of an f64 writes the shortest digits that read back to the same
        // float (Python's repr has the same digits), never in scientific notation.
        let text = x.to_string();
        return parse_decimal(&text)
            .ok_or_else(|| invalid_input(format!("{name} {x:e} does not fit a decimal of 28 digits")));
    }
    let text = if value.is_instance_of::<PyString>() || value.is_instance_of::<PyInt>() || is_py_decimal(value)? {
        value.str()?.to_cow()?.into_owned()
    } else {
        return Err(invalid_input(format!(
            "{name} must be a Decimal, int, float or str, not {}",
            value.get_type().name()?
        )));
    };
    parse_decimal(text.trim())
        .ok_or_else(|| invalid_input(format!("{name} {text:?} is not a finite decimal within 28 digits")))
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

fn is_py_decimal(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    static DECIMAL: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();
    let cls = DECIMAL.import(value.py(), "decimal", "Decimal")?;
    value.is_instance(cls)
}

/// An aware `datetime` in UTC, or now (to the microsecond, the wire format's precision) when
/// `None`. Naive datetimes are refused.
pub fn timestamp_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<DateTime<Utc>> {
    let Some(value) = value else {
        return Ok(crate::models::now());
    };
    if value.is_none() {
        return Ok(crate::models::now());
    }
    let aware: DateTime<FixedOffset> = value
        .extract()
        .map_err(|_| invalid_input("timestamp must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))"))?;
    // chrono offsets are whole seconds: a sub-second offset would silently move the instant.
    let offset = value.call_method0(pyo3::intern!(value.py(), "utcoffset"))?;
    if !offset.is_none()
        && offset
            .getattr(pyo3::intern!(value.py(), "microseconds"))?
            .extract::<i64>()?
            != 0
    {
        return Err(invalid_input(
            "timestamp's UTC offset must be a whole number of seconds",
        ));
    }
    Ok(aware.with_timezone(&Utc))
}

/// A `str` argument as Rust text. A `str` Rust cannot hold (a lone surrogate such as
/// `"\ud800"`) is bad input, not a `UnicodeEncodeError`; a non-`str` is a `TypeError`.
pub fn str_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    let text = value
        .cast::<PyString>()
        .map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("{name} must be str")))?;
    text.to_str()
        .map(str::to_owned)
        .map_err(|_| invalid_input(format!("{name} is not valid Unicode (it holds a lone surrogate)")))
}

/// A sequence of `str` arguments (a single `str` is refused, not split into characters).
pub fn str_list_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be a sequence of str, not a str"
        )));
    }
    value.try_iter()?.map(|item| str_arg(&item?, name)).collect()
}

/// A value's `str()` for a message, cut to 40 characters (ints can be huge).
fn short(obj: &Bound<'_, PyAny>) -> String {
    let text = obj.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `TypeError` unless `obj` is an `int`; `bool` is refused too (`True` is no count of ms).
fn int_only(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    if obj.is_instance_of::<PyBool>() {
        return Err(pyo3::exceptions::PyTypeError::new_err("an int is required, not bool"));
    }
    if !obj.is_instance_of::<PyInt>() {
        return Err(pyo3::exceptions::PyTypeError::new_err("an int is required"));
    }
    Ok(())
}

/// An `int` argument that must fit `u64`: negative or too large is `InvalidInputError`
/// (pyo3's own conversion raises `OverflowError`); not an `int` is a `TypeError`.
#[derive(Debug, Clone, Copy)]
pub struct UInt(pub u64);

impl FromPyObject<'_, '_> for UInt {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        int_only(&obj)?;
        obj.extract::<u64>().map(UInt).map_err(|_| {
            invalid_input(format!(
                "{} is out of range: an int from 0 to {} is required",
                short(&obj),
                u64::MAX
            ))
        })
    }
}

/// An `int` argument that must fit `i64` (range checked by the caller); too large is
/// `InvalidInputError`, not `OverflowError`.
#[derive(Debug, Clone, Copy)]
pub struct Int(pub i64);

impl FromPyObject<'_, '_> for Int {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        int_only(&obj)?;
        obj.extract::<i64>()
            .map(Int)
            .map_err(|_| invalid_input(format!("{} is out of range for a 64-bit int", short(&obj))))
    }
}

/// `str` or `bytes` for the `from_json` decoders.
pub fn json_arg(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = data.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    match data.cast::<PyBytes>() {
        Ok(b) => Ok(b.as_bytes().to_vec()),
        Err(_) => Err(invalid_input("from_json takes str or bytes")),
    }
}

/// Python's `repr()` of a string, for readable `__repr__`s.
pub fn py_repr(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `None` or the value's Python repr.
pub fn py_opt<T: std::fmt::Display>(value: Option<T>, quote: bool) -> String {
    match value {
        None => "None".to_owned(),
        Some(v) if quote => py_repr(&v.to_string()),
        Some(v) => v.to_string(),
    }
}
