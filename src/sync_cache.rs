//! [`SyncCache`]: the blocking twin of [`crate::cache::Cache`], over a [`SyncPool`]. Same keys,
//! same JSON, same validation; only the transport differs.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cache::{
    checked_ttl_ms, count_local_error, decode_many, decode_one, set_command, set_pipeline, Cached, ManyKeys,
    DEFAULT_TTL,
};
use crate::error::Result;
use crate::redis_pool::Request;
use crate::sync_pool::SyncPool;

/// Blocking typed reads and writes of one kind of item, sharing a [`SyncPool`].
pub struct SyncCache<T> {
    pool: SyncPool,
    ttl_ms: u64,
    _item: PhantomData<fn() -> T>,
}

impl<T> Clone for SyncCache<T> {
    fn clone(&self) -> Self {
        SyncCache {
            pool: self.pool.clone(),
            ttl_ms: self.ttl_ms,
            _item: PhantomData,
        }
    }
}

impl<T: Cached> SyncCache<T> {
    /// A cache writing with the default 2 s TTL.
    pub fn new(pool: SyncPool) -> Self {
        SyncCache {
            pool,
            ttl_ms: DEFAULT_TTL.as_millis() as u64,
            _item: PhantomData,
        }
    }

    /// A cache writing with `ttl` (1 ms to 1 day).
    pub fn with_ttl(pool: SyncPool, ttl: Duration) -> Result<Self> {
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
        let key = self.counted(T::key_for(id))?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        let raw: Option<Vec<u8>> = self.pool.execute(T::OPERATIONS.get, Request::Cmd(&cmd))?;
        self.counted(decode_one(raw, &key, id, max_age))
    }

    /// Read many items with one MGET; the result is in the order of `ids`. An id asked for more
    /// than once is read once and its item repeated at every position it was asked at.
    pub fn get_many<S: AsRef<str>>(&self, ids: &[S], max_age: Option<Duration>) -> Result<Vec<Option<T>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.counted(ManyKeys::new::<T, S>(ids))?;
        let raw: Vec<Option<Vec<u8>>> = self.pool.execute(T::OPERATIONS.get_many, Request::Cmd(&keys.mget()))?;
        self.counted(decode_many(raw, &keys, ids, max_age))
    }

    fn counted<R>(&self, result: Result<R>) -> Result<R> {
        count_local_error(self.pool.metrics(), result)
    }
}
