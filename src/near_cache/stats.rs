//! The near cache's counters and the age of the entries it serves, read without a lock on
//! the hit path (atomics; the age histogram takes one uncontended mutex).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Live counters; see [`NearStatsSnapshot`] for their meaning.
pub struct NearStats {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    fills: AtomicU64,
    reconnects: AtomicU64,
    bytes: AtomicU64,
    entries: AtomicU64,
    connected: AtomicBool,
    io_uring: AtomicBool,
    /// Age of served entries (now − fill time), in µs.
    age_us: Mutex<Histogram<u64>>,
}

/// The near cache's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NearStatsSnapshot {
    /// Reads answered from memory (per key).
    pub hits: u64,
    /// Keys read from Redis (not held, expired, older than asked, or the cache was down).
    pub misses: u64,
    /// Keys dropped because Redis said they changed.
    pub invalidations: u64,
    /// Times everything was dropped: a null invalidation (FLUSHALL), or the tracking
    /// connection lost, killed, or failing its PING.
    pub flushes: u64,
    /// Fill round trips sent.
    pub fills: u64,
    /// Tracking connections opened after the first.
    pub reconnects: u64,
    /// Bytes held (keys, values, per-entry overhead).
    pub bytes: u64,
    /// Entries held.
    pub entries: u64,
    /// Whether the tracking connection is up (hits are served only then).
    pub connected: bool,
    /// Whether hits learn of invalidations from the io_uring ring (no system call per hit)
    /// rather than by reading the socket (see [`super::watch`]).
    pub io_uring: bool,
    /// Age of served entries (since their fill was sent), µs: median, 99th percentile, max.
    pub age_p50_us: u64,
    pub age_p99_us: u64,
    pub age_max_us: u64,
}

impl Default for NearStats {
    fn default() -> Self {
        NearStats {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            fills: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            io_uring: AtomicBool::new(false),
            age_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds")),
        }
    }
}

impl NearStats {
    /// A hit on an entry `age` old.
    pub fn hit(&self, age: Duration) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.age_us.lock() {
            h.saturating_record((age.as_micros() as u64).max(1));
        }
    }

    pub fn misses(&self, n: u64) {
        self.misses.fetch_add(n, Ordering::Relaxed);
    }

    pub fn invalidated(&self, keys: u64) {
        self.invalidations.fetch_add(keys, Ordering::Relaxed);
    }

    pub fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn filled(&self) {
        self.fills.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_held(&self, bytes: usize, entries: usize) {
        self.bytes.store(bytes as u64, Ordering::Relaxed);
        self.entries.store(entries as u64, Ordering::Relaxed);
    }

    pub fn set_io_uring(&self, armed: bool) {
        self.io_uring.store(armed, Ordering::Relaxed);
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> NearStatsSnapshot {
        let (p50, p99, max) = self
            .age_us
            .lock()
            .map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()))
            .unwrap_or_default();
        NearStatsSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            io_uring: self.io_uring.load(Ordering::Relaxed),
            age_p50_us: p50,
            age_p99_us: p99,
            age_max_us: max,
        }
    }
}
