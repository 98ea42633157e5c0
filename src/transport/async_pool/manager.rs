//! The bb8 connection manager: opens redis-rs multiplexed connections (socket, TLS and the
//! shared handshake, all within `connect_timeout`) and tells bb8 which ones are broken.
//!
//! bb8 never reports a failed connect to the caller waiting for it (it waits the whole
//! checkout timeout), so the manager broadcasts connect failures: a checkout during an outage
//! fails fast with the real error (see `checkout.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bb8::ManageConnection;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use tokio::sync::watch;

use super::super::direct::TaskLone;
use super::super::handshake::Handshake;
use super::super::sentinel::{check_primary, PrimaryAddr, SentinelResolver};
use crate::error::{Error, Result};

/// State shared between the pool and its connection manager.
pub(super) struct Shared {
    /// Connections opened before this epoch are considered dead.
    pub epoch: AtomicU64,
    /// Bumped on every failed connect, so waiting checkouts fail fast.
    pub connect_failures: watch::Sender<u64>,
    pub last_connect_error: Mutex<Option<Error>>,
    /// Set by `close`: no new connections, every returned one is dropped.
    pub closed: AtomicBool,
    /// Connects under way right now (tells a slow connect from a busy pool).
    pub connecting: AtomicUsize,
    /// Direct cache reads in flight right now: while others wait, a read does not poll.
    pub reading: AtomicUsize,
    /// The server version the latest handshake (or health probe) saw.
    pub redis_version: Mutex<String>,
    /// The primary the latest connect reached (Sentinel topologies only).
    pub primary: Mutex<Option<PrimaryAddr>>,
    /// Times a new connection reached another primary than the one before (failovers followed).
    pub primary_changes: AtomicU64,
    /// Switches of our primary announced by the sentinels (`+switch-master`, once per switch).
    pub switches_seen: AtomicU64,
    /// The primary the latest `+switch-master` named (every sentinel announces each switch).
    pub announced: Mutex<Option<PrimaryAddr>>,
    /// Times a sentinel subscription failed or was lost (then opened again after a backoff).
    pub switch_watch_errors: AtomicU64,
    /// Sentinel subscriptions open right now (one task per sentinel).
    pub switch_watches_up: AtomicU64,
    /// The replica a sentinel is promoting, until the sentinels name it (tried first on connect).
    pub candidate: Mutex<Option<PrimaryAddr>>,
    /// Connections that reached the promoted replica before the sentinels named it.
    pub promotions_taken: AtomicU64,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            epoch: AtomicU64::new(0),
            connect_failures: watch::channel(0).0,
            last_connect_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            connecting: AtomicUsize::new(0),
            reading: AtomicUsize::new(0),
            redis_version: Mutex::new(String::new()),
            primary: Mutex::new(None),
            primary_changes: AtomicU64::new(0),
            switches_seen: AtomicU64::new(0),
            announced: Mutex::new(None),
            switch_watch_errors: AtomicU64::new(0),
            switch_watches_up: AtomicU64::new(0),
            candidate: Mutex::new(None),
            promotions_taken: AtomicU64::new(0),
        }
    }
}

/// One pooled connection and what the pool knows about it.
pub struct PooledRedis {
    pub(super) conn: MultiplexedConnection,
    pub(super) epoch: u64,
    pub(super) broken: bool,
    /// The direct socket cache reads use, opened on this connection's first read.
    pub(super) direct: Option<TaskLone>,
    used: bool,
    /// When it was opened: one opened before a checkout began sat idle and may have died.
    opened_at: Instant,
}

impl PooledRedis {
    /// Mark it used by a call that asked for a connection at `asked`; true when it had served
    /// calls before or sat idle since before `asked` (either may have died with a restart).
    pub(super) fn reused_since(&mut self, asked: Instant) -> bool {
        let reused = self.used || self.opened_at < asked;
        self.used = true;
        reused
    }
}

/// Where new connections go.
pub(crate) enum Target {
    /// Always the same server.
    Fixed(Box<Client>),
    /// The primary the sentinels name at connect time (checked with `ROLE`).
    Sentinel(Arc<SentinelResolver>),
}

/// bb8 manager: opens multiplexed connections with our timeouts, TCP settings and handshake.
pub struct RedisConnectionManager {
    pub(super) target: Target,
    pub(super) config: AsyncConnectionConfig,
    pub(super) connect_timeout: Duration,
    pub(super) handshake: Handshake,
    pub(super) url: String,
    pub(super) shared: Arc<Shared>,
}

impl RedisConnectionManager {
    fn record_connect_failure(&self, err: Error) -> Error {
        if let Ok(mut last) = self.shared.last_connect_error.lock() {
            *last = Some(err.clone());
        }
        self.shared.connect_failures.send_modify(|n| *n = n.wrapping_add(1));
        err
    }

    async fn open(&self) -> Result<MultiplexedConnection> {
        let resolver = match &self.target {
            Target::Fixed(client) => return self.open_at(Client::clone(client), None).await,
            Target::Sentinel(resolver) => resolver,
        };
        let named = resolver.resolve().await?;
        let promoting = self.candidate_unless(&named);
        if let Some(promoted) = promoting.clone() {
            // Primary already, most likely: the sentinels name it after their next INFO to it.
            if let Ok(conn) = self
                .open_at(resolver.primary(&promoted).client()?, Some(promoted))
                .await
            {
                self.shared.promotions_taken.fetch_add(1, Ordering::Relaxed);
                return Ok(conn);
            }
        }
        let conn = self.open_at(resolver.primary(&named).client()?, Some(named)).await?;
        if let (Some(promoted), Ok(mut candidate)) = (promoting, self.shared.candidate.lock()) {
            // The primary the sentinels name works and the replica is none: an aborted failover.
            if candidate.as_ref() == Some(&promoted) {
                *candidate = None;
            }
        }
        Ok(conn)
    }

    /// The replica a sentinel is promoting, unless the sentinels name it already (then it is
    /// forgotten: they are caught up).
    fn candidate_unless(&self, named: &PrimaryAddr) -> Option<PrimaryAddr> {
        let mut candidate = self.shared.candidate.lock().ok()?;
        if candidate.as_ref() == Some(named) {
            *candidate = None;
        }
        candidate.clone()
    }

    /// Connect to `client` and run the handshake; a Sentinel-named `primary` is checked with
    /// `ROLE` and recorded.
    async fn open_at(&self, client: Client, primary: Option<PrimaryAddr>) -> Result<MultiplexedConnection> {
        let failed = |e| Error::from_redis(e, &self.url, "connect", self.connect_timeout);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(failed)?;
        let version = self.handshake.run(&mut conn, failed).await?;
        if primary.is_some() {
            let role: Value = redis::cmd("ROLE").query_async(&mut conn).await.map_err(failed)?;
            check_primary(&role, &self.url)?;
            if let Ok(mut slot) = self.shared.primary.lock() {
                if slot.is_some() && *slot != primary {
                    self.shared.primary_changes.fetch_add(1, Ordering::Relaxed);
                }
                *slot = primary;
            }
        }
        if let Ok(mut slot) = self.shared.redis_version.lock() {
            *slot = version;
        }
        Ok(conn)
    }
}

impl ManageConnection for RedisConnectionManager {
    type Connection = PooledRedis;
    type Error = Error;

    async fn connect(&self) -> Result<PooledRedis> {
        if self.shared.closed.load(Ordering::Acquire) {
            // bb8 replenishes min_idle in the background; a closed pool must not reopen.
            return Err(Error::PoolClosed);
        }
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let opened = {
            let _connecting = Counted::new(&self.shared.connecting); // also undone if cancelled
            tokio::time::timeout(self.connect_timeout, self.open()).await
        };
        match opened {
            Ok(Ok(conn)) => Ok(PooledRedis {
                conn,
                epoch,
                broken: false,
                direct: None,
                used: false,
                opened_at: Instant::now(),
            }),
            Ok(Err(e)) => Err(self.record_connect_failure(e)),
            Err(_) => Err(self.record_connect_failure(Error::Timeout {
                operation: "connect",
                timeout: self.connect_timeout,
            })),
        }
    }

    async fn is_valid(&self, conn: &mut PooledRedis) -> Result<()> {
        redis::cmd("PING")
            .query_async::<()>(&mut conn.conn)
            .await
            .map_err(|e| Error::from_redis(e, &self.url, "ping", self.connect_timeout))
    }

    fn has_broken(&self, conn: &mut PooledRedis) -> bool {
        conn.broken
            || conn.epoch < self.shared.epoch.load(Ordering::Acquire)
            || self.shared.closed.load(Ordering::Acquire)
    }
}

/// Counts itself in while alive (a cancelled future still counts itself out).
pub(super) struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    pub fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
