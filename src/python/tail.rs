//! Python face of [`Tail`]: `solcache.Tail` wraps it as an async iterator.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use super::bridge::spawn;
use super::streams::Entries;
use crate::error::Error;
use crate::stream_tail::{Tail, TailStats};

/// What the tail looked like after its latest call, readable while a read holds the tail.
#[derive(Default)]
struct Snapshot {
    positions: Vec<String>,
    stats: TailStats,
    closed: bool,
}

/// The Rust tail; `solcache.Tail` wraps it as an async iterator.
#[pyclass(name = "CoreTail", module = "solcache._core", frozen)]
pub struct PyCoreTail {
    /// `None` once closed (the connection is dropped with it).
    inner: Arc<tokio::sync::Mutex<Option<Tail>>>,
    snapshot: Arc<Mutex<Snapshot>>,
    streams: Vec<String>,
    url: String,
}

impl PyCoreTail {
    pub fn new(tail: Tail) -> Self {
        let snapshot = Snapshot {
            positions: tail.positions().to_vec(),
            ..Snapshot::default()
        };
        PyCoreTail {
            streams: tail.streams().to_vec(),
            url: tail.redacted_url().to_owned(),
            snapshot: Arc::new(Mutex::new(snapshot)),
            inner: Arc::new(tokio::sync::Mutex::new(Some(tail))),
        }
    }

    fn snapshot<T>(&self, read: impl FnOnce(&Snapshot) -> T) -> T {
        read(&self.snapshot.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn closed(url: &str) -> Error {
    Error::Connection {
        url: url.to_owned(),
        message: "the tail is closed".to_owned(),
    }
}

fn record(snapshot: &Mutex<Snapshot>, tail: &Tail) {
    let mut s = snapshot.lock().unwrap_or_else(|e| e.into_inner());
    s.positions.clone_from_slice(tail.positions());
    s.stats.clone_from(tail.stats());
}

#[pymethods]
impl PyCoreTail {
    /// Open the connection now and pin `$` ids to the streams' last entries (awaitable).
    fn open<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (inner, snapshot, url) = (self.inner.clone(), self.snapshot.clone(), self.url.clone());
        spawn(py, async move {
            let mut guard = inner.lock().await;
            let tail = guard.as_mut().ok_or_else(|| closed(&url))?;
            let result = tail.open().await;
            record(&snapshot, tail);
            Ok(result?)
        })
    }

    /// The next entries in arrival order; empty when none arrived within `block_ms`. With
    /// `riding`, a retryable failure waits one backoff step and gives an empty batch
    /// (awaitable).
    #[pyo3(signature = (riding = false))]
    fn next_batch<'py>(&self, py: Python<'py>, riding: bool) -> PyResult<Bound<'py, PyAny>> {
        let (inner, snapshot, url) = (self.inner.clone(), self.snapshot.clone(), self.url.clone());
        spawn(py, async move {
            let mut guard = inner.lock().await;
            let tail = guard.as_mut().ok_or_else(|| closed(&url))?;
            let result = if riding {
                tail.next_batch_riding().await
            } else {
                tail.next_batch().await
            };
            record(&snapshot, tail);
            Ok(Entries(result?))
        })
    }

    /// Close the connection (awaitable; waits for a read under way to be cancelled first).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (inner, snapshot) = (self.inner.clone(), self.snapshot.clone());
        spawn(py, async move {
            inner.lock().await.take();
            snapshot.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            Ok(())
        })
    }

    /// The streams tailed, in the order given.
    #[getter]
    fn streams(&self) -> Vec<String> {
        self.streams.clone()
    }

    /// The last id handed out per stream (`$` until the first connection pinned it).
    #[getter]
    fn positions(&self) -> Vec<String> {
        self.snapshot(|s| s.positions.clone())
    }

    /// `connected`, `retrying` (the latest read failed) or `stopped` (closed).
    #[getter]
    fn state(&self) -> &'static str {
        self.snapshot(|s| match (s.closed, s.stats.retrying) {
            (true, _) => "stopped",
            (false, true) => "retrying",
            (false, false) => "connected",
        })
    }

    /// Entries returned so far.
    #[getter]
    fn entries(&self) -> u64 {
        self.snapshot(|s| s.stats.entries)
    }

    /// Times reading started failing (a run of failures counts once).
    #[getter]
    fn outages(&self) -> u64 {
        self.snapshot(|s| s.stats.outages)
    }

    /// Failed reads that were tried again.
    #[getter]
    fn retries(&self) -> u64 {
        self.snapshot(|s| s.stats.retries)
    }

    /// Connections opened so far (1 + the reconnects).
    #[getter]
    fn connections_opened(&self) -> u64 {
        self.snapshot(|s| s.stats.connections_opened)
    }

    /// The latest failure, until a read succeeds.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.snapshot(|s| s.stats.last_error.clone())
    }
}
