//! Core log records reach Python's `logging` without a tokio thread ever taking the GIL, each
//! under the dotted logger its target names: `solcache::pool` → `solcache.pool`,
//! `solcache::stream` → `solcache.stream`, `solcache::direct` → `solcache.direct`.
//!
//! A logger that calls into Python from a runtime thread (as pyo3-log does) blocks that
//! thread on the GIL, and during interpreter shutdown such a thread is killed while inside
//! Rust frames, which aborts the process. Here records are queued (bounded) and emitted by the
//! next Python thread that enters the binding: every async call, direct read and blocking
//! call flushes them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use pyo3::prelude::*;

/// Records kept while no Python thread comes by; older ones are dropped and counted.
const MAX_PENDING: usize = 1000;

static PENDING: Mutex<VecDeque<Record>> = Mutex::new(VecDeque::new());
static HAS_PENDING: AtomicBool = AtomicBool::new(false);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A queued record: level, Python logger name, message.
struct Record {
    level: log::Level,
    logger: String,
    message: String,
}

/// The Python logger name of a core log target (`solcache::pool` → `solcache.pool`).
fn logger_name(target: &str) -> String {
    target.replace("::", ".")
}

struct QueueLogger;

impl log::Log for QueueLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("solcache") && metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Ok(mut pending) = PENDING.lock() {
            if pending.len() >= MAX_PENDING {
                pending.pop_front();
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            pending.push_back(Record {
                level: record.level(),
                logger: logger_name(record.target()),
                message: record.args().to_string(),
            });
            HAS_PENDING.store(true, Ordering::Release);
        }
    }

    fn flush(&self) {}
}

static LOGGER: QueueLogger = QueueLogger;

/// Install the queueing logger (once per process; another logger already set wins).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Emit queued records through their `logging` loggers (one atomic load when none wait).
pub fn flush(py: Python<'_>) {
    // A plain load first: the common, empty case costs no write to a shared cache line.
    if !HAS_PENDING.load(Ordering::Acquire) || !HAS_PENDING.swap(false, Ordering::AcqRel) {
        return;
    }
    let records: Vec<_> = match PENDING.lock() {
        Ok(mut pending) => pending.drain(..).collect(),
        Err(_) => return,
    };
    let Ok(logging) = py.import("logging") else {
        return;
    };
    let get_logger = |name: &str| logging.call_method1("getLogger", (name,));
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        if let Ok(logger) = get_logger("solcache") {
            let _ = logger.call_method1("warning", (format!("{dropped} log records were dropped (queue full)"),));
        }
    }
    for record in records {
        let levelno = match record.level {
            log::Level::Error => 40,
            log::Level::Warn => 30,
            _ => 20,
        };
        if let Ok(logger) = get_logger(&record.logger) {
            let _ = logger.call_method1("log", (levelno, record.message));
        }
    }
}
