//! The blocking API (`solcache.sync`): the same caches over the core's `SyncPool`. Every call
//! releases the GIL while it waits on Redis, so other Python threads keep running, and hands
//! queued core log records to `logging` once it has the GIL back (a program that only makes
//! blocking calls sees them too).

use std::collections::HashMap;
use std::time::Duration;

use pyo3::marker::Ungil;
use pyo3::prelude::*;

use super::caches::OrderedItems;
use super::convert::{py_repr, str_arg, str_list_arg, UInt};
use super::errors::invalid_input;
use super::log_bridge;
use super::models::{PyPoolState, PyPriceData};
use super::pool::{counts_dict, millis, stats_dict, PyOperationStats};
use crate::keys::KeyLayout;
use crate::models::{PoolState, PriceData};
use crate::near_cache::{NearCache, Served};
use crate::sync_cache::SyncCache;
use crate::transport::{PoolConfig, SyncPool};

/// Run a blocking core call with the GIL released, then flush the core's queued log records.
fn blocking<T: Send>(py: Python<'_>, call: impl Ungil + FnOnce() -> crate::Result<T>) -> PyResult<T> {
    let result = py.detach(call);
    log_bridge::flush(py);
    Ok(result?)
}

/// A blocking pool; `solcache.sync.RedisPool` subclasses it to add `connect` and `with`.
#[pyclass(name = "SyncRedisPool", module = "solcache._core", subclass, frozen)]
pub struct PySyncRedisPool {
    pool: SyncPool,
    near: Option<NearCache>,
}

#[pymethods]
impl PySyncRedisPool {
    /// Connect (blocking, GIL released) and check the server is Redis ≥ 6.2. Every argument
    /// but the direct-read ones is required here: defaults live in `solcache.Settings`
    /// (`direct_spin_us`'s default is written out, as in `open_pool`).
    #[new]
    #[pyo3(signature = (url, *, max_size, connect_timeout_ms, response_timeout_ms, checkout_timeout_ms, slow_threshold_ms, near_cache = false, near_cache_max_bytes = 33_554_432, direct_reads = true, direct_spin_us = 100, key_layout = "spread"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: String,
        max_size: u32,
        connect_timeout_ms: u64,
        response_timeout_ms: u64,
        checkout_timeout_ms: u64,
        slow_threshold_ms: f64,
        near_cache: bool,
        near_cache_max_bytes: u64,
        direct_reads: bool,
        direct_spin_us: u64,
        key_layout: &str,
    ) -> PyResult<Self> {
        if direct_spin_us > 1000 {
            return Err(invalid_input(format!(
                "direct_spin_us must be at most 1000 (it holds the calling thread), got {direct_spin_us}"
            )));
        }
        if !(slow_threshold_ms.is_finite() && slow_threshold_ms > 0.0) {
            return Err(invalid_input(format!(
                "slow_threshold_ms must be a positive number, got {slow_threshold_ms}"
            )));
        }
        let config = PoolConfig {
            url,
            max_size,
            min_idle: 0,
            connect_timeout: millis(connect_timeout_ms, "connect_timeout_ms")?,
            response_timeout: millis(response_timeout_ms, "response_timeout_ms")?,
            checkout_timeout: millis(checkout_timeout_ms, "checkout_timeout_ms")?,
            slow_threshold: Duration::from_secs_f64(slow_threshold_ms / 1e3),
            direct_reads,
            read_spin: Duration::from_micros(direct_spin_us),
            key_layout: KeyLayout::parse(key_layout)?,
            ..PoolConfig::default()
        };
        let (pool, near) = blocking(py, || {
            let near = super::near::open(&config, near_cache, near_cache_max_bytes)?;
            Ok((SyncPool::connect(config)?, near))
        })?;
        Ok(PySyncRedisPool { pool, near })
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
    /// Whether cache reads take a direct socket polled from the calling thread.
    #[getter]
    fn direct_reads(&self) -> bool {
        self.pool.config().direct_reads
    }
    /// How long (µs) a read polls for its reply before the thread sleeps.
    #[getter]
    fn direct_spin_us(&self) -> u64 {
        self.pool.config().read_spin.as_micros() as u64
    }
    #[getter]
    fn redis_version(&self) -> String {
        self.pool.redis_version()
    }

    fn __repr__(&self) -> String {
        format!("SyncRedisPool(url={})", py_repr(self.pool.redacted_url()))
    }

    /// Close idle connections (and the near cache); later calls raise `ConnectionError`.
    fn close(&self) {
        self.pool.close();
        if let Some(near) = &self.near {
            near.close();
        }
    }

    /// Whether cache reads are served from a near cache (see docs/near-cache.md).
    #[getter]
    fn near_cache(&self) -> bool {
        self.near.is_some()
    }

    /// The near cache's counters (`None` without one); see `RedisPool.near_cache_stats`.
    fn near_cache_stats(&self) -> Option<HashMap<&'static str, u64>> {
        self.near.as_ref().map(|near| super::near::stats_dict(near.stats()))
    }

    /// Connections, idle, in use and waiting callers right now (no round trip).
    fn counts(&self) -> HashMap<&'static str, u64> {
        counts_dict(self.pool.counts())
    }

    /// Errors returned to callers so far, by kind (zeros included).
    fn error_counts(&self) -> HashMap<&'static str, u64> {
        self.pool.metrics().error_counts().into_iter().collect()
    }

    /// Latency stats per operation name (only operations called at least once).
    fn metrics(&self) -> HashMap<&'static str, PyOperationStats> {
        stats_dict(self.pool.metrics())
    }
}

macro_rules! sync_cache_class {
    ($py_name:literal, $class:ident, $model:ty, $py_model:ident, $arg:ident, $items:ident, $id:ident, $ids:ident) => {
        #[doc = concat!("Blocking reads and writes of ", $py_name, " items; see the core `SyncCache`.")]
        #[pyclass(name = $py_name, module = "solcache._core", frozen)]
        pub struct $class {
            cache: SyncCache<$model>,
        }

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (pool, *, ttl_ms = UInt(2000)), text_signature = "(pool, *, ttl_ms=2000)")]
            fn new(pool: PyRef<'_, PySyncRedisPool>, ttl_ms: UInt) -> PyResult<Self> {
                let cache = SyncCache::with_ttl(pool.pool.clone(), Duration::from_millis(ttl_ms.0))?;
                Ok($class {
                    cache: match &pool.near {
                        Some(near) => cache.with_near(near.clone()),
                        None => cache,
                    },
                })
            }

            /// TTL every write sets, in milliseconds.
            #[getter]
            fn ttl_ms(&self) -> u64 {
                self.cache.ttl_ms()
            }

            /// Write one item with `SET key json PX ttl`.
            fn set(&self, py: Python<'_>, $arg: PyRef<'_, $py_model>) -> PyResult<()> {
                let item = $arg.inner.clone();
                blocking(py, || self.cache.set(&item))
            }

            /// Write many items in one pipeline.
            fn set_many(&self, py: Python<'_>, $items: &Bound<'_, PyAny>) -> PyResult<()> {
                let items = $items
                    .try_iter()?
                    .map(|item| Ok(item?.extract::<PyRef<'_, $py_model>>()?.inner.clone()))
                    .collect::<PyResult<Vec<_>>>()?;
                blocking(py, || self.cache.set_many(&items))
            }

            /// Read one item, `None` when missing or older than `max_age_ms`.
            #[pyo3(signature = ($id, *, max_age_ms = None))]
            fn get(
                &self,
                py: Python<'_>,
                $id: &Bound<'_, PyAny>,
                max_age_ms: Option<UInt>,
            ) -> PyResult<Option<$py_model>> {
                let $id = str_arg($id, stringify!($id))?;
                let max_age = max_age_ms.map(|ms| Duration::from_millis(ms.0));
                if let Some(near) = self.cache.near() {
                    // A hit needs no Redis: answered with the GIL held.
                    if let Ok(plan) = crate::cache::Get::<$model>::new(self.cache.key_layout(), $id.clone(), max_age) {
                        if let Served::Hit(result) = near.serve(&plan) {
                            let item = crate::cache::count_local_error(self.cache.metrics(), result)?;
                            return Ok(item.map(|inner| $py_model { inner }));
                        }
                    }
                }
                let item = blocking(py, || self.cache.get(&$id, max_age))?;
                Ok(item.map(|inner| $py_model { inner }))
            }

            /// Read many items with one MGET: `{id: item or None}` in request order.
            #[pyo3(signature = ($ids, *, max_age_ms = None))]
            fn get_many(
                &self,
                py: Python<'_>,
                $ids: &Bound<'_, PyAny>,
                max_age_ms: Option<UInt>,
            ) -> PyResult<OrderedItems<$py_model>> {
                let ids = str_list_arg($ids, stringify!($ids))?;
                let max_age = max_age_ms.map(|ms| Duration::from_millis(ms.0));
                let items = blocking(py, || self.cache.get_many(&ids, max_age))?;
                Ok(OrderedItems(
                    ids.into_iter()
                        .zip(items.into_iter().map(|i| i.map(|inner| $py_model { inner })))
                        .collect(),
                ))
            }

            fn __repr__(&self) -> String {
                format!("sync.{}(ttl_ms={})", $py_name, self.cache.ttl_ms())
            }
        }
    };
}

sync_cache_class!(
    "SyncPriceCache",
    PySyncPriceCache,
    PriceData,
    PyPriceData,
    price,
    prices,
    token,
    tokens
);
sync_cache_class!(
    "SyncPoolStateCache",
    PySyncPoolStateCache,
    PoolState,
    PyPoolState,
    state,
    states,
    address,
    addresses
);
