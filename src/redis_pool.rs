//! The connection pool every cache shares: bb8 over redis-rs multiplexed connections.
//!
//! Design choices (measured numbers in `docs/performance.md`):
//! - bb8's `test_on_check_out` PING is off: it costs a full round trip per checkout and would
//!   double a cached read. Broken connections are found instead by
//!   * the call that hits them: a connection whose command failed at the I/O level is marked
//!     broken and dropped on return; a dropped socket also invalidates every idle connection
//!     opened before it (an epoch bump), because a restart kills all of them at once, and an
//!     idempotent request is retried once on a fresh connection;
//!   * a background task that PINGs one pooled connection every `health_check_interval`.
//! - bb8 never reports a failed connect to the caller that is waiting for it (it waits the
//!   whole checkout timeout). The manager broadcasts connect failures, so a checkout during an
//!   outage fails fast with the real `ConnectionError`.
//! - Every wait is bounded: connect, response and checkout timeouts, none infinite.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bb8::{ManageConnection, PooledConnection, RunError};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::metrics::{Metrics, Operation};

/// Oldest Redis version solcache supports (streams need XAUTOCLAIM, 6.2+).
pub const MIN_REDIS_VERSION: (u32, u32) = (6, 2);
const MIN_REDIS_VERSION_TEXT: &str = "6.2";

/// Everything that shapes a pool. All durations are bounded; none is infinite.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `redis://`, `rediss://` (TLS) or `unix://` URL; may carry an ACL user and password.
    pub url: String,
    /// Most connections the pool opens (default 20).
    pub max_size: u32,
    /// Connections kept open even when idle, reopened in the background when lost (default 1):
    /// the first calls after start or after an outage do not pay for a connect.
    pub min_idle: u32,
    /// Limit on opening one connection, TCP + TLS + AUTH (default 1 s).
    pub connect_timeout: Duration,
    /// Limit on one command's reply (default 500 ms).
    pub response_timeout: Duration,
    /// Limit on waiting for a free pooled connection (default 500 ms).
    pub checkout_timeout: Duration,
    /// How often the background task PINGs a pooled connection (default 1 s).
    pub health_check_interval: Duration,
    /// Calls slower than this are counted and logged (default 1 ms).
    pub slow_threshold: Duration,
    /// bb8's PING on every checkout (default off: it adds a full round trip to every call;
    /// `docs/performance.md` has the measured cost). Broken connections are caught without it.
    pub test_on_checkout: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            max_size: 20,
            min_idle: 1,
            connect_timeout: Duration::from_millis(1000),
            response_timeout: Duration::from_millis(500),
            checkout_timeout: Duration::from_millis(500),
            health_check_interval: Duration::from_millis(1000),
            slow_threshold: Duration::from_millis(1),
            test_on_checkout: false,
        }
    }
}

impl PoolConfig {
    /// Defaults with the given URL.
    pub fn new(url: impl Into<String>) -> Self {
        PoolConfig {
            url: url.into(),
            ..PoolConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_size == 0 {
            return Err(Error::invalid("max_size must be at least 1"));
        }
        if self.min_idle > self.max_size {
            return Err(Error::invalid(format!(
                "min_idle {} exceeds max_size {}",
                self.min_idle, self.max_size
            )));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("checkout_timeout", self.checkout_timeout),
            ("health_check_interval", self.health_check_interval),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(Error::invalid(format!(
                    "{name} must be between 1 ms and 1 h, got {d:?}"
                )));
            }
        }
        Ok(())
    }
}

/// `url` with any password replaced by `***`: the `user:password@` part and, for `unix://`
/// URLs, the `pass=` / `password=` query parameters. Unparsable input is hidden whole.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable redis url>".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let secret = |k: &str| k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password");
    if parsed.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// State shared between the pool and its connection manager.
struct Shared {
    /// Connections opened before this epoch are considered dead.
    epoch: AtomicU64,
    /// Bumped on every failed connect, so waiting checkouts fail fast.
    connect_failures: watch::Sender<u64>,
    last_connect_error: Mutex<Option<Error>>,
    /// Set by `close`: no new connections, every returned one is dropped.
    closed: AtomicBool,
    /// Connects under way right now (tells a slow connect from a busy pool).
    connecting: AtomicUsize,
}

/// One pooled connection and what the pool knows about it.
pub struct PooledRedis {
    conn: MultiplexedConnection,
    epoch: u64,
    broken: bool,
    used: bool,
    /// When it was opened: one opened before a checkout began sat idle and may have died.
    opened_at: Instant,
}

/// bb8 manager: opens multiplexed connections with our timeouts and TCP settings.
pub struct RedisConnectionManager {
    client: Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    url: String,
    shared: Arc<Shared>,
}

impl RedisConnectionManager {
    fn record_connect_failure(&self, err: Error) -> Error {
        if let Ok(mut last) = self.shared.last_connect_error.lock() {
            *last = Some(err.clone());
        }
        self.shared.connect_failures.send_modify(|n| *n = n.wrapping_add(1));
        err
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
            tokio::time::timeout(
                self.connect_timeout,
                self.client.get_multiplexed_async_connection_with_config(&self.config),
            )
            .await
        };
        match opened {
            Ok(Ok(conn)) => Ok(PooledRedis {
                conn,
                epoch,
                broken: false,
                used: false,
                opened_at: Instant::now(),
            }),
            Ok(Err(e)) => {
                let err = Error::from_redis(e, &self.url, "connect", self.connect_timeout);
                Err(self.record_connect_failure(err))
            }
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
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request the pool may send twice: on a connection that turns out dead it is retried once.
#[derive(Clone, Copy)]
pub enum Request<'a> {
    Cmd(&'a Cmd),
    Pipeline(&'a Pipeline),
    /// Several pipelines sent back to back on one connection without waiting between them,
    /// so the server works on one while the next is encoded and the last one's replies are
    /// parsed. The replies, in order, form one array (as if it were one pipeline).
    Pipelines(&'a [Pipeline]),
}

/// Counts of the pool's connections at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    pub connections: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Callers currently waiting for a connection.
    pub waiting: usize,
}

/// Result of [`RedisPool::health`]: a live probe plus the pool's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub reachable: bool,
    /// PING round trip, when reachable.
    pub rtt: Option<Duration>,
    pub redis_version: Option<String>,
    /// Why the probe failed, when it did.
    pub error: Option<String>,
    pub counts: PoolCounts,
}

struct PoolInner {
    /// Unique in this process, never reused.
    id: u64,
    pool: bb8::Pool<RedisConnectionManager>,
    shared: Arc<Shared>,
    config: PoolConfig,
    redacted_url: String,
    metrics: Metrics,
    waiting: AtomicUsize,
    redis_version: Mutex<String>,
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
            .field("url", &self.inner.redacted_url)
            .field("max_size", &self.inner.config.max_size)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Send `pipes` on clones of one multiplexed connection (same socket, so in order), all in
/// flight at once; join their reply arrays into one and convert it.
pub(crate) async fn query_pipelines<T: FromRedisValue>(
    conn: &MultiplexedConnection,
    pipes: &[Pipeline],
) -> redis::RedisResult<T> {
    let replies = futures_util::future::try_join_all(pipes.iter().map(|pipe| {
        let mut conn = conn.clone();
        async move { pipe.query_async::<Value>(&mut conn).await }
    }))
    .await?;
    let joined = replies
        .into_iter()
        .flat_map(|reply| match reply {
            Value::Array(items) => items,
            other => vec![other],
        })
        .collect();
    Ok(T::from_redis_value(Value::Array(joined))?)
}

/// A redis-rs client for `url` with our TCP settings, and the URL with its password hidden.
pub(crate) fn client_for(url: &str) -> Result<(Client, String)> {
    install_tls_provider();
    let redacted_url = redact_url(url);
    let mut info = url
        .into_connection_info()
        .map_err(|e| Error::invalid(format!("bad Redis URL {redacted_url}: {}", e.category())))?;
    let mut keepalive = TcpKeepalive::new().with_time(Duration::from_secs(10));
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        keepalive = keepalive.with_interval(Duration::from_secs(5));
    }
    // Nagle's algorithm would hold small requests back for up to 40 ms.
    info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true).set_keepalive(keepalive));
    let client = Client::open(info).map_err(|e| Error::invalid(format!("bad Redis URL {redacted_url}: {e}")))?;
    Ok((client, redacted_url))
}

/// `Err(UnsupportedServer)` unless the `INFO server` text shows Redis ≥ 6.2.
pub(crate) fn check_server_version(info: &str, redacted_url: &str) -> Result<String> {
    let version = parse_redis_version(info).unwrap_or_default();
    if !version_at_least(&version, MIN_REDIS_VERSION) {
        return Err(Error::UnsupportedServer {
            url: redacted_url.to_owned(),
            found: if version.is_empty() {
                "of unknown version".into()
            } else {
                version
            },
            required: MIN_REDIS_VERSION_TEXT,
        });
    }
    Ok(version)
}

impl RedisPool {
    /// Open a pool: connect once (so a bad URL, password or server fails here, within
    /// `connect_timeout`), check the server is Redis ≥ 6.2, and start the health task.
    /// Must be called inside a tokio runtime, which then runs the health task.
    pub async fn connect(config: PoolConfig) -> Result<RedisPool> {
        config.validate()?;
        let (client, redacted_url) = client_for(&config.url)?;
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            connect_failures: watch::channel(0).0,
            last_connect_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            connecting: AtomicUsize::new(0),
        });
        let manager = RedisConnectionManager {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            connect_timeout: config.connect_timeout,
            url: redacted_url.clone(),
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

        // The first connection is made directly so its error (refused, TLS, auth) reaches us.
        let mut first = pool.dedicated_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut first.conn)
            .await
            .map_err(|e| Error::from_redis(e, &redacted_url, "connect", config.connect_timeout))?;
        let version = check_server_version(&info, &redacted_url)?;
        let _ = pool.add(first);

        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inner = Arc::new(PoolInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pool,
            shared,
            metrics: Metrics::new(config.slow_threshold),
            redacted_url,
            waiting: AtomicUsize::new(0),
            redis_version: Mutex::new(version),
            health_task: Mutex::new(None),
            config,
        });
        let task = tokio::spawn(health_loop(Arc::downgrade(&inner), inner.config.health_check_interval));
        *inner.health_task.lock().expect("fresh mutex") = Some(task);
        Ok(RedisPool { inner })
    }

    /// A number unique to this pool in this process (never reused, unlike an address).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    /// The configuration the pool was opened with (holds the password: do not log it).
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Latency histograms of every operation sent through this pool.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Version reported by the server at connect (refreshed by [`RedisPool::health`]).
    pub fn redis_version(&self) -> String {
        self.inner.redis_version.lock().map(|v| v.clone()).unwrap_or_default()
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

    /// PING and INFO the server, and report the pool's counters. Never fails: an unreachable
    /// server is `reachable: false` with the reason in `error`.
    pub async fn health(&self) -> Health {
        let started = Instant::now();
        let ping = self
            .execute::<String>(Operation::Ping, Request::Cmd(&redis::cmd("PING")))
            .await;
        let rtt = started.elapsed();
        let result = match ping {
            Ok(_) => {
                let mut info = redis::cmd("INFO");
                info.arg("server");
                self.execute::<String>(Operation::Ping, Request::Cmd(&info)).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(info) => {
                let version = parse_redis_version(&info);
                if let (Some(v), Ok(mut slot)) = (&version, self.inner.redis_version.lock()) {
                    slot.clone_from(v);
                }
                Health {
                    reachable: true,
                    rtt: Some(rtt),
                    redis_version: version,
                    error: None,
                    counts: self.counts(),
                }
            }
            Err(e) => Health {
                reachable: false,
                rtt: None,
                redis_version: None,
                error: Some(e.to_string()),
                counts: self.counts(),
            },
        }
    }

    /// `INFO <section>` as key/value pairs (e.g. `memory` → `maxmemory_policy`).
    pub async fn info(&self, section: &str) -> Result<std::collections::HashMap<String, String>> {
        if section.is_empty() || !section.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::invalid(format!("INFO section {section:?} is not a word")));
        }
        let mut cmd = redis::cmd("INFO");
        cmd.arg(section);
        let text: String = self.execute(Operation::Ping, Request::Cmd(&cmd)).await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// Send an idempotent request and convert its reply, recording latency under `op`.
    ///
    /// A connection that fails at the I/O level is replaced; if it had served earlier calls
    /// (so the failure is likely a restart, not this request) the request is sent once more on
    /// a fresh connection. Requests must be safe to repeat: GET, MGET, SET … PX are; an XADD
    /// may then be written twice, which at-least-once delivery allows and never loses an event.
    pub async fn execute<T: FromRedisValue>(&self, op: Operation, request: Request<'_>) -> Result<T> {
        let started = Instant::now();
        let result = self.execute_with_retry(request).await;
        self.inner.metrics.record(op, started.elapsed(), result.is_ok());
        if let Err(e) = &result {
            self.inner.metrics.record_error(e);
        }
        result
    }

    async fn execute_with_retry<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let asked = Instant::now();
            let mut conn = self.checkout().await?;
            // Served calls before, or waited idle (e.g. opened by `min_idle`): either may
            // have died with a server restart, so a dropped connection earns one retry.
            let reused = conn.used || conn.opened_at < asked;
            conn.used = true;
            let reply = match request {
                Request::Cmd(cmd) => cmd.query_async::<T>(&mut conn.conn).await,
                Request::Pipeline(pipe) => pipe.query_async::<T>(&mut conn.conn).await,
                Request::Pipelines(pipes) => query_pipelines::<T>(&conn.conn, pipes).await,
            };
            let err = match reply {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let dropped = err.is_connection_dropped() || err.kind() == redis::ErrorKind::Parse;
            if err.is_io_error() || dropped {
                conn.broken = true;
            }
            if dropped {
                // The socket is gone: so, most likely, are its siblings (server restart).
                self.inner.shared.epoch.fetch_add(1, Ordering::AcqRel);
            }
            let mapped = Error::from_redis(
                err,
                &self.inner.redacted_url,
                "response",
                self.inner.config.response_timeout,
            );
            if dropped && reused && attempt == 1 && !self.is_closed() {
                continue;
            }
            return Err(mapped);
        }
    }

    /// A connection of its own, outside the pool, for blocking commands (`XREAD BLOCK`): it
    /// never holds up pooled calls, and its response timeout is `block + response_timeout` so
    /// a long block is not mistaken for a dead server.
    pub async fn blocking_connection(&self, block: Duration) -> Result<BlockingConnection> {
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let mut conn = self.inner.pool.dedicated_connection().await.inspect_err(|e| {
            self.inner.metrics.record_error(e);
        })?;
        let response_timeout = block + self.inner.config.response_timeout;
        conn.conn.set_response_timeout(response_timeout);
        Ok(BlockingConnection {
            conn: conn.conn,
            pool: self.clone(),
            response_timeout,
            broken: false,
        })
    }

    /// Take a connection, failing fast with the connect error during an outage.
    async fn checkout(&self) -> Result<PooledConnection<'_, RedisConnectionManager>> {
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let started = Instant::now();
        let result = {
            let _waiting = Counted::new(&self.inner.waiting); // also undone if cancelled
            self.checkout_inner().await
        };
        self.inner
            .metrics
            .record(Operation::Checkout, started.elapsed(), result.is_ok());
        result
    }

    async fn checkout_inner(&self) -> Result<PooledConnection<'_, RedisConnectionManager>> {
        let mut failures = self.inner.shared.connect_failures.subscribe();
        failures.mark_unchanged();
        loop {
            let got = tokio::select! {
                biased;
                got = self.inner.pool.get() => got,
                _ = failures.changed() => return Err(self.last_connect_error()),
            };
            match got {
                Ok(mut conn) => {
                    if conn.epoch < self.inner.shared.epoch.load(Ordering::Acquire) {
                        conn.broken = true; // stale: discarded on drop, try the next one
                        continue;
                    }
                    return Ok(conn);
                }
                Err(RunError::User(e)) => return Err(e),
                Err(RunError::TimedOut) => {
                    let counts = self.counts();
                    if self.inner.shared.connecting.load(Ordering::Acquire) > 0 && counts.idle == 0 {
                        // A connection was being opened for us and took too long.
                        return Err(Error::Timeout {
                            operation: "connect",
                            timeout: self.inner.config.checkout_timeout,
                        });
                    }
                    return Err(Error::PoolExhausted {
                        timeout: self.inner.config.checkout_timeout,
                        max_size: self.inner.config.max_size,
                        waiting: counts.waiting,
                    });
                }
            }
        }
    }

    fn last_connect_error(&self) -> Error {
        self.inner
            .shared
            .last_connect_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| Error::Connection {
                url: self.inner.redacted_url.clone(),
                message: "connect failed".into(),
            })
    }
}

/// A dedicated connection for blocking reads; see [`RedisPool::blocking_connection`].
pub struct BlockingConnection {
    conn: MultiplexedConnection,
    pool: RedisPool,
    response_timeout: Duration,
    broken: bool,
}

impl BlockingConnection {
    /// Send a request (no retry: the caller reopens a broken connection) and record it as `op`.
    pub async fn execute<T: FromRedisValue>(&mut self, op: Operation, request: Request<'_>) -> Result<T> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        let started = Instant::now();
        let reply = match request {
            Request::Cmd(cmd) => cmd.query_async::<T>(&mut self.conn).await,
            Request::Pipeline(pipe) => pipe.query_async::<T>(&mut self.conn).await,
            Request::Pipelines(pipes) => query_pipelines::<T>(&self.conn, pipes).await,
        };
        let result = reply.map_err(|err| {
            if err.is_io_error() || err.is_connection_dropped() || err.kind() == redis::ErrorKind::Parse {
                self.broken = true;
            }
            Error::from_redis(
                err,
                self.pool.redacted_url(),
                "blocking response",
                self.response_timeout,
            )
        });
        self.pool.metrics().record(op, started.elapsed(), result.is_ok());
        if let Err(e) = &result {
            self.pool.metrics().record_error(e);
        }
        result
    }

    /// True once an I/O error was seen: open a new one.
    pub fn is_broken(&self) -> bool {
        self.broken || self.pool.is_closed()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if let Some(task) = self.health_task.get_mut().ok().and_then(|t| t.take()) {
            task.abort();
        }
    }
}

/// PING one pooled connection per tick; failures mark and replace connections via `execute`.
async fn health_loop(pool: Weak<PoolInner>, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        let pool = RedisPool { inner };
        if pool.is_closed() {
            return;
        }
        let _ = pool
            .execute::<String>(Operation::Ping, Request::Cmd(&redis::cmd("PING")))
            .await;
    }
}

/// rustls needs a process-wide crypto provider before the first `rediss://` connect. If the
/// application already installed one, that one stays.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `redis_version:7.0.15` from an `INFO server` reply.
pub fn parse_redis_version(info: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

/// True when `version` ("7.0.15") is at least `min` (major, minor).
pub fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://alice:s3cret@host:6380/1"),
            "redis://alice:***@host:6380/1"
        );
        assert_eq!(redact_url("rediss://:s3cret@host"), "rediss://:***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert!(!redact_url("redis://a:s3cret@[bad").contains("s3cret"));
        assert_eq!(
            redact_url("unix:///tmp/r.sock?user=alice&pass=s3cret"),
            "unix:///tmp/r.sock?user=alice&pass=***"
        );
        assert!(!redact_url("unix:///tmp/r.sock?db=1&PASSWORD=s3cret").contains("s3cret"));
    }

    #[test]
    fn versions_compare_by_major_minor() {
        assert!(version_at_least("7.0.15", (6, 2)));
        assert!(version_at_least("6.2.0", (6, 2)));
        assert!(!version_at_least("6.0.16", (6, 2)));
        assert!(!version_at_least("garbage", (6, 2)));
        assert_eq!(
            parse_redis_version("# Server\r\nredis_version:7.0.15\r\nx:y\r\n").as_deref(),
            Some("7.0.15")
        );
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        let c = PoolConfig {
            response_timeout: Duration::ZERO,
            ..PoolConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::InvalidInput(_))));
    }
}
