//! The one door between tokio and asyncio: [`spawn`] runs a Rust future on the runtime and
//! returns an `asyncio.Future` that the event loop's own thread completes.
//!
//! No runtime thread ever takes the GIL. A finished call pushes its result (still a Rust
//! value) onto its loop's completion queue and, if the queue was idle, writes one byte to a
//! socketpair the loop watches with `add_reader`. The loop thread then drains the whole queue
//! in one callback: builds the Python objects and sets every future's result. Many results
//! that finish together cost one wake-up.
//!
//! Cancelling the asyncio future aborts the Rust task (its drop releases any pooled
//! connection); a panic in a task becomes `solcache.InternalError`, never a crash or a hang.

use std::any::Any;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{intern, IntoPyObject, IntoPyObjectExt};
use tokio::runtime::Runtime;

use super::log_bridge;

/// One process-wide tokio runtime, one worker per core: Redis I/O is light, and more threads
/// than cores only adds wake-up latency on a small machine.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("solcache-io")
            .enable_all()
            .build()
            .expect("cannot start the solcache tokio runtime")
    })
}

/// Rust futures started through [`spawn`] that have not finished or been dropped yet.
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// Counts one call in flight for as long as it lives (an aborted task drops it too).
struct InFlight;

impl InFlight {
    fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An awaitable that resolves to `value` after one trip through the runtime: the cost of the
/// asyncio boundary alone, for benchmarks (`solcache bench`, docs/performance.md).
#[pyfunction]
pub fn _bridge_echo<'py>(py: Python<'py>, value: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    spawn(py, async move { Ok(value) })
}

/// Async calls whose Rust future has not finished or been dropped yet.
#[pyfunction]
pub fn _in_flight_calls() -> u64 {
    IN_FLIGHT.load(Ordering::Acquire)
}

/// Builds the Python result on the loop thread (holding the GIL), from a Rust value.
pub type Deliver = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// Work for a loop's thread: a finished call to deliver, or a task to run there.
pub enum Completion {
    /// Set `future`'s result from `deliver`.
    Call { future: Py<PyAny>, deliver: Deliver },
    /// Run on the loop thread (e.g. hand over a socket that finished connecting).
    Task(Box<dyn FnOnce(Python<'_>) + Send>),
}

/// The completion queue of one event loop and the socketpair that wakes it.
pub struct LoopQueue {
    completions: Mutex<Vec<Completion>>,
    /// True from the first push after a drain until the next drain starts: one byte per wake.
    signalled: AtomicBool,
    /// Written by runtime threads (non-blocking).
    wake_tx: UnixStream,
    /// Watched by the loop with `add_reader`, drained by [`LoopQueue::drain`].
    wake_rx: UnixStream,
    /// State other modules keep per event loop (one value per type), dropped with the queue.
    locals: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl LoopQueue {
    fn new() -> std::io::Result<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(LoopQueue {
            completions: Mutex::new(Vec::new()),
            signalled: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            locals: Mutex::new(Vec::new()),
        })
    }

    /// Drop the results queued for this (closed) loop and every module's state for it.
    fn release(&self) {
        let completions = std::mem::take(&mut *self.completions.lock().unwrap_or_else(|p| p.into_inner()));
        let locals = std::mem::take(&mut *self.locals.lock().unwrap_or_else(|p| p.into_inner()));
        // Dropped with no lock held: releasing Python objects may run Python code.
        drop((completions, locals));
    }

    /// This loop's value of type `T`, created on first use: state another module keeps per
    /// event loop, living as long as the loop's queue.
    pub fn local<T: Any + Default + Send + Sync>(&self) -> Arc<T> {
        let mut locals = self.locals.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = locals.iter().find(|local| (***local).is::<T>()) {
            return found.clone().downcast::<T>().expect("the type was checked");
        }
        let created = Arc::new(T::default());
        locals.push(created.clone());
        created
    }

    /// Called from a runtime thread: queue the result, wake the loop if it is not woken yet.
    pub fn push(&self, completion: Completion) {
        match self.completions.lock() {
            Ok(mut queue) => queue.push(completion),
            Err(poisoned) => poisoned.into_inner().push(completion),
        }
        if !self.signalled.swap(true, Ordering::AcqRel) {
            // A full socket buffer means a wake-up is already pending: nothing is lost.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }

    /// Called on the loop thread: complete every queued future.
    fn drain(&self, py: Python<'_>) {
        // Consume the wake-up bytes, then clear the flag, then take the queue: a push after
        // the flag is cleared writes a new byte, so no completion is ever left unannounced.
        let mut sink = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        self.signalled.store(false, Ordering::Release);
        let batch = match self.completions.lock() {
            Ok(mut queue) => std::mem::take(&mut *queue),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for completion in batch {
            match completion {
                Completion::Call { future, deliver } => complete(py, future.bind(py), deliver),
                Completion::Task(task) => task(py),
            }
        }
    }
}

/// Set the future's result or exception, unless it was cancelled meanwhile.
pub fn complete(py: Python<'_>, future: &Bound<'_, PyAny>, deliver: Deliver) {
    if future
        .call_method0(intern!(py, "done"))
        .and_then(|done| done.is_truthy())
        .unwrap_or(true)
    {
        return; // cancelled: nobody awaits this result
    }
    let outcome = match deliver(py) {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,)),
        Err(err) => future.call_method1(intern!(py, "set_exception"), (err.into_value(py),)),
    };
    if let Err(err) = outcome {
        err.write_unraisable(py, Some(future));
    }
}

/// The Python handle of one loop's queue; kept in a `WeakKeyDictionary` keyed by the loop.
#[pyclass(name = "_LoopQueue", module = "solcache._core", frozen)]
struct PyLoopQueue {
    queue: Arc<LoopQueue>,
}

#[pymethods]
impl PyLoopQueue {
    /// The `add_reader` callback.
    fn __call__(&self, py: Python<'_>) {
        self.queue.drain(py);
    }
}

/// Aborts the Rust task when its asyncio future is cancelled (an `add_done_callback`).
#[pyclass(name = "_AbortOnCancel", module = "solcache._core", frozen)]
struct AbortOnCancel {
    abort: tokio::task::AbortHandle,
}

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0(intern!(future.py(), "cancelled"))?.is_truthy()? {
            self.abort.abort();
        }
        Ok(())
    }
}

thread_local! {
    /// The loop this thread used last and its queue: the common case skips the registry.
    static CURRENT: std::cell::RefCell<Option<(Py<PyAny>, Arc<LoopQueue>)>> = const { std::cell::RefCell::new(None) };
}

/// The completion queue of `event_loop`, created and registered with `add_reader` on first use.
pub fn queue_for(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopQueue>> {
    let cached = CURRENT.with_borrow(|current| {
        current
            .as_ref()
            .filter(|(known, _)| known.is(event_loop))
            .map(|(_, queue)| queue.clone())
    });
    if let Some(queue) = cached {
        return Ok(queue);
    }
    let registry = registry(py)?;
    let handle = match registry.get_item(event_loop) {
        Ok(found) => found.cast_into::<PyLoopQueue>()?,
        Err(_) => {
            // A new loop: a good moment to let go of loops closed since the last one.
            release_closed_loops(py);
            let queue = Arc::new(LoopQueue::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?);
            let handle = Bound::new(py, PyLoopQueue { queue })?;
            let fd = handle.get().queue.wake_rx.as_raw_fd();
            event_loop.call_method1(intern!(py, "add_reader"), (fd, &handle))?;
            registry.set_item(event_loop, &handle)?;
            handle
        }
    };
    let queue = handle.get().queue.clone();
    CURRENT.with_borrow_mut(|current| *current = Some((event_loop.clone().unbind(), queue.clone())));
    Ok(queue)
}

/// Every loop's queue handle, weakly keyed by the loop.
fn registry(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static REGISTRY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    Ok(REGISTRY
        .get_or_try_init(py, || {
            py.import("weakref")?
                .getattr("WeakKeyDictionary")?
                .call0()
                .map(Bound::unbind)
        })?
        .bind(py))
}

/// Release what is kept for loops that were closed: results queued for them and other
/// modules' per-loop state. A loop closed with calls in flight would otherwise be kept alive
/// for good by the futures of those calls (its registry entry is only weakly keyed), with any
/// sockets its state holds. Runs when a new loop registers and when a pool closes.
pub fn release_closed_loops(py: Python<'_>) {
    let Ok(items) = registry(py)
        .and_then(|r| r.call_method0("items"))
        .and_then(|i| i.try_iter())
    else {
        return;
    };
    for item in items.flatten() {
        let Ok((event_loop, handle)) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyLoopQueue>)>() else {
            continue;
        };
        let closed = event_loop
            .call_method0(intern!(py, "is_closed"))
            .and_then(|c| c.is_truthy())
            .unwrap_or(false);
        if closed {
            handle.get().queue.release();
        }
    }
}

/// `asyncio.get_running_loop`, looked up once.
pub fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            py.import("asyncio")?.getattr("get_running_loop").map(Bound::unbind)
        })?
        .bind(py)
        .call0()
}

/// Owns the way back to Python until the call delivers; if the task unwinds (a panic) it
/// delivers `InternalError` instead, so the awaiting coroutine never hangs.
struct Delivery {
    target: Option<(Py<PyAny>, Arc<LoopQueue>)>,
}

impl Delivery {
    fn send(mut self, deliver: Deliver) {
        if let Some((future, queue)) = self.target.take() {
            queue.push(Completion::Call { future, deliver });
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // Only a panic or an abort gets here. An aborted call's future is already cancelled,
        // so the drain skips it; anything else is a bug in the core.
        if let Some((future, queue)) = self.target.take() {
            let message = "internal error in the solcache core: the call ended without a result \
                           (a panic, see stderr; please report it)";
            let deliver: Deliver = Box::new(move |_py| Err(super::errors::internal_error(message)));
            queue.push(Completion::Call { future, deliver });
        }
    }
}

/// Run `fut` on the runtime; return an `asyncio.Future` of the running loop that gets its
/// result. Raises `RuntimeError` outside a running loop, like `asyncio.get_running_loop()`.
pub fn spawn<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = running_loop(py)?;
    let queue = queue_for(py, &event_loop)?;
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    spawn_into(py, &future, queue, fut)?;
    Ok(future)
}

/// Run `fut` on the runtime and deliver its result into `future`, an `asyncio.Future` of the
/// loop that owns `queue`. Cancelling `future` aborts the task.
pub fn spawn_into<F, T>(py: Python<'_>, future: &Bound<'_, PyAny>, queue: Arc<LoopQueue>, fut: F) -> PyResult<()>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    log_bridge::flush(py);
    let counted = InFlight::new();
    let delivery = Delivery {
        target: Some((future.clone().unbind(), queue)),
    };
    let task = runtime().spawn(async move {
        let _counted = counted;
        let result = fut.await;
        delivery.send(Box::new(move |py| {
            let value = result?;
            // `()` means "nothing": Python's None, not pyo3's empty tuple.
            if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
                return Ok(py.None());
            }
            value.into_py_any(py)
        }));
    });
    let on_done = Bound::new(
        py,
        AbortOnCancel {
            abort: task.abort_handle(),
        },
    )?;
    future.call_method1(intern!(py, "add_done_callback"), (on_done,))?;
    Ok(())
}
