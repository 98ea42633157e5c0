//! The one place core errors become Python exceptions (classes defined in
//! `solcache/exceptions.py`, where each also subclasses the builtin it means).

use pyo3::PyErr;

use crate::error::Error;

mod exc {
    pyo3::import_exception!(solcache.exceptions, ConnectionError);
    pyo3::import_exception!(solcache.exceptions, AuthenticationError);
    pyo3::import_exception!(solcache.exceptions, TimeoutError);
    pyo3::import_exception!(solcache.exceptions, PoolExhaustedError);
    pyo3::import_exception!(solcache.exceptions, SerializationError);
    pyo3::import_exception!(solcache.exceptions, InvalidInputError);
    pyo3::import_exception!(solcache.exceptions, ResponseError);
    pyo3::import_exception!(solcache.exceptions, UnsupportedServerError);
    pyo3::import_exception!(solcache.exceptions, InternalError);
}

/// A bug in solcache itself (a panic in the core), never a Redis or input problem.
pub fn internal_error(message: impl Into<String>) -> PyErr {
    PyErr::new::<exc::InternalError, _>(message.into())
}

/// A core error as the Python exception of its meaning; built lazily, so no GIL is needed
/// where the error arises. `?` applies it in every binding function.
impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::Connection { .. } | Error::PoolClosed => PyErr::new::<exc::ConnectionError, _>(message),
            Error::Authentication { code, .. } => PyErr::new::<exc::AuthenticationError, _>((message, code)),
            Error::Timeout { .. } => PyErr::new::<exc::TimeoutError, _>(message),
            Error::PoolExhausted { .. } => PyErr::new::<exc::PoolExhaustedError, _>(message),
            Error::Serialization { key, .. } => PyErr::new::<exc::SerializationError, _>((message, key)),
            Error::InvalidInput(_) => PyErr::new::<exc::InvalidInputError, _>(message),
            Error::Response { code, .. } => PyErr::new::<exc::ResponseError, _>((message, code)),
            Error::UnsupportedServer { .. } => PyErr::new::<exc::UnsupportedServerError, _>(message),
        }
    }
}

/// Convert a core error (for `map_err`; `?` does it by itself).
pub fn to_py_err(err: Error) -> PyErr {
    PyErr::from(err)
}

/// A `from_json` decode failure: `SerializationError` with no key (nothing was read from Redis).
pub fn decode_error(err: Error) -> PyErr {
    let message = match err {
        Error::InvalidInput(m) => m,
        Error::Serialization { message, .. } => message,
        other => other.to_string(),
    };
    PyErr::new::<exc::SerializationError, _>((format!("cannot decode: {message}"), None::<String>))
}

/// Bad argument detected in the binding itself (wrong Python type or value).
pub fn invalid_input(message: impl Into<String>) -> PyErr {
    to_py_err(Error::InvalidInput(message.into()))
}

/// `map_err` helper where a `?` does not fit (a value built in an expression).
pub trait IntoPyResult<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for crate::error::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py_err)
    }
}
