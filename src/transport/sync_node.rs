//! [`NodePool`]: the blocking connections to one server, used on the caller's thread. The
//! [`SyncPool`](super::SyncPool) has one (one server, or the primary the sentinels name), or
//! one per cluster primary (see [`super::sync_cluster`]).
//!
//! Each call checks out a plain redis-rs [`Connection`], writes the request and reads the
//! reply on the calling thread. [`PoolConfig`] timeouts apply: `connect_timeout` per connect,
//! `response_timeout` as the socket read and write timeout, `checkout_timeout` for waiting on
//! a busy pool of `max_size` connections.
//!
//! Connections are opened with the shared handshake and fail under the shared
//! [retry policy](super::retry): one that fails at the I/O level or times out is discarded (its
//! reply stream is no longer in step); if it had served earlier calls, the request is sent once
//! more on a fresh connection, so after a server restart the first call succeeds.
//!
//! Cache reads ([`NodePool::read`]) go over a direct socket kept beside each pooled connection
//! (opened on its first read, counted as the same connection): written on the calling thread,
//! the reply polled for up to [`PoolConfig::read_spin`] before the thread sleeps in the kernel.
//! A direct socket that breaks is dropped and the read is sent once more over the pooled
//! connection, under the same retry policy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionLike, FromRedisValue, Value};

use super::async_pool::PoolCounts;
use super::direct::{self, BlockingLone};
use super::endpoint::Endpoint;
use super::handshake::{Handshake, SYNC_CLIENT_NAME};
use super::resp::Reply;
use super::retry::{Attempts, Failure};
use super::sentinel::{check_primary, SentinelResolver};
use super::settings::PoolConfig;
use super::Request;
use crate::error::{Error, Result};

/// Where new connections go.
pub(super) enum NodeTarget {
    Fixed(Client),
    /// The primary the sentinels name at connect time.
    Sentinel(SentinelResolver),
}

/// The blocking connections to one server; see the module docs.
pub(super) struct NodePool {
    target: NodeTarget,
    /// Where cache reads open their direct sockets (none: reads use the pooled connection).
    direct_endpoint: Option<Endpoint>,
    /// Direct reads in flight right now: while others wait, a read does not poll.
    reading: AtomicUsize,
    handshake: Handshake,
    config: PoolConfig,
    redacted_url: String,
    /// The server version the latest handshake saw.
    redis_version: Mutex<String>,
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
pub(super) struct Checkout<'a> {
    pool: &'a NodePool,
    conn: Option<SyncConn>,
    /// The connection served calls or sat idle before this checkout.
    pub reused: bool,
    /// Set when the connection must not be reused (see [`Failure::breaks_connection`]).
    pub broken: bool,
}

impl Checkout<'_> {
    /// The pooled redis-rs connection.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn.as_mut().expect("a checkout holds a connection").redis
    }
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

impl NodePool {
    /// A pool that opens connections with `target` and `handshake` when first asked (see
    /// [`NodePool::open_first`]); `redacted_url` names the server in errors.
    pub fn new(
        target: NodeTarget,
        handshake: Handshake,
        direct_endpoint: Option<Endpoint>,
        config: PoolConfig,
        redacted_url: String,
    ) -> NodePool {
        let direct_endpoint = direct_endpoint.filter(|e| config.direct_reads && direct::supports(e));
        NodePool {
            target,
            direct_endpoint,
            reading: AtomicUsize::new(0),
            handshake,
            config,
            redacted_url,
            redis_version: Mutex::new(String::new()),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                waiting: 0,
                closed: false,
            }),
            returned: Condvar::new(),
        }
    }

    /// Connect once and keep the connection idle, so a bad address, password or server fails
    /// here, within `connect_timeout`.
    pub fn open_first(&self) -> Result<()> {
        let first = self.open_connection()?;
        let mut state = self.lock();
        state.idle.push(SyncConn {
            redis: first,
            direct: None,
        });
        state.open += 1;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the counters consistent: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The server named in errors, password hidden.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// A redis-rs error of this server as a solcache error (`operation` names the phase).
    pub fn error(&self, err: redis::RedisError) -> Error {
        Error::from_redis(err, &self.redacted_url, "response", self.config.response_timeout)
    }

    /// Connect and run the handshake within `connect_timeout`, then switch the socket to the
    /// response timeout.
    fn open_connection(&self) -> Result<Connection> {
        let timeout = self.config.connect_timeout;
        let failed = |e: redis::RedisError| Error::from_redis(e, &self.redacted_url, "connect", timeout);
        let started = Instant::now();
        let client = match &self.target {
            NodeTarget::Fixed(client) => client.clone(),
            NodeTarget::Sentinel(resolver) => resolver.primary(&resolver.resolve_blocking()?).client()?,
        };
        let mut conn = client.get_connection_with_timeout(timeout).map_err(failed)?;
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        conn.set_read_timeout(Some(left)).map_err(failed)?;
        conn.set_write_timeout(Some(left)).map_err(failed)?;
        let version = self.handshake.run_blocking(&mut conn, failed)?;
        if let NodeTarget::Sentinel(_) = &self.target {
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
    pub fn checkout(&self) -> Result<Checkout<'_>> {
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

    /// Send an idempotent request under the retry policy and convert its reply.
    pub fn execute<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T> {
        let mut attempts = Attempts::default();
        loop {
            let mut checkout = self.checkout()?;
            let err = match request.send_blocking(checkout.connection()) {
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
            let err = self.error(err);
            if !attempts.again(failure, reused) || self.is_closed() {
                return Err(err);
            }
        }
    }

    /// Send a cache read and return its reply: over the checked-out connection's direct socket
    /// (see the module docs), or like [`NodePool::execute`] when reads are not direct.
    pub fn read(&self, cmd: &redis::Cmd) -> Result<Reply> {
        match &self.direct_endpoint {
            Some(endpoint) => self.read_direct(endpoint, cmd),
            None => self.execute(Request::Cmd(cmd)),
        }
    }

    fn read_direct(&self, endpoint: &Endpoint, cmd: &redis::Cmd) -> Result<Reply> {
        let mut checkout = self.checkout()?;
        let conn = checkout.conn.as_mut().expect("a checkout holds a connection");
        if conn.direct.is_none() {
            let config = &self.config;
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
                let reading = Reading::start(&self.reading); // also undone by a panic
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
        self.execute(Request::Cmd(cmd))
    }

    /// Close idle connections and refuse new calls; connections in use close when returned.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len() as u32;
        drop(state);
        drop(idle);
        self.returned.notify_all();
    }

    fn drop_idle(&self) {
        let mut state = self.lock();
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len() as u32;
        drop(state);
        drop(idle);
        self.returned.notify_all();
    }

    /// Whether [`NodePool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Connections, idle, in use and waiting callers right now.
    pub fn counts(&self) -> PoolCounts {
        let state = self.lock();
        let idle = state.idle.len() as u32;
        PoolCounts {
            connections: state.open,
            idle,
            in_use: state.open - idle,
            waiting: state.waiting,
        }
    }

    /// The server's version, read by the latest connect (empty before the first).
    pub fn redis_version(&self) -> String {
        self.redis_version.lock().map(|v| v.clone()).unwrap_or_default()
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
