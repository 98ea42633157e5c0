//! Latency histograms per operation, kept in the core so reading them costs no Python work.
//!
//! Recording is one uncontended mutex and an HDR histogram update (tens of ns). Cache
//! operations slower than the configured budget are counted, and reported through the `log`
//! crate (target `solcache::pool`, the `solcache.pool` logger in Python) as [`SlowCalls`] decides: the first per operation at once, then a
//! summary at most once per [`SLOW_SUMMARY_INTERVAL`], so a slow Redis cannot flood the logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::{Error, ERROR_KINDS};
use crate::slow_calls::SlowCalls;
pub use crate::slow_calls::SLOW_SUMMARY_INTERVAL;

/// Every operation the core times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    PriceGet,
    PriceGetMany,
    PriceSet,
    PriceSetMany,
    PoolGet,
    PoolGetMany,
    PoolSet,
    PoolSetMany,
    /// Taking a connection out of the pool.
    Checkout,
    /// The background and on-demand PING.
    Ping,
    /// XADD of one event.
    StreamPublish,
    /// Pipelined XADDs.
    StreamPublishMany,
    /// XREAD (tailing).
    StreamRead,
    /// XREADGROUP, with the acknowledgements of the previous batch pipelined in front.
    StreamReadGroup,
    /// XACK on its own.
    StreamAck,
    /// XAUTOCLAIM and the delivery-count lookup of what it claimed.
    StreamClaim,
    /// Moving entries to the dead-letter stream.
    StreamDeadLetter,
    /// XGROUP CREATE, XINFO.
    StreamAdmin,
}

impl Operation {
    /// All operations, in the order [`Metrics::snapshot`] reports them.
    pub const ALL: [Operation; 18] = [
        Operation::PriceGet,
        Operation::PriceGetMany,
        Operation::PriceSet,
        Operation::PriceSetMany,
        Operation::PoolGet,
        Operation::PoolGetMany,
        Operation::PoolSet,
        Operation::PoolSetMany,
        Operation::Checkout,
        Operation::Ping,
        Operation::StreamPublish,
        Operation::StreamPublishMany,
        Operation::StreamRead,
        Operation::StreamReadGroup,
        Operation::StreamAck,
        Operation::StreamClaim,
        Operation::StreamDeadLetter,
        Operation::StreamAdmin,
    ];

    /// Stable snake_case name used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::PriceGet => "price_get",
            Operation::PriceGetMany => "price_get_many",
            Operation::PriceSet => "price_set",
            Operation::PriceSetMany => "price_set_many",
            Operation::PoolGet => "pool_get",
            Operation::PoolGetMany => "pool_get_many",
            Operation::PoolSet => "pool_set",
            Operation::PoolSetMany => "pool_set_many",
            Operation::Checkout => "checkout",
            Operation::Ping => "ping",
            Operation::StreamPublish => "stream_publish",
            Operation::StreamPublishMany => "stream_publish_many",
            Operation::StreamRead => "stream_read",
            Operation::StreamReadGroup => "stream_read_group",
            Operation::StreamAck => "stream_ack",
            Operation::StreamClaim => "stream_claim",
            Operation::StreamDeadLetter => "stream_dead_letter",
            Operation::StreamAdmin => "stream_admin",
        }
    }

    /// Cache reads and writes, the calls the latency budget is for. Stream reads block on
    /// purpose and admin calls (XINFO, XAUTOCLAIM, PING) are not on the hot path: they are
    /// timed but never counted or logged as slow.
    pub fn has_budget(self) -> bool {
        matches!(
            self,
            Operation::PriceGet
                | Operation::PriceGetMany
                | Operation::PriceSet
                | Operation::PriceSetMany
                | Operation::PoolGet
                | Operation::PoolGetMany
                | Operation::PoolSet
                | Operation::PoolSetMany
        )
    }

    pub(crate) fn index(self) -> usize {
        Operation::ALL.iter().position(|&op| op == self).expect("listed in ALL")
    }
}

/// Summary of one operation's latencies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OperationStats {
    /// Completed calls, successful or not.
    pub count: u64,
    /// Calls that ended in an error.
    pub errors: u64,
    /// Calls slower than the budget.
    pub slow: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

struct OperationMetrics {
    latency_ns: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    slow: AtomicU64,
}

/// Per-operation latency histograms and slow-call accounting.
pub struct Metrics {
    operations: Vec<OperationMetrics>,
    slow_threshold: Duration,
    slow_calls: SlowCalls,
    /// Errors returned to callers, by [`Error::kind_name`] (indexed like [`ERROR_KINDS`]).
    errors_by_kind: [AtomicU64; ERROR_KINDS.len()],
}

impl Metrics {
    /// Histograms for every [`Operation`]; calls slower than `slow_threshold` are counted.
    pub fn new(slow_threshold: Duration) -> Self {
        let operations = Operation::ALL
            .iter()
            .map(|_| OperationMetrics {
                // 1 ns .. 60 s at 3 significant digits: ~10 kB per operation.
                latency_ns: Mutex::new(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")),
                errors: AtomicU64::new(0),
                slow: AtomicU64::new(0),
            })
            .collect();
        Metrics {
            operations,
            slow_threshold,
            slow_calls: SlowCalls::new(slow_threshold, SLOW_SUMMARY_INTERVAL),
            errors_by_kind: Default::default(),
        }
    }

    /// The budget above which a call counts as slow.
    pub fn slow_threshold(&self) -> Duration {
        self.slow_threshold
    }

    /// Record one completed call.
    pub fn record(&self, op: Operation, elapsed: Duration, ok: bool) {
        let m = &self.operations[op.index()];
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut h) = m.latency_ns.lock() {
            h.saturating_record(ns);
        }
        if !ok {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
        let line = if elapsed > self.slow_threshold && op.has_budget() {
            m.slow.fetch_add(1, Ordering::Relaxed);
            self.slow_calls.slow(op, elapsed, Instant::now())
        } else {
            self.slow_calls.due(Instant::now)
        };
        if let Some(line) = line {
            log::warn!(target: "solcache::pool", "{line}");
        }
    }

    /// Record one completed call and, if it failed, count its error by kind.
    pub fn record_outcome<T>(&self, op: Operation, elapsed: Duration, result: &Result<T, Error>) {
        self.record(op, elapsed, result.is_ok());
        if let Err(e) = result {
            self.record_error(e);
        }
    }

    /// Count an error returned to a caller, by kind.
    pub fn record_error(&self, err: &Error) {
        if let Some(i) = ERROR_KINDS.iter().position(|&k| k == err.kind_name()) {
            self.errors_by_kind[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Errors returned to callers so far, per kind (every kind, zeros included).
    pub fn error_counts(&self) -> Vec<(&'static str, u64)> {
        ERROR_KINDS
            .iter()
            .zip(&self.errors_by_kind)
            .map(|(&k, n)| (k, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Stats of one operation.
    pub fn stats(&self, op: Operation) -> OperationStats {
        let m = &self.operations[op.index()];
        let h = m
            .latency_ns
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let us = |ns: u64| ns as f64 / 1e3;
        OperationStats {
            count: h.len(),
            errors: m.errors.load(Ordering::Relaxed),
            slow: m.slow.load(Ordering::Relaxed),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() / 1e3 },
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }

    /// Stats of every operation that has been called at least once.
    pub fn snapshot(&self) -> Vec<(&'static str, OperationStats)> {
        Operation::ALL
            .iter()
            .map(|&op| (op.name(), self.stats(op)))
            .filter(|(_, s)| s.count > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_recorded_values() {
        let m = Metrics::new(Duration::from_millis(1));
        for us in 1..=1000u64 {
            m.record(Operation::PriceGet, Duration::from_micros(us), true);
        }
        m.record(Operation::PriceGet, Duration::from_millis(5), false);
        let s = m.stats(Operation::PriceGet);
        assert_eq!(s.count, 1001);
        assert_eq!(s.errors, 1);
        assert_eq!(s.slow, 1);
        assert!((s.p50_us - 500.0).abs() < 2.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 3.0, "{s:?}");
        assert!((s.max_us - 5000.0).abs() < 10.0, "{s:?}");
        assert!(s.p50_us <= s.p99_us && s.p99_us <= s.p999_us && s.p999_us <= s.max_us);
    }

    #[test]
    fn only_cache_operations_have_a_budget() {
        let m = Metrics::new(Duration::from_millis(1));
        m.record(Operation::StreamReadGroup, Duration::from_millis(100), true);
        m.record(Operation::StreamAdmin, Duration::from_millis(5), true);
        m.record(Operation::PoolGet, Duration::from_millis(5), true);
        assert_eq!(m.stats(Operation::StreamReadGroup).slow, 0);
        assert_eq!(m.stats(Operation::StreamAdmin).slow, 0);
        assert_eq!(m.stats(Operation::PoolGet).slow, 1);
    }

    #[test]
    fn snapshot_lists_only_used_operations() {
        let m = Metrics::new(Duration::from_millis(1));
        m.record(Operation::PoolSet, Duration::from_micros(80), true);
        let names: Vec<_> = m.snapshot().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["pool_set"]);
    }
}
