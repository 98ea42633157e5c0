//! Health: the live probe behind [`RedisPool::health`] and [`RedisPool::info`], and the
//! background task that PINGs one pooled connection per `health_check_interval`, so dead
//! connections are found and replaced between calls, not by them.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::{PoolCounts, PoolInner, RedisPool};
use redis::Value;

use crate::error::{Error, Result};
use crate::metrics::Operation;
use crate::transport::handshake::parse_redis_version;
use crate::transport::Request;

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
    /// `"standalone"`, `"cluster"` or `"sentinel"`.
    pub topology: &'static str,
    /// Sentinel: the primary the pool's latest connection reached (`host:port`).
    pub primary: Option<String>,
    /// Failovers the pool followed so far: on Sentinel, the sentinels naming another primary;
    /// on a cluster, fresh clients opened after failures (slot map read again). 0 otherwise.
    pub failovers_followed: u64,
    /// Sentinel: [`RedisPool::switches_seen`]; 0 otherwise.
    pub switches_seen: u64,
    /// Sentinel: [`RedisPool::promotions_taken`]; 0 otherwise.
    pub promotions_taken: u64,
    /// Sentinel: [`RedisPool::switch_watches_up`]; 0 otherwise.
    pub switch_watches_up: u64,
    /// Sentinel: [`RedisPool::switch_watch_errors`]; 0 otherwise.
    pub switch_watch_errors: u64,
}

impl RedisPool {
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
                self.execute::<Value>(Operation::Ping, Request::Cmd(&info))
                    .await
                    .and_then(first_info_text)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(info) => {
                let version = parse_redis_version(&info);
                if let (Some(v), Ok(mut slot)) = (&version, self.inner.shared.redis_version.lock()) {
                    slot.clone_from(v);
                }
                Health {
                    reachable: true,
                    rtt: Some(rtt),
                    redis_version: version,
                    error: None,
                    counts: self.counts(),
                    topology: self.topology(),
                    primary: self.primary(),
                    failovers_followed: self.failovers_followed(),
                    switches_seen: self.switches_seen(),
                    promotions_taken: self.promotions_taken(),
                    switch_watches_up: self.switch_watches_up(),
                    switch_watch_errors: self.switch_watch_errors(),
                }
            }
            Err(e) => Health {
                reachable: false,
                rtt: None,
                redis_version: None,
                error: Some(e.to_string()),
                counts: self.counts(),
                topology: self.topology(),
                primary: self.primary(),
                failovers_followed: self.failovers_followed(),
                switches_seen: self.switches_seen(),
                promotions_taken: self.promotions_taken(),
                switch_watches_up: self.switch_watches_up(),
                switch_watch_errors: self.switch_watch_errors(),
            },
        }
    }

    /// `INFO <section>` as key/value pairs (e.g. `memory` → `maxmemory_policy`); on a cluster,
    /// one primary's.
    pub async fn info(&self, section: &str) -> Result<HashMap<String, String>> {
        if section.is_empty() || !section.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::invalid(format!("INFO section {section:?} is not a word")));
        }
        let mut cmd = redis::cmd("INFO");
        cmd.arg(section);
        let text = first_info_text(self.execute(Operation::Ping, Request::Cmd(&cmd)).await?)?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }
}

/// The text of an `INFO` reply: one server's, or every primary's on a cluster (a map by node).
pub(super) fn info_texts(reply: Value) -> Result<Vec<String>> {
    let text = |v: Value| match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Value::VerbatimString { text, .. } => Ok(text),
        other => Err(Error::unexpected_reply(format!("INFO answered {other:?}"))),
    };
    match reply {
        Value::Map(nodes) => nodes.into_iter().map(|(_, v)| text(v)).collect(),
        other => Ok(vec![text(other)?]),
    }
}

fn first_info_text(reply: Value) -> Result<String> {
    info_texts(reply)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::unexpected_reply("INFO answered nothing"))
}

/// PING one pooled connection per tick; failures mark and replace connections via `execute`.
pub(super) async fn health_loop(pool: Weak<PoolInner>, interval: Duration) {
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
        pool.follow_sentinels().await;
    }
}

impl RedisPool {
    /// Sentinel topologies: ask the sentinels where the primary is, and drop every connection
    /// when they name another one than the latest connect reached (a failover: reads would
    /// otherwise keep going to the demoted primary, which answers them as a replica).
    async fn follow_sentinels(&self) {
        let Some(resolver) = &self.inner.resolver else { return };
        let Ok(named) = resolver.resolve().await else { return };
        let reached = self.inner.shared.primary.lock().ok().and_then(|p| p.clone());
        let promoting = self.inner.shared.candidate.lock().ok().and_then(|c| c.clone());
        // While a sentinel promotes a replica, connections go there before the sentinels name it.
        if reached.is_some_and(|r| r != named && promoting.as_ref() != Some(&r)) {
            log::warn!(
                target: "solcache::pool",
                "{}: the sentinels name {}:{} as primary now; reconnecting",
                self.redacted_url(),
                named.0,
                named.1
            );
            self.drop_connections();
        }
    }
}
