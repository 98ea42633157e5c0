//! `PriceCache` and `PoolStateCache`: one macro, because PyO3 classes cannot be generic.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::bridge::spawn;
use super::convert::py_repr;
use super::errors::IntoPyResult;
use super::models::{PyPoolState, PyPriceData};
use super::pool::PyRedisPool;
use crate::cache::Cache;
use crate::models::{PoolState, PriceData};

/// `get_many` result: ids in request order, each with its item or `None`.
pub struct OrderedItems<T>(pub Vec<(String, Option<T>)>);

impl<'py, T> IntoPyObject<'py> for OrderedItems<T>
where
    T: IntoPyObject<'py>,
{
    type Target = PyDict;
    type Output = Bound<'py, PyDict>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (id, item) in self.0 {
            dict.set_item(id, item)?;
        }
        Ok(dict)
    }
}

fn ttl(ttl_ms: u64) -> Duration {
    Duration::from_millis(ttl_ms)
}

macro_rules! cache_class {
    ($py_name:literal, $class:ident, $model:ty, $py_model:ident, $arg:ident, $items:ident, $id:ident, $ids:ident) => {
        #[doc = concat!("Typed reads and writes of ", $py_name, " items; see the core `Cache`.")]
        #[pyclass(name = $py_name, module = "solcache._core", frozen)]
        pub struct $class {
            cache: Cache<$model>,
        }

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (pool, *, ttl_ms = 2000))]
            fn new(pool: PyRef<'_, PyRedisPool>, ttl_ms: u64) -> PyResult<Self> {
                Ok($class {
                    cache: Cache::with_ttl(pool.pool.clone(), ttl(ttl_ms)).py()?,
                })
            }

            /// TTL every write sets, in milliseconds.
            #[getter]
            fn ttl_ms(&self) -> u64 {
                self.cache.ttl_ms()
            }

            /// Write one item with `SET key json PX ttl` (awaitable).
            fn set<'py>(&self, py: Python<'py>, $arg: PyRef<'py, $py_model>) -> PyResult<Bound<'py, PyAny>> {
                let cache = self.cache.clone();
                let item = $arg.inner.clone();
                spawn(py, async move { cache.set(&item).await.py() })
            }

            /// Write many items in one pipeline (awaitable).
            fn set_many<'py>(&self, py: Python<'py>, $items: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let items = $items
                    .try_iter()?
                    .map(|item| Ok(item?.extract::<PyRef<'_, $py_model>>()?.inner.clone()))
                    .collect::<PyResult<Vec<_>>>()?;
                let cache = self.cache.clone();
                spawn(py, async move { cache.set_many(&items).await.py() })
            }

            /// Read one item, `None` when missing or older than `max_age_ms` (awaitable).
            #[pyo3(signature = ($id, *, max_age_ms = None))]
            fn get<'py>(&self, py: Python<'py>, $id: String, max_age_ms: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
                let cache = self.cache.clone();
                spawn(py, async move {
                    let item = cache
                        .get(&$id, max_age_ms.map(Duration::from_millis))
                        .await
                        .py()?;
                    Ok(item.map(|inner| $py_model { inner }))
                })
            }

            /// Read many items with one MGET: `{id: item or None}` in request order (awaitable).
            #[pyo3(signature = ($ids, *, max_age_ms = None))]
            fn get_many<'py>(
                &self,
                py: Python<'py>,
                $ids: Vec<String>,
                max_age_ms: Option<u64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ids = $ids;
                let cache = self.cache.clone();
                spawn(py, async move {
                    let items = cache
                        .get_many(&ids, max_age_ms.map(Duration::from_millis))
                        .await
                        .py()?;
                    Ok(OrderedItems(
                        ids.into_iter()
                            .zip(items.into_iter().map(|i| i.map(|inner| $py_model { inner })))
                            .collect(),
                    ))
                })
            }

            fn __repr__(&self) -> String {
                format!(
                    "{}(url={}, ttl_ms={})",
                    $py_name,
                    py_repr(self.cache.pool().redacted_url()),
                    self.cache.ttl_ms()
                )
            }
        }
    };
}

cache_class!(
    "PriceCache",
    PyPriceCache,
    PriceData,
    PyPriceData,
    price,
    prices,
    token,
    tokens
);
cache_class!(
    "PoolStateCache",
    PyPoolStateCache,
    PoolState,
    PyPoolState,
    state,
    states,
    address,
    addresses
);
