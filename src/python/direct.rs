//! The asyncio adapter of direct reads: an event loop's `add_reader`, `add_writer`,
//! `call_soon` and `call_later` mapped onto the core's [`Link`] state machine and its
//! [`DirectSocket`], and paired replies turned into the results of asyncio futures. Every
//! decision (pairing, deadlines, batching, polling, reconnect timing) is the link's.
//!
//! A cache `get`/`get_many` awaited on a loop is written from the calling thread on a
//! connection that loop owns, and its reply is read by the loop's own reader callback: no
//! runtime thread, no thread hop. On a Redis Cluster the loop keeps one such connection per
//! primary, and a read goes to the one the core's slot table names for its key
//! ([`RedisPool::cluster_primary_of`]: a `get`, or a `get_many` whose keys share one slot);
//! a read the table has no answer for, and one whose reply is a redirection (`MOVED`, `ASK`,
//! `TRYAGAIN`, `CLUSTERDOWN`), takes the runtime, which follows it, and the table is read
//! again. Until the connection is up, and whenever it is down, calls
//! take the pool through the runtime (`bridge.rs`); reads in flight on a connection that breaks
//! are re-sent there; reads unanswered at the response timeout fail with `TimeoutError`.
//! A lone `EventStream.publish` takes the same connection; what it does when that connection
//! is lost with its XADD in flight is the core's retry policy
//! ([`crate::stream_publish::resend_lost`]), not a blind resend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use pyo3::intern;
use pyo3::prelude::*;

use super::bridge::{queue_for, running_loop, runtime, Completion, LoopQueue};
use crate::error::Error;
use crate::metrics::{Metrics, Operation};
use crate::transport::cluster_direct::is_redirection;
use crate::transport::direct::{self, DirectSocket, Expiry, Link, Route, Submitted};
use crate::transport::endpoint::Endpoint;
use crate::transport::resp::Reply;
use crate::transport::retry::Failure;
use crate::transport::RedisPool;

/// A direct call, as the adapter sees it: how its reply becomes the call's result, and how
/// to send it through the runtime instead.
pub trait DirectCall: Send {
    /// The reply arrived: the call's Python result (decode errors are counted in `metrics`),
    /// or the call itself back when the reply says to send it again ([`Redo::Refused`]).
    fn on_reply(self: Box<Self>, py: Python<'_>, reply: Reply, metrics: &Metrics) -> Replied;

    /// Send the same call through the runtime, delivering into `future`, or fail it (`Err`,
    /// set on `future`): `why` says what became of the direct attempt.
    fn redo(
        self: Box<Self>,
        py: Python<'_>,
        future: &Bound<'_, PyAny>,
        queue: Arc<LoopQueue>,
        why: Redo,
    ) -> PyResult<()>;
}

/// What a reply made of a direct call.
pub enum Replied {
    /// The call's result.
    Done(PyResult<Py<PyAny>>),
    /// Send it again through the runtime ([`Redo::Refused`]).
    Again(Box<dyn DirectCall>),
}

/// Why a direct call is handed to the runtime after it was sent.
#[derive(Debug, Clone, Copy)]
pub enum Redo {
    /// The connection was lost with the call in flight: `Dropped` (an I/O error, the peer
    /// closed it, bytes that are not RESP) or `Broken` (closed by this side: the pool
    /// closed); `served`: it had answered calls before.
    Lost { failure: Failure, served: bool },
    /// The connection was closed by this side because an older call on it got no reply
    /// within the response timeout: the server is not answering this one either.
    Expired,
    /// Its reply refused it in a way the retry policy answers with one resend (`READONLY`).
    Refused,
    /// A cluster primary redirected it (`MOVED`, `ASK`) or is in trouble (`TRYAGAIN`,
    /// `CLUSTERDOWN`): the runtime path follows that.
    Redirected,
}

/// How a pool's cache reads use direct connections (set when the pool opens).
#[derive(Debug, Clone, Copy)]
pub struct DirectOptions {
    /// Use direct connections at all.
    pub enabled: bool,
    /// After sending a lone request, poll the socket for its reply this long before handing
    /// the wait to the event loop (zero: never).
    pub spin: Duration,
}

/// A call waiting for its reply: the link's token.
struct Pending {
    future: Py<PyAny>,
    op: Operation,
    started: Instant,
    call: Box<dyn DirectCall>,
}

/// An entry's key: the pool's id, and on a cluster the primary's `host:port`.
type Key = (u64, Option<Arc<str>>);

/// One loop's direct connection to one pool's server (on a cluster, to one primary): the
/// link, its socket, and what is registered with the loop for it.
struct Entry {
    pool: RedisPool,
    /// Where the socket connects; `None` (Sentinel) never connects.
    endpoint: Option<Arc<Endpoint>>,
    link: Link<Pending>,
    socket: Option<DirectSocket>,
    timer_armed: bool,
    writer_armed: bool,
    /// Replies found by polling whose futures resolve on the next loop iteration.
    unresolved: Arc<AtomicU32>,
}

impl Entry {
    fn new(pool: RedisPool, endpoint: Option<Arc<Endpoint>>, spin: Duration) -> Self {
        let supported = endpoint.as_deref().is_some_and(direct::supports);
        let link = Link::new(supported, pool.config().response_timeout, spin, Instant::now());
        Entry {
            pool,
            endpoint,
            link,
            socket: None,
            timer_armed: false,
            writer_armed: false,
            unresolved: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Close the socket (unregistering it from the loop) and hand back what was in flight,
    /// with why: `failure` is `Dropped` when the connection broke, `Broken` when closed here.
    fn close(&mut self, event_loop: &Bound<'_, PyAny>, failure: Failure) -> (Vec<Pending>, Redo) {
        let why = Redo::Lost {
            failure,
            served: self.link.has_served(),
        };
        self.drop_socket(event_loop);
        (self.link.close(Instant::now()), why)
    }

    /// Unregister the socket from the loop and close it.
    fn drop_socket(&mut self, event_loop: &Bound<'_, PyAny>) {
        if let Some(socket) = self.socket.take() {
            let py = event_loop.py();
            let fd = socket.raw_fd();
            let _ = event_loop.call_method1(intern!(py, "remove_reader"), (fd,));
            if self.writer_armed {
                let _ = event_loop.call_method1(intern!(py, "remove_writer"), (fd,));
            }
        }
        self.writer_armed = false;
    }
}

/// This loop's entries by pool id and primary (kept with the loop's queue).
#[derive(Default)]
struct Entries(Mutex<HashMap<Key, Entry>>);

impl Entries {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Send a read (`cmd`, answered through `call`) directly if this loop has a live connection
/// to `pool`'s server (on a cluster, to the primary of `cmd`'s key): its future. `Err(call)`
/// hands the call back to take the runtime path (no connection yet, connection down, pool
/// closed, TLS, a cluster read the slot table has no primary for now).
pub fn submit<'py, C: DirectCall + 'static>(
    py: Python<'py>,
    pool: &RedisPool,
    spin: Duration,
    op: Operation,
    cmd: &redis::Cmd,
    call: C,
) -> PyResult<Result<Bound<'py, PyAny>, C>> {
    // Core log records wait for a Python thread; direct reads may be the only calls a
    // service makes, so they hand them over too (one atomic load when there are none).
    super::log_bridge::flush(py);
    // One server: its endpoint. A cluster: the primary the core's slot table names now.
    // Sentinel: neither, and an entry that never connects.
    let (key, endpoint) = match pool.endpoint() {
        Some(endpoint) => ((pool.id(), None), Some(endpoint.clone())),
        None => match pool.cluster_primary_of(cmd) {
            Some(primary) => ((pool.id(), Some(primary.addr)), Some(primary.endpoint)),
            None if pool.topology() == "cluster" => return Ok(Err(call)),
            None => ((pool.id(), None), None),
        },
    };
    let event_loop = running_loop(py)?;
    let queue = queue_for(py, &event_loop)?;
    if pool.is_closed() {
        close_pool(py, &event_loop, &queue, pool.id());
        return Ok(Err(call));
    }
    let entries = queue.local::<Entries>();
    let mut map = entries.lock();
    let entry = map
        .entry(key.clone())
        .or_insert_with(|| Entry::new(pool.clone(), endpoint, spin));
    let started = Instant::now();
    if let Route::Pool { connect } = entry.link.route(started) {
        if connect {
            start_connect(entry, &key, &event_loop, &queue);
        }
        return Ok(Err(call));
    }
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let pending = Pending {
        future: future.clone().unbind(),
        op,
        started,
        call: Box::new(call),
    };
    let busy = entry.unresolved.load(Ordering::Relaxed) > 0;
    match entry.link.submit(cmd, pending, started, busy) {
        Submitted::Buffered { schedule_flush } => {
            // Replies are still due: every request of this loop iteration goes out in one
            // write at its end.
            if schedule_flush {
                let flush = Bound::new(py, DirectCallback::new(&queue, &key, &event_loop, Event::Flush))?;
                event_loop.call_method1(intern!(py, "call_soon"), (flush,))?;
            }
        }
        Submitted::WriteNow { spin } => {
            let socket = entry.socket.as_mut().expect("a link that is up has a socket");
            let fd = socket.raw_fd();
            match socket.write(&mut entry.link) {
                Ok(true) if spin => {
                    let mut answered = Vec::with_capacity(1);
                    match socket.spin(&mut entry.link, &mut answered) {
                        Ok(true) => {
                            let unresolved = entry.unresolved.clone();
                            drop(map);
                            let (pending, reply) = answered.pop().expect("a poll hit holds the reply");
                            resolve_next_iteration(
                                py,
                                &event_loop,
                                pending,
                                reply,
                                (pool, key.1.is_some()),
                                unresolved,
                                &queue,
                            )?;
                            return Ok(Ok(future));
                        }
                        Ok(false) => {} // the loop's reader takes over
                        Err(_) => {
                            return broken(py, entry.close(&event_loop, Failure::Dropped), map, &queue, future).map(Ok)
                        }
                    }
                }
                Ok(true) => {}
                Ok(false) => arm_writer(py, entry, &queue, &key, &event_loop, fd)?,
                Err(_) => return broken(py, entry.close(&event_loop, Failure::Dropped), map, &queue, future).map(Ok),
            }
        }
    }
    if !entry.timer_armed {
        let timeout = entry.pool.config().response_timeout;
        let timer = Bound::new(py, DirectCallback::new(&queue, &key, &event_loop, Event::Timer))?;
        event_loop.call_method1(intern!(py, "call_later"), (timeout.as_secs_f64(), timer))?;
        entry.timer_armed = true;
    }
    Ok(Ok(future))
}

/// The connection broke under a new call: everything in flight, the new call too, goes to
/// the runtime (or fails) as its `redo` says.
fn broken<'py>(
    py: Python<'py>,
    (orphans, why): (Vec<Pending>, Redo),
    map: MutexGuard<'_, HashMap<Key, Entry>>,
    queue: &Arc<LoopQueue>,
    future: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    drop(map);
    redo_all(py, orphans, queue, why);
    Ok(future)
}

/// A reply found by polling: its future resolves on the next loop iteration, not now (an
/// already-done future would let the caller's task run on without ever yielding).
fn resolve_next_iteration(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    pending: Pending,
    reply: Reply,
    (pool, cluster): (&RedisPool, bool),
    unresolved: Arc<AtomicU32>,
    queue: &Arc<LoopQueue>,
) -> PyResult<()> {
    if cluster && redirected(&reply, pool) {
        redo_all(py, vec![pending], queue, Redo::Redirected);
        return Ok(());
    }
    let metrics = pool.metrics();
    let result = match pending.call.on_reply(py, reply, metrics) {
        Replied::Done(result) => result,
        Replied::Again(call) => {
            let future = pending.future.bind(py);
            if let Err(err) = call.redo(py, future, queue.clone(), Redo::Refused) {
                future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))?;
            }
            return Ok(());
        }
    };
    metrics.record(pending.op, pending.started.elapsed(), result.is_ok());
    unresolved.fetch_add(1, Ordering::Relaxed);
    let resolve = Bound::new(
        py,
        Resolve {
            future: pending.future,
            result: Mutex::new(Some(result)),
            unresolved,
        },
    )?;
    event_loop.call_method1(intern!(py, "call_soon"), (resolve,))?;
    Ok(())
}

/// Have the loop call back when the socket takes more bytes.
fn arm_writer(
    py: Python<'_>,
    entry: &mut Entry,
    queue: &Arc<LoopQueue>,
    key: &Key,
    event_loop: &Bound<'_, PyAny>,
    fd: std::os::fd::RawFd,
) -> PyResult<()> {
    if !entry.writer_armed {
        let writer = Bound::new(py, DirectCallback::new(queue, key, event_loop, Event::Writable))?;
        event_loop.call_method1(intern!(py, "add_writer"), (fd, writer))?;
        entry.writer_armed = true;
    }
    Ok(())
}

/// Close this loop's direct connections to `pool_id` (called by `RedisPool.close`).
pub fn close_on_running_loop(py: Python<'_>, pool_id: u64) {
    let Ok(event_loop) = running_loop(py) else {
        return;
    };
    let Ok(queue) = queue_for(py, &event_loop) else {
        return;
    };
    close_pool(py, &event_loop, &queue, pool_id);
}

/// Close every connection of this loop to `pool_id` (one per primary on a cluster); what was
/// in flight takes the runtime path.
fn close_pool(py: Python<'_>, event_loop: &Bound<'_, PyAny>, queue: &Arc<LoopQueue>, pool_id: u64) {
    let entries = queue.local::<Entries>();
    let mut map = entries.lock();
    let keys: Vec<Key> = map.keys().filter(|k| k.0 == pool_id).cloned().collect();
    let mut lost = Vec::new();
    for key in keys {
        if let Some(mut entry) = map.remove(&key) {
            lost.push(entry.close(event_loop, Failure::Broken));
        }
    }
    drop(map);
    for (orphans, why) in lost {
        redo_all(py, orphans, queue, why);
    }
}

/// A cluster read's reply redirects it (`MOVED`, `ASK`) or says the cluster is in trouble:
/// the slot table is read again and the caller sends the read through the runtime, which
/// follows that. `false` for any other reply (the read counts as served directly).
fn redirected(reply: &Reply, pool: &RedisPool) -> bool {
    if !is_redirection(reply) {
        pool.cluster_read_served();
        return false;
    }
    pool.cluster_table_stale();
    true
}

/// Open the socket on a runtime worker (connecting blocks); the loop installs it when ready.
fn start_connect(entry: &Entry, key: &Key, event_loop: &Bound<'_, PyAny>, queue: &Arc<LoopQueue>) {
    let Some(endpoint) = entry.endpoint.clone() else {
        return; // no fixed server: the link was made unsupported (Entry::new), never connects
    };
    let connect_timeout = entry.pool.config().connect_timeout;
    let key = key.clone();
    let event_loop = event_loop.clone().unbind();
    let queue = queue.clone();
    runtime().spawn_blocking(move || {
        let result = DirectSocket::connect(&endpoint, connect_timeout);
        let target = queue.clone();
        target.push(Completion::Task(Box::new(move |py| {
            install(py, &queue, &key, event_loop.bind(py), result)
        })));
    });
}

/// On the loop thread: register a fresh socket with the loop, or tell the link it failed.
fn install(
    py: Python<'_>,
    queue: &Arc<LoopQueue>,
    key: &Key,
    event_loop: &Bound<'_, PyAny>,
    result: crate::error::Result<DirectSocket>,
) {
    let entries = queue.local::<Entries>();
    let mut map = entries.lock();
    let Some(entry) = map.get_mut(key) else {
        return; // the pool was closed meanwhile: dropping the socket closes it
    };
    let socket = match result {
        Ok(socket) if !entry.pool.is_closed() => socket,
        Ok(_) => return,
        Err(Error::InvalidInput(_)) => return entry.link.connect_failed(true, Instant::now()),
        Err(_) => return entry.link.connect_failed(false, Instant::now()),
    };
    let registered = Bound::new(py, DirectCallback::new(queue, key, event_loop, Event::Readable))
        .and_then(|reader| event_loop.call_method1(intern!(py, "add_reader"), (socket.raw_fd(), reader)));
    match registered {
        Ok(_) => {
            entry.socket = Some(socket);
            entry.link.connected();
        }
        Err(err) => {
            // A loop without add_reader (e.g. Windows' proactor): stay on the runtime path.
            entry.link.connect_failed(true, Instant::now());
            drop(map);
            log::warn!(target: "solcache::direct", "direct reads disabled on this event loop: {err}");
        }
    }
}

/// Deliver one reply to its waiting call.
fn deliver(py: Python<'_>, pending: Pending, reply: Reply, pool: &RedisPool, cluster: bool, queue: &Arc<LoopQueue>) {
    if cluster && redirected(&reply, pool) {
        return redo_all(py, vec![pending], queue, Redo::Redirected);
    }
    let metrics = pool.metrics();
    match pending.call.on_reply(py, reply, metrics) {
        Replied::Done(result) => {
            metrics.record(pending.op, pending.started.elapsed(), result.is_ok());
            super::bridge::complete(py, pending.future.bind(py), Box::new(move |_py| result));
        }
        Replied::Again(call) => {
            let future = pending.future.bind(py);
            if let Err(err) = call.redo(py, future, queue.clone(), Redo::Refused) {
                let _ = future.call_method1(intern!(py, "set_exception"), (err.into_value(py),));
            }
        }
    }
}

/// Hand calls to the runtime after their connection was lost (`why`); each call's `redo`
/// decides whether it is sent again.
fn redo_all(py: Python<'_>, orphans: Vec<Pending>, queue: &Arc<LoopQueue>, why: Redo) {
    for pending in orphans {
        let future = pending.future.bind(py);
        if future
            .call_method0(intern!(py, "done"))
            .and_then(|d| d.is_truthy())
            .unwrap_or(true)
        {
            continue;
        }
        if let Err(err) = pending.call.redo(py, future, queue.clone(), why) {
            let _ = future.call_method1(intern!(py, "set_exception"), (err.into_value(py),));
        }
    }
}

/// Fail calls whose response timeout passed.
fn expire(py: Python<'_>, expired: Vec<Pending>, timeout: Duration, metrics: &Metrics) {
    for pending in expired {
        let err = Error::Timeout {
            operation: "response",
            timeout,
        };
        metrics.record(pending.op, pending.started.elapsed(), false);
        metrics.record_error(&err);
        let future = pending.future.bind(py);
        super::bridge::complete(py, future, Box::new(move |_py| Err(err.into())));
    }
}

/// Completes a future from a result computed earlier (a `call_soon` callback).
#[pyclass(name = "_Resolve", module = "solcache._core", frozen)]
struct Resolve {
    future: Py<PyAny>,
    result: Mutex<Option<PyResult<Py<PyAny>>>>,
    unresolved: Arc<AtomicU32>,
}

#[pymethods]
impl Resolve {
    fn __call__(&self, py: Python<'_>) {
        let taken = self.result.lock().ok().and_then(|mut r| r.take());
        if let Some(result) = taken {
            self.unresolved.fetch_sub(1, Ordering::Relaxed);
            super::bridge::complete(py, self.future.bind(py), Box::new(move |_py| result));
        }
    }
}

#[derive(Clone, Copy)]
enum Event {
    Readable,
    Writable,
    Timer,
    /// End of a loop iteration: write the requests buffered during it.
    Flush,
}

/// The loop's `add_reader` / `add_writer` / `call_soon` / `call_later` callback for one entry.
#[pyclass(name = "_DirectCallback", module = "solcache._core", frozen)]
struct DirectCallback {
    queue: Weak<LoopQueue>,
    key: Key,
    event_loop: Py<PyAny>,
    event: Event,
}

impl DirectCallback {
    fn new(queue: &Arc<LoopQueue>, key: &Key, event_loop: &Bound<'_, PyAny>, event: Event) -> Self {
        DirectCallback {
            queue: Arc::downgrade(queue),
            key: key.clone(),
            event_loop: event_loop.clone().unbind(),
            event,
        }
    }
}

#[pymethods]
impl DirectCallback {
    fn __call__(&self, py: Python<'_>) {
        let Some(queue) = self.queue.upgrade() else {
            return;
        };
        let event_loop = self.event_loop.bind(py);
        let entries = queue.local::<Entries>();
        let mut map = entries.lock();
        let Some(entry) = map.get_mut(&self.key) else {
            return;
        };
        let mut answered = Vec::new();
        let (mut orphans, mut why) = (Vec::new(), Redo::Refused);
        let mut expired = Vec::new();
        match self.event {
            Event::Readable => {
                let Some(socket) = entry.socket.as_mut() else {
                    return;
                };
                if socket.read(&mut entry.link, &mut answered).is_err() {
                    (orphans, why) = entry.close(event_loop, Failure::Dropped);
                }
            }
            Event::Writable => match entry.socket.as_mut().map(|s| s.write(&mut entry.link)) {
                Some(Ok(false)) => {}
                Some(Ok(true)) | None => {
                    if let Some(socket) = &entry.socket {
                        let _ = event_loop.call_method1(intern!(py, "remove_writer"), (socket.raw_fd(),));
                    }
                    entry.writer_armed = false;
                }
                Some(Err(_)) => (orphans, why) = entry.close(event_loop, Failure::Dropped),
            },
            Event::Flush => {
                entry.link.flush_due();
                let Some(socket) = entry.socket.as_mut() else {
                    return;
                };
                let fd = socket.raw_fd();
                match socket.write(&mut entry.link) {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = arm_writer(py, entry, &queue, &self.key, event_loop, fd);
                    }
                    Err(_) => (orphans, why) = entry.close(event_loop, Failure::Dropped),
                }
            }
            Event::Timer => match entry.link.expire(Instant::now()) {
                Expiry::Idle => entry.timer_armed = false,
                Expiry::Later(due) => {
                    let delay = due.saturating_duration_since(Instant::now()).as_secs_f64();
                    let again = Bound::new(py, DirectCallback::new(&queue, &self.key, event_loop, Event::Timer))
                        .and_then(|timer| event_loop.call_method1(intern!(py, "call_later"), (delay, timer)));
                    entry.timer_armed = again.is_ok();
                }
                Expiry::Closed {
                    expired: past_due,
                    orphans: younger,
                } => {
                    // The link closed itself; only the socket is left to unregister. The
                    // younger calls were lost to that close, not to a broken connection.
                    entry.timer_armed = false;
                    why = Redo::Expired;
                    entry.drop_socket(event_loop);
                    (expired, orphans) = (past_due, younger);
                }
            },
        }
        let pool = entry.pool.clone();
        drop(map);
        let metrics = pool.metrics();
        for (pending, reply) in answered {
            deliver(py, pending, reply, &pool, self.key.1.is_some(), &queue);
        }
        expire(py, expired, pool.config().response_timeout, metrics);
        redo_all(py, orphans, &queue, why);
    }
}
