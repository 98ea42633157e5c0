//! The near cache: reads served from this process' memory, kept correct by Redis' own
//! invalidations (client-side caching, `CLIENT TRACKING`, Redis ≥ 6).
//!
//! One [`NearCache`] per pool (opt-in): a tracking connection (RESP3, tracking on) that every
//! fill goes through, and a store bounded in bytes. A read of a key the store holds and whose
//! server TTL has not run out is answered from memory; any other read is a fill on the
//! tracking connection (`MULTI`, `PTTL`, `MGET`, `EXEC`: value and TTL in one round trip),
//! whose reply fills the store in wire order with the invalidations (see [`tracker`]). While
//! the tracking connection is down, reads go through the pool as without a near cache.
//!
//! - [`store`]: the entries, LRU, bounded in bytes, each with its server-TTL expiry;
//! - [`tracking`]: the RESP3 connection with tracking on;
//! - [`watch`]: whether the connection received anything, read from an io_uring ring;
//! - [`invalidation`]: what an invalidation push says;
//! - [`fill`]: the fill round trip and its reply;
//! - [`tracker`]: store and connection under one lock, the PING and reconnect thread;
//! - [`reads`]: typed `get` / `get_many` over it, for the caches;
//! - [`stats`]: hits, misses, invalidations, flushes, bytes, age of served entries.

pub mod fill;
pub mod invalidation;
pub mod reads;
pub mod stats;
pub mod store;
pub mod tracker;
pub mod tracking;
pub mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use reads::Served;
pub use stats::NearStatsSnapshot;
pub use tracker::Ticket;

use crate::error::{Error, Result};
use crate::transport::endpoint::redact_url;
use crate::transport::PoolConfig;
use tracker::Tracker;
use tracking::TrackingConnection;

/// Default bound of a near cache's memory: 32 MiB (about 100 000 prices).
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Default longest life of an entry whose key has no TTL on the server (60 s).
pub const DEFAULT_MAX_ENTRY_TTL: Duration = Duration::from_secs(60);
/// Default interval of the PING on the tracking connection (100 ms).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_millis(100);

/// How a near cache behaves.
#[derive(Debug, Clone)]
pub struct NearCacheConfig {
    /// Bound of keys, values and per-entry overhead held, in bytes.
    pub max_bytes: usize,
    /// Longest an entry is served, whatever the server TTL (also bounds keys without one).
    pub max_entry_ttl: Duration,
    /// A PING goes out this often on the tracking connection; no reply within
    /// `response_timeout` empties the store and reconnects.
    pub ping_interval: Duration,
    /// Connecting, and each setup step.
    pub connect_timeout: Duration,
    /// Longest wait for a fill's or a PING's reply before the connection counts as lost.
    pub response_timeout: Duration,
    /// Learn of invalidations on a hit from an io_uring readiness ring (a memory read)
    /// instead of a `recv` per hit (a system call); see [`watch`]. Where io_uring cannot be
    /// set up, hits use `recv` whatever this says. Default true.
    pub io_uring: bool,
}

impl NearCacheConfig {
    /// Defaults, with the pool's connect and response timeouts.
    pub fn for_pool(pool: &PoolConfig) -> Self {
        NearCacheConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_ttl: DEFAULT_MAX_ENTRY_TTL,
            ping_interval: DEFAULT_PING_INTERVAL,
            connect_timeout: pool.connect_timeout,
            response_timeout: pool.response_timeout,
            io_uring: true,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.max_bytes < 4096 {
            return Err(Error::invalid(format!(
                "near cache max_bytes must be at least 4096, got {}",
                self.max_bytes
            )));
        }
        for (name, value) in [
            ("max_entry_ttl", self.max_entry_ttl),
            ("ping_interval", self.ping_interval),
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
        ] {
            if value.is_zero() || value > Duration::from_secs(86_400) {
                return Err(Error::invalid(format!(
                    "near cache {name} must be between 1 ms and 1 day, got {value:?}"
                )));
            }
        }
        Ok(())
    }
}

/// A near cache; clones share it. Dropping the last clone (or [`NearCache::close`]) stops its
/// thread and closes its connection.
#[derive(Clone)]
pub struct NearCache {
    owner: Arc<Owner>,
}

struct Owner {
    tracker: Arc<Tracker>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.tracker.close();
    }
}

impl NearCache {
    /// Open the tracking connection to `url` (blocking, so a server without tracking fails
    /// here) and start the thread that keeps it.
    pub fn connect(url: &str, config: NearCacheConfig) -> Result<NearCache> {
        config.validate()?;
        let endpoint = match crate::transport::Topology::parse(url)? {
            crate::transport::Topology::Standalone(endpoint) => endpoint,
            _ => {
                return Err(Error::invalid(format!(
                    "{}: the near cache supports one server (redis://, unix://), not Redis Cluster or Sentinel",
                    redact_url(url)
                )))
            }
        };
        if !crate::transport::direct::supports(&endpoint) {
            return Err(Error::invalid(format!(
                "{}: the near cache supports redis:// and unix:// only",
                endpoint.redacted_url()
            )));
        }
        let first = TrackingConnection::open(&endpoint, config.connect_timeout, config.io_uring)?;
        let tracker = Arc::new(Tracker::new(endpoint, config, first));
        register(&tracker);
        let runner = tracker.clone();
        std::thread::Builder::new()
            .name("solcache-near".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::invalid(format!("cannot start the near cache thread: {e}")))?;
        Ok(NearCache {
            owner: Arc::new(Owner { tracker }),
        })
    }

    /// Counters and the age of served entries.
    pub fn stats(&self) -> NearStatsSnapshot {
        self.owner.tracker.stats.snapshot()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &NearCacheConfig {
        &self.owner.tracker.config
    }

    /// Stop serving, close the connection, stop the thread (within 50 ms).
    pub fn close(&self) {
        self.owner.tracker.close();
    }

    pub(crate) fn tracker(&self) -> &Tracker {
        &self.owner.tracker
    }
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache").field("stats", &self.stats()).finish()
    }
}

/// Every near cache of this process, so a write made here reaches them all at once.
static LIVE: Mutex<Vec<Weak<Tracker>>> = Mutex::new(Vec::new());
/// How many are registered (a write checks this before taking the lock).
static LIVE_COUNT: AtomicUsize = AtomicUsize::new(0);

fn register(tracker: &Arc<Tracker>) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|t| t.strong_count() > 0);
    live.push(Arc::downgrade(tracker));
    LIVE_COUNT.store(live.len(), Ordering::Relaxed);
}

/// Whether this process has a near cache (so a write has someone to tell).
pub fn any_live() -> bool {
    LIVE_COUNT.load(Ordering::Relaxed) > 0
}

/// This process wrote `keys` (Redis acknowledged): every near cache here stops serving their
/// old values now, before the server's invalidation arrives. A no-op without near caches.
pub fn written(keys: &[String]) {
    if LIVE_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let trackers: Vec<Arc<Tracker>> = {
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|t| t.strong_count() > 0);
        LIVE_COUNT.store(live.len(), Ordering::Relaxed);
        live.iter().filter_map(Weak::upgrade).collect()
    };
    for tracker in trackers {
        tracker.written(keys);
    }
}
