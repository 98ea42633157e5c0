//! Direct reads: a cache `get`/`get_many` awaited on an asyncio loop is written from the
//! calling thread on a connection that loop owns, and its reply is read by the loop's own
//! `add_reader` callback. No runtime thread, no thread hop: the same path as the raw round trip
//! plus the decode. Everything else (writes, streams, TLS) goes through the runtime.
//!
//! The connection (a core [`DirectConnection`]) is opened in the background on first use;
//! until it is ready, and whenever it is down, calls take the runtime path, which has the
//! pool's fail-fast and retry behaviour. Requests in flight on a connection that breaks are
//! re-sent through the runtime (they are reads); requests still waiting when the response
//! timeout passes fail with `TimeoutError` and the connection is closed, because its reply
//! stream can no longer be trusted.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};

use pyo3::intern;
use pyo3::prelude::*;

use super::bridge::{queue_for, running_loop, runtime, Completion, LoopQueue};
use super::errors::to_py_err;
use crate::direct_connection::{DirectConnection, ReadOutcome};
use crate::error::Error;
use crate::metrics::{Metrics, Operation};
use crate::redis_pool::RedisPool;
use crate::resp::Reply;

/// Turns the reply into the call's Python result; records decode errors in `metrics`.
pub type OnReply = Box<dyn FnOnce(Python<'_>, Reply, &Metrics) -> PyResult<Py<PyAny>> + Send>;
/// Sends the same call through the runtime instead, delivering into the given future.
pub type Redo = Box<dyn FnOnce(Python<'_>, &Bound<'_, PyAny>, Arc<LoopQueue>) -> PyResult<()> + Send>;

/// How a pool's cache reads use direct connections (set when the pool opens).
#[derive(Debug, Clone, Copy)]
pub struct DirectOptions {
    /// Use direct connections at all.
    pub enabled: bool,
    /// After sending a lone request, poll the socket for its reply this long before handing
    /// the wait to the event loop (zero: never). A reply that arrives within it completes
    /// the call without a loop iteration.
    pub spin: Duration,
}

/// Consecutive spins that ran out before the reply came; after this many, spin only on
/// every [`SPIN_PROBE_EVERY`]th call (the server is farther away than the spin budget).
const MAX_SPIN_MISSES: u32 = 3;
const SPIN_PROBE_EVERY: u64 = 64;
/// Spin only after this many calls in a row found nothing else outstanding: with concurrent
/// callers the loop has other work, and batching beats polling.
const QUIET_CALLS_BEFORE_SPIN: u64 = 32;

/// How long to wait before trying to open a direct connection again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

struct Pending {
    future: Py<PyAny>,
    op: Operation,
    started: Instant,
    deadline: Instant,
    on_reply: OnReply,
    redo: Redo,
}

/// One loop's direct connection to one pool's server, and the calls waiting on it.
pub struct DirectLink {
    pool: RedisPool,
    conn: Option<DirectConnection>,
    pending: VecDeque<Pending>,
    connecting: bool,
    next_connect: Instant,
    /// `rediss://` and friends: never direct.
    unsupported: bool,
    timer_armed: bool,
    writer_armed: bool,
    /// A `call_soon` flush is queued: requests made meanwhile are only buffered.
    flush_scheduled: bool,
    /// Calls submitted, and spins in a row that ended without the reply.
    calls: u64,
    spin_misses: u32,
    /// The last call that found another call outstanding (concurrent callers).
    last_overlap: u64,
    /// Spun replies whose futures are not resolved yet (they resolve one iteration later).
    unresolved: Arc<std::sync::atomic::AtomicU32>,
}

impl DirectLink {
    fn new(pool: RedisPool) -> Self {
        let url = pool.config().url.to_ascii_lowercase();
        let unsupported =
            !(url.starts_with("redis://") || url.starts_with("unix://") || url.starts_with("redis+unix://"));
        DirectLink {
            pool,
            conn: None,
            pending: VecDeque::new(),
            connecting: false,
            next_connect: Instant::now(),
            unsupported,
            timer_armed: false,
            writer_armed: false,
            flush_scheduled: false,
            calls: 0,
            spin_misses: 0,
            last_overlap: 0,
            unresolved: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    /// Close the connection (unregistering it from the loop) and hand back what was waiting.
    fn close(&mut self, event_loop: &Bound<'_, PyAny>) -> Vec<Pending> {
        if let Some(conn) = self.conn.take() {
            let py = event_loop.py();
            let fd = conn.raw_fd();
            let _ = event_loop.call_method1(intern!(py, "remove_reader"), (fd,));
            if self.writer_armed {
                let _ = event_loop.call_method1(intern!(py, "remove_writer"), (fd,));
            }
        }
        self.writer_armed = false;
        self.flush_scheduled = false;
        self.pending.drain(..).collect()
    }
}

fn lock(queue: &LoopQueue) -> MutexGuard<'_, std::collections::HashMap<u64, DirectLink>> {
    queue.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Send a read directly if this loop has a live connection to `pool`'s server; `None` means
/// "use the runtime path" (no connection yet, connection down, pool closed, TLS).
pub fn submit<'py>(
    py: Python<'py>,
    pool: &RedisPool,
    spin: Duration,
    op: Operation,
    cmd: &redis::Cmd,
    on_reply: OnReply,
    redo: Redo,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    // Core log records wait for a Python thread; direct reads may be the only calls a
    // service makes, so they hand them over too (one atomic load when there are none).
    super::log_bridge::flush(py);
    let event_loop = running_loop(py)?;
    let queue = queue_for(py, &event_loop)?;
    let mut links = lock(&queue);
    let link = links.entry(pool.id()).or_insert_with(|| DirectLink::new(pool.clone()));
    if pool.is_closed() {
        let orphans = link.close(&event_loop);
        links.remove(&pool.id());
        drop(links);
        redo_all(py, orphans, &queue);
        return Ok(None);
    }
    let Some(conn) = link.conn.as_mut() else {
        start_connect(link, &event_loop, &queue);
        return Ok(None);
    };
    let started = Instant::now();
    let fd = conn.raw_fd();
    link.calls += 1;
    let outstanding = !link.pending.is_empty() || link.unresolved.load(Ordering::Relaxed) > 0;
    if outstanding {
        link.last_overlap = link.calls;
    }
    if !link.pending.is_empty() || link.flush_scheduled {
        // Replies are still due: buffer, and write every request of this loop iteration in
        // one syscall at its end. A lone request (the latency case) goes out at once.
        conn.queue(cmd);
        if !link.flush_scheduled {
            let flush = Bound::new(py, DirectCallback::new(&queue, pool.id(), &event_loop, Event::Flush))?;
            event_loop.call_method1(intern!(py, "call_soon"), (flush,))?;
            link.flush_scheduled = true;
        }
    } else {
        match conn.send(cmd) {
            Ok(true) => {
                let probe = link.calls.is_multiple_of(SPIN_PROBE_EVERY);
                let quiet = link.calls - link.last_overlap > QUIET_CALLS_BEFORE_SPIN;
                if !spin.is_zero() && quiet && (link.spin_misses < MAX_SPIN_MISSES || probe) {
                    match spin_for_reply(conn, spin) {
                        Spin::Reply(reply) => {
                            link.spin_misses = 0;
                            let unresolved = link.unresolved.clone();
                            unresolved.fetch_add(1, Ordering::Relaxed);
                            drop(links);
                            let future = event_loop.call_method0(intern!(py, "create_future"))?;
                            let result = on_reply(py, reply, pool.metrics());
                            pool.metrics().record(op, started.elapsed(), result.is_ok());
                            // Resolved on the next loop iteration, not now: an already-done
                            // future would let the caller's task run on without ever yielding.
                            let resolve = Bound::new(
                                py,
                                Resolve {
                                    future: future.clone().unbind(),
                                    result: std::sync::Mutex::new(Some(result)),
                                    unresolved,
                                },
                            )?;
                            event_loop.call_method1(intern!(py, "call_soon"), (resolve,))?;
                            return Ok(Some(future));
                        }
                        Spin::Waiting => link.spin_misses = link.spin_misses.saturating_add(1),
                        Spin::Broken => {
                            let orphans = link.close(&event_loop);
                            drop(links);
                            redo_all(py, orphans, &queue);
                            let future = event_loop.call_method0(intern!(py, "create_future"))?;
                            redo(py, &future, queue.clone())?;
                            return Ok(Some(future));
                        }
                    }
                }
            }
            Ok(false) => arm_writer(py, link, &queue, pool.id(), &event_loop, fd)?,
            Err(_) => {
                let orphans = link.close(&event_loop);
                drop(links);
                redo_all(py, orphans, &queue);
                return Ok(None);
            }
        }
    }
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let timeout = link.pool.config().response_timeout;
    link.pending.push_back(Pending {
        future: future.clone().unbind(),
        op,
        started,
        deadline: started + timeout,
        on_reply,
        redo,
    });
    if !link.timer_armed {
        let timer = Bound::new(py, DirectCallback::new(&queue, pool.id(), &event_loop, Event::Timer))?;
        event_loop.call_method1(intern!(py, "call_later"), (timeout.as_secs_f64(), timer))?;
        link.timer_armed = true;
    }
    Ok(Some(future))
}

enum Spin {
    /// The one reply due (nothing else was in flight).
    Reply(Reply),
    /// Not here within the budget: the loop takes over (any partial reply stays buffered).
    Waiting,
    /// The connection failed or fell out of step.
    Broken,
}

/// Poll the socket for the reply of the only request in flight, for at most `budget`.
fn spin_for_reply(conn: &mut DirectConnection, budget: Duration) -> Spin {
    let started = Instant::now();
    let mut replies = Vec::with_capacity(1);
    loop {
        match conn.read_replies(&mut replies) {
            Ok(ReadOutcome::Drained) => {}
            _ => return Spin::Broken,
        }
        match replies.len() {
            0 if started.elapsed() < budget => std::hint::spin_loop(),
            0 => return Spin::Waiting,
            1 => return Spin::Reply(replies.pop().expect("one reply")),
            _ => return Spin::Broken,
        }
    }
}

/// Have the loop call back when the socket takes more bytes.
fn arm_writer(
    py: Python<'_>,
    link: &mut DirectLink,
    queue: &Arc<LoopQueue>,
    pool_id: u64,
    event_loop: &Bound<'_, PyAny>,
    fd: std::os::fd::RawFd,
) -> PyResult<()> {
    if !link.writer_armed {
        let writer = Bound::new(py, DirectCallback::new(queue, pool_id, event_loop, Event::Writable))?;
        event_loop.call_method1(intern!(py, "add_writer"), (fd, writer))?;
        link.writer_armed = true;
    }
    Ok(())
}

/// Close this loop's direct connection to `pool_id` (called by `RedisPool.close`).
pub fn close_on_running_loop(py: Python<'_>, pool_id: u64) {
    let Ok(event_loop) = running_loop(py) else {
        return;
    };
    let Ok(queue) = queue_for(py, &event_loop) else {
        return;
    };
    let mut links = lock(&queue);
    if let Some(mut link) = links.remove(&pool_id) {
        let orphans = link.close(&event_loop);
        drop(links);
        redo_all(py, orphans, &queue);
    }
}

/// Open the connection in the background; the loop installs it when ready.
fn start_connect(link: &mut DirectLink, event_loop: &Bound<'_, PyAny>, queue: &Arc<LoopQueue>) {
    if link.unsupported || link.connecting || Instant::now() < link.next_connect {
        return;
    }
    link.connecting = true;
    let url = link.pool.config().url.clone();
    let connect_timeout = link.pool.config().connect_timeout;
    let pool_id = link.pool.id();
    let event_loop = event_loop.clone().unbind();
    let queue = queue.clone();
    runtime().spawn_blocking(move || {
        let result = DirectConnection::connect(&url, connect_timeout);
        let target = queue.clone();
        target.push(Completion::Task(Box::new(move |py| {
            install(py, &queue, pool_id, event_loop.bind(py), result)
        })));
    });
}

/// On the loop thread: register a fresh connection with the loop, or note the failure.
fn install(
    py: Python<'_>,
    queue: &Arc<LoopQueue>,
    pool_id: u64,
    event_loop: &Bound<'_, PyAny>,
    result: crate::error::Result<DirectConnection>,
) {
    let mut links = lock(queue);
    let Some(link) = links.get_mut(&pool_id) else {
        return; // the pool was closed meanwhile: dropping the connection closes it
    };
    link.connecting = false;
    let conn = match result {
        Ok(conn) if !link.pool.is_closed() => conn,
        Ok(_) => return,
        Err(Error::InvalidInput(_)) => {
            link.unsupported = true;
            return;
        }
        Err(_) => {
            link.next_connect = Instant::now() + RECONNECT_DELAY;
            return;
        }
    };
    let registered = Bound::new(py, DirectCallback::new(queue, pool_id, event_loop, Event::Readable))
        .and_then(|reader| event_loop.call_method1(intern!(py, "add_reader"), (conn.raw_fd(), reader)));
    match registered {
        Ok(_) => link.conn = Some(conn),
        Err(err) => {
            // A loop without add_reader (e.g. Windows' proactor): stay on the runtime path.
            link.unsupported = true;
            drop(links);
            log::warn!(target: "solcache", "direct reads disabled on this event loop: {err}");
        }
    }
}

/// Deliver one reply to its waiting call.
fn deliver(py: Python<'_>, pending: Pending, reply: Reply, metrics: &Metrics) {
    let elapsed = pending.started.elapsed();
    let result = (pending.on_reply)(py, reply, metrics);
    metrics.record(pending.op, elapsed, result.is_ok());
    let future = pending.future.bind(py);
    super::bridge::complete(py, future, Box::new(move |_py| result));
}

/// Re-send calls through the runtime after their connection broke.
fn redo_all(py: Python<'_>, orphans: Vec<Pending>, queue: &Arc<LoopQueue>) {
    for pending in orphans {
        let future = pending.future.bind(py);
        if future
            .call_method0(intern!(py, "done"))
            .and_then(|d| d.is_truthy())
            .unwrap_or(true)
        {
            continue;
        }
        if let Err(err) = (pending.redo)(py, future, queue.clone()) {
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
        super::bridge::complete(py, future, Box::new(move |_py| Err(to_py_err(err))));
    }
}

/// Completes a future from a result computed earlier (a `call_soon` callback).
#[pyclass(name = "_Resolve", module = "solcache._core", frozen)]
struct Resolve {
    future: Py<PyAny>,
    result: std::sync::Mutex<Option<PyResult<Py<PyAny>>>>,
    unresolved: Arc<std::sync::atomic::AtomicU32>,
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

/// The loop's `add_reader` / `add_writer` / `call_later` callback for one link.
#[pyclass(name = "_DirectCallback", module = "solcache._core", frozen)]
struct DirectCallback {
    queue: Weak<LoopQueue>,
    pool_id: u64,
    event_loop: Py<PyAny>,
    event: Event,
}

impl DirectCallback {
    fn new(queue: &Arc<LoopQueue>, pool_id: u64, event_loop: &Bound<'_, PyAny>, event: Event) -> Self {
        DirectCallback {
            queue: Arc::downgrade(queue),
            pool_id,
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
        let mut links = lock(&queue);
        let Some(link) = links.get_mut(&self.pool_id) else {
            return;
        };
        let pool = link.pool.clone();
        match self.event {
            Event::Readable => {
                let Some(conn) = link.conn.as_mut() else {
                    return;
                };
                let mut replies = Vec::new();
                let outcome = conn.read_replies(&mut replies);
                let mut answered = Vec::with_capacity(replies.len());
                let mut out_of_step = false;
                for reply in replies {
                    match link.pending.pop_front() {
                        Some(pending) => answered.push((pending, reply)),
                        None => {
                            out_of_step = true;
                            break;
                        }
                    }
                }
                let broken = out_of_step || !matches!(outcome, Ok(ReadOutcome::Drained));
                let orphans = if broken { link.close(event_loop) } else { Vec::new() };
                drop(links);
                for (pending, reply) in answered {
                    deliver(py, pending, reply, pool.metrics());
                }
                redo_all(py, orphans, &queue);
            }
            Event::Writable => {
                let flushed = link.conn.as_mut().map(DirectConnection::flush);
                match flushed {
                    Some(Ok(false)) => {}
                    Some(Ok(true)) | None => {
                        if let Some(conn) = &link.conn {
                            let _ = event_loop.call_method1(intern!(py, "remove_writer"), (conn.raw_fd(),));
                        }
                        link.writer_armed = false;
                    }
                    Some(Err(_)) => {
                        let orphans = link.close(event_loop);
                        drop(links);
                        redo_all(py, orphans, &queue);
                    }
                }
            }
            Event::Flush => {
                link.flush_scheduled = false;
                let Some(conn) = link.conn.as_mut() else {
                    return;
                };
                let fd = conn.raw_fd();
                match conn.flush() {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = arm_writer(py, link, &queue, self.pool_id, event_loop, fd);
                    }
                    Err(_) => {
                        let orphans = link.close(event_loop);
                        drop(links);
                        redo_all(py, orphans, &queue);
                    }
                }
            }
            Event::Timer => {
                let timeout = pool.config().response_timeout;
                let Some(oldest) = link.pending.front().map(|p| p.deadline) else {
                    link.timer_armed = false;
                    return;
                };
                let now = Instant::now();
                if now >= oldest {
                    link.timer_armed = false;
                    let (expired, younger) = link.close(event_loop).into_iter().partition(|p| p.deadline <= now);
                    drop(links);
                    expire(py, expired, timeout, pool.metrics());
                    redo_all(py, younger, &queue);
                } else {
                    let again = Bound::new(py, DirectCallback::new(&queue, self.pool_id, event_loop, Event::Timer))
                        .and_then(|timer| {
                            event_loop.call_method1(intern!(py, "call_later"), ((oldest - now).as_secs_f64(), timer))
                        });
                    if again.is_err() {
                        link.timer_armed = false;
                    }
                }
            }
        }
    }
}
