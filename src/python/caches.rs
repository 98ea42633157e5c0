//! `PriceCache` and `PoolStateCache`: one macro, because PyO3 classes cannot be generic.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

use super::bridge::{spawn, spawn_into};
use super::convert::{py_repr, str_arg, str_list_arg, UInt};
use super::direct::{self, DirectOptions, OnReply, Redo};
use super::errors::IntoPyResult;
use super::models::{PyPoolState, PyPriceData};
use super::pool::PyRedisPool;
use crate::cache::{decode_many, decode_one, Cache, Cached, ManyKeys};
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

/// `get` through the runtime (the path when no direct connection is up).
async fn get_via_runtime<T: Cached, P>(
    cache: Cache<T>,
    id: String,
    max_age: Option<Duration>,
    wrap: fn(T) -> P,
) -> PyResult<Option<P>> {
    Ok(cache.get(&id, max_age).await.py()?.map(wrap))
}

/// `get_many` through the runtime.
async fn get_many_via_runtime<T: Cached, P>(
    cache: Cache<T>,
    ids: Vec<String>,
    max_age: Option<Duration>,
    wrap: fn(T) -> P,
) -> PyResult<OrderedItems<P>> {
    let items = cache.get_many(&ids, max_age).await.py()?;
    Ok(OrderedItems(
        ids.into_iter().zip(items.into_iter().map(|i| i.map(wrap))).collect(),
    ))
}

/// `get`: direct when this loop has a connection up (see `direct.rs`), else the runtime.
fn get<'py, T, P>(
    py: Python<'py>,
    cache: &Cache<T>,
    direct: DirectOptions,
    id: String,
    max_age: Option<Duration>,
    wrap: fn(T) -> P,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Cached + 'static,
    P: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // Invalid ids take the runtime path, which reports (and counts) the error.
    if let (true, Ok(key)) = (direct.enabled, T::key_for(&id)) {
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        let (again, again_id) = (cache.clone(), id.clone());
        let redo: Redo = Box::new(move |py, future, queue| {
            spawn_into(py, future, queue, get_via_runtime(again, again_id, max_age, wrap))
        });
        let reply_id = id.clone();
        let on_reply: OnReply = Box::new(move |py, reply, metrics| {
            let result = reply
                .into_optional_bytes()
                .and_then(|raw| decode_one::<T>(raw, &key, &reply_id, max_age));
            if let Err(e) = &result {
                metrics.record_error(e);
            }
            result.py()?.map(wrap).into_py_any(py)
        });
        if let Some(future) = direct::submit(py, cache.pool(), direct.spin, T::OPERATIONS.get, &cmd, on_reply, redo)? {
            return Ok(future);
        }
    }
    spawn(py, get_via_runtime(cache.clone(), id, max_age, wrap))
}

/// `get_many`: one MGET, direct when possible (see [`get`]).
fn get_many<'py, T, P>(
    py: Python<'py>,
    cache: &Cache<T>,
    direct: DirectOptions,
    ids: Vec<String>,
    max_age: Option<Duration>,
    wrap: fn(T) -> P,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Cached + 'static,
    P: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // One MGET of the distinct keys (a token asked for twice is sent once), as the core does.
    if let (true, false, Ok(keys)) = (direct.enabled, ids.is_empty(), ManyKeys::new::<T, String>(&ids)) {
        let cmd = keys.mget();
        let (again, again_ids) = (cache.clone(), ids.clone());
        let redo: Redo = Box::new(move |py, future, queue| {
            spawn_into(py, future, queue, get_many_via_runtime(again, again_ids, max_age, wrap))
        });
        let reply_ids = ids.clone();
        let on_reply: OnReply = Box::new(move |py, reply, metrics| {
            let result = reply
                .into_optional_bytes_list()
                .and_then(|raw| decode_many::<T, String>(raw, &keys, &reply_ids, max_age));
            if let Err(e) = &result {
                metrics.record_error(e);
            }
            let items = result.py()?;
            OrderedItems(
                reply_ids
                    .into_iter()
                    .zip(items.into_iter().map(|i| i.map(wrap)))
                    .collect(),
            )
            .into_py_any(py)
        });
        if let Some(future) = direct::submit(
            py,
            cache.pool(),
            direct.spin,
            T::OPERATIONS.get_many,
            &cmd,
            on_reply,
            redo,
        )? {
            return Ok(future);
        }
    }
    spawn(py, get_many_via_runtime(cache.clone(), ids, max_age, wrap))
}

macro_rules! cache_class {
    ($py_name:literal, $class:ident, $model:ty, $py_model:ident, $arg:ident, $items:ident, $id:ident, $ids:ident) => {
        #[doc = concat!("Typed reads and writes of ", $py_name, " items; see the core `Cache`.")]
        #[pyclass(name = $py_name, module = "solcache._core", frozen)]
        pub struct $class {
            cache: Cache<$model>,
            direct: DirectOptions,
        }

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (pool, *, ttl_ms = UInt(2000)), text_signature = "(pool, *, ttl_ms=2000)")]
            fn new(pool: PyRef<'_, PyRedisPool>, ttl_ms: UInt) -> PyResult<Self> {
                Ok($class {
                    cache: Cache::with_ttl(pool.pool.clone(), ttl(ttl_ms.0)).py()?,
                    direct: pool.direct,
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
            fn get<'py>(
                &self,
                py: Python<'py>,
                $id: &Bound<'py, PyAny>,
                max_age_ms: Option<UInt>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let $id = str_arg($id, stringify!($id))?;
                let max_age = max_age_ms.map(|ms| Duration::from_millis(ms.0));
                get(py, &self.cache, self.direct, $id, max_age, |inner| $py_model {
                    inner,
                })
            }

            /// Read many items with one MGET: `{id: item or None}` in request order (awaitable).
            #[pyo3(signature = ($ids, *, max_age_ms = None))]
            fn get_many<'py>(
                &self,
                py: Python<'py>,
                $ids: &Bound<'py, PyAny>,
                max_age_ms: Option<UInt>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let $ids = str_list_arg($ids, stringify!($ids))?;
                let max_age = max_age_ms.map(|ms| Duration::from_millis(ms.0));
                get_many(py, &self.cache, self.direct, $ids, max_age, |inner| $py_model {
                    inner,
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
