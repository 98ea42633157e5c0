//! A typed JSON cache over Redis strings: one key per item, value and TTL written by one
//! `SET key json PX ttl`, reads by `GET` / one `MGET`. [`crate::PriceCache`] and
//! [`crate::PoolStateCache`] are this cache over their model.
//!
//! Every read is planned here once, before any I/O ([`Get`], [`GetMany`]: validated keys, the
//! command, and the decoding of its reply), and sent by whichever transport the caller uses:
//! [`Cache`] over any async [`Transport`], [`crate::SyncCache`] over any
//! [`crate::BlockingTransport`], and the Python binding's direct reads over an event loop's
//! own connection.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::keys::KeyLayout;
use crate::metrics::{Metrics, Operation};
use crate::near_cache::{NearCache, Served};
use crate::transport::resp::Reply;
use crate::transport::{RedisPool, Request, Transport};

/// Default time to live of every cached item (2 s).
pub const DEFAULT_TTL: Duration = Duration::from_millis(2000);

/// The operations one cache records its latencies under.
pub struct CacheOperations {
    pub get: Operation,
    pub get_many: Operation,
    pub set: Operation,
    pub set_many: Operation,
}

/// A model that can live in a [`Cache`].
pub trait Cached: Sized + Send + Sync + Clone {
    /// What one item is, for messages ("price", "pool state").
    const WHAT: &'static str;
    /// Metric names of this cache's operations.
    const OPERATIONS: CacheOperations;
    /// What every key of this kind starts with in `layout` (`price:`); a valid id's key is
    /// this and the id.
    fn key_prefix(layout: KeyLayout) -> &'static str;
    /// Validate `id` and return its Redis key in `layout`.
    fn key_for(layout: KeyLayout, id: &str) -> Result<String>;
    /// The id this item is stored under (token, pool address).
    fn id(&self) -> &str;
    /// When the item was observed.
    fn timestamp(&self) -> DateTime<Utc>;
    /// Canonical JSON.
    fn encode(&self) -> String;
    /// Decode and validate the JSON found at `key`.
    fn decode(bytes: &[u8], key: &str) -> Result<Self>;
}

/// Typed reads and writes of one kind of item over an async [`Transport`] (by default the
/// [`RedisPool`]).
pub struct Cache<T, P = RedisPool> {
    pool: P,
    ttl_ms: u64,
    near: Option<NearCache>,
    _item: PhantomData<fn() -> T>,
}

impl<T, P: Clone> Clone for Cache<T, P> {
    fn clone(&self) -> Self {
        Cache {
            pool: self.pool.clone(),
            ttl_ms: self.ttl_ms,
            near: self.near.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: Cached + 'static, P: Transport> Cache<T, P> {
    /// A cache writing with the default 2 s TTL.
    pub fn new(pool: P) -> Self {
        Cache {
            pool,
            ttl_ms: DEFAULT_TTL.as_millis() as u64,
            near: None,
            _item: PhantomData,
        }
    }

    /// A cache writing with `ttl` (1 ms to 1 day).
    pub fn with_ttl(pool: P, ttl: Duration) -> Result<Self> {
        Ok(Cache {
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

    /// The transport this cache sends through.
    pub fn pool(&self) -> &P {
        &self.pool
    }

    /// Write one item; value and TTL in one command, so a rewrite refreshes the TTL.
    pub async fn set(&self, item: &T) -> Result<()> {
        let layout = self.pool.key_layout();
        let cmd = self.counted(set_command(layout, item, self.ttl_ms))?;
        let result = self.pool.execute::<()>(T::OPERATIONS.set, Request::Cmd(&cmd)).await;
        announce_write(layout, std::slice::from_ref(item));
        result?;
        self.write_barrier().await
    }

    /// Write many items in one pipeline (one round trip). Every item is validated first.
    pub async fn set_many(&self, items: &[T]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let layout = self.pool.key_layout();
        let pipe = self.counted(set_pipeline(layout, items, self.ttl_ms))?;
        let result = self
            .pool
            .execute::<()>(T::OPERATIONS.set_many, Request::Pipeline(&pipe))
            .await;
        announce_write(layout, items);
        result?;
        self.write_barrier().await
    }

    /// With a near cache, a write returns only once Redis has sent its invalidations to
    /// every tracking connection (see [`crate::near_cache`]): one PING after the write's
    /// reply, handled by the server after the loop iteration that sent them.
    async fn write_barrier(&self) -> Result<()> {
        if self.near.is_none() {
            return Ok(());
        }
        self.pool
            .execute::<()>(Operation::Ping, Request::Cmd(&redis::cmd("PING")))
            .await
    }

    /// Count errors that did not come from Redis (validation, decoding) by kind; errors from
    /// the pool are counted there.
    fn counted<R>(&self, result: Result<R>) -> Result<R> {
        count_local_error(self.pool.metrics(), result)
    }

    /// Read one item; `None` when missing, expired, or older than `max_age` by its own timestamp.
    pub async fn get(&self, id: &str, max_age: Option<Duration>) -> Result<Option<T>> {
        let layout = self.pool.key_layout();
        let Some(near) = &self.near else {
            return self.read(&self.counted(Get::new(layout, id, max_age))?).await;
        };
        let served = near.serve_id(layout, id, max_age);
        let plan = match served {
            Served::Hit(result) => return self.counted(result),
            _ => self.counted(Get::new(layout, id, max_age))?,
        };
        if let Served::Down = served {
            return self.read(&plan).await;
        }
        let fill = near.clone();
        let fetched = blocking(move || {
            let fetched = fill.fetch(&plan);
            (plan, fetched)
        })
        .await;
        match fetched {
            Some((_, Some(result))) => self.counted(result),
            Some((plan, None)) => self.read(&plan).await,
            None => self.read(&self.counted(Get::new(layout, id, max_age))?).await,
        }
    }

    /// Read many items with one MGET; the result is in the order of `ids`. An id asked for more
    /// than once is read once and its item repeated at every position it was asked at.
    pub async fn get_many<S: AsRef<str>>(&self, ids: &[S], max_age: Option<Duration>) -> Result<Vec<Option<T>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|id| id.as_ref().to_owned()).collect();
        let layout = self.pool.key_layout();
        let plan = self.counted(GetMany::new(layout, ids.clone(), max_age))?;
        let Some(local) = self.near.as_ref().and_then(|near| near.serve_many(&plan)) else {
            return self.read(&plan).await;
        };
        let near = self.near.clone().expect("served by the near cache");
        if local.missing() == 0 {
            return self.counted(near.fetch_many(&plan, local).expect("no fill needed"));
        }
        let fetched = blocking(move || {
            let fetched = near.fetch_many(&plan, local);
            (plan, fetched)
        })
        .await;
        match fetched {
            Some((_, Some(result))) => self.counted(result),
            Some((plan, None)) => self.read(&plan).await,
            None => self.read(&self.counted(GetMany::new(layout, ids, max_age))?).await,
        }
    }

    /// Send a planned read and decode its reply.
    pub async fn read<R: ReadPlan>(&self, plan: &R) -> Result<R::Items> {
        let reply = self.pool.read(plan.operation(), &plan.command()).await?;
        self.counted(plan.decode(reply))
    }
}

/// Run a near-cache fill (one round trip, blocking) without stalling other tasks: in place on a
/// multi-thread runtime (tokio hands this worker's other tasks to the rest: no thread hop),
/// else on the blocking pool. `None` when that task panicked.
pub(crate) async fn blocking<R: Send + 'static>(fill: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        return Some(tokio::task::block_in_place(fill));
    }
    tokio::task::spawn_blocking(fill).await.ok()
}

/// A read planned before any I/O: the validated keys, the command to send, and how its reply
/// decodes, whatever transport carries it.
pub trait ReadPlan: Send + Sync {
    /// What the read returns.
    type Items;
    /// The operation its latency is recorded under.
    fn operation(&self) -> Operation;
    /// The command to send.
    fn command(&self) -> redis::Cmd;
    /// The result from the reply.
    fn decode(&self, reply: Reply) -> Result<Self::Items>;
}

/// A read of one item, planned before any I/O: the validated key, the `GET` to send, and
/// [`Get::decode`] for its reply, whatever transport carried it.
pub struct Get<T> {
    id: String,
    key: String,
    max_age: Option<Duration>,
    _item: PhantomData<fn() -> T>,
}

impl<T: Cached> Get<T> {
    /// Plan reading `id` under its key in `layout`; `InvalidInput` for an id that has no
    /// valid key.
    pub fn new(layout: KeyLayout, id: impl Into<String>, max_age: Option<Duration>) -> Result<Self> {
        let id = id.into();
        Ok(Get {
            key: T::key_for(layout, &id)?,
            id,
            max_age,
            _item: PhantomData,
        })
    }
}

impl<T: Cached> Get<T> {
    /// The id asked for.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The caller's `max_age`.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }
}

impl<T: Cached> ReadPlan for Get<T> {
    /// The item: `None` when missing or older than `max_age`.
    type Items = Option<T>;

    fn operation(&self) -> Operation {
        T::OPERATIONS.get
    }

    fn command(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.key);
        cmd
    }

    fn decode(&self, reply: Reply) -> Result<Option<T>> {
        decode_one(reply.into_optional_bytes()?, &self.key, &self.id, self.max_age)
    }
}

/// A read of many items with one `MGET`, planned before any I/O; see [`Get`]. An id asked
/// for more than once is read once and its item repeated at every position it was asked at.
pub struct GetMany<T> {
    ids: Vec<String>,
    keys: ManyKeys,
    max_age: Option<Duration>,
    _item: PhantomData<fn() -> T>,
}

impl<T: Cached> GetMany<T> {
    /// Plan reading `ids` (at least one) under their keys in `layout`; `InvalidInput` when
    /// any has no valid key.
    pub fn new(layout: KeyLayout, ids: Vec<String>, max_age: Option<Duration>) -> Result<Self> {
        if ids.is_empty() {
            return Err(Error::invalid("get_many needs at least one id"));
        }
        Ok(GetMany {
            keys: ManyKeys::new::<T, String>(layout, &ids)?,
            ids,
            max_age,
            _item: PhantomData,
        })
    }

    /// The ids, in request order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Each distinct key once, in the order first asked.
    pub fn distinct_keys(&self) -> &[String] {
        &self.keys.keys
    }

    /// The id the distinct key at `slot` was first asked for.
    pub fn id_of_slot(&self, slot: usize) -> &str {
        &self.ids[self.keys.first[slot]]
    }

    /// The caller's `max_age`.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// One result per distinct key, spread to one per requested id, in request order.
    pub fn spread(&self, distinct: Vec<Option<T>>) -> Vec<Option<T>> {
        if self.keys.slots.len() == distinct.len() {
            return distinct;
        }
        self.keys.slots.iter().map(|&slot| distinct[slot].clone()).collect()
    }
}

impl<T: Cached> ReadPlan for GetMany<T> {
    /// One item or `None` per id, in the order of [`GetMany::ids`].
    type Items = Vec<Option<T>>;

    fn operation(&self) -> Operation {
        T::OPERATIONS.get_many
    }

    fn command(&self) -> redis::Cmd {
        self.keys.mget()
    }

    fn decode(&self, reply: Reply) -> Result<Vec<Option<T>>> {
        decode_many(reply.into_optional_bytes_list()?, &self.keys, &self.ids, self.max_age)
    }
}

// The transport-free halves of the writes, shared with the blocking `SyncCache`.

/// A cache TTL in milliseconds, if it is between 1 ms and 1 day.
pub(crate) fn checked_ttl_ms(ttl: Duration) -> Result<u64> {
    if ttl < Duration::from_millis(1) || ttl > Duration::from_secs(86_400) {
        return Err(Error::invalid(format!(
            "ttl must be between 1 ms and 1 day, got {ttl:?}"
        )));
    }
    Ok(ttl.as_millis() as u64)
}

/// Count an error that did not come from Redis (validation, decoding) by kind; errors from
/// the pool are counted there.
pub(crate) fn count_local_error<R>(metrics: &Metrics, result: Result<R>) -> Result<R> {
    if let Err(e @ (Error::InvalidInput(_) | Error::Serialization { .. })) = &result {
        metrics.record_error(e);
    }
    result
}

/// Tell this process' near caches that `items` were written (acknowledged or not: a write
/// that failed with a timeout may have been applied), so none serves their old values.
pub(crate) fn announce_write<T: Cached>(layout: KeyLayout, items: &[T]) {
    if crate::near_cache::any_live() {
        let keys: Vec<String> = items.iter().filter_map(|i| T::key_for(layout, i.id()).ok()).collect();
        crate::near_cache::written(&keys);
    }
}

/// `SET key json PX ttl_ms` for one item (validated).
pub(crate) fn set_command<T: Cached>(layout: KeyLayout, item: &T, ttl_ms: u64) -> Result<redis::Cmd> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(T::key_for(layout, item.id())?)
        .arg(item.encode())
        .arg("PX")
        .arg(ttl_ms);
    Ok(cmd)
}

/// One `SET … PX` per item in one pipeline; every item is validated before any is sent.
pub(crate) fn set_pipeline<T: Cached>(layout: KeyLayout, items: &[T], ttl_ms: u64) -> Result<redis::Pipeline> {
    let mut pipe = redis::pipe();
    for item in items {
        pipe.cmd("SET")
            .arg(T::key_for(layout, item.id())?)
            .arg(item.encode())
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
    }
    Ok(pipe)
}

/// The keys of one `get_many`: each distinct key once, in the order first asked, and for every
/// requested id the index of its key, so a duplicated id costs one MGET slot, not two.
struct ManyKeys {
    /// Distinct validated keys, first-asked order: the MGET's arguments.
    keys: Vec<String>,
    /// For each key, the position in the request of the id it was first asked for.
    first: Vec<usize>,
    /// For every requested id, in request order, the index of its key in `keys`.
    slots: Vec<usize>,
}

/// Up to this many ids a linear scan finds duplicates faster than hashing them.
const LINEAR_DEDUPE_MAX: usize = 16;

impl ManyKeys {
    /// Validate every id (all before any is sent) and fold duplicates.
    fn new<T: Cached, S: AsRef<str>>(layout: KeyLayout, ids: &[S]) -> Result<Self> {
        let large = ids.len() > LINEAR_DEDUPE_MAX;
        let mut keys: Vec<String> = Vec::with_capacity(ids.len());
        let mut first = Vec::with_capacity(ids.len());
        let mut slots = Vec::with_capacity(ids.len());
        let mut index: HashMap<String, usize> = HashMap::new();
        for (position, id) in ids.iter().enumerate() {
            let key = T::key_for(layout, id.as_ref())?;
            let seen = if large {
                index.get(&key).copied()
            } else {
                keys.iter().position(|k| *k == key)
            };
            slots.push(match seen {
                Some(slot) => slot,
                None => {
                    if large {
                        index.insert(key.clone(), keys.len());
                    }
                    keys.push(key);
                    first.push(position);
                    keys.len() - 1
                }
            });
        }
        Ok(ManyKeys { keys, first, slots })
    }

    /// `MGET` of the distinct keys.
    fn mget(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&self.keys);
        cmd
    }
}

/// Decode a GET reply: `None` when missing or older than `max_age`.
fn decode_one<T: Cached>(raw: Option<Vec<u8>>, key: &str, id: &str, max_age: Option<Duration>) -> Result<Option<T>> {
    let now = max_age.map(|_| Utc::now());
    raw.map(|bytes| decode_checked::<T>(&bytes, key, id))
        .transpose()
        .map(|item| item.filter(|i| fresh(i, now, max_age)))
}

/// Decode the MGET reply of `keys` (one value per distinct key) into one result per id of
/// `ids` (the ids `keys` was built from), in request order.
fn decode_many<T: Cached, S: AsRef<str>>(
    raw: Vec<Option<Vec<u8>>>,
    keys: &ManyKeys,
    ids: &[S],
    max_age: Option<Duration>,
) -> Result<Vec<Option<T>>> {
    if raw.len() != keys.keys.len() {
        return Err(Error::unexpected_reply(format!(
            "MGET of {} keys returned {} values",
            keys.keys.len(),
            raw.len()
        )));
    }
    let now = max_age.map(|_| Utc::now());
    let distinct = raw
        .into_iter()
        .zip(keys.keys.iter().zip(&keys.first))
        .map(|(bytes, (key, &position))| {
            bytes
                .map(|b| decode_checked::<T>(&b, key, ids[position].as_ref()))
                .transpose()
                .map(|item| item.filter(|i| fresh(i, now, max_age)))
        })
        .collect::<Result<Vec<Option<T>>>>()?;
    if keys.slots.len() == distinct.len() {
        return Ok(distinct); // no duplicates: the slots are 0, 1, 2, …
    }
    Ok(keys.slots.iter().map(|&slot| distinct[slot].clone()).collect())
}

/// Decode and make sure the item is the one its key names (no silent cross-wiring).
pub(crate) fn decode_checked<T: Cached>(bytes: &[u8], key: &str, id: &str) -> Result<T> {
    let item = T::decode(bytes, key)?;
    if item.id() != id {
        return Err(Error::serialization(
            key,
            format!("holds the {} of {:?}", T::WHAT, item.id()),
        ));
    }
    Ok(item)
}

/// Whether `item` is within `max_age` by its own timestamp, now.
pub(crate) fn fresh_now<T: Cached>(item: &T, max_age: Option<Duration>) -> bool {
    fresh(item, max_age.map(|_| Utc::now()), max_age)
}

fn fresh<T: Cached>(item: &T, now: Option<DateTime<Utc>>, max_age: Option<Duration>) -> bool {
    match (now, max_age) {
        (Some(now), Some(max_age)) => (now - item.timestamp()).to_std().unwrap_or_default() <= max_age,
        _ => true,
    }
}
