//! Python face of the connection pool: open, close, health and metrics.

use std::collections::HashMap;
use std::time::Duration;

use pyo3::prelude::*;

use super::bridge::spawn;
use super::convert::py_opt;
use super::direct::DirectOptions;
use super::errors::invalid_input;
use crate::keys::KeyLayout;
use crate::metrics::{Metrics, OperationStats};
use crate::near_cache::{NearCache, DEFAULT_MAX_BYTES};
use crate::transport::direct::DEFAULT_SPIN;
use crate::transport::{redact_url, ClusterDirectCounts, Health, PoolConfig, PoolCounts, RedisPool, Topology};

/// An opened core pool, handed to `RedisPool.__new__` once connected.
#[pyclass(name = "PoolHandle", module = "solcache._core", frozen)]
pub struct PoolHandle {
    pool: RedisPool,
    direct: DirectOptions,
    near: Option<NearCache>,
}

pub(super) fn millis(value: u64, name: &str) -> PyResult<Duration> {
    if value == 0 {
        return Err(invalid_input(format!("{name} must be at least 1 ms")));
    }
    Ok(Duration::from_millis(value))
}

// `open_pool`'s `direct_spin_us` default is written out (a literal shows in the Python
// signature); it is the core's.
const _: () = assert!(DEFAULT_SPIN.as_micros() == 100);
// Likewise `near_cache_max_bytes`.
const _: () = assert!(DEFAULT_MAX_BYTES == 33_554_432);

/// Connect and return a `PoolHandle` (awaitable). Every argument but the direct-read ones is
/// required here: defaults live in `solcache.Settings` (whose `direct_spin_us` default is
/// `DEFAULT_DIRECT_SPIN_US`, the core's).
#[pyfunction]
#[pyo3(signature = (url, *, max_size, min_idle, connect_timeout_ms, response_timeout_ms, checkout_timeout_ms, health_check_interval_ms, slow_threshold_ms, direct_reads = true, direct_spin_us = 100, near_cache = false, near_cache_max_bytes = 33_554_432, key_layout = "spread"))]
#[allow(clippy::too_many_arguments)]
pub fn open_pool<'py>(
    py: Python<'py>,
    url: String,
    max_size: u32,
    min_idle: u32,
    connect_timeout_ms: u64,
    response_timeout_ms: u64,
    checkout_timeout_ms: u64,
    health_check_interval_ms: u64,
    slow_threshold_ms: f64,
    direct_reads: bool,
    direct_spin_us: u64,
    near_cache: bool,
    near_cache_max_bytes: u64,
    key_layout: &str,
) -> PyResult<Bound<'py, PyAny>> {
    if direct_spin_us > 1000 {
        return Err(invalid_input(format!(
            "direct_spin_us must be at most 1000 (it holds the event loop), got {direct_spin_us}"
        )));
    }
    let direct = DirectOptions {
        enabled: direct_reads,
        spin: Duration::from_micros(direct_spin_us),
    };
    if !(slow_threshold_ms.is_finite() && slow_threshold_ms > 0.0) {
        return Err(invalid_input(format!(
            "slow_threshold_ms must be a positive number, got {slow_threshold_ms}"
        )));
    }
    // On a cluster the core's direct path (a socket per primary) keeps the slot table the
    // loop's own connections are routed by (one per primary, `direct.rs`), and serves the
    // reads those do not: while they open, after a redirection, `get_many` over several slots.
    let cluster_direct = direct_reads && matches!(Topology::parse(&url), Ok(Topology::Cluster(_)));
    let config = PoolConfig {
        url,
        max_size,
        min_idle,
        connect_timeout: millis(connect_timeout_ms, "connect_timeout_ms")?,
        response_timeout: millis(response_timeout_ms, "response_timeout_ms")?,
        checkout_timeout: millis(checkout_timeout_ms, "checkout_timeout_ms")?,
        health_check_interval: millis(health_check_interval_ms, "health_check_interval_ms")?,
        slow_threshold: Duration::from_secs_f64(slow_threshold_ms / 1e3),
        test_on_checkout: false,
        // Awaited reads take the loop's own direct connection (`direct.rs`); the runtime path
        // (TLS, `direct_reads=False`, while that connection opens) keeps the pooled ones.
        direct_reads: cluster_direct,
        read_spin: if cluster_direct { direct.spin } else { Duration::ZERO },
        key_layout: KeyLayout::parse(key_layout)?,
    };
    spawn(py, async move {
        let near_config = config.clone();
        let pool = RedisPool::connect(config).await?;
        let near =
            tokio::task::spawn_blocking(move || super::near::open(&near_config, near_cache, near_cache_max_bytes))
                .await
                .map_err(|e| invalid_input(format!("opening the near cache failed: {e}")))?;
        let near = match near {
            Ok(near) => near,
            Err(err) => {
                pool.close().await;
                return Err(err.into());
            }
        };
        Ok(PoolHandle { pool, direct, near })
    })
}

/// `url` with any password replaced by `***`.
#[pyfunction(name = "redact_url")]
pub fn py_redact_url(url: &str) -> String {
    redact_url(url)
}

/// The pool; `solcache.RedisPool` subclasses it to add `connect` and `async with`.
#[pyclass(name = "RedisPool", module = "solcache._core", subclass, frozen)]
pub struct PyRedisPool {
    pub pool: RedisPool,
    /// Cache reads on an asyncio loop use a direct connection of that loop (`direct.rs`).
    pub direct: DirectOptions,
    /// Cache reads are served from this near cache where they can.
    pub near: Option<NearCache>,
}

#[pymethods]
impl PyRedisPool {
    #[new]
    fn new(handle: PyRef<'_, PoolHandle>) -> Self {
        PyRedisPool {
            pool: handle.pool.clone(),
            direct: handle.direct,
            near: handle.near.clone(),
        }
    }

    /// The server URL with any password replaced by `***`.
    #[getter]
    fn url(&self) -> &str {
        self.pool.redacted_url()
    }
    #[getter]
    fn max_size(&self) -> u32 {
        self.pool.config().max_size
    }
    /// How the caches over this pool name their keys: `"spread"` or `"tagged"`.
    #[getter]
    fn key_layout(&self) -> &'static str {
        self.pool.config().key_layout.name()
    }
    #[getter]
    fn closed(&self) -> bool {
        self.pool.is_closed()
    }
    #[getter]
    fn redis_version(&self) -> String {
        self.pool.redis_version()
    }

    /// Whether cache reads use this loop's direct connection when it is up.
    #[getter]
    fn direct_reads(&self) -> bool {
        self.direct.enabled
    }

    /// How long a direct read polls for its reply before yielding to the loop, in µs.
    #[getter]
    fn direct_spin_us(&self) -> u64 {
        self.direct.spin.as_micros() as u64
    }

    /// Whether cache reads are served from a near cache (see docs/near-cache.md).
    #[getter]
    fn near_cache(&self) -> bool {
        self.near.is_some()
    }

    /// The near cache's counters (`None` without one): hits, misses, invalidations,
    /// flushes, fills, reconnects, bytes, entries, connected (0/1) and the age of served
    /// entries in µs (`age_p50_us`, `age_p99_us`, `age_max_us`).
    fn near_cache_stats(&self) -> Option<HashMap<&'static str, u64>> {
        self.near.as_ref().map(|near| super::near::stats_dict(near.stats()))
    }

    /// A cluster's direct-read counters (`None` unless the pool is a Redis Cluster): reads
    /// answered on the direct path (`direct`), sent through the cluster client instead
    /// (`fallbacks`), slot table reads (`refreshes`), sockets open now (`sockets`), direct
    /// reads polled for (`polled`) and answered while polling (`poll_hits`).
    fn cluster_direct_stats(&self) -> Option<HashMap<&'static str, u64>> {
        (self.pool.topology() == "cluster").then(|| cluster_direct_dict(self.pool.cluster_direct_counts()))
    }

    /// Stop the health task and close idle connections, and this loop's direct connection
    /// (awaitable; other running loops close theirs on their next call, closed loops now).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        super::direct::close_on_running_loop(py, self.pool.id());
        super::bridge::release_closed_loops(py);
        if let Some(near) = &self.near {
            near.close();
        }
        let pool = self.pool.clone();
        spawn(py, async move {
            pool.close().await;
            Ok(())
        })
    }

    /// PING + INFO the server and report the pool's counters (awaitable; never raises).
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pool = self.pool.clone();
        spawn(py, async move { Ok(PoolHealth::from(pool.health().await)) })
    }

    /// `INFO <section>` as a dict of strings (awaitable), e.g. `memory`, `persistence`.
    fn info<'py>(&self, py: Python<'py>, section: String) -> PyResult<Bound<'py, PyAny>> {
        let pool = self.pool.clone();
        spawn(py, async move { Ok(pool.info(&section).await?) })
    }

    /// Connections, idle, in use and waiting callers right now (no round trip).
    fn counts(&self) -> HashMap<&'static str, u64> {
        counts_dict(self.pool.counts())
    }

    /// Errors returned to callers so far, by kind (`timeout`, `connection`, …; zeros included).
    fn error_counts(&self) -> HashMap<&'static str, u64> {
        self.pool.metrics().error_counts().into_iter().collect()
    }

    /// Latency stats per operation name (only operations called at least once).
    fn metrics(&self) -> HashMap<&'static str, PyOperationStats> {
        stats_dict(self.pool.metrics())
    }
}

/// `pool.counts()` as Python sees it (async and sync pools alike).
pub(super) fn counts_dict(c: PoolCounts) -> HashMap<&'static str, u64> {
    HashMap::from([
        ("connections", u64::from(c.connections)),
        ("idle", u64::from(c.idle)),
        ("in_use", u64::from(c.in_use)),
        ("waiting", c.waiting as u64),
    ])
}

/// `pool.cluster_direct_stats()` as Python sees it.
fn cluster_direct_dict(c: ClusterDirectCounts) -> HashMap<&'static str, u64> {
    HashMap::from([
        ("direct", c.direct),
        ("fallbacks", c.fallbacks),
        ("refreshes", c.refreshes),
        ("sockets", c.sockets),
        ("polled", c.polled),
        ("poll_hits", c.poll_hits),
    ])
}

/// `pool.metrics()` as Python sees it (async and sync pools alike).
pub(super) fn stats_dict(metrics: &Metrics) -> HashMap<&'static str, PyOperationStats> {
    metrics
        .snapshot()
        .into_iter()
        .map(|(name, s)| (name, PyOperationStats::from(s)))
        .collect()
}

/// Latency of one operation since the pool opened, in microseconds.
#[pyclass(name = "OperationStats", module = "solcache._core", frozen, get_all)]
pub struct PyOperationStats {
    count: u64,
    errors: u64,
    slow: u64,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

impl From<OperationStats> for PyOperationStats {
    fn from(s: OperationStats) -> Self {
        PyOperationStats {
            count: s.count,
            errors: s.errors,
            slow: s.slow,
            mean_us: s.mean_us,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
            max_us: s.max_us,
        }
    }
}

#[pymethods]
impl PyOperationStats {
    fn __repr__(&self) -> String {
        format!(
            "OperationStats(count={}, errors={}, slow={}, mean_us={:.1}, p50_us={:.1}, p99_us={:.1}, p999_us={:.1}, max_us={:.1})",
            self.count, self.errors, self.slow, self.mean_us, self.p50_us, self.p99_us, self.p999_us, self.max_us
        )
    }
}

/// A live probe of the server plus the pool's own counters.
#[pyclass(name = "PoolHealth", module = "solcache._core", frozen, get_all)]
pub struct PoolHealth {
    reachable: bool,
    rtt_ms: Option<f64>,
    redis_version: Option<String>,
    error: Option<String>,
    connections: u32,
    idle: u32,
    in_use: u32,
    waiting: usize,
    topology: &'static str,
    primary: Option<String>,
    failovers_followed: u64,
    switches_seen: u64,
    promotions_taken: u64,
    switch_watches_up: u64,
    switch_watch_errors: u64,
}

impl From<Health> for PoolHealth {
    fn from(h: Health) -> Self {
        PoolHealth {
            reachable: h.reachable,
            rtt_ms: h.rtt.map(|d| d.as_secs_f64() * 1e3),
            redis_version: h.redis_version,
            error: h.error,
            connections: h.counts.connections,
            idle: h.counts.idle,
            in_use: h.counts.in_use,
            waiting: h.counts.waiting,
            topology: h.topology,
            primary: h.primary,
            failovers_followed: h.failovers_followed,
            switches_seen: h.switches_seen,
            promotions_taken: h.promotions_taken,
            switch_watches_up: h.switch_watches_up,
            switch_watch_errors: h.switch_watch_errors,
        }
    }
}

#[pymethods]
impl PoolHealth {
    fn __repr__(&self) -> String {
        format!(
            "PoolHealth(reachable={}, rtt_ms={}, redis_version={}, error={}, connections={}, idle={}, in_use={}, waiting={}, topology={}, primary={}, failovers_followed={}, switches_seen={}, promotions_taken={}, switch_watches_up={}, switch_watch_errors={})",
            if self.reachable { "True" } else { "False" },
            py_opt(self.rtt_ms.map(|ms| format!("{ms:.3}")), false),
            py_opt(self.redis_version.as_deref(), true),
            py_opt(self.error.as_deref(), true), self.connections, self.idle, self.in_use, self.waiting,
            py_opt(Some(self.topology), true),
            py_opt(self.primary.as_deref(), true),
            self.failovers_followed,
            self.switches_seen,
            self.promotions_taken,
            self.switch_watches_up,
            self.switch_watch_errors
        )
    }
}
