//! Finding the primary of a Sentinel-managed Redis: [`SentinelResolver`] asks the sentinels
//! (`SENTINEL get-master-addr-by-name`), in turn, starting with the one that answered last.
//!
//! redis-rs resolves only when a connection is created; following a failover is ours:
//! - every new pooled connection asks the sentinels first, then checks with `ROLE` that the
//!   server it reached is a primary (a sentinel may still name a demoted one);
//! - a `READONLY` reply means the connection reached a demoted primary: the pool drops every
//!   connection opened before it and sends the request once more (see [`super::retry`]);
//! - the async pool's health task asks the sentinels every `health_check_interval` and drops
//!   every connection when they name another primary, so reads stop going to a demoted one;
//! - the async pool also keeps a subscription on every sentinel (see
//!   [`SentinelResolver::subscribe_switches`]) and drops every connection the moment a
//!   sentinel announces the switch (`+switch-master`); the poll above is the fallback when no
//!   sentinel is subscribed;
//! - on the same subscription, `+failover-state-wait-promotion` names the replica the leading
//!   sentinel just told to become primary. The sentinels name it only once their next `INFO`
//!   to it (every second during a failover) shows the promotion, so until then new
//!   connections try that replica first and take it when its `ROLE` says primary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, Client, RedisConnectionInfo, Value};

use super::endpoint::{Credentials, Endpoint};
use super::topology::{SentinelSpec, Tls};
use crate::error::{Error, Result};

/// Asks the sentinels of one [`SentinelSpec`] where its primary is.
pub struct SentinelResolver {
    spec: SentinelSpec,
    timeout: Duration,
    /// The sentinel that answered last: asked first next time.
    preferred: AtomicUsize,
}

/// The channel a sentinel announces a finished failover on.
pub const SWITCH_CHANNEL: &str = "+switch-master";
/// The channel the leading sentinel names the replica it is promoting on.
pub const PROMOTION_CHANNEL: &str = "+failover-state-wait-promotion";

/// Where the primary is, as the sentinels said.
pub type PrimaryAddr = (String, u16);

impl SentinelResolver {
    /// A resolver that gives each sentinel `timeout` to connect and answer.
    pub fn new(spec: SentinelSpec, timeout: Duration) -> Self {
        SentinelResolver {
            spec,
            timeout,
            preferred: AtomicUsize::new(0),
        }
    }

    /// The name the sentinels monitor the primary under.
    pub fn master_name(&self) -> &str {
        &self.spec.master_name
    }

    /// How many sentinels there are (indexes for [`SentinelResolver::subscribe_switches`]).
    pub fn sentinel_count(&self) -> usize {
        self.spec.sentinels.len()
    }

    /// A `SUBSCRIBE +switch-master +failover-state-wait-promotion` on sentinel `index`, given
    /// `timeout` to connect and subscribe. Every sentinel announces the switch; only the one
    /// leading the failover announces the promotion, so the pool subscribes to each.
    pub async fn subscribe_switches(&self, index: usize) -> Result<redis::aio::PubSub> {
        let sentinel = &self.spec.sentinels[index % self.spec.sentinels.len()];
        let subscribed = tokio::time::timeout(self.timeout, async {
            let mut pubsub = self
                .sentinel_client(sentinel)?
                .get_async_pubsub()
                .await
                .map_err(|e| e.to_string())?;
            pubsub
                .subscribe(&[SWITCH_CHANNEL, PROMOTION_CHANNEL])
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub)
        })
        .await;
        subscribed
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", self.timeout.as_millis())))
            .map_err(|why| Error::Connection {
                url: self.spec.redacted_url.clone(),
                message: format!("SUBSCRIBE {SWITCH_CHANNEL} on {}:{}: {why}", sentinel.0, sentinel.1),
            })
    }

    /// The new primary a `+switch-master` payload (`<name> <old ip> <old port> <new ip> <new
    /// port>`) announces, when it is about this resolver's primary.
    pub fn switched_to(&self, payload: &str) -> Option<PrimaryAddr> {
        let parts: Vec<&str> = payload.split_whitespace().collect();
        match parts.as_slice() {
            [name, _, _, host, port] if *name == self.spec.master_name => {
                Some(((*host).to_owned(), port.parse().ok()?))
            }
            _ => None,
        }
    }

    /// The replica a `+failover-state-wait-promotion` payload (`slave <ip>:<port> <ip> <port>
    /// @ <name> <ip> <port>`) says is being promoted, when it is about this resolver's primary.
    pub fn promoting(&self, payload: &str) -> Option<PrimaryAddr> {
        let parts: Vec<&str> = payload.split_whitespace().collect();
        match parts.as_slice() {
            ["slave", _, host, port, "@", name, _, _] if *name == self.spec.master_name => {
                Some(((*host).to_owned(), port.parse().ok()?))
            }
            _ => None,
        }
    }

    /// The URL with every password hidden.
    pub fn redacted_url(&self) -> &str {
        &self.spec.redacted_url
    }

    /// The endpoint of the primary at `addr`: its credentials, database and TLS from the URL.
    pub fn primary(&self, addr: &PrimaryAddr) -> Endpoint {
        let info = Tls::info(self.spec.tls, &addr.0, addr.1);
        Endpoint::from_parts(
            info,
            self.spec.credentials.clone(),
            self.spec.db,
            format!("{} (primary {}:{})", self.spec.redacted_url, addr.0, addr.1),
        )
    }

    /// Ask the sentinels in turn; the first answer wins. An error names every sentinel's
    /// failure when none knows the primary.
    pub async fn resolve(&self) -> Result<PrimaryAddr> {
        let mut failures = Vec::new();
        for i in self.order() {
            let sentinel = &self.spec.sentinels[i];
            let asked = tokio::time::timeout(self.timeout, self.ask(sentinel)).await;
            match asked.unwrap_or_else(|_| Err(format!("no answer within {} ms", self.timeout.as_millis()))) {
                Ok(addr) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(addr);
                }
                Err(why) => failures.push(format!("{}:{}: {why}", sentinel.0, sentinel.1)),
            }
        }
        Err(self.unresolved(failures))
    }

    /// [`SentinelResolver::resolve`] on the calling thread.
    pub fn resolve_blocking(&self) -> Result<PrimaryAddr> {
        let mut failures = Vec::new();
        for i in self.order() {
            let sentinel = &self.spec.sentinels[i];
            match self.ask_blocking(sentinel) {
                Ok(addr) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(addr);
                }
                Err(why) => failures.push(format!("{}:{}: {why}", sentinel.0, sentinel.1)),
            }
        }
        Err(self.unresolved(failures))
    }

    fn order(&self) -> impl Iterator<Item = usize> {
        let n = self.spec.sentinels.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        (0..n).map(move |k| (first + k) % n)
    }

    fn unresolved(&self, failures: Vec<String>) -> Error {
        Error::Connection {
            url: self.spec.redacted_url.clone(),
            message: format!(
                "no sentinel named the primary {:?} ({})",
                self.spec.master_name,
                failures.join("; ")
            ),
        }
    }

    fn sentinel_client(&self, sentinel: &PrimaryAddr) -> std::result::Result<Client, String> {
        super::endpoint::install_tls_provider();
        let info = Tls::info(self.spec.tls, &sentinel.0, sentinel.1);
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(Credentials { user, password }) = &self.spec.sentinel_credentials {
            settings = settings.set_password(password);
            if let Some(user) = user {
                settings = settings.set_username(user);
            }
        }
        let info = info.set_redis_settings(settings);
        Client::open(info).map_err(|e| e.to_string())
    }

    /// `SENTINEL get-master-addr-by-name` (the client authenticates in its handshake).
    fn query(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.spec.master_name);
        pipe
    }

    async fn ask(&self, sentinel: &PrimaryAddr) -> std::result::Result<PrimaryAddr, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .sentinel_client(sentinel)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let reply: Vec<Value> = self.query().query_async(&mut conn).await.map_err(|e| e.to_string())?;
        self.parse(reply)
    }

    fn ask_blocking(&self, sentinel: &PrimaryAddr) -> std::result::Result<PrimaryAddr, String> {
        let started = Instant::now();
        let mut conn = self
            .sentinel_client(sentinel)?
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| e.to_string())?;
        let left = self
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        conn.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
        let reply: Vec<Value> = self.query().query(&mut conn).map_err(|e| e.to_string())?;
        self.parse(reply)
    }

    fn parse(&self, mut reply: Vec<Value>) -> std::result::Result<PrimaryAddr, String> {
        match reply.pop() {
            Some(Value::Array(parts)) if parts.len() == 2 => {
                let text = |v: &Value| match v {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Value::SimpleString(s) => Some(s.clone()),
                    _ => None,
                };
                let host = text(&parts[0]).ok_or("host is not text")?;
                let port = text(&parts[1])
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or("port is not a number")?;
                Ok((host, port))
            }
            Some(Value::Nil) => Err(format!("does not monitor {:?}", self.spec.master_name)),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
}

/// `Ok` when a `ROLE` reply says primary; the error names the role found.
pub(crate) fn check_primary(role: &Value, url: &str) -> Result<()> {
    let first = match role {
        Value::Array(items) => items.first(),
        _ => None,
    };
    let name = match first {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::from("unknown"),
    };
    if name == "master" {
        return Ok(());
    }
    Err(Error::Connection {
        url: url.to_owned(),
        message: format!("the sentinels named a server whose role is {name}, not primary (failover under way)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::topology::Topology;

    fn resolver() -> SentinelResolver {
        let Ok(Topology::Sentinel(spec)) = Topology::parse("redis+sentinel://127.0.0.1:26379/mymaster") else {
            panic!("a sentinel URL")
        };
        SentinelResolver::new(spec, Duration::from_secs(1))
    }

    #[test]
    fn announcements_about_our_primary_are_read_and_others_ignored() {
        let r = resolver();
        let switch = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
        assert_eq!(r.switched_to(switch), Some(("127.0.0.1".into(), 6380)));
        assert_eq!(r.switched_to("other 127.0.0.1 6379 127.0.0.1 6380"), None);
        assert_eq!(r.switched_to("mymaster 127.0.0.1"), None);
        let promotion = "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379";
        assert_eq!(r.promoting(promotion), Some(("127.0.0.1".into(), 6380)));
        assert_eq!(r.promoting(&promotion.replace("mymaster", "other")), None);
        assert_eq!(r.promoting(switch), None);
    }
}
