//! `PriceCache` and `PoolStateCache`: one macro, because PyO3 classes cannot be generic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

use super::bridge::{spawn, spawn_into, LoopQueue};
use super::convert::{py_repr, str_arg, str_list_arg, UInt};
use super::direct::{self, DirectCall, DirectOptions, Redo, Replied};
use super::models::{PyPoolState, PyPriceData};
use super::near::Ready;
use super::pool::PyRedisPool;
use crate::cache::{Cache, Cached, Get, GetMany, ReadPlan};
use crate::metrics::Metrics;
use crate::models::{PoolState, PriceData};
use crate::near_cache::Served;
use crate::transport::resp::Reply;

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

/// A planned cache read as the binding sends it (directly over this loop's connection, or
/// through the runtime), with `present` turning the core's items into the Python result.
struct Read<T, R, F> {
    cache: Cache<T>,
    plan: R,
    present: F,
}

impl<T, R, F, O> Read<T, R, F>
where
    T: Cached + 'static,
    R: ReadPlan + 'static,
    F: Fn(&R, R::Items) -> O + Send + 'static,
    O: for<'a> IntoPyObject<'a> + Send + 'static,
{
    /// The whole read through the runtime (the pool's retry and fail-fast included).
    async fn run(self) -> PyResult<O> {
        let items = self.cache.read(&self.plan).await?;
        Ok((self.present)(&self.plan, items))
    }
}

impl<T, R, F, O> DirectCall for Read<T, R, F>
where
    T: Cached + 'static,
    R: ReadPlan + 'static,
    F: Fn(&R, R::Items) -> O + Send + 'static,
    O: for<'a> IntoPyObject<'a> + Send + 'static,
{
    fn on_reply(self: Box<Self>, py: Python<'_>, reply: Reply, metrics: &Metrics) -> Replied {
        let result = self
            .plan
            .decode(reply)
            .inspect_err(|e| metrics.record_error(e))
            .map_err(PyErr::from)
            .and_then(|items| (self.present)(&self.plan, items).into_py_any(py));
        Replied::Done(result)
    }

    /// Reads are idempotent: whatever became of the direct attempt, they are sent again.
    fn redo(
        self: Box<Self>,
        py: Python<'_>,
        future: &Bound<'_, PyAny>,
        queue: Arc<LoopQueue>,
        _why: Redo,
    ) -> PyResult<()> {
        spawn_into(py, future, queue, self.run())
    }
}

/// Send a read: direct when this loop has a connection up (see `direct.rs`), else through
/// the runtime. A plan refused before any I/O (bad input) fails like any call: counted, and
/// raised when awaited.
fn send<'py, T, R, F, O>(
    py: Python<'py>,
    cache: &Cache<T>,
    direct: DirectOptions,
    plan: crate::Result<R>,
    present: F,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Cached + 'static,
    R: ReadPlan + 'static,
    F: Fn(&R, R::Items) -> O + Send + 'static,
    O: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let plan = match plan {
        Ok(plan) => plan,
        Err(err) => {
            cache.pool().metrics().record_error(&err);
            return spawn(py, async move { Err::<(), _>(PyErr::from(err)) });
        }
    };
    let (op, cmd) = (plan.operation(), plan.command());
    let read = Read {
        cache: cache.clone(),
        plan,
        present,
    };
    if !direct.enabled {
        return spawn(py, read.run());
    }
    match direct::submit(py, cache.pool(), direct.spin, op, &cmd, read)? {
        Ok(future) => Ok(future),
        Err(read) => spawn(py, read.run()),
    }
}

/// `get`: one GET.
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
    let plan = Get::new(cache.pool().config().key_layout, id, max_age);
    if let (Some(near), Ok(planned)) = (cache.near(), &plan) {
        let metrics = cache.pool().metrics();
        let ready = |result: crate::Result<Option<T>>| {
            let result = crate::cache::count_local_error(metrics, result);
            Ready::awaitable(
                py,
                result
                    .map_err(PyErr::from)
                    .and_then(|item| item.map(wrap).into_py_any(py)),
            )
        };
        match near.serve(planned) {
            Served::Hit(result) => return ready(result),
            Served::Down => {}
            Served::Miss => {
                if let Some(ticket) = near.start_fetch(planned) {
                    // Like a direct read: the reply usually comes within the poll budget, and
                    // then the caller has it with no thread hop.
                    let until = Instant::now() + direct.spin;
                    match py.detach(|| near.finish_fetch(planned, ticket, Some(until))) {
                        Ok(Some(result)) => return ready(result),
                        Ok(None) => {} // the tracking connection broke: the pool reads it
                        Err(ticket) => {
                            let (cache, near, plan) = (cache.clone(), near.clone(), plan?);
                            return spawn(py, async move {
                                let (plan, fetched) = crate::cache::blocking(move || {
                                    let fetched = near.finish_fetch(&plan, ticket, None);
                                    (plan, fetched)
                                })
                                .await
                                .ok_or_else(|| crate::Error::unexpected_reply("near cache fill task failed"))?;
                                let item = match fetched {
                                    Ok(Some(result)) => {
                                        crate::cache::count_local_error(cache.pool().metrics(), result)?
                                    }
                                    _ => cache.read(&plan).await?,
                                };
                                Ok(item.map(wrap))
                            });
                        }
                    }
                }
            }
        }
    }
    let present = move |_: &Get<T>, item: Option<T>| item.map(wrap);
    send(py, cache, direct, plan, present)
}

/// `get_many`: one MGET, `{id: item or None}` in request order (nothing at all for no ids).
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
    if ids.is_empty() {
        return spawn(py, async move { Ok(OrderedItems::<P>(Vec::new())) });
    }
    let present = move |plan: &GetMany<T>, items: Vec<Option<T>>| {
        let ids = plan.ids().iter().cloned();
        OrderedItems(ids.zip(items.into_iter().map(|i| i.map(wrap))).collect())
    };
    let plan = GetMany::new(cache.pool().config().key_layout, ids, max_age);
    if let (Some(near), Ok(planned)) = (cache.near(), &plan) {
        if let Some(local) = near.serve_many(planned) {
            if local.missing() == 0 {
                let items = near.fetch_many(planned, local).expect("no fill needed");
                let items = crate::cache::count_local_error(cache.pool().metrics(), items);
                let result = items
                    .map_err(PyErr::from)
                    .and_then(|items| present(planned, items).into_py_any(py));
                return Ready::awaitable(py, result);
            }
            let (cache, ids) = (cache.clone(), planned.ids().to_vec());
            return spawn(py, async move {
                let items = cache.get_many(&ids, max_age).await?;
                Ok(OrderedItems(
                    ids.into_iter().zip(items.into_iter().map(|i| i.map(wrap))).collect(),
                ))
            });
        }
    }
    send(py, cache, direct, plan, present)
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
                let cache = Cache::with_ttl(pool.pool.clone(), ttl(ttl_ms.0))?;
                Ok($class {
                    cache: match &pool.near {
                        Some(near) => cache.with_near(near.clone()),
                        None => cache,
                    },
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
                spawn(py, async move { Ok(cache.set(&item).await?) })
            }

            /// Write many items in one pipeline (awaitable).
            fn set_many<'py>(&self, py: Python<'py>, $items: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let items = $items
                    .try_iter()?
                    .map(|item| Ok(item?.extract::<PyRef<'_, $py_model>>()?.inner.clone()))
                    .collect::<PyResult<Vec<_>>>()?;
                let cache = self.cache.clone();
                spawn(py, async move { Ok(cache.set_many(&items).await?) })
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
