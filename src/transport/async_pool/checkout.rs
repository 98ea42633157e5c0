//! Taking a connection from the pool: bounded by `checkout_timeout`, failing fast with the
//! real connect error during an outage, skipping connections a dropped sibling made stale.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bb8::{PooledConnection, RunError};

use super::manager::{Counted, RedisConnectionManager};
use super::{Backend, RedisPool};
use crate::error::{Error, Result};
use crate::metrics::Operation;

impl RedisPool {
    /// Take a connection, failing fast with the connect error during an outage.
    pub(super) async fn checkout(&self) -> Result<PooledConnection<'_, RedisConnectionManager>> {
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
        let pool = self.bb8()?;
        let mut failures = self.inner.shared.connect_failures.subscribe();
        failures.mark_unchanged();
        loop {
            let got = tokio::select! {
                biased;
                got = pool.get() => got,
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

    /// The bb8 pool; a cluster has none (its client is never checked out).
    pub(super) fn bb8(&self) -> Result<&bb8::Pool<RedisConnectionManager>> {
        match &self.inner.backend {
            Backend::Pooled(pool) => Ok(pool),
            Backend::Cluster(_) => Err(Error::invalid("a cluster has no connection to check out")),
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
                url: self.redacted_url().to_owned(),
                message: "connect failed".into(),
            })
    }
}
