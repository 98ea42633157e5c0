//! Typed reads over a [`NearCache`]: [`crate::cache::Get`] and [`crate::cache::GetMany`]
//! plans served from the store when it can, filled on the tracking connection when not. The
//! caches ([`crate::Cache`], [`crate::SyncCache`]) call these, and read through their pool
//! when the near cache says it is down.
//!
//! A hit costs one lock, one look at the readiness ring (see [`super::watch`]), one hash
//! lookup of the key composed on the stack, and a clone of the decoded item.
//!
//! A hit never outlives its key's server TTL (the store drops it), nor the caller's
//! `max_age`: an entry filled longer ago than `max_age` is read again, and the item itself is
//! then judged by its own timestamp exactly as a read from Redis is.

use std::time::{Duration, Instant};

use super::store::Entry;
use super::tracker::{Local, Ticket, Waited};
use super::NearCache;
use crate::cache::{decode_checked, fresh_now, Cached, Get, GetMany};
use crate::error::Result;
use crate::keys::KeyLayout;

/// What the store could do for a read.
pub enum Served<I> {
    /// Answered from memory.
    Hit(Result<I>),
    /// Needs a fill ([`NearCache::fetch`] / [`NearCache::fetch_many`]).
    Miss,
    /// The tracking connection is down: read through the pool.
    Down,
}

/// The hits of a `get_many`, per distinct key (`None`: to be filled).
pub struct ManyLocal<T> {
    found: Vec<Option<Result<Option<T>>>>,
}

impl<T: Cached> ManyLocal<T> {
    /// Distinct keys still to be read.
    pub fn missing(&self) -> usize {
        self.found.iter().filter(|f| f.is_none()).count()
    }
}

/// Longest key [`NearCache::serve_id`] composes on the stack (a pool key is at most 49).
const STACK_KEY_BYTES: usize = 64;

impl NearCache {
    /// Serve a `get` from memory if the store holds its key.
    pub fn serve<T: Cached + 'static>(&self, plan: &Get<T>) -> Served<Option<T>> {
        self.serve_key(plan.key(), plan.id(), plan.max_age())
    }

    /// [`NearCache::serve`] before any planning: the key is composed on the stack from `id`,
    /// which is not validated here. Only keys of valid ids are ever stored, so an invalid id
    /// is a miss, and its plan ([`Get::new`]) then says why it is invalid.
    pub fn serve_id<T: Cached + 'static>(
        &self,
        layout: KeyLayout,
        id: &str,
        max_age: Option<Duration>,
    ) -> Served<Option<T>> {
        let mut buffer = [0u8; STACK_KEY_BYTES];
        let (prefix, id_bytes) = (T::key_prefix(layout).as_bytes(), id.as_bytes());
        let len = prefix.len() + id_bytes.len();
        if len > STACK_KEY_BYTES {
            return Served::Miss;
        }
        buffer[..prefix.len()].copy_from_slice(prefix);
        buffer[prefix.len()..len].copy_from_slice(id_bytes);
        match std::str::from_utf8(&buffer[..len]) {
            Ok(key) => self.serve_key(key, id, max_age),
            Err(_) => Served::Miss,
        }
    }

    fn serve_key<T: Cached + 'static>(&self, key: &str, id: &str, max_age: Option<Duration>) -> Served<Option<T>> {
        let now = Instant::now();
        match self.tracker().lookup(key, now) {
            Local::Down => Served::Down,
            Local::Miss => Served::Miss,
            Local::Hit(entry) => match self.served_item(&entry, key, id, max_age, now) {
                Some(result) => Served::Hit(result),
                None => Served::Miss,
            },
        }
    }

    /// Fill a `get`'s key on the tracking connection and decode it (blocks up to the response
    /// timeout). `None`: the tracking connection is down or broke, read through the pool.
    pub fn fetch<T: Cached>(&self, plan: &Get<T>) -> Option<Result<Option<T>>> {
        let ticket = self.start_fetch(plan)?;
        self.finish_fetch(plan, ticket, None).ok().flatten()
    }

    /// [`NearCache::fetch`] in two steps, for a caller that may only wait a short while (an
    /// event loop): send the fill (`None`: the tracking connection is down, use the pool)...
    pub fn start_fetch<T: Cached>(&self, plan: &Get<T>) -> Option<Ticket> {
        self.owner.tracker.stats.misses(1);
        self.tracker().send_fill(vec![plan.key().to_owned()])
    }

    /// ...then collect it, polling until `until` or, with `None`, waiting until it is done.
    /// `Err(ticket)`: not yet. `Ok(None)`: the connection broke, read through the pool.
    pub fn finish_fetch<T: Cached>(
        &self,
        plan: &Get<T>,
        ticket: Ticket,
        until: Option<Instant>,
    ) -> std::result::Result<Option<Result<Option<T>>>, Ticket> {
        match self.tracker().wait_fill(ticket, until) {
            Waited::Pending(ticket) => Err(ticket),
            Waited::Done(filled) => Ok(filled.and_then(|filled| {
                let value = filled.into_iter().next()?.value;
                Some(decode_filled(value.as_deref(), plan.key(), plan.id(), plan.max_age()))
            })),
        }
    }

    /// Serve what a `get_many` can from memory; `None` when the tracking connection is down.
    pub fn serve_many<T: Cached + 'static>(&self, plan: &GetMany<T>) -> Option<ManyLocal<T>> {
        let entries = self.tracker().lookup_many(plan.distinct_keys())?;
        let now = Instant::now();
        let found = entries
            .iter()
            .enumerate()
            .map(|(slot, entry)| {
                let entry = entry.as_ref()?;
                let (key, id) = (&plan.distinct_keys()[slot], plan.id_of_slot(slot));
                self.served_item(entry, key, id, plan.max_age(), now)
            })
            .collect();
        Some(ManyLocal { found })
    }

    /// Complete a `get_many`: its misses filled with one round trip (none when all hit).
    /// `None`: the tracking connection is down or broke, read through the pool.
    pub fn fetch_many<T: Cached>(&self, plan: &GetMany<T>, mut local: ManyLocal<T>) -> Option<Result<Vec<Option<T>>>> {
        let missing: Vec<usize> = (0..local.found.len()).filter(|&s| local.found[s].is_none()).collect();
        if !missing.is_empty() {
            self.owner.tracker.stats.misses(missing.len() as u64);
            let keys = missing.iter().map(|&s| plan.distinct_keys()[s].clone()).collect();
            let filled = self.tracker().fill(keys)?;
            for (&slot, item) in missing.iter().zip(filled) {
                let key = &plan.distinct_keys()[slot];
                local.found[slot] = Some(decode_filled(
                    item.value.as_deref(),
                    key,
                    plan.id_of_slot(slot),
                    plan.max_age(),
                ));
            }
        }
        let distinct = match local
            .found
            .into_iter()
            .map(|f| f.expect("every slot filled"))
            .collect::<Result<Vec<_>>>()
        {
            Ok(items) => items,
            Err(err) => return Some(Err(err)),
        };
        Some(Ok(plan.spread(distinct)))
    }

    /// A held entry as the read's result; `None` when it was filled longer ago than `max_age`.
    fn served_item<T: Cached + 'static>(
        &self,
        entry: &Entry,
        key: &str,
        id: &str,
        max_age: Option<Duration>,
        now: Instant,
    ) -> Option<Result<Option<T>>> {
        let age = now.saturating_duration_since(entry.filled_at);
        if max_age.is_some_and(|max| age > max) {
            return None;
        }
        let item = match entry.decoded.get().and_then(|d| d.downcast_ref::<T>()) {
            Some(item) => item.clone(),
            None => match decode_checked::<T>(&entry.value, key, id) {
                Ok(item) => {
                    let _ = entry.decoded.set(std::sync::Arc::new(item.clone()));
                    item
                }
                Err(err) => return Some(Err(err)),
            },
        };
        self.owner.tracker.stats.hit(age);
        Some(Ok(fresh_now(&item, max_age).then_some(item)))
    }
}

fn decode_filled<T: Cached>(value: Option<&[u8]>, key: &str, id: &str, max_age: Option<Duration>) -> Result<Option<T>> {
    value
        .map(|bytes| decode_checked::<T>(bytes, key, id))
        .transpose()
        .map(|item| item.filter(|i| fresh_now(i, max_age)))
}
