//! [`BlockingConnection`]: a connection of its own, outside the pool, for blocking reads
//! (`XREAD BLOCK`, `XREADGROUP BLOCK`), so a long block never holds up pooled calls.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue};

use super::RedisPool;
use crate::error::{Error, Result};
use crate::metrics::Operation;
use crate::transport::handshake::Handshake;
use crate::transport::retry::Failure;
use crate::transport::Request;

/// A dedicated connection for blocking reads; see [`RedisPool::blocking_connection`].
pub struct BlockingConnection {
    conn: MultiplexedConnection,
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
            last_failure: None,
        })
    }

    /// Like [`RedisPool::blocking_connection`], but the connection names itself `client_name`
    /// (`CLIENT SETNAME`), so `CLIENT LIST` tells a long-lived reader (e.g. `solcache-tail`)
    /// from the pool's connections. Opened within `connect_timeout`, with the same handshake.
    pub async fn named_blocking_connection(&self, block: Duration, client_name: &str) -> Result<BlockingConnection> {
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let config = &self.inner.config;
        let response_timeout = block + config.response_timeout;
        let url = self.redacted_url();
        let failed = |e| Error::from_redis(e, url, "connect", config.connect_timeout);
        let open = async {
            let client = self.inner.endpoint.client()?;
            let settings = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.connect_timeout));
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&settings)
                .await
                .map_err(failed)?;
            Handshake::new(&self.inner.endpoint, client_name)
                .run(&mut conn, failed)
                .await?;
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
            conn,
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
        let result = request.send(&mut self.conn).await.map_err(|err| {
            let failure = Failure::of(&err);
            self.last_failure = Some(failure);
            self.broken |= failure.breaks_connection();
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
