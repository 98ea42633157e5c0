//! [`Store`]: the near cache's entries, bounded in bytes, least recently used evicted first.
//!
//! An entry carries the value as Redis returned it, when it was filled, and when it expires
//! (the fill's send time plus the key's server PTTL, so a hit never outlives the key). The
//! decoded item is kept beside the bytes once a hit has decoded it, so later hits only clone.
//!
//! LRU order is an intrusive doubly linked list over a slab: a hit, an insert and an eviction
//! are O(1), with no allocation on a hit.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Bytes counted per entry beyond its key and value (slab node, map slot, list links).
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// A decoded item shared by every hit on its entry.
pub type Decoded = Arc<dyn Any + Send + Sync>;

/// One cached value.
#[derive(Debug)]
pub struct Entry {
    /// The value's bytes as Redis returned them.
    pub value: Arc<[u8]>,
    /// When the fill that brought it was sent.
    pub filled_at: Instant,
    /// When the key expires on the server (as seen from here): no hit after this.
    pub expires_at: Instant,
    /// The item decoded from `value` by the first hit.
    pub decoded: OnceLock<Decoded>,
}

struct Node {
    key: Arc<str>,
    entry: Arc<Entry>,
    prev: usize,
    next: usize,
}

/// No neighbour.
const NONE: usize = usize::MAX;

/// Entries bounded in bytes, LRU; see the module docs.
pub struct Store {
    max_bytes: usize,
    bytes: usize,
    index: HashMap<Arc<str>, usize>,
    slab: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used: evicted first.
    tail: usize,
}

/// What [`Store::get`] found.
pub enum Lookup {
    /// A live entry (moved to the front).
    Live(Arc<Entry>),
    /// Nothing, or an entry past its expiry (removed).
    Absent,
}

fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD_BYTES
}

impl Store {
    /// An empty store holding at most `max_bytes` (keys, values and per-entry overhead).
    pub fn new(max_bytes: usize) -> Self {
        Store {
            max_bytes,
            bytes: 0,
            index: HashMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            head: NONE,
            tail: NONE,
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The live entry for `key` at `now`; an expired one is dropped.
    pub fn get(&mut self, key: &str, now: Instant) -> Lookup {
        let Some(&slot) = self.index.get(key) else {
            return Lookup::Absent;
        };
        let node = self.slab[slot].as_ref().expect("indexed slots hold a node");
        if node.entry.expires_at <= now {
            self.remove_slot(slot);
            return Lookup::Absent;
        }
        let entry = node.entry.clone();
        self.unlink(slot);
        self.push_front(slot);
        Lookup::Live(entry)
    }

    /// Insert or replace `key`, evicting least recently used entries to stay within the
    /// bound. A value larger than the whole bound is not kept (and replaces nothing stale:
    /// any older entry for the key is removed).
    pub fn insert(&mut self, key: &str, entry: Entry) {
        self.remove(key);
        let size = cost(key, &entry.value);
        if size > self.max_bytes {
            return;
        }
        while self.bytes + size > self.max_bytes && self.tail != NONE {
            self.remove_slot(self.tail);
        }
        let key: Arc<str> = Arc::from(key);
        let node = Node {
            key: key.clone(),
            entry: Arc::new(entry),
            prev: NONE,
            next: NONE,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot] = Some(node);
                slot
            }
            None => {
                self.slab.push(Some(node));
                self.slab.len() - 1
            }
        };
        self.push_front(slot);
        self.index.insert(key, slot);
        self.bytes += size;
    }

    /// Drop `key`; true when it was held.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.index.get(key) {
            Some(&slot) => {
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slab.clear();
        self.free.clear();
        self.head = NONE;
        self.tail = NONE;
        self.bytes = 0;
    }

    fn remove_slot(&mut self, slot: usize) {
        self.unlink(slot);
        let node = self.slab[slot].take().expect("a linked slot holds a node");
        self.bytes -= cost(&node.key, &node.entry.value);
        self.index.remove(&node.key);
        self.free.push(slot);
    }

    fn unlink(&mut self, slot: usize) {
        let (prev, next) = {
            let node = self.slab[slot].as_ref().expect("a linked slot holds a node");
            (node.prev, node.next)
        };
        match prev {
            NONE => self.head = next,
            p => self.slab[p].as_mut().expect("linked").next = next,
        }
        match next {
            NONE => self.tail = prev,
            n => self.slab[n].as_mut().expect("linked").prev = prev,
        }
    }

    fn push_front(&mut self, slot: usize) {
        let old_head = self.head;
        {
            let node = self.slab[slot].as_mut().expect("a slot being linked holds a node");
            node.prev = NONE;
            node.next = old_head;
        }
        match old_head {
            NONE => self.tail = slot,
            h => self.slab[h].as_mut().expect("linked").prev = slot,
        }
        self.head = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(value: &[u8], now: Instant, ttl_ms: u64) -> Entry {
        Entry {
            value: Arc::from(value),
            filled_at: now,
            expires_at: now + Duration::from_millis(ttl_ms),
            decoded: OnceLock::new(),
        }
    }

    fn live(store: &mut Store, key: &str, now: Instant) -> bool {
        matches!(store.get(key, now), Lookup::Live(_))
    }

    #[test]
    fn least_recently_used_goes_first_and_bytes_stay_bounded() {
        let now = Instant::now();
        let one = cost("k:1", &[0; 100]);
        let mut store = Store::new(3 * one);
        for k in ["k:1", "k:2", "k:3"] {
            store.insert(k, entry(&[0; 100], now, 1000));
        }
        assert!(live(&mut store, "k:1", now), "k:1 is now the most recent");
        store.insert("k:4", entry(&[0; 100], now, 1000));
        assert!(!live(&mut store, "k:2", now), "k:2 was the least recently used");
        assert!(live(&mut store, "k:1", now) && live(&mut store, "k:3", now) && live(&mut store, "k:4", now));
        assert_eq!(store.bytes(), 3 * one);
        store.insert("k:5", entry(&[0; 250], now, 1000));
        assert!(store.bytes() <= 3 * one);
        assert!(live(&mut store, "k:5", now));
        store.insert("k:6", entry(&[0; 1000], now, 1000));
        assert!(!live(&mut store, "k:6", now), "larger than the bound: not kept");
    }

    #[test]
    fn entries_expire_replace_and_clear() {
        let now = Instant::now();
        let mut store = Store::new(1 << 20);
        store.insert("a", entry(b"1", now, 10));
        assert!(live(&mut store, "a", now + Duration::from_millis(9)));
        assert!(
            !live(&mut store, "a", now + Duration::from_millis(10)),
            "expired at its PTTL"
        );
        assert!(store.is_empty() && store.bytes() == 0);
        store.insert("a", entry(b"1", now, 10));
        store.insert("a", entry(b"22", now, 10));
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), cost("a", b"22"));
        assert!(store.remove("a") && !store.remove("a"));
        store.insert("b", entry(b"1", now, 10));
        store.clear();
        assert!(store.is_empty() && store.bytes() == 0);
    }
}
