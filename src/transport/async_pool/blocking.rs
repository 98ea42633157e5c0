//! [`BlockingConnection`]: a connection of its own, outside the pool, for blocking reads
//! (`XREAD BLOCK`, `XREADGROUP BLOCK`), so a long block never holds up pooled calls.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::FromRedisValue;

use super::RedisPool;
use crate::error::{Error, Result};
use crate::metrics::Operation;
use crate::transport::retry::Failure;
use crate::transport::Request;

/// A dedicated connection for blocking reads; see [`RedisPool::blocking_connection`].
pub struct BlockingConnection {
    conn: MultiplexedConnection,
    pool: RedisPool,
    response_timeout: Duration,
    broken: bool,
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
        })
    }
}

impl BlockingConnection {
    /// Send a request (no retry: the caller reopens a broken connection) and record it as `op`.
    pub async fn execute<T: FromRedisValue>(&mut self, op: Operation, request: Request<'_>) -> Result<T> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        let started = Instant::now();
        let result = request.send(&mut self.conn).await.map_err(|err| {
            self.broken |= Failure::of(&err).breaks_connection();
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

    /// True once an I/O error was seen: open a new one.
    pub fn is_broken(&self) -> bool {
        self.broken || self.pool.is_closed()
    }
}
