//! [`RedisPool`]: the async transport, bb8 over redis-rs multiplexed connections, shared by
//! every async cache and stream.
//!
//! Design choices (measured numbers in `docs/performance.md`):
//! - bb8's `test_on_check_out` PING is off: it costs a full round trip per checkout and would
//!   double a cached read. Broken connections are found instead by
//!   * the call that hits them, under the one [retry policy](super::retry); a dropped socket
//!     also invalidates every idle connection opened before it (an epoch bump), because a
//!     restart kills all of them at once;
//!   * a background task that PINGs one pooled connection every `health_check_interval`
//!     (`health.rs`).
//! - A checkout during an outage fails fast with the real connect error (`checkout.rs`).
//! - Every wait is bounded: connect, response and checkout timeouts, none infinite.
//! - Cache reads ([`RedisPool::read`]) skip the multiplexed connection's driver task: each
//!   pooled connection keeps a direct socket beside it (opened on its first read, counted as
//!   the same connection), which the calling task writes, polls for up to
//!   [`PoolConfig::read_spin`] and then awaits on the reactor. A read through the driver costs
//!   two task wake-ups more (about 2× the raw round trip). A direct socket that breaks is
//!   dropped and the read is sent once more through the multiplexed connection. On a cluster
//!   the same kind of socket is kept per primary, routed by slot (`cluster_direct.rs`).
//!
//! - The topology comes from the URL ([`Topology`]): one server and a Sentinel-managed primary
//!   go through bb8 (for Sentinel the manager asks the sentinels where the primary is at each
//!   connect); a Redis Cluster goes through redis-rs' cluster client (`cluster.rs`), which
//!   multiplexes one connection per node and needs no pool.
//!
//! Files: `manager.rs` opens connections, `checkout.rs` hands them out, `health.rs` probes
//! them, `switch_watch.rs` follows a sentinel's `+switch-master`, `blocking.rs` gives
//! blocking reads a connection of their own.

mod blocking;
mod checkout;
mod health;
mod manager;
mod switch_watch;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, FromRedisValue};
use tokio::task::JoinHandle;

pub use blocking::BlockingConnection;
pub use health::Health;
pub use manager::{PooledRedis, RedisConnectionManager};

use super::cluster::ClusterLink;
use super::cluster_direct::{ClusterDirect, ClusterDirectCounts, ClusterPrimary};
use super::direct::{self, TaskLone};
use super::endpoint::Endpoint;
use super::handshake::{check_server_version, Handshake, POOL_CLIENT_NAME};
use super::resp::Reply;
use super::retry::{Attempts, Failure};
use super::sentinel::SentinelResolver;
use super::settings::PoolConfig;
use super::topology::Topology;
use super::Request;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Operation};
use manager::{Counted, Shared, Target};

/// Counts of the pool's connections at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    pub connections: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Callers currently waiting for a connection.
    pub waiting: usize,
}

/// What carries the requests.
enum Backend {
    /// bb8 over multiplexed connections: one server, or the primary the sentinels name.
    Pooled(bb8::Pool<RedisConnectionManager>),
    /// redis-rs' cluster client (one multiplexed connection per node), renewed after failures.
    Cluster(Arc<ClusterLink>),
}

struct PoolInner {
    /// Unique in this process, never reused.
    id: u64,
    backend: Backend,
    shared: Arc<Shared>,
    config: PoolConfig,
    /// The one server of a standalone topology (none for Cluster and Sentinel).
    endpoint: Option<Arc<Endpoint>>,
    /// Where cache reads open their direct sockets: the one server of a standalone
    /// topology over plain TCP or a unix socket, unless turned off (none: reads use the pool).
    direct_endpoint: Option<Arc<Endpoint>>,
    /// A cluster's direct reads: a socket per primary, routed by slot (none: reads take the
    /// cluster client).
    cluster_direct: Option<Arc<ClusterDirect>>,
    /// The sentinels of a Sentinel topology.
    resolver: Option<Arc<SentinelResolver>>,
    redacted_url: String,
    topology: &'static str,
    metrics: Metrics,
    waiting: AtomicUsize,
    /// The health task, and on Sentinel one subscription per sentinel: aborted by `close`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A cheaply clonable handle to a Redis connection pool.
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("url", &self.redacted_url())
            .field("max_size", &self.inner.config.max_size)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl RedisPool {
    /// Open a pool: connect once (so a bad URL, password or server fails here, within
    /// `connect_timeout`), check the server is Redis ≥ 6.2, and start the health task.
    /// Must be called inside a tokio runtime, which then runs the health task.
    pub async fn connect(config: PoolConfig) -> Result<RedisPool> {
        config.validate()?;
        let topology = Topology::parse(&config.url)?;
        let redacted_url = topology.redacted_url().to_owned();
        let kind = topology.kind_name();
        let shared = Arc::new(Shared::new());
        let mut cluster_direct = None;
        let (backend, endpoint, resolver) = match topology {
            Topology::Standalone(endpoint) => {
                let endpoint = Arc::new(endpoint);
                let target = Target::Fixed(Box::new(endpoint.client()?));
                let handshake = Handshake::new(&endpoint, POOL_CLIENT_NAME);
                let pool = Self::bb8_pool(&config, target, handshake, &redacted_url, &shared).await?;
                (Backend::Pooled(pool), Some(endpoint), None)
            }
            Topology::Sentinel(spec) => {
                let resolver = Arc::new(SentinelResolver::new(spec, config.connect_timeout));
                // Credentials and database are the same wherever the primary is.
                let template = resolver.primary(&("sentinel-named-primary".to_owned(), 0));
                let handshake = Handshake::new(&template, POOL_CLIENT_NAME);
                let target = Target::Sentinel(resolver.clone());
                let pool = Self::bb8_pool(&config, target, handshake, &redacted_url, &shared).await?;
                (Backend::Pooled(pool), None, Some(resolver))
            }
            Topology::Cluster(spec) => {
                let link = ClusterLink::open(spec, config.clone()).await?;
                let mut info = redis::cmd("INFO");
                info.arg("server");
                // Answered by every primary: each must be new enough.
                let reply: redis::Value = link
                    .send(Request::Cmd(&info))
                    .await
                    .map_err(|e| Error::from_redis(e, &redacted_url, "connect", config.connect_timeout))?;
                let mut version = String::new();
                for text in health::info_texts(reply)? {
                    version = check_server_version(&text, &redacted_url)?;
                }
                *shared.redis_version.lock().expect("fresh mutex") = version;
                cluster_direct = ClusterDirect::open(link.clone(), &config).await;
                (Backend::Cluster(link), None, None)
            }
        };

        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inner = Arc::new(PoolInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            backend,
            shared,
            metrics: Metrics::new(config.slow_threshold),
            direct_endpoint: endpoint.clone().filter(|e| config.direct_reads && direct::supports(e)),
            cluster_direct,
            endpoint,
            resolver,
            redacted_url,
            topology: kind,
            waiting: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let task = tokio::spawn(health::health_loop(
            Arc::downgrade(&inner),
            inner.config.health_check_interval,
        ));
        let mut tasks = vec![task];
        if let Some(resolver) = &inner.resolver {
            for index in 0..resolver.sentinel_count() {
                let watch = switch_watch::switch_watch(Arc::downgrade(&inner), resolver.clone(), index);
                tasks.push(tokio::spawn(watch));
            }
        }
        *inner.tasks.lock().expect("fresh mutex") = tasks;
        Ok(RedisPool { inner })
    }

    /// The bb8 pool of a standalone or Sentinel topology, with its first connection opened
    /// directly so its error (refused, TLS, auth, an old server, no primary) reaches us.
    async fn bb8_pool(
        config: &PoolConfig,
        target: Target,
        handshake: Handshake,
        redacted_url: &str,
        shared: &Arc<Shared>,
    ) -> Result<bb8::Pool<RedisConnectionManager>> {
        let manager = RedisConnectionManager {
            target,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            connect_timeout: config.connect_timeout,
            handshake,
            url: redacted_url.to_owned(),
            shared: shared.clone(),
        };
        let pool = bb8::Pool::builder()
            .max_size(config.max_size)
            .min_idle(Some(config.min_idle).filter(|&n| n > 0))
            .test_on_check_out(config.test_on_checkout)
            .retry_connection(false)
            .connection_timeout(config.checkout_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .max_lifetime(None)
            .build_unchecked(manager);
        let first = pool.dedicated_connection().await?;
        let _ = pool.add(first);
        Ok(pool)
    }

    /// A number unique to this pool in this process (never reused, unlike an address).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    /// The one server of a standalone topology (for a transport of its own to the same
    /// server, e.g. direct reads); `None` for Cluster and Sentinel, whose servers change.
    pub fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.inner.endpoint.as_ref()
    }

    /// Sentinel topologies: times a new connection reached another primary than the one
    /// before (a failover followed). 0 otherwise.
    pub fn primary_changes(&self) -> u64 {
        self.inner.shared.primary_changes.load(Ordering::Relaxed)
    }

    /// Sentinel topologies: switches of our primary the sentinels announced (`+switch-master`,
    /// counted once however many sentinels announce it; each drops the connections to the old
    /// primary). 0 otherwise.
    pub fn switches_seen(&self) -> u64 {
        self.inner.shared.switches_seen.load(Ordering::Relaxed)
    }

    /// Sentinel topologies: times a sentinel subscription failed or was lost and was opened
    /// again after a backoff (a killed sentinel counts once per retry). 0 otherwise.
    pub fn switch_watch_errors(&self) -> u64 {
        self.inner.shared.switch_watch_errors.load(Ordering::Relaxed)
    }

    /// Sentinel topologies: sentinels whose announcements the pool is subscribed to right now
    /// (below the number of sentinels while one is down; then failovers are noticed by the
    /// health task's poll). 0 otherwise.
    pub fn switch_watches_up(&self) -> u64 {
        self.inner.shared.switch_watches_up.load(Ordering::Relaxed)
    }

    /// Sentinel topologies: connections that reached the replica a sentinel was promoting
    /// before the sentinels named it. 0 otherwise.
    pub fn promotions_taken(&self) -> u64 {
        self.inner.shared.promotions_taken.load(Ordering::Relaxed)
    }

    /// Sentinel topologies: the primary the latest connect reached, as `host:port`.
    pub fn primary(&self) -> Option<String> {
        let primary = self.inner.shared.primary.lock().ok()?.clone()?;
        Some(format!("{}:{}", primary.0, primary.1))
    }

    /// Cluster topologies: times a fresh cluster client (slot map read again) replaced the
    /// previous one after failures. 0 otherwise.
    pub fn cluster_rebuilds(&self) -> u64 {
        match &self.inner.backend {
            Backend::Cluster(link) => link.rebuilds(),
            Backend::Pooled(_) => 0,
        }
    }

    /// Cluster topologies: reads answered on the direct path (a socket per primary), reads
    /// sent through the cluster client instead, slot table reads, sockets open. All 0
    /// otherwise, and on a cluster whose reads are not direct (TLS, turned off).
    pub fn cluster_direct_counts(&self) -> ClusterDirectCounts {
        self.inner
            .cluster_direct
            .as_ref()
            .map(|d| d.counts())
            .unwrap_or_default()
    }

    /// Cluster topologies with direct reads: the primary that serves `cmd` (`GET key`, or an
    /// `MGET` within one slot) now, per the slot table (see `ClusterDirect::primary_of`).
    /// `None` otherwise, and whenever the read should take [`RedisPool::read`] instead.
    pub fn cluster_primary_of(&self, cmd: &redis::Cmd) -> Option<ClusterPrimary> {
        self.inner.cluster_direct.as_ref()?.primary_of(cmd)
    }

    /// Cluster topologies: a read sent to [`RedisPool::cluster_primary_of`]'s answer met a
    /// redirection ([`crate::transport::cluster_direct::is_redirection`]); the slot table is read again.
    pub fn cluster_table_stale(&self) {
        if let Some(direct) = &self.inner.cluster_direct {
            direct.table_stale();
        }
    }

    /// Cluster topologies: count a read answered on a connection of the caller's own to
    /// [`RedisPool::cluster_primary_of`]'s answer (in the `direct` counter).
    pub fn cluster_read_served(&self) {
        if let Some(direct) = &self.inner.cluster_direct {
            direct.served_elsewhere();
        }
    }

    /// [`RedisPool::primary_changes`] + [`RedisPool::cluster_rebuilds`]: failovers followed.
    pub fn failovers_followed(&self) -> u64 {
        self.primary_changes() + self.cluster_rebuilds()
    }

    /// `"standalone"`, `"cluster"` or `"sentinel"`, from the URL.
    pub fn topology(&self) -> &'static str {
        self.inner.topology
    }

    /// The configuration the pool was opened with (holds the password: do not log it).
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Latency histograms of every operation sent through this pool.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Version reported by the server at the latest connect (refreshed by
    /// [`RedisPool::health`]).
    pub fn redis_version(&self) -> String {
        self.inner
            .shared
            .redis_version
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// True once [`RedisPool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.load(Ordering::Acquire)
    }

    /// Connections, idle, in use and waiting callers right now.
    pub fn counts(&self) -> PoolCounts {
        let Backend::Pooled(pool) = &self.inner.backend else {
            // One cluster client, shared by every call; it is never checked out.
            return PoolCounts {
                connections: 1,
                idle: 1,
                in_use: 0,
                waiting: 0,
            };
        };
        let state = pool.state();
        PoolCounts {
            connections: state.connections,
            idle: state.idle_connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
            waiting: self.inner.waiting.load(Ordering::Relaxed),
        }
    }

    /// Stop the health task and close idle connections. Calls after this fail with
    /// [`Error::PoolClosed`]; connections still in use close when their call returns.
    pub async fn close(&self) {
        if self.inner.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let tasks = self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Some(direct) = &self.inner.cluster_direct {
            direct.close();
        }
        let Backend::Pooled(pool) = &self.inner.backend else {
            return; // the cluster client closes with the last handle
        };
        // `closed` makes `has_broken` true for every connection: idle ones are dropped as they
        // are taken below, busy ones when their call returns; `connect` refuses to reopen.
        while pool.state().idle_connections > 0 {
            match tokio::time::timeout(Duration::from_millis(50), pool.get()).await {
                Ok(Ok(mut conn)) => conn.broken = true,
                _ => break,
            }
        }
    }

    /// Send an idempotent request and convert its reply, recording latency under `op`.
    ///
    /// A connection that fails at the I/O level is replaced, and the request may be sent once
    /// more under the [retry policy](super::retry). Requests must be safe to repeat: GET,
    /// MGET, SET … PX are; an XADD may then be written twice, which at-least-once delivery
    /// allows and never loses an event.
    pub async fn execute<T: FromRedisValue>(&self, op: Operation, request: Request<'_>) -> Result<T> {
        let started = Instant::now();
        let result = self.execute_with_retry(request).await;
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    /// Send a cache read (`GET`, `MGET`) and return its reply, recording latency under `op`:
    /// over the checked-out connection's direct socket, from the calling task (see the module
    /// docs), on a cluster over the socket of the key's primary (`cluster_direct.rs`), or like
    /// [`RedisPool::execute`] when reads are not direct (TLS, Sentinel, turned off).
    pub async fn read(&self, op: Operation, cmd: &redis::Cmd) -> Result<Reply> {
        if let Some(direct) = &self.inner.cluster_direct {
            if self.is_closed() {
                return Err(Error::PoolClosed);
            }
            let started = Instant::now();
            let result = match direct.read(cmd).await {
                Some(reply) => Ok(reply),
                None => self.execute_with_retry(Request::Cmd(cmd)).await,
            };
            self.inner.metrics.record_outcome(op, started.elapsed(), &result);
            return result;
        }
        let Some(endpoint) = self.inner.direct_endpoint.clone() else {
            return self.execute(op, Request::Cmd(cmd)).await;
        };
        let started = Instant::now();
        let result = self.read_direct(endpoint, cmd).await;
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    async fn read_direct(&self, endpoint: Arc<Endpoint>, cmd: &redis::Cmd) -> Result<Reply> {
        let mut conn = self.checkout().await?;
        if conn.direct.as_ref().is_some_and(|d| !d.is_clean()) {
            conn.direct = None; // a cancelled read left its request in flight
        }
        if conn.direct.is_none() {
            let config = &self.inner.config;
            // A server that refuses a second connection is served through the pooled one; one
            // that does not answer in time fails the read like a reply would.
            conn.direct = TaskLone::connect(
                endpoint,
                POOL_CLIENT_NAME,
                config.connect_timeout,
                config.response_timeout,
                config.read_spin,
            )
            .await
            .map(Some)
            .or_else(|e| if e.is_timeout() { Err(e) } else { Ok(None) })
            .inspect_err(|_| conn.broken = true)?;
        }
        if let Some(direct) = conn.direct.as_mut() {
            let reading = &self.inner.shared.reading;
            let busy = reading.load(Ordering::Acquire) > 0;
            let result = {
                let _reading = Counted::new(reading); // also undone if cancelled
                direct.call(cmd, busy).await
            };
            match result {
                Ok(reply) => return Ok(reply),
                Err(e) if e.is_timeout() => {
                    // The reply is still due: neither socket of this connection is trusted.
                    conn.broken = true;
                    return Err(e);
                }
                // Broken (closed by the server, reset): sent again below.
                Err(_) => conn.direct = None,
            }
        }
        drop(conn);
        self.execute_with_retry(Request::Cmd(cmd)).await
    }

    async fn execute_with_retry<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T> {
        if let Backend::Cluster(link) = &self.inner.backend {
            if self.is_closed() {
                return Err(Error::PoolClosed);
            }
            // The cluster client retries, reconnects and follows redirections itself.
            return link.send(request).await.map_err(|e| {
                Error::from_redis(e, self.redacted_url(), "response", self.inner.config.response_timeout)
            });
        }
        let mut attempts = Attempts::default();
        loop {
            let asked = Instant::now();
            let mut conn = self.checkout().await?;
            let reused = conn.reused_since(asked);
            let err = match request.send(&mut conn.conn).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let failure = Failure::of(&err);
            conn.broken |= failure.breaks_connection();
            if Attempts::drops_siblings(failure) {
                // The socket is gone, or its server is a replica now: so are its siblings.
                self.drop_connections();
            }
            let err = Error::from_redis(err, self.redacted_url(), "response", self.inner.config.response_timeout);
            if !attempts.again(failure, reused) || self.is_closed() {
                return Err(err);
            }
        }
    }
}

impl RedisPool {
    /// Condemn every connection opened so far: each is discarded when next taken or returned.
    pub(super) fn drop_connections(&self) {
        self.inner.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            tasks.drain(..).for_each(|task| task.abort());
        }
    }
}
