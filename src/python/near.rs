//! The near cache in the binding: opening it with a pool, its stats as a dict, and the
//! awaitable a hit returns (already resolved: awaiting it costs no loop iteration).

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

use crate::near_cache::{NearCache, NearCacheConfig, NearStatsSnapshot};
use crate::transport::PoolConfig;

/// Open a near cache for the pool configured by `config` when `enabled` (blocking).
pub fn open(config: &PoolConfig, enabled: bool, max_bytes: u64) -> crate::Result<Option<NearCache>> {
    if !enabled {
        return Ok(None);
    }
    let near = NearCacheConfig {
        max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        ..NearCacheConfig::for_pool(config)
    };
    NearCache::connect(&config.url, near).map(Some)
}

/// The near cache's counters as `{name: value}` (`connected` and `io_uring` as 0/1).
pub fn stats_dict(stats: NearStatsSnapshot) -> HashMap<&'static str, u64> {
    HashMap::from([
        ("hits", stats.hits),
        ("misses", stats.misses),
        ("invalidations", stats.invalidations),
        ("flushes", stats.flushes),
        ("fills", stats.fills),
        ("reconnects", stats.reconnects),
        ("bytes", stats.bytes),
        ("entries", stats.entries),
        ("connected", u64::from(stats.connected)),
        ("io_uring", u64::from(stats.io_uring)),
        ("age_p50_us", stats.age_p50_us),
        ("age_p99_us", stats.age_p99_us),
        ("age_max_us", stats.age_max_us),
    ])
}

/// An awaitable whose result is already known (a near-cache hit): `await` returns it at once.
#[pyclass(name = "_Ready", module = "solcache._core", frozen)]
pub struct Ready {
    result: Mutex<Option<PyResult<Py<PyAny>>>>,
}

impl Ready {
    pub fn awaitable(py: Python<'_>, result: PyResult<Py<PyAny>>) -> PyResult<Bound<'_, PyAny>> {
        Ok(Bound::new(
            py,
            Ready {
                result: Mutex::new(Some(result)),
            },
        )?
        .into_any())
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> PyResult<()> {
        let taken = self.result.lock().ok().and_then(|mut r| r.take());
        match taken {
            Some(Ok(value)) => Err(PyStopIteration::new_err((value,))),
            Some(Err(err)) => Err(err),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Like a finished coroutine: `send(None)` is `__next__`.
    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__()
    }
}
