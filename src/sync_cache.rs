//! [`SyncCache`]: the blocking twin of [`crate::cache::Cache`], over any
//! [`BlockingTransport`] (by default the [`SyncPool`]). Same plans, so the same keys, JSON and
//! validation; only the transport differs.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cache::{
    checked_ttl_ms, count_local_error, set_command, set_pipeline, Cached, Get, GetMany, ReadPlan, DEFAULT_TTL,
};
use crate::error::Result;
use crate::transport::{BlockingTransport, Request, SyncPool};

/// Blocking typed reads and writes of one kind of item over a [`BlockingTransport`].
pub struct SyncCache<T, P = SyncPool> {
    pool: P,
    ttl_ms: u64,
    _item: PhantomData<fn() -> T>,
}

impl<T, P: Clone> Clone for SyncCache<T, P> {
    fn clone(&self) -> Self {
        SyncCache {
            pool: self.pool.clone(),
            ttl_ms: self.ttl_ms,
            _item: PhantomData,
        }
    }
}

impl<T: Cached, P: BlockingTransport> SyncCache<T, P> {
    /// A cache writing with the default 2 s TTL.
    pub fn new(pool: P) -> Self {
        SyncCache {
            pool,
            ttl_ms: DEFAULT_TTL.as_millis() as u64,
            _item: PhantomData,
        }
    }

    /// A cache writing with `ttl` (1 ms to 1 day).
    pub fn with_ttl(pool: P, ttl: Duration) -> Result<Self> {
        Ok(SyncCache {
            pool,
            ttl_ms: checked_ttl_ms(ttl)?,
            _item: PhantomData,
        })
    }

    /// The TTL every write sets, in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// Write one item with `SET key json PX ttl`.
    pub fn set(&self, item: &T) -> Result<()> {
        let cmd = self.counted(set_command(item, self.ttl_ms))?;
        self.pool.execute::<()>(T::OPERATIONS.set, Request::Cmd(&cmd))
    }

    /// Write many items in one pipeline (one round trip). Every item is validated first.
    pub fn set_many(&self, items: &[T]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let pipe = self.counted(set_pipeline(items, self.ttl_ms))?;
        self.pool
            .execute::<()>(T::OPERATIONS.set_many, Request::Pipeline(&pipe))
    }

    /// Read one item; `None` when missing, expired, or older than `max_age` by its own timestamp.
    pub fn get(&self, id: &str, max_age: Option<Duration>) -> Result<Option<T>> {
        self.read(&self.counted(Get::new(id, max_age))?)
    }

    /// Read many items with one MGET; the result is in the order of `ids`. An id asked for more
    /// than once is read once and its item repeated at every position it was asked at.
    pub fn get_many<S: AsRef<str>>(&self, ids: &[S], max_age: Option<Duration>) -> Result<Vec<Option<T>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.iter().map(|id| id.as_ref().to_owned()).collect();
        self.read(&self.counted(GetMany::new(ids, max_age))?)
    }

    /// Send a planned read and decode its reply.
    pub fn read<R: ReadPlan>(&self, plan: &R) -> Result<R::Items> {
        let reply = self.pool.read(plan.operation(), &plan.command())?;
        self.counted(plan.decode(reply))
    }

    fn counted<R>(&self, result: Result<R>) -> Result<R> {
        count_local_error(self.pool.metrics(), result)
    }
}
