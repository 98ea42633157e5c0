//! Python face of [`Tail`]: `solcache.Tail` wraps it as an async iterator.

use std::sync::Arc;

use pyo3::prelude::*;

use super::bridge::spawn;
use super::streams::Entries;
use crate::error::Error;
use crate::stream_tail::Tail;

/// The Rust tail; `solcache.Tail` wraps it as an async iterator.
#[pyclass(name = "CoreTail", module = "solcache._core", frozen)]
pub struct PyCoreTail {
    /// `None` once closed (the connection is dropped with it).
    inner: Arc<tokio::sync::Mutex<Option<Tail>>>,
    streams: Vec<String>,
    url: String,
}

impl PyCoreTail {
    pub fn new(tail: Tail) -> Self {
        PyCoreTail {
            streams: tail.streams().to_vec(),
            url: tail.redacted_url().to_owned(),
            inner: Arc::new(tokio::sync::Mutex::new(Some(tail))),
        }
    }
}

fn closed(url: &str) -> Error {
    Error::Connection {
        url: url.to_owned(),
        message: "the tail is closed".to_owned(),
    }
}

#[pymethods]
impl PyCoreTail {
    /// Open the connection now and pin `$` ids to the streams' last entries (awaitable).
    fn open<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (inner, url) = (self.inner.clone(), self.url.clone());
        spawn(py, async move {
            let mut tail = inner.lock().await;
            Ok(tail.as_mut().ok_or_else(|| closed(&url))?.open().await?)
        })
    }

    /// The next entries in arrival order; empty when none arrived within `block_ms`
    /// (awaitable).
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (inner, url) = (self.inner.clone(), self.url.clone());
        spawn(py, async move {
            let mut tail = inner.lock().await;
            Ok(Entries(tail.as_mut().ok_or_else(|| closed(&url))?.next_batch().await?))
        })
    }

    /// Close the connection (awaitable; waits for a read under way to be cancelled first).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        spawn(py, async move {
            inner.lock().await.take();
            Ok(())
        })
    }

    /// The streams tailed, in the order given.
    #[getter]
    fn streams(&self) -> Vec<String> {
        self.streams.clone()
    }

    /// The last id handed out per stream (`$` until the first connection); None while a read
    /// holds the tail.
    fn positions(&self) -> Option<Vec<String>> {
        let tail = self.inner.try_lock().ok()?;
        tail.as_ref().map(|t| t.positions().to_vec())
    }

    /// Connections opened so far (1 + the reconnects); None while a read holds the tail.
    fn connections_opened(&self) -> Option<u64> {
        let tail = self.inner.try_lock().ok()?;
        Some(tail.as_ref().map_or(0, |t| t.connections_opened()))
    }
}
