//! [`Endpoint`]: a Redis URL parsed once into where to connect (address, TCP settings, TLS)
//! and what the handshake sends (credentials, database), plus the URL with its password hidden.
//!
//! redis-rs opens the sockets (TCP, TLS, unix) of the pools; it is given the address only, so
//! every transport authenticates and selects the database through the one
//! [`super::handshake::Handshake`].

use std::time::Duration;

use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::error::{Error, Result};

/// Credentials sent with `AUTH` (a `user` for ACL users, none for `requirepass`).
#[derive(Clone)]
pub(crate) struct Credentials {
    pub user: Option<String>,
    pub password: String,
}

/// A parsed Redis URL; see the module docs. Its `Debug` never shows the password.
pub struct Endpoint {
    /// Address, TCP settings and TLS for redis-rs: no credentials, database 0, no `CLIENT SETINFO`.
    info: ConnectionInfo,
    credentials: Option<Credentials>,
    db: i64,
    redacted_url: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.redacted_url).finish()
    }
}

impl Endpoint {
    /// Parse `url` (`redis://`, `rediss://`, `unix://`); a bad URL is `InvalidInput`, with the
    /// password hidden in the message.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let redacted_url = redact_url(url);
        let info = url
            .into_connection_info()
            .map_err(|e| Error::invalid(format!("bad Redis URL {redacted_url}: {}", e.category())))?;
        let settings = info.redis_settings();
        let credentials = settings.password().map(|password| Credentials {
            user: settings.username().map(str::to_owned),
            password: password.to_owned(),
        });
        let db = settings.db();
        Ok(Endpoint::from_parts(info, credentials, db, redacted_url))
    }

    /// An endpoint at `info`'s address (TLS included) with these credentials and database, for
    /// an address found at run time (a Sentinel-managed primary).
    pub(crate) fn from_parts(
        info: ConnectionInfo,
        credentials: Option<Credentials>,
        db: i64,
        redacted_url: String,
    ) -> Endpoint {
        let mut keepalive = TcpKeepalive::new().with_time(Duration::from_secs(10));
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        {
            keepalive = keepalive.with_interval(Duration::from_secs(5));
        }
        let info = info
            .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name())
            // Nagle's algorithm would hold small requests back for up to 40 ms.
            .set_tcp_settings(TcpSettings::default().set_nodelay(true).set_keepalive(keepalive));
        Endpoint {
            info,
            credentials,
            db,
            redacted_url,
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// Where the server listens (TCP, TCP + TLS, or a unix socket).
    pub fn addr(&self) -> &ConnectionAddr {
        self.info.addr()
    }

    /// The database the handshake selects (0 by default).
    pub fn db(&self) -> i64 {
        self.db
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// A redis-rs client that opens sockets to this endpoint (the caller runs the handshake).
    pub(crate) fn client(&self) -> Result<Client> {
        install_tls_provider();
        Client::open(self.info.clone()).map_err(|e| Error::invalid(format!("bad Redis URL {}: {e}", self.redacted_url)))
    }
}

/// `url` with any password replaced by `***`: the `user:password@` part and, for `unix://`
/// URLs, the `pass=` / `password=` query parameters. Unparsable input is hidden whole.
pub fn redact_url(url: &str) -> String {
    if url.split_once("://").is_some_and(|(scheme, _)| scheme.contains('+')) {
        return super::topology::redact_multi_host_url(url);
    }
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

/// rustls needs a process-wide crypto provider before the first `rediss://` connect. If the
/// application already installed one, that one stays.
pub(crate) fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
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
    fn credentials_and_database_go_to_the_handshake_not_to_redis_rs() {
        let e = Endpoint::parse("redis://alice:s3cret@127.0.0.1:6380/3").unwrap();
        let creds = e.credentials().unwrap();
        assert_eq!(
            (creds.user.as_deref(), creds.password.as_str(), e.db()),
            (Some("alice"), "s3cret", 3)
        );
        assert!(e.info.redis_settings().password().is_none() && e.info.redis_settings().db() == 0);
        assert!(!format!("{e:?}").contains("s3cret"));
        let unix = Endpoint::parse("unix:///tmp/r.sock?pass=s3cret&db=2").unwrap();
        assert_eq!((unix.credentials().unwrap().user.as_deref(), unix.db()), (None, 2));
        assert!(matches!(Endpoint::parse("http://x"), Err(Error::InvalidInput(_))));
    }
}
