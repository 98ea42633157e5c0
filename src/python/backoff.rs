//! Python face of the core's [`Backoff`]: `solcache.backoff.Backoff`, the one retry schedule of
//! the services, sources and gateway.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;

use super::errors::invalid_input;
use crate::backoff::Backoff;

fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| invalid_input(format!("{name} must be a finite number of seconds >= 0, got {value}")))
}

/// Delays of `initial_s`, times `multiplier` per failure up to `max_s`, each ±`jitter`.
#[pyclass(name = "Backoff", module = "solcache._core", frozen)]
pub struct PyBackoff {
    inner: Mutex<Backoff>,
}

#[pymethods]
impl PyBackoff {
    #[new]
    #[pyo3(
        signature = (initial_s, max_s, *, multiplier = 2.0, jitter = 0.1, seed = None),
        text_signature = "(initial_s, max_s, *, multiplier=2.0, jitter=0.1, seed=None)"
    )]
    fn new(initial_s: f64, max_s: f64, multiplier: f64, jitter: f64, seed: Option<u64>) -> PyResult<Self> {
        let initial = seconds(initial_s, "initial_s")?;
        let max = seconds(max_s, "max_s")?;
        let inner = Backoff::with_shape(initial, max, multiplier, jitter, seed)?;
        Ok(PyBackoff {
            inner: Mutex::new(inner),
        })
    }

    /// Consecutive failures since the last `reset()`.
    #[getter]
    fn failures(&self) -> u32 {
        self.inner.lock().map_or(0, |b| b.failures())
    }

    /// The first delay, in seconds.
    #[getter]
    fn initial_s(&self) -> f64 {
        self.inner.lock().map_or(0.0, |b| b.initial().as_secs_f64())
    }

    /// The longest delay before jitter, in seconds.
    #[getter]
    fn max_s(&self) -> f64 {
        self.inner.lock().map_or(0.0, |b| b.max().as_secs_f64())
    }

    /// Count one more failure and return how long to wait (seconds) before the next attempt.
    fn next_delay_s(&self) -> f64 {
        self.inner.lock().map_or(0.0, |mut b| b.next_delay().as_secs_f64())
    }

    /// Forget past failures (after a success).
    fn reset(&self) {
        if let Ok(mut b) = self.inner.lock() {
            b.reset();
        }
    }

    fn __repr__(&self) -> String {
        self.inner.lock().map_or_else(
            |_| "Backoff(?)".to_owned(),
            |b| {
                format!(
                    "Backoff(initial_s={}, max_s={}, failures={})",
                    b.initial().as_secs_f64(),
                    b.max().as_secs_f64(),
                    b.failures()
                )
            },
        )
    }
}
