//! The handshake every new connection of every transport sends: one pipeline of `AUTH` (when
//! the URL carries a password), `SELECT` (database ≠ 0), `CLIENT SETNAME` (so `CLIENT LIST`
//! tells which transport a connection belongs to) and `INFO server` (the server-version
//! check), all in one round trip. [`Handshake::check`] reads the replies; the transports only
//! move the bytes.

use redis::aio::MultiplexedConnection;
use redis::{Connection, Pipeline};

use super::endpoint::Endpoint;
use super::resp::Reply;
use crate::error::{Error, Result};

/// Oldest Redis version solcache supports (streams need XAUTOCLAIM, 6.2+).
pub const MIN_REDIS_VERSION: (u32, u32) = (6, 2);
const MIN_REDIS_VERSION_TEXT: &str = "6.2";

/// The name pooled connections give themselves (`CLIENT SETNAME`).
pub const POOL_CLIENT_NAME: &str = "solcache-pool";
/// The name connections of the blocking pool give themselves.
pub const SYNC_CLIENT_NAME: &str = "solcache-sync";
/// The name direct connections (driven by an event loop) give themselves.
pub const DIRECT_CLIENT_NAME: &str = "solcache-direct";
/// The name the near cache's tracking connection gives itself.
pub const NEAR_CLIENT_NAME: &str = "solcache-near";
/// The name the kept connection of a stream tail gives itself.
pub const TAIL_CLIENT_NAME: &str = "solcache-tail";
/// The name of a subscription's own read connection (consumer-group reads).
pub const GROUP_CLIENT_NAME: &str = "solcache-group";
/// Client name of the connections `EventStream::publish` and `publish_many` write XADDs on.
pub const PUBLISH_CLIENT_NAME: &str = "solcache-publish";

/// The handshake of one endpoint, for connections named `client_name`; see the module docs.
pub struct Handshake {
    pipeline: Pipeline,
    packed: Vec<u8>,
    authenticates: bool,
    selects: bool,
    redacted_url: String,
}

impl Handshake {
    /// The handshake for `endpoint`'s credentials and database.
    pub fn new(endpoint: &Endpoint, client_name: &str) -> Handshake {
        let mut pipeline = redis::pipe();
        // Error replies are read like any other: `check` decides what each one means.
        pipeline.ignore_errors();
        if let Some(credentials) = endpoint.credentials() {
            let auth = pipeline.cmd("AUTH");
            if let Some(user) = &credentials.user {
                auth.arg(user);
            }
            auth.arg(&credentials.password);
        }
        if endpoint.db() != 0 {
            pipeline.cmd("SELECT").arg(endpoint.db());
        }
        pipeline.cmd("CLIENT").arg("SETNAME").arg(client_name);
        pipeline.cmd("INFO").arg("server");
        Handshake {
            packed: pipeline.get_packed_pipeline(),
            pipeline,
            authenticates: endpoint.credentials().is_some(),
            selects: endpoint.db() != 0,
            redacted_url: endpoint.redacted_url().to_owned(),
        }
    }

    /// The request bytes, for a transport that writes its own socket.
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }

    /// How many replies the handshake gets.
    pub fn replies(&self) -> usize {
        usize::from(self.authenticates) + usize::from(self.selects) + 2
    }

    /// Judge the replies, in order: the server's version when all is well. Refused credentials
    /// (or none where the server wants some) are `Authentication`; a refused `SELECT` or
    /// `INFO` is `Response`; a refused `CLIENT SETNAME` is let pass (the name only helps
    /// operators); a server older than 6.2 is `UnsupportedServer`.
    pub fn check(&self, replies: Vec<Reply>) -> Result<String> {
        if replies.len() != self.replies() {
            return Err(Error::unexpected_reply(format!(
                "the handshake got {} replies to {} commands",
                replies.len(),
                self.replies()
            )));
        }
        let refused = |message: &str| Error::authentication(self.redacted_url.clone(), message);
        // Without (valid) credentials every command is refused with NOAUTH.
        let unauthenticated =
            |reply: &Reply| matches!(reply, Reply::Error(m) if m.starts_with("NOAUTH") || m.starts_with("WRONGPASS"));
        if let Some(Reply::Error(message)) = replies.iter().find(|r| unauthenticated(r)) {
            return Err(refused(message));
        }
        let mut replies = replies.into_iter();
        let mut next = || replies.next().expect("the length was checked above");
        if self.authenticates {
            if let Reply::Error(message) = next() {
                return Err(refused(&message));
            }
        }
        if self.selects {
            if let Reply::Error(message) = next() {
                return Err(Error::error_reply(message));
            }
        }
        if let Reply::Error(message) = next() {
            log::info!(target: "solcache::pool", "CLIENT SETNAME refused ({message}): connections stay unnamed");
        }
        let info = match next() {
            Reply::Bulk(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Reply::Error(message) => return Err(Error::error_reply(message)),
            other => return Err(Error::unexpected_reply(format!("INFO server answered {other:?}"))),
        };
        check_server_version(&info, &self.redacted_url)
    }

    /// Run the handshake on a freshly opened async connection.
    pub(crate) async fn run(
        &self,
        conn: &mut MultiplexedConnection,
        failed: impl Fn(redis::RedisError) -> Error,
    ) -> Result<String> {
        let replies = self.pipeline.query_async::<Vec<Reply>>(conn).await.map_err(failed)?;
        self.check(replies)
    }

    /// Run the handshake on a freshly opened blocking connection.
    pub(crate) fn run_blocking(
        &self,
        conn: &mut Connection,
        failed: impl Fn(redis::RedisError) -> Error,
    ) -> Result<String> {
        let replies = self.pipeline.query::<Vec<Reply>>(conn).map_err(failed)?;
        self.check(replies)
    }
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

    fn info(version: &str) -> Reply {
        Reply::Bulk(format!("# Server\r\nredis_version:{version}\r\n").into_bytes())
    }

    fn ok() -> Reply {
        Reply::Simple("OK".into())
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
    fn one_pipeline_with_what_the_url_asks_for() {
        let plain = Handshake::new(&Endpoint::parse("redis://127.0.0.1:6379/0").unwrap(), "n");
        assert_eq!(plain.replies(), 2);
        assert_eq!(plain.check(vec![ok(), info("7.0.15")]).unwrap(), "7.0.15");
        let full = Handshake::new(&Endpoint::parse("redis://alice:pw@127.0.0.1:6379/3").unwrap(), "n");
        assert_eq!(full.replies(), 4);
        let packed = String::from_utf8_lossy(full.packed()).into_owned();
        for word in ["AUTH", "alice", "SELECT", "SETNAME", "INFO"] {
            assert!(packed.contains(word), "{packed}");
        }
        assert_eq!(full.check(vec![ok(), ok(), ok(), info("6.2.0")]).unwrap(), "6.2.0");
    }

    #[test]
    fn each_refusal_has_its_meaning() {
        let full = Handshake::new(&Endpoint::parse("redis://alice:pw@127.0.0.1:6379/3").unwrap(), "n");
        let wrongpass = Reply::Error("WRONGPASS invalid username-password pair".into());
        let err = full.check(vec![wrongpass, ok(), ok(), info("7.0.0")]).unwrap_err();
        assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
        assert_eq!(err.response_code(), Some("WRONGPASS"));
        let bad_db = Reply::Error("ERR DB index is out of range".into());
        let err = full.check(vec![ok(), bad_db, ok(), info("7.0.0")]).unwrap_err();
        assert!(matches!(err, Error::Response { .. }), "{err:?}");
        let noperm = Reply::Error("NOPERM no permissions to run 'client|setname'".into());
        assert!(full.check(vec![ok(), ok(), noperm, info("7.0.0")]).is_ok());
        let err = full.check(vec![ok(), ok(), ok(), info("6.0.9")]).unwrap_err();
        assert!(matches!(err, Error::UnsupportedServer { .. }), "{err:?}");

        let anonymous = Handshake::new(&Endpoint::parse("redis://127.0.0.1:6379/0").unwrap(), "n");
        let noauth = || Reply::Error("NOAUTH Authentication required.".into());
        let err = anonymous.check(vec![noauth(), noauth()]).unwrap_err();
        assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
        assert_eq!(err.response_code(), Some("NOAUTH"));
        let err = anonymous.check(vec![ok()]).unwrap_err();
        assert!(matches!(err, Error::Response { .. }), "{err:?}");
    }
}
