//! [`PoolConfig`]: the URL, the sizes and every timeout a transport works with. Every
//! transport (async pool, blocking pool, direct connections) reads the same settings.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::keys::KeyLayout;

/// Default [`PoolConfig::read_spin`]: a bit above a local round trip (25–60 µs).
pub const DEFAULT_READ_SPIN: Duration = Duration::from_micros(100);
/// Longest [`PoolConfig::read_spin`]: polling holds the calling thread.
pub const MAX_READ_SPIN: Duration = Duration::from_millis(1);

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
    /// Limit on opening one connection, TCP + TLS + handshake (default 1 s).
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
    /// Cache reads (`get`, `get_many`) on a direct socket beside each pooled connection,
    /// driven by the caller's own thread or task (default on; TLS endpoints never). Off: they
    /// go through the pooled connection like every other call.
    pub direct_reads: bool,
    /// After writing a cache read, poll its socket for the reply this long before sleeping
    /// (default 100 µs, at most 1 ms; zero: never). Polling holds the calling thread; it is
    /// skipped while other reads of the pool are in flight and stops by itself when replies
    /// take longer than this (a remote server).
    pub read_spin: Duration,
    /// How the caches over this pool name their keys (default [`KeyLayout::Spread`]:
    /// `price:<token>`; [`KeyLayout::Tagged`]: one Cluster hash tag per family). Every process
    /// sharing the data must use the same layout.
    pub key_layout: KeyLayout,
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
            direct_reads: true,
            read_spin: DEFAULT_READ_SPIN,
            key_layout: KeyLayout::Spread,
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

    /// `Err(InvalidInput)` for an empty pool, `min_idle > max_size`, or a timeout outside
    /// 1 ms ..= 1 h.
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
        if self.read_spin > MAX_READ_SPIN {
            return Err(Error::invalid(format!(
                "read_spin must be at most 1 ms (it holds the calling thread), got {:?}",
                self.read_spin
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_are_rejected() {
        let c = PoolConfig {
            response_timeout: Duration::ZERO,
            ..PoolConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::InvalidInput(_))));
    }
}
