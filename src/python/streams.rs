//! Python face of event streams and consumer-group subscriptions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use super::bridge::spawn;
use super::convert::{str_arg, UInt};
use super::direct::DirectOptions;
use super::errors::invalid_input;
use super::events::{event_to_py, PyTradingEvent};
use super::pool::PyRedisPool;
use super::tail::PyCoreTail;
use crate::event_stream::{EventStream, GroupInfo, StreamEntry, StreamInfo};
use crate::read_ahead::ReadAhead;
use crate::stream_tail::TailRetry;
use crate::subscription::{Subscription, SubscriptionOptions, SubscriptionState, SubscriptionStats};

/// One stream entry: the event, or (`event` None) why it could not be decoded.
///
/// `stream` is a Python string built once per batch; `id` stays Rust text until it is read
/// (an entry is acknowledged by handing the entry itself back to the core, which reads both
/// without a Python string per entry).
#[pyclass(name = "StreamEntry", module = "solcache._core", frozen)]
pub struct PyStreamEntry {
    #[pyo3(get)]
    stream: Py<PyString>,
    id: String,
    #[pyo3(get)]
    event: Option<Py<PyAny>>,
    #[pyo3(get)]
    error: Option<String>,
    #[pyo3(get)]
    deliveries: u64,
}

#[pymethods]
impl PyStreamEntry {
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let what = match (&self.event, &self.error) {
            (Some(e), _) => format!("event={}", e.bind(py).repr()?),
            (None, Some(err)) => format!("error={}", super::convert::py_repr(err)),
            (None, None) => "event=None".to_owned(),
        };
        Ok(format!(
            "StreamEntry(stream={}, id='{}', {what}, deliveries={})",
            super::convert::py_repr(self.stream.bind(py).to_str()?),
            self.id,
            self.deliveries
        ))
    }
}

/// A batch of entries, converted to Python objects once the future completes.
pub struct Entries(pub(super) Vec<StreamEntry>);

impl<'py> IntoPyObject<'py> for Entries {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        // A batch usually holds one stream (at most a few): its name becomes one Python string.
        let mut names: Vec<(String, Py<PyString>)> = Vec::new();
        let mut objects = Vec::with_capacity(self.0.len());
        for e in self.0 {
            let stream = match names.iter().find(|(name, _)| *name == e.stream) {
                Some((_, s)) => s.clone_ref(py),
                None => {
                    let s = PyString::new(py, &e.stream).unbind();
                    names.push((e.stream, s.clone_ref(py)));
                    s
                }
            };
            let (event, error) = match e.event {
                Ok(ev) => (Some(event_to_py(py, ev)?), None),
                Err(why) => (None, Some(why)),
            };
            let entry = PyStreamEntry {
                stream,
                id: e.id,
                event,
                error,
                deliveries: e.deliveries,
            };
            objects.push(Bound::new(py, entry)?);
        }
        PyList::new(py, objects)
    }
}

#[pyclass(name = "GroupInfo", module = "solcache._core", frozen, get_all)]
pub struct PyGroupInfo {
    name: String,
    consumers: u64,
    pending: u64,
    last_delivered_id: String,
    lag: Option<u64>,
}

impl From<GroupInfo> for PyGroupInfo {
    fn from(g: GroupInfo) -> Self {
        PyGroupInfo {
            name: g.name,
            consumers: g.consumers,
            pending: g.pending,
            last_delivered_id: g.last_delivered_id,
            lag: g.lag,
        }
    }
}

#[pymethods]
impl PyGroupInfo {
    fn __repr__(&self) -> String {
        format!(
            "GroupInfo(name={}, consumers={}, pending={}, last_delivered_id='{}', lag={})",
            super::convert::py_repr(&self.name),
            self.consumers,
            self.pending,
            self.last_delivered_id,
            self.lag.map_or("None".to_owned(), |l| l.to_string())
        )
    }
}

#[pyclass(name = "StreamInfo", module = "solcache._core", frozen)]
pub struct PyStreamInfo {
    info: StreamInfo,
}

#[pymethods]
impl PyStreamInfo {
    #[getter]
    fn stream(&self) -> &str {
        &self.info.stream
    }
    #[getter]
    fn length(&self) -> u64 {
        self.info.length
    }
    #[getter]
    fn first_id(&self) -> Option<&str> {
        self.info.first_id.as_deref()
    }
    #[getter]
    fn last_id(&self) -> Option<&str> {
        self.info.last_id.as_deref()
    }
    #[getter]
    fn groups(&self) -> Vec<PyGroupInfo> {
        self.info.groups.iter().cloned().map(PyGroupInfo::from).collect()
    }
    fn __repr__(&self) -> String {
        format!(
            "StreamInfo(stream={}, length={}, first_id={}, last_id={}, groups={})",
            super::convert::py_repr(&self.info.stream),
            self.info.length,
            super::convert::py_opt(self.info.first_id.as_deref(), true),
            super::convert::py_opt(self.info.last_id.as_deref(), true),
            self.info.groups.len()
        )
    }
}

#[pyclass(name = "SubscriptionStats", module = "solcache._core", frozen, get_all)]
pub struct PySubscriptionStats {
    delivered: u64,
    redelivered: u64,
    acked: u64,
    dead_lettered: u64,
    bad_entries: u64,
    outages: u64,
    retries: u64,
    group_recreations: u64,
}

impl From<SubscriptionStats> for PySubscriptionStats {
    fn from(s: SubscriptionStats) -> Self {
        PySubscriptionStats {
            delivered: s.delivered,
            redelivered: s.redelivered,
            acked: s.acked,
            dead_lettered: s.dead_lettered,
            bad_entries: s.bad_entries,
            outages: s.outages,
            retries: s.retries,
            group_recreations: s.group_recreations,
        }
    }
}

#[pymethods]
impl PySubscriptionStats {
    fn __repr__(&self) -> String {
        format!(
            "SubscriptionStats(delivered={}, redelivered={}, acked={}, dead_lettered={}, bad_entries={}, \
             outages={}, retries={}, group_recreations={})",
            self.delivered,
            self.redelivered,
            self.acked,
            self.dead_lettered,
            self.bad_entries,
            self.outages,
            self.retries,
            self.group_recreations
        )
    }
}

/// The Rust consumer; `solcache.Subscription` wraps it as an async iterator.
#[pyclass(name = "CoreSubscription", module = "solcache._core", frozen)]
pub struct PyCoreSubscription {
    inner: Arc<ReadAhead>,
    /// Last stats and state, readable while a read holds the subscription.
    status: Arc<Mutex<Status>>,
}

/// What Python reads of a subscription while a read may be holding it.
#[derive(Default)]
struct Status {
    stats: SubscriptionStats,
    state: SubscriptionState,
    last_error: Option<String>,
}

impl Status {
    fn publish(shared: &Mutex<Status>, sub: &Subscription) {
        if let Ok(mut s) = shared.lock() {
            s.stats = sub.stats();
            s.state = sub.state();
            s.last_error = sub.last_error().map(str::to_owned);
        }
    }
}

/// Acknowledgements from Python (entries, or `(stream, id)` pairs), their text copied into
/// one buffer: two allocations per batch instead of two per entry.
struct Acks {
    text: String,
    /// Where each pair's stream name and id end in `text`.
    ends: Vec<(usize, usize)>,
}

impl Acks {
    fn from_py(acks: &Bound<'_, PyAny>) -> PyResult<Self> {
        let n = acks.len().unwrap_or(0);
        let mut out = Acks {
            text: String::with_capacity(n * 32),
            ends: Vec::with_capacity(n),
        };
        for item in acks.try_iter()? {
            let item = item?;
            if let Ok(entry) = item.cast::<PyStreamEntry>() {
                let entry = entry.get();
                out.text.push_str(entry.stream.bind(item.py()).to_str()?);
                let stream_end = out.text.len();
                out.text.push_str(&entry.id);
                out.ends.push((stream_end, out.text.len()));
                continue;
            }
            let (stream, id): (Bound<'_, PyString>, Bound<'_, PyString>) = item.extract()?;
            out.text.push_str(stream.to_str()?);
            let stream_end = out.text.len();
            out.text.push_str(id.to_str()?);
            out.ends.push((stream_end, out.text.len()));
        }
        Ok(out)
    }

    /// Queue every pair on `sub` (its XACKs go out with the next read or flush).
    fn mark(&self, sub: &mut Subscription) {
        let mut start = 0;
        for &(stream_end, id_end) in &self.ends {
            sub.ack_later(&self.text[start..stream_end], &self.text[stream_end..id_end]);
            start = id_end;
        }
    }
}

#[pymethods]
impl PyCoreSubscription {
    /// Acknowledge entries (or `(stream, id)` pairs), then read the next batch (awaitable). With
    /// `read_ahead`, the batch after it is read while the caller handles this one.
    #[pyo3(signature = (acks, read_ahead = false))]
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
        acks: &Bound<'py, PyAny>,
        read_ahead: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let acks = Acks::from_py(acks)?;
        let inner = self.inner.clone();
        spawn(py, async move {
            let batch = inner.next_batch(|sub| acks.mark(sub), read_ahead).await?;
            Ok(Entries(batch))
        })
    }

    /// The batch read ahead if it is there already, without a round through the runtime
    /// (`acks` are then queued); None when it is not (`acks` untouched): await
    /// `next_batch(acks, True)` instead.
    fn take_ready<'py>(&self, py: Python<'py>, acks: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyList>>> {
        if !self.inner.is_ready() {
            return Ok(None);
        }
        let acks = Acks::from_py(acks)?;
        let _in_runtime = super::bridge::runtime().enter();
        match self.inner.take_ready(|sub| acks.mark(sub)) {
            None => Ok(None),
            Some(batch) => Ok(Some(Entries(batch?).into_pyobject(py)?)),
        }
    }

    /// Send acknowledgements (entries or `(stream, id)` pairs), then close the subscription's own connection
    /// (awaitable). A batch read ahead stays pending for this consumer.
    fn close<'py>(&self, py: Python<'py>, acks: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let acks = Acks::from_py(acks)?;
        let inner = self.inner.clone();
        spawn(py, async move { Ok(inner.close(|sub| acks.mark(sub)).await?) })
    }

    /// Acknowledge entries (or `(stream, id)` pairs) now (awaitable).
    fn flush_acks<'py>(&self, py: Python<'py>, acks: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let acks = Acks::from_py(acks)?;
        let inner = self.inner.clone();
        spawn(py, async move {
            let result = inner
                .with(async |sub: &mut Subscription| {
                    acks.mark(sub);
                    sub.flush_acks().await
                })
                .await;
            Ok(result?)
        })
    }

    fn stats(&self) -> PySubscriptionStats {
        PySubscriptionStats::from(self.status.lock().map(|s| s.stats).unwrap_or_default())
    }

    /// `"connected"`, `"retrying"` or `"stopped"`.
    fn state(&self) -> &'static str {
        self.status.lock().map(|s| s.state).unwrap_or_default().as_str()
    }

    /// Why the last read failed, while retrying.
    fn last_error(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.last_error.clone())
    }
}

/// Redis Streams for trading events; `solcache.EventStream` subclasses it.
#[pyclass(name = "EventStream", module = "solcache._core", subclass, frozen)]
pub struct PyEventStream {
    inner: EventStream,
    /// A lone publish on an asyncio loop takes that loop's direct connection (`publish.rs`).
    direct: DirectOptions,
}

fn ms(value: u64, name: &str) -> PyResult<Duration> {
    if value == 0 {
        return Err(invalid_input(format!("{name} must be at least 1 ms")));
    }
    Ok(Duration::from_millis(value))
}

#[pymethods]
impl PyEventStream {
    #[new]
    #[pyo3(
        signature = (pool, *, maxlen = UInt(10000), maxlen_per_stream = None),
        text_signature = "(pool, *, maxlen=10000, maxlen_per_stream=None)"
    )]
    fn new(
        pool: PyRef<'_, PyRedisPool>,
        maxlen: UInt,
        maxlen_per_stream: Option<HashMap<String, UInt>>,
    ) -> PyResult<Self> {
        let per_stream = maxlen_per_stream
            .unwrap_or_default()
            .into_iter()
            .map(|(stream, n)| (stream, n.0 as usize))
            .collect();
        let inner = EventStream::with_maxlen(pool.pool.clone(), maxlen.0 as usize, per_stream)?;
        Ok(PyEventStream {
            inner,
            direct: pool.direct,
        })
    }

    /// The approximate length limit of `stream`.
    fn maxlen(&self, stream: &str) -> usize {
        self.inner.maxlen(stream)
    }

    /// Append one event (to its default stream unless one is named); returns the entry id.
    #[pyo3(signature = (event, stream = None))]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        event: PyRef<'py, PyTradingEvent>,
        stream: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        super::publish::publish(py, &self.inner, self.direct, event.inner.clone(), stream)
    }

    /// Append many events in one pipeline; returns their ids in order.
    #[pyo3(signature = (events, stream = None))]
    fn publish_many<'py>(
        &self,
        py: Python<'py>,
        events: &Bound<'py, PyAny>,
        stream: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch = events
            .try_iter()?
            .map(|e| Ok(e?.extract::<PyRef<'_, PyTradingEvent>>()?.inner.clone()))
            .collect::<PyResult<Vec<_>>>()?;
        let handle = self.inner.clone();
        spawn(
            py,
            async move { Ok(handle.publish_many(&batch, stream.as_deref()).await?) },
        )
    }

    /// Read up to `count` entries after `last_id`, waiting up to `block_ms` (0: no wait).
    #[pyo3(
        signature = (stream, last_id = "$", *, count = UInt(100), block_ms = 100),
        text_signature = "($self, stream, last_id='$', *, count=100, block_ms=100)"
    )]
    fn read<'py>(
        &self,
        py: Python<'py>,
        stream: &Bound<'py, PyAny>,
        last_id: &str,
        count: UInt,
        block_ms: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let stream = str_arg(stream, "stream")?;
        let (handle, last_id) = (self.inner.clone(), last_id.to_owned());
        spawn(py, async move {
            let entries = handle
                .read(&stream, &last_id, count.0 as usize, Duration::from_millis(block_ms))
                .await?;
            Ok(Entries(entries))
        })
    }

    /// Create the group if it does not exist (MKSTREAM); True when it was created.
    #[pyo3(signature = (stream, group, start_id = "$"))]
    fn ensure_group<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        group: String,
        start_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (handle, start_id) = (self.inner.clone(), start_id.to_owned());
        spawn(
            py,
            async move { Ok(handle.ensure_group(&stream, &group, &start_id).await?) },
        )
    }

    /// Remove the group with its consumers and pending entries; True if there was one.
    fn delete_group<'py>(&self, py: Python<'py>, stream: String, group: String) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.inner.clone();
        spawn(py, async move { Ok(handle.delete_group(&stream, &group).await?) })
    }

    /// Remove an idle consumer from the group; False if it still holds pending entries.
    fn delete_consumer<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        group: String,
        consumer: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.inner.clone();
        spawn(py, async move {
            Ok(handle.delete_consumer(&stream, &group, &consumer).await?)
        })
    }

    /// Let the stream expire `ttl_ms` from now; True if it exists.
    fn expire<'py>(&self, py: Python<'py>, stream: String, ttl_ms: UInt) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.inner.clone();
        spawn(py, async move {
            Ok(handle.expire(&stream, Duration::from_millis(ttl_ms.0)).await?)
        })
    }

    /// Length, first and last id, and every group's consumers, pending and lag.
    fn info<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.inner.clone();
        spawn(py, async move {
            Ok(PyStreamInfo {
                info: handle.info(&stream).await?,
            })
        })
    }

    /// A tail of `streams` after `from_ids` (one per stream); see `solcache.EventStream.tail`.
    #[pyo3(signature = (streams, from_ids, *, count, block_ms, retry_initial_ms, retry_max_ms, give_up_after_ms))]
    #[allow(clippy::too_many_arguments)]
    fn _tail(
        &self,
        streams: Vec<String>,
        from_ids: Vec<String>,
        count: UInt,
        block_ms: UInt,
        retry_initial_ms: UInt,
        retry_max_ms: UInt,
        give_up_after_ms: Option<UInt>,
    ) -> PyResult<PyCoreTail> {
        let retry = TailRetry {
            initial: ms(retry_initial_ms.0, "retry_initial_ms")?,
            max: ms(retry_max_ms.0, "retry_max_ms")?,
            give_up_after: give_up_after_ms.map(|t| ms(t.0, "give_up_after_ms")).transpose()?,
        };
        let block = ms(block_ms.0, "block_ms")?;
        let tail = self
            .inner
            .tail_with_retry(&streams, &from_ids, count.0 as usize, block, retry)?;
        Ok(PyCoreTail::new(tail))
    }

    #[pyo3(signature = (
        streams, group, consumer, *, count, block_ms, claim_min_idle_ms, claim_interval_ms, max_deliveries,
        start_id, retry_initial_ms, retry_max_ms, give_up_after_ms
    ))]
    #[allow(clippy::too_many_arguments)]
    fn _subscription(
        &self,
        streams: Vec<String>,
        group: &str,
        consumer: &str,
        count: UInt,
        block_ms: UInt,
        claim_min_idle_ms: UInt,
        claim_interval_ms: UInt,
        max_deliveries: UInt,
        start_id: String,
        retry_initial_ms: UInt,
        retry_max_ms: UInt,
        give_up_after_ms: Option<UInt>,
    ) -> PyResult<PyCoreSubscription> {
        let options = SubscriptionOptions {
            count: count.0 as usize,
            block: ms(block_ms.0, "block_ms")?,
            claim_min_idle: ms(claim_min_idle_ms.0, "claim_min_idle_ms")?,
            claim_interval: ms(claim_interval_ms.0, "claim_interval_ms")?,
            max_deliveries: max_deliveries.0,
            start_id,
            retry_initial: ms(retry_initial_ms.0, "retry_initial_ms")?,
            retry_max: ms(retry_max_ms.0, "retry_max_ms")?,
            give_up_after: give_up_after_ms.map(|t| ms(t.0, "give_up_after_ms")).transpose()?,
            read_ahead: false, // set per call by the read ahead
        };
        let sub = Subscription::new(self.inner.clone(), streams, group, consumer, options)?;
        let status = Arc::new(Mutex::new(Status::default()));
        let shared = status.clone();
        let on_read = Arc::new(move |sub: &Subscription| Status::publish(&shared, sub));
        Ok(PyCoreSubscription {
            inner: Arc::new(ReadAhead::new(sub, on_read)),
            status,
        })
    }
}
