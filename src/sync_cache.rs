//! [`SyncCache`]: the blocking twin of [`crate::cache::Cache`], over any
//! [`BlockingTransport`] (by default the [`SyncPool`]). Same plans, so the same keys, JSON and
//! validation; only the transport differs.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cache::{
    announce_write, checked_ttl_ms, count_local_error, set_command, set_pipeline, Cached, Get, GetMany, ReadPlan,
    DEFAULT_TTL,
};
use crate::error::Result;
use crate::near_cache::{NearCache, Served};
use crate::transport::{BlockingTransport, Request, SyncPool};

/// Blocking typed reads and writes of one kind of item over a [`BlockingTransport`].
pub struct SyncCache<T, P = SyncPool> {
    pool: P,
    ttl_ms: u64,
    near: Option<NearCache>,
    _item: PhantomData<fn() -> T>,
}

impl<T, P: Clone> Clone for SyncCache<T, P> {
    fn clone(&self) -> Self {
        SyncCache {
            pool: self.pool.clone(),
            ttl_ms: self.ttl_ms,
            near: self.near.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: Cached + 'static, P: BlockingTransport> SyncCache<T, P> {
    /// A cache writing with the default 2 s TTL.
    pub fn new(pool: P) -> Self {
        SyncCache {
            pool,
            ttl_ms: DEFAULT_TTL.as_millis() as u64,
            near: None,
            _item: PhantomData,
        }
    }

    /// A cache writing with `ttl` (1 ms to 1 day).
    pub fn with_ttl(pool: P, ttl: Duration) -> Result<Self> {
        Ok(SyncCache {
            pool,
            ttl_ms: checked_ttl_ms(ttl)?,
            near: None,
            _item: PhantomData,
        })
    }

    /// The same cache, its reads served by `near` where it can (see [`crate::near_cache`]);
    /// writes still go through the pool.
    pub fn with_near(mut self, near: NearCache) -> Self {
        self.near = Some(near);
        self
    }

    /// The near cache serving its reads, if any.
    pub fn near(&self) -> Option<&NearCache> {
        self.near.as_ref()
    }

    /// The TTL every write sets, in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// Write one item with `SET key json PX ttl`.
    pub fn set(&self, item: &T) -> Result<()> {
        let layout = self.pool.key_layout();
        let cmd = self.counted(set_command(layout, item, self.ttl_ms))?;
        let result = self.pool.execute::<()>(T::OPERATIONS.set, Request::Cmd(&cmd));
        announce_write(layout, std::slice::from_ref(item));
        result?;
        self.write_barrier()
    }

    /// Write many items in one pipeline (one round trip). Every item is validated first.
    pub fn set_many(&self, items: &[T]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let layout = self.pool.key_layout();
        let pipe = self.counted(set_pipeline(layout, items, self.ttl_ms))?;
        let result = self
            .pool
            .execute::<()>(T::OPERATIONS.set_many, Request::Pipeline(&pipe));
        announce_write(layout, items);
        result?;
        self.write_barrier()
    }

    /// With a near cache, a write returns only once Redis has sent its invalidations to
    /// every tracking connection: one PING after the write (see [`crate::Cache`]).
    fn write_barrier(&self) -> Result<()> {
        if self.near.is_none() {
            return Ok(());
        }
        self.pool
            .execute::<()>(crate::metrics::Operation::Ping, Request::Cmd(&redis::cmd("PING")))
    }

    /// Read one item; `None` when missing, expired, or older than `max_age` by its own timestamp.
    pub fn get(&self, id: &str, max_age: Option<Duration>) -> Result<Option<T>> {
        let layout = self.pool.key_layout();
        let served = self
            .near
            .as_ref()
            .map(|near| (near, near.serve_id(layout, id, max_age)));
        if let Some((_, Served::Hit(result))) = served {
            return self.counted(result);
        }
        let plan = self.counted(Get::new(layout, id, max_age))?;
        if let Some((near, Served::Miss)) = served {
            if let Some(result) = near.fetch(&plan) {
                return self.counted(result);
            }
        }
        self.read(&plan)
    }

    /// Read many items with one MGET; the result is in the order of `ids`. An id asked for more
    /// than once is read once and its item repeated at every position it was asked at.
    pub fn get_many<S: AsRef<str>>(&self, ids: &[S], max_age: Option<Duration>) -> Result<Vec<Option<T>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.iter().map(|id| id.as_ref().to_owned()).collect();
        let plan = self.counted(GetMany::new(self.pool.key_layout(), ids, max_age))?;
        if let Some(near) = &self.near {
            if let Some(result) = near.serve_many(&plan).and_then(|local| near.fetch_many(&plan, local)) {
                return self.counted(result);
            }
        }
        self.read(&plan)
    }

    /// Send a planned read and decode its reply.
    pub fn read<R: ReadPlan>(&self, plan: &R) -> Result<R::Items> {
        let reply = self.pool.read(plan.operation(), &plan.command())?;
        self.counted(plan.decode(reply))
    }

    /// Latency histograms and error counts of its pool.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        self.pool.metrics()
    }

    /// How its pool names the keys.
    pub fn key_layout(&self) -> crate::keys::KeyLayout {
        self.pool.key_layout()
    }

    fn counted<R>(&self, result: Result<R>) -> Result<R> {
        count_local_error(self.pool.metrics(), result)
    }
}
