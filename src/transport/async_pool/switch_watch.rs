//! Sentinel topologies: background tasks, one per sentinel, that keep a subscription and
//! drop every pooled connection the moment a sentinel announces that another server is the
//! primary (`+switch-master`), so no call waits for the next sentinel poll (`health.rs`) to
//! stop using the demoted one. When the leading sentinel names the replica it is promoting
//! (`+failover-state-wait-promotion`), the connections are dropped too and new ones try that
//! replica first (see `manager.rs`); only the sentinel leading the failover announces that,
//! hence a subscription on each. A lost subscription is opened again under the shared
//! [`Backoff`]; the tasks end with the pool.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::{PoolInner, RedisPool};
use crate::backoff::Backoff;
use crate::transport::sentinel::{PrimaryAddr, SentinelResolver, PROMOTION_CHANNEL};

/// First and longest wait before subscribing again after a failure.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Subscribe to sentinel `index`, follow its announcements, resubscribe after failures;
/// returns once the pool is closed or dropped.
pub(super) async fn switch_watch(pool: Weak<PoolInner>, resolver: Arc<SentinelResolver>, index: usize) {
    let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX).expect("constant shape");
    loop {
        if pool.upgrade().is_none_or(|inner| RedisPool { inner }.is_closed()) {
            return;
        }
        match resolver.subscribe_switches(index).await {
            Ok(pubsub) => {
                backoff.reset();
                if let Some(inner) = pool.upgrade() {
                    inner.shared.switch_watches_up.fetch_add(1, Ordering::Relaxed);
                }
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(inner) = pool.upgrade() else { return };
                    let payload: String = message.get_payload().unwrap_or_default();
                    let pool = RedisPool { inner };
                    if message.get_channel_name() == PROMOTION_CHANNEL {
                        if let Some(replica) = resolver.promoting(&payload) {
                            pool.follow_promotion(replica);
                        }
                    } else if let Some(primary) = resolver.switched_to(&payload) {
                        pool.follow_switch(&primary);
                    }
                }
                // The sentinel closed the connection (it died or restarted).
                if let Some(inner) = pool.upgrade() {
                    inner.shared.switch_watches_up.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                log::info!(target: "solcache::pool", "{}: {e}", resolver.redacted_url());
            }
        }
        if let Some(inner) = pool.upgrade() {
            inner.shared.switch_watch_errors.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

impl RedisPool {
    /// A sentinel announced `primary`: drop every connection unless the latest connect
    /// already reached it (new connections ask the sentinels, which name it now).
    fn follow_switch(&self, primary: &PrimaryAddr) {
        let shared = &self.inner.shared;
        if let Ok(mut announced) = shared.announced.lock() {
            if announced.as_ref() == Some(primary) {
                return; // another sentinel's announcement of the same switch
            }
            *announced = Some(primary.clone());
        }
        shared.switches_seen.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut candidate) = shared.candidate.lock() {
            *candidate = None; // the sentinels name the new primary now
        }
        let reached = shared.primary.lock().ok().and_then(|p| p.clone());
        if reached.as_ref() != Some(primary) {
            log::warn!(
                target: "solcache::pool",
                "{}: a sentinel announced {}:{} as primary; reconnecting",
                self.redacted_url(),
                primary.0,
                primary.1
            );
            self.drop_connections();
        }
    }

    /// The leading sentinel is promoting `replica`: new connections try it first (taken once
    /// its `ROLE` says primary), and the ones to the old primary are dropped.
    fn follow_promotion(&self, replica: PrimaryAddr) {
        let shared = &self.inner.shared;
        log::warn!(
            target: "solcache::pool",
            "{}: a sentinel is promoting {}:{}; reconnecting",
            self.redacted_url(),
            replica.0,
            replica.1
        );
        if let Ok(mut candidate) = shared.candidate.lock() {
            *candidate = Some(replica);
        }
        self.drop_connections();
    }
}
