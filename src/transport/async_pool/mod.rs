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
//!   dropped and the read is sent once more through the multiplexed connection.
//!
//! Files: `manager.rs` opens connections, `checkout.rs` hands them out, `health.rs` probes
//! them, `blocking.rs` gives blocking reads a connection of their own.

mod blocking;
mod checkout;
mod health;
mod manager;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, FromRedisValue};
use tokio::task::JoinHandle;

pub use blocking::BlockingConnection;
pub use health::Health;
pub use manager::{PooledRedis, RedisConnectionManager};

use super::direct::{self, TaskLone};
use super::endpoint::Endpoint;
use super::handshake::{Handshake, POOL_CLIENT_NAME};
use super::resp::Reply;
use super::retry::{Attempts, Failure};
use super::settings::PoolConfig;
use super::Request;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Operation};
use manager::{Counted, Shared};

/// Counts of the pool's connections at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    pub connections: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Callers currently waiting for a connection.
    pub waiting: usize,
}

struct PoolInner {
    /// Unique in this process, never reused.
    id: u64,
    pool: bb8::Pool<RedisConnectionManager>,
    shared: Arc<Shared>,
    config: PoolConfig,
    endpoint: Arc<Endpoint>,
    /// Cache reads take the pooled connections' direct sockets.
    direct_reads: bool,
    metrics: Metrics,
    waiting: AtomicUsize,
    health_task: Mutex<Option<JoinHandle<()>>>,
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
        let endpoint = Arc::new(Endpoint::parse(&config.url)?);
        let shared = Arc::new(Shared::new());
        let manager = RedisConnectionManager {
            client: endpoint.client()?,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            connect_timeout: config.connect_timeout,
            handshake: Handshake::new(&endpoint, POOL_CLIENT_NAME),
            url: endpoint.redacted_url().to_owned(),
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

        // The first connection is made directly so its error (refused, TLS, auth, an old
        // server) reaches us.
        let first = pool.dedicated_connection().await?;
        let _ = pool.add(first);

        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inner = Arc::new(PoolInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pool,
            shared,
            metrics: Metrics::new(config.slow_threshold),
            direct_reads: config.direct_reads && direct::supports(&endpoint),
            endpoint,
            waiting: AtomicUsize::new(0),
            health_task: Mutex::new(None),
            config,
        });
        let task = tokio::spawn(health::health_loop(
            Arc::downgrade(&inner),
            inner.config.health_check_interval,
        ));
        *inner.health_task.lock().expect("fresh mutex") = Some(task);
        Ok(RedisPool { inner })
    }

    /// A number unique to this pool in this process (never reused, unlike an address).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        self.inner.endpoint.redacted_url()
    }

    /// The parsed URL (for a transport of its own to the same server, e.g. direct reads).
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.inner.endpoint
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
        let state = self.inner.pool.state();
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
        if let Some(task) = self.inner.health_task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
            let _ = task.await;
        }
        // `closed` makes `has_broken` true for every connection: idle ones are dropped as they
        // are taken below, busy ones when their call returns; `connect` refuses to reopen.
        while self.inner.pool.state().idle_connections > 0 {
            match tokio::time::timeout(Duration::from_millis(50), self.inner.pool.get()).await {
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
    /// docs), or like [`RedisPool::execute`] when reads are not direct (TLS, turned off).
    pub async fn read(&self, op: Operation, cmd: &redis::Cmd) -> Result<Reply> {
        if !self.inner.direct_reads {
            return self.execute(op, Request::Cmd(cmd)).await;
        }
        let started = Instant::now();
        let result = self.read_direct(cmd).await;
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    async fn read_direct(&self, cmd: &redis::Cmd) -> Result<Reply> {
        let mut conn = self.checkout().await?;
        if conn.direct.as_ref().is_some_and(|d| !d.is_clean()) {
            conn.direct = None; // a cancelled read left its request in flight
        }
        if conn.direct.is_none() {
            let config = &self.inner.config;
            // A server that refuses a second connection is served through the pooled one; one
            // that does not answer in time fails the read like a reply would.
            conn.direct = TaskLone::connect(
                self.inner.endpoint.clone(),
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
            if failure == Failure::Dropped {
                // The socket is gone: so, most likely, are its idle siblings (server restart).
                self.inner.shared.epoch.fetch_add(1, Ordering::AcqRel);
            }
            let err = Error::from_redis(err, self.redacted_url(), "response", self.inner.config.response_timeout);
            if !attempts.again(failure, reused) || self.is_closed() {
                return Err(err);
            }
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if let Some(task) = self.health_task.get_mut().ok().and_then(|t| t.take()) {
            task.abort();
        }
    }
}
