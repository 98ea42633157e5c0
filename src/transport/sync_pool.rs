//! A blocking connection pool for synchronous callers: no runtime, no thread hop.
//!
//! Each call checks out a plain redis-rs [`Connection`], writes the request and reads the reply
//! on the calling thread, so a read costs one round trip plus decoding. The same
//! [`PoolConfig`] timeouts apply: `connect_timeout` per connect, `response_timeout` as the
//! socket read and write timeout, `checkout_timeout` for waiting on a busy pool.
//!
//! Connections are opened with the shared handshake and fail under the shared
//! [retry policy](super::retry): one that fails at the I/O level or times out is discarded (its
//! reply stream is no longer in step); if it had served earlier calls, the request is sent once
//! more on a fresh connection, so after a server restart the first call succeeds.
//!
//! Cache reads ([`SyncPool::read`]) go over a direct socket kept beside each pooled connection
//! (opened on its first read, counted as the same connection): written on the calling thread,
//! the reply polled for up to [`PoolConfig::read_spin`] before the thread sleeps in the kernel
//! (a reply from a local server comes in less time than a sleeping thread takes to wake). A
//! direct socket that breaks is dropped and the read is sent once more over the pooled
//! connection, under the same retry policy.
//!
//! Topologies: one server, or a Sentinel-managed primary (each new connection asks the
//! sentinels where it is and checks `ROLE`; a `READONLY` reply drops every idle connection and
//! the request is sent once more). A Redis Cluster URL is refused: the blocking API does not
//! route by slot; the async API does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use redis::{Client, Connection, ConnectionLike, FromRedisValue, Value};

use super::async_pool::PoolCounts;
use super::direct::{self, BlockingLone};
use super::endpoint::Endpoint;
use super::handshake::{Handshake, SYNC_CLIENT_NAME};
use super::resp::Reply;
use super::retry::{Attempts, Failure};
use super::sentinel::{check_primary, SentinelResolver};
use super::settings::PoolConfig;
use super::topology::Topology;
use super::Request;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Operation};

/// A blocking pool of Redis connections; clones share it.
#[derive(Clone)]
pub struct SyncPool {
    inner: Arc<SyncInner>,
}

/// Where new connections go.
enum SyncTarget {
    Fixed(Client),
    /// The primary the sentinels name at connect time.
    Sentinel(SentinelResolver),
}

struct SyncInner {
    target: SyncTarget,
    /// Where cache reads open their direct sockets: the one server of a standalone topology
    /// over plain TCP or a unix socket, unless turned off (none: reads use the pool).
    direct_endpoint: Option<Endpoint>,
    /// Direct reads in flight right now: while others wait, a read does not poll.
    reading: AtomicUsize,
    handshake: Handshake,
    config: PoolConfig,
    redacted_url: String,
    /// The server version the latest handshake saw.
    redis_version: Mutex<String>,
    metrics: Metrics,
    state: Mutex<State>,
    /// Signalled whenever a connection is returned or a slot frees up.
    returned: Condvar,
}

/// A pooled connection and, once it has served a read, its direct socket.
struct SyncConn {
    redis: Connection,
    direct: Option<BlockingLone>,
}

struct State {
    idle: Vec<SyncConn>,
    /// Connections open or being opened (idle + in use + connecting).
    open: u32,
    waiting: usize,
    closed: bool,
}

/// A checked-out connection; returns itself to the pool on drop unless broken.
struct Checkout<'a> {
    pool: &'a SyncInner,
    conn: Option<SyncConn>,
    reused: bool,
    broken: bool,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        match self.conn.take() {
            Some(conn) if !self.broken && !state.closed && conn.redis.is_open() => state.idle.push(conn),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.returned.notify_one();
    }
}

impl SyncInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the counters consistent: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connect and run the handshake within `connect_timeout`, then switch the socket to the
    /// response timeout.
    fn open_connection(&self) -> Result<Connection> {
        let timeout = self.config.connect_timeout;
        let failed = |e: redis::RedisError| Error::from_redis(e, &self.redacted_url, "connect", timeout);
        let started = Instant::now();
        let client = match &self.target {
            SyncTarget::Fixed(client) => client.clone(),
            SyncTarget::Sentinel(resolver) => resolver.primary(&resolver.resolve_blocking()?).client()?,
        };
        let mut conn = client.get_connection_with_timeout(timeout).map_err(failed)?;
        let left = timeout
            .saturating_sub(started.elapsed())
            .max(std::time::Duration::from_millis(1));
        conn.set_read_timeout(Some(left)).map_err(failed)?;
        conn.set_write_timeout(Some(left)).map_err(failed)?;
        let version = self.handshake.run_blocking(&mut conn, failed)?;
        if let SyncTarget::Sentinel(_) = &self.target {
            let role: Value = redis::cmd("ROLE").query(&mut conn).map_err(failed)?;
            check_primary(&role, &self.redacted_url)?;
        }
        if let Ok(mut slot) = self.redis_version.lock() {
            *slot = version;
        }
        conn.set_read_timeout(Some(self.config.response_timeout))
            .map_err(failed)?;
        conn.set_write_timeout(Some(self.config.response_timeout))
            .map_err(failed)?;
        Ok(conn)
    }

    /// An idle connection, a new one if the pool has room, or wait up to `checkout_timeout`.
    fn checkout(&self) -> Result<Checkout<'_>> {
        let deadline = Instant::now() + self.config.checkout_timeout;
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(Error::PoolClosed);
            }
            if let Some(conn) = state.idle.pop() {
                return Ok(Checkout {
                    pool: self,
                    conn: Some(conn),
                    reused: true,
                    broken: false,
                });
            }
            if state.open < self.config.max_size {
                state.open += 1;
                drop(state);
                // Owns the slot from here: a failed connect gives it back on drop.
                let mut checkout = Checkout {
                    pool: self,
                    conn: None,
                    reused: false,
                    broken: false,
                };
                checkout.conn = Some(SyncConn {
                    redis: self.open_connection()?,
                    direct: None,
                });
                return Ok(checkout);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::PoolExhausted {
                    timeout: self.config.checkout_timeout,
                    max_size: self.config.max_size,
                    waiting: state.waiting,
                });
            }
            state.waiting += 1;
            let (next, _) = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = next;
            state.waiting -= 1;
        }
    }
}

impl SyncPool {
    /// Open a pool: connect once (so a bad URL, password or server fails here, within
    /// `connect_timeout`) and check the server is Redis ≥ 6.2. Blocks the calling thread.
    pub fn connect(config: PoolConfig) -> Result<SyncPool> {
        config.validate()?;
        let (target, handshake, redacted_url, direct_endpoint) = match Topology::parse(&config.url)? {
            Topology::Standalone(endpoint) => (
                SyncTarget::Fixed(endpoint.client()?),
                Handshake::new(&endpoint, SYNC_CLIENT_NAME),
                endpoint.redacted_url().to_owned(),
                Some(endpoint).filter(|e| config.direct_reads && direct::supports(e)),
            ),
            Topology::Sentinel(spec) => {
                let resolver = SentinelResolver::new(spec, config.connect_timeout);
                // Credentials and database are the same wherever the primary is.
                let template = resolver.primary(&("sentinel-named-primary".to_owned(), 0));
                let url = resolver.redacted_url().to_owned();
                (
                    SyncTarget::Sentinel(resolver),
                    Handshake::new(&template, SYNC_CLIENT_NAME),
                    url,
                    None,
                )
            }
            Topology::Cluster(spec) => {
                return Err(Error::invalid(format!(
                    "the blocking API does not support Redis Cluster ({}): it supports redis://, \
                     rediss://, unix:// and redis+sentinel:// URLs; use the async API for a cluster",
                    spec.redacted_url
                )))
            }
        };
        let inner = SyncInner {
            target,
            handshake,
            direct_endpoint,
            reading: AtomicUsize::new(0),
            metrics: Metrics::new(config.slow_threshold),
            redacted_url,
            redis_version: Mutex::new(String::new()),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                waiting: 0,
                closed: false,
            }),
            returned: Condvar::new(),
            config,
        };
        let first = inner.open_connection()?;
        {
            let mut state = inner.lock();
            state.idle.push(SyncConn {
                redis: first,
                direct: None,
            });
            state.open = 1;
        }
        Ok(SyncPool { inner: Arc::new(inner) })
    }

    /// Send an idempotent request and convert its reply, recording latency under `op`.
    /// Blocks the calling thread for at most about checkout + connect + response timeouts.
    pub fn execute<T: FromRedisValue>(&self, op: Operation, request: Request<'_>) -> Result<T> {
        let started = Instant::now();
        let result = self.execute_with_retry(request);
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    fn execute_with_retry<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T> {
        let mut attempts = Attempts::default();
        loop {
            let mut checkout = self.inner.checkout()?;
            let conn = checkout.conn.as_mut().expect("a checkout holds a connection");
            let err = match request.send_blocking(&mut conn.redis) {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let failure = Failure::of(&err);
            checkout.broken = failure.breaks_connection();
            let reused = checkout.reused;
            drop(checkout);
            if failure == Failure::Demoted {
                // Every idle connection reaches the demoted primary too.
                self.drop_idle();
            }
            let err = Error::from_redis(
                err,
                &self.inner.redacted_url,
                "response",
                self.inner.config.response_timeout,
            );
            if !attempts.again(failure, reused) || self.is_closed() {
                return Err(err);
            }
        }
    }

    /// Send a cache read and return its reply, recording latency under `op`: over the
    /// checked-out connection's direct socket (see the module docs), or like
    /// [`SyncPool::execute`] when reads are not direct (TLS, Sentinel, turned off).
    pub fn read(&self, op: Operation, cmd: &redis::Cmd) -> Result<Reply> {
        let Some(endpoint) = &self.inner.direct_endpoint else {
            return self.execute(op, Request::Cmd(cmd));
        };
        let started = Instant::now();
        let result = self.read_direct(endpoint, cmd);
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    fn read_direct(&self, endpoint: &Endpoint, cmd: &redis::Cmd) -> Result<Reply> {
        let inner = &*self.inner;
        let mut checkout = inner.checkout()?;
        let conn = checkout.conn.as_mut().expect("a checkout holds a connection");
        if conn.direct.is_none() {
            let config = &inner.config;
            // A server that refuses a second connection is served through the pooled one; one
            // that does not answer in time fails the read like a reply would.
            conn.direct = BlockingLone::connect(
                endpoint,
                SYNC_CLIENT_NAME,
                config.connect_timeout,
                config.response_timeout,
                config.read_spin,
            )
            .map(Some)
            .or_else(|e| if e.is_timeout() { Err(e) } else { Ok(None) })
            .inspect_err(|_| checkout.broken = true)?;
        }
        if let Some(direct) = conn.direct.as_mut() {
            let result = {
                let reading = Reading::start(&inner.reading); // also undone by a panic
                direct.call(cmd, reading.busy)
            };
            match result {
                Ok(reply) => return Ok(reply),
                Err(e) if e.is_timeout() => {
                    // The reply is still due: neither socket of this connection is trusted.
                    checkout.broken = true;
                    return Err(e);
                }
                // Broken (closed by the server, reset): sent again below.
                Err(_) => conn.direct = None,
            }
        }
        drop(checkout);
        self.execute_with_retry(Request::Cmd(cmd))
    }

    /// Close idle connections and refuse new calls; connections in use close when returned.
    pub fn close(&self) {
        let mut state = self.inner.lock();
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len() as u32;
        drop(state);
        drop(idle);
        self.inner.returned.notify_all();
    }

    fn drop_idle(&self) {
        let mut state = self.inner.lock();
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len() as u32;
        drop(state);
        drop(idle);
        self.inner.returned.notify_all();
    }

    /// Whether [`SyncPool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Connections, idle, in use and waiting callers right now.
    pub fn counts(&self) -> PoolCounts {
        let state = self.inner.lock();
        let idle = state.idle.len() as u32;
        PoolCounts {
            connections: state.open,
            idle,
            in_use: state.open - idle,
            waiting: state.waiting,
        }
    }

    /// Latency histograms and error counts of this pool's calls.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The server URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    /// The configuration this pool was opened with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The server's version, read by the latest connect.
    pub fn redis_version(&self) -> String {
        self.inner.redis_version.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// One direct read in flight, counted in the pool's `reading` until dropped.
struct Reading<'a> {
    counter: &'a AtomicUsize,
    /// Other reads were in flight when this one started.
    busy: bool,
}

impl<'a> Reading<'a> {
    fn start(counter: &'a AtomicUsize) -> Self {
        let busy = counter.fetch_add(1, Ordering::AcqRel) > 0;
        Reading { counter, busy }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for SyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPool")
            .field("url", &self.inner.redacted_url)
            .field("counts", &self.counts())
            .finish()
    }
}
