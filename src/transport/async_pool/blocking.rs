//! [`BlockingConnection`]: a connection of its own, outside the pool, for blocking reads
//! (`XREAD BLOCK`, `XREADGROUP BLOCK`), so a long block never holds up pooled calls.

use std::time::{Duration, Instant};

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisResult, Value};

use super::{Backend, RedisPool};
use crate::error::{Error, Result};
use crate::metrics::Operation;
use crate::transport::handshake::Handshake;
use crate::transport::retry::{Attempts, Failure};
use crate::transport::sentinel::check_primary;
use crate::transport::{cluster, Request};

/// The socket(s) of a [`BlockingConnection`].
enum Link {
    /// One server (or the primary the sentinels named).
    Single(MultiplexedConnection),
    /// A cluster client of its own, whose response timeout covers the block.
    Cluster(ClusterConnection),
}

impl Link {
    async fn send<T: FromRedisValue>(&mut self, request: Request<'_>) -> RedisResult<T> {
        match self {
            Link::Single(conn) => request.send(conn).await,
            Link::Cluster(conn) => cluster::send(request, conn).await,
        }
    }
}

/// A dedicated connection for blocking reads; see [`RedisPool::blocking_connection`].
pub struct BlockingConnection {
    conn: Link,
    pool: RedisPool,
    response_timeout: Duration,
    broken: bool,
    /// What the latest failed request said about the connection.
    last_failure: Option<Failure>,
}

impl RedisPool {
    /// A connection of its own, outside the pool, for blocking commands (`XREAD BLOCK`): it
    /// never holds up pooled calls, and its response timeout is `block + response_timeout` so
    /// a long block is not mistaken for a dead server.
    pub async fn blocking_connection(&self, block: Duration) -> Result<BlockingConnection> {
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let response_timeout = block + self.inner.config.response_timeout;
        let conn = match &self.inner.backend {
            Backend::Cluster(link) => {
                let opened = cluster::connect(link.spec(), &self.inner.config, response_timeout).await;
                Link::Cluster(opened.inspect_err(|e| self.inner.metrics.record_error(e))?)
            }
            Backend::Pooled(pool) => {
                let mut conn = pool.dedicated_connection().await.inspect_err(|e| {
                    self.inner.metrics.record_error(e);
                })?;
                conn.conn.set_response_timeout(response_timeout);
                Link::Single(conn.conn)
            }
        };
        Ok(BlockingConnection {
            conn,
            pool: self.clone(),
            response_timeout,
            broken: false,
            last_failure: None,
        })
    }

    /// Like [`RedisPool::blocking_connection`], but the connection names itself `client_name`
    /// (`CLIENT SETNAME`), so `CLIENT LIST` tells a long-lived reader (e.g. `solcache-tail`)
    /// from the pool's connections. Opened within `connect_timeout`, with the same handshake.
    /// (On a cluster, whose client opens its node connections itself, it stays unnamed.)
    pub async fn named_blocking_connection(&self, block: Duration, client_name: &str) -> Result<BlockingConnection> {
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        if let Backend::Cluster(..) = &self.inner.backend {
            return self.blocking_connection(block).await;
        }
        let config = &self.inner.config;
        let response_timeout = block + config.response_timeout;
        let url = self.redacted_url();
        let failed = |e| Error::from_redis(e, url, "connect", config.connect_timeout);
        let open = async {
            let endpoint = match (&self.inner.endpoint, &self.inner.resolver) {
                (Some(endpoint), _) => endpoint.clone(),
                (None, Some(resolver)) => Arc::new(resolver.primary(&resolver.resolve().await?)),
                (None, None) => return Err(Error::invalid("no server to connect to")),
            };
            let client = endpoint.client()?;
            let settings = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.connect_timeout));
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&settings)
                .await
                .map_err(failed)?;
            Handshake::new(&endpoint, client_name).run(&mut conn, failed).await?;
            if self.inner.resolver.is_some() {
                let role: Value = redis::cmd("ROLE").query_async(&mut conn).await.map_err(failed)?;
                check_primary(&role, url)?;
            }
            Ok::<_, Error>(conn)
        };
        let opened = match tokio::time::timeout(config.connect_timeout, open).await {
            Ok(opened) => opened,
            Err(_) => Err(Error::Timeout {
                operation: "connect",
                timeout: config.connect_timeout,
            }),
        };
        let mut conn = opened.inspect_err(|e| self.inner.metrics.record_error(e))?;
        conn.set_response_timeout(response_timeout);
        Ok(BlockingConnection {
            conn: Link::Single(conn),
            pool: self.clone(),
            response_timeout,
            broken: false,
            last_failure: None,
        })
    }
}

impl BlockingConnection {
    /// Send a request (no retry: the caller reopens a broken connection) and record it as `op`.
    pub async fn execute<T: FromRedisValue>(&mut self, op: Operation, request: Request<'_>) -> Result<T> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        self.last_failure = None;
        let started = Instant::now();
        let result = self.conn.send(request).await.map_err(|err| {
            let failure = Failure::of(&err);
            self.last_failure = Some(failure);
            self.broken |= failure.breaks_connection();
            if Attempts::drops_siblings(failure) {
                self.pool.drop_connections();
            }
            Error::from_redis(
                err,
                self.pool.redacted_url(),
                "blocking response",
                self.response_timeout,
            )
        });
        self.pool.metrics().record_outcome(op, started.elapsed(), &result);
        result
    }

    /// What the latest failed request said about the connection (for the [retry
    /// policy](crate::transport::retry)); None if none failed.
    pub fn last_failure(&self) -> Option<Failure> {
        self.last_failure
    }

    /// True once an I/O error was seen: open a new one.
    pub fn is_broken(&self) -> bool {
        self.broken || self.pool.is_closed()
    }
}
