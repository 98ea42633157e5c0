//! One error type for the whole core. Each variant says what went wrong in terms a caller can
//! act on; [`Error::is_timeout`] and [`Error::is_retryable`] classify them so the Python binding
//! maps each class to one exception in one place.

use std::time::Duration;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in solcache.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached, or a connection broke mid-call.
    #[error("cannot reach Redis at {url}: {message}")]
    Connection { url: String, message: String },

    /// Redis refused the credentials (the message never contains the password).
    #[error("Redis at {url} refused authentication: {message}")]
    Authentication {
        url: String,
        /// The code of Redis' refusal: `"WRONGPASS"` (wrong password, unknown or disabled
        /// user) or `"NOAUTH"` (no credentials given); `None` when no reply said which.
        code: Option<String>,
        message: String,
    },

    /// A connect or response timeout elapsed.
    #[error("{operation} timed out after {} ms", timeout.as_millis())]
    Timeout { operation: &'static str, timeout: Duration },

    /// No pooled connection became free within the checkout timeout.
    #[error("no Redis connection free within {} ms (pool of {max_size}, {waiting} callers waiting)", timeout.as_millis())]
    PoolExhausted {
        timeout: Duration,
        max_size: u32,
        waiting: usize,
    },

    /// A value read from Redis (or given to a decoder) is not the expected JSON.
    #[error("cannot decode value at key {key:?}: {message}")]
    Serialization { key: String, message: String },

    /// An argument was rejected before Redis was touched.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Redis answered with an error reply (WRONGTYPE, NOPERM, OOM, …), or with a reply of a
    /// shape solcache does not expect (then `code` is `None`).
    #[error("Redis replied with an error: {message}")]
    Response {
        /// The error code Redis put first in its reply (`"NOGROUP"`, `"OOM"`, `"READONLY"`, …).
        code: Option<String>,
        message: String,
    },

    /// The server is older than the Redis version solcache needs.
    #[error("Redis {found} at {url} is too old: solcache needs Redis {required} or newer")]
    UnsupportedServer {
        url: String,
        found: String,
        required: &'static str,
    },

    /// The pool was closed; nothing more can be sent through it.
    #[error("the Redis pool is closed")]
    PoolClosed,
}

/// Every [`Error::kind_name`], in a fixed order (metrics label values).
pub const ERROR_KINDS: [&str; 9] = [
    "connection",
    "authentication",
    "timeout",
    "pool_exhausted",
    "serialization",
    "invalid_input",
    "response",
    "unsupported_server",
    "pool_closed",
];

impl Error {
    /// A stable snake_case name of the variant (one of [`ERROR_KINDS`]), for metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Connection { .. } => "connection",
            Error::Authentication { .. } => "authentication",
            Error::Timeout { .. } => "timeout",
            Error::PoolExhausted { .. } => "pool_exhausted",
            Error::Serialization { .. } => "serialization",
            Error::InvalidInput(_) => "invalid_input",
            Error::Response { .. } => "response",
            Error::UnsupportedServer { .. } => "unsupported_server",
            Error::PoolClosed => "pool_closed",
        }
    }

    /// The code of a Redis error reply (`"NOGROUP"`, `"BUSYGROUP"`, `"OOM"`, `"READONLY"`, …,
    /// and `"WRONGPASS"` / `"NOAUTH"` of an authentication refusal), for callers that act on
    /// what the server meant. `None` for every other error.
    pub fn response_code(&self) -> Option<&str> {
        match self {
            Error::Response { code, .. } | Error::Authentication { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// An `AUTH` that redis-rs reports as refused (`AuthenticationFailed`, Redis' reply text
    /// not always kept): `NOAUTH` when the text says so, else `WRONGPASS`, the only refusal
    /// Redis ≥ 6 gives an `AUTH` command.
    pub fn auth_refused(url: impl Into<String>, message: impl Into<String>) -> Self {
        match Error::authentication(url, message) {
            Error::Authentication {
                url,
                code: None,
                message,
            } => Error::Authentication {
                url,
                code: Some("WRONGPASS".to_owned()),
                message,
            },
            other => other,
        }
    }

    /// Redis refused the credentials; the code is read from the refusal's text
    /// (`WRONGPASS …`, `NOAUTH …`, wherever the word stands in a wrapped message).
    pub fn authentication(url: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        let code = ["WRONGPASS", "NOAUTH"]
            .into_iter()
            .find(|c| message.split(|ch: char| !ch.is_ascii_alphabetic()).any(|w| w == *c))
            .map(str::to_owned);
        Error::Authentication {
            url: url.into(),
            code,
            message,
        }
    }

    /// A reply solcache did not expect (wrong shape or count): a [`Error::Response`] without code.
    pub fn unexpected_reply(message: impl Into<String>) -> Self {
        Error::Response {
            code: None,
            message: message.into(),
        }
    }

    /// An error reply as the server sent it (`-NOGROUP No such key …`, without the `-`): its
    /// code is the first word when that word is all capitals, as Redis writes its codes.
    pub fn error_reply(message: impl Into<String>) -> Self {
        let message = message.into();
        let code = message
            .split([' ', ':'])
            .next()
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .map(str::to_owned);
        Error::Response { code, message }
    }

    /// True for connect, response and checkout timeouts.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::PoolExhausted { .. })
    }

    /// True when the same call may succeed if tried again later (network, timeouts, pool).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connection { .. } | Error::Timeout { .. } | Error::PoolExhausted { .. }
        )
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Shorthand for [`Error::Serialization`].
    pub fn serialization(key: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Serialization {
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// Classify an error from the redis crate. `url` must already be redacted.
    pub fn from_redis(err: redis::RedisError, url: &str, operation: &'static str, response_timeout: Duration) -> Self {
        use redis::ErrorKind;
        if err.is_timeout() {
            return Error::Timeout {
                operation,
                timeout: response_timeout,
            };
        }
        let kind = err.kind();
        if kind == ErrorKind::AuthenticationFailed || err.code().is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH") {
            return match err.code() {
                Some(code @ ("WRONGPASS" | "NOAUTH")) => Error::Authentication {
                    url: url.to_owned(),
                    code: Some(code.to_owned()),
                    message: err.to_string(),
                },
                _ if kind == ErrorKind::AuthenticationFailed => Error::auth_refused(url, err.to_string()),
                _ => Error::authentication(url, err.to_string()),
            };
        }
        if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() {
            return Error::Connection {
                url: url.to_owned(),
                message: err.to_string(),
            };
        }
        match kind {
            ErrorKind::Server(_) | ErrorKind::Extension => {
                let message = err.to_string();
                // A failed pipeline keeps its error replies apart: the first one's code is its.
                let code = err.code().map(str::to_owned).or_else(|| {
                    let replies = err.into_server_errors()?;
                    replies.first().map(|(_, reply)| reply.code().to_owned())
                });
                Error::Response { code, message }
            }
            ErrorKind::InvalidClientConfig => Error::InvalidInput(err.to_string()),
            _ => Error::Connection {
                url: url.to_owned(),
                message: err.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_retryable_are_classified() {
        let t = Error::Timeout {
            operation: "get",
            timeout: Duration::from_millis(5),
        };
        assert!(t.is_timeout() && t.is_retryable());
        let p = Error::PoolExhausted {
            timeout: Duration::from_millis(5),
            max_size: 2,
            waiting: 1,
        };
        assert!(p.is_timeout() && p.is_retryable());
        let c = Error::Connection {
            url: "redis://h".into(),
            message: "refused".into(),
        };
        assert!(!c.is_timeout() && c.is_retryable());
        assert!(!Error::invalid("x").is_retryable());
        assert!(!Error::serialization("price:SOL", "bad").is_retryable());
    }

    #[test]
    fn every_kind_name_is_listed() {
        let samples = [
            Error::Connection {
                url: String::new(),
                message: String::new(),
            },
            Error::authentication("", ""),
            Error::Timeout {
                operation: "x",
                timeout: Duration::ZERO,
            },
            Error::PoolExhausted {
                timeout: Duration::ZERO,
                max_size: 1,
                waiting: 0,
            },
            Error::serialization("k", "m"),
            Error::invalid("m"),
            Error::unexpected_reply(""),
            Error::UnsupportedServer {
                url: String::new(),
                found: String::new(),
                required: "6.2",
            },
            Error::PoolClosed,
        ];
        let names: Vec<_> = samples.iter().map(Error::kind_name).collect();
        assert_eq!(names, ERROR_KINDS);
    }

    #[test]
    fn messages_name_what_failed() {
        let e = Error::serialization("price:SOL", "expected value");
        assert!(e.to_string().contains("price:SOL"));
        let t = Error::Timeout {
            operation: "price_get",
            timeout: Duration::from_millis(500),
        };
        assert_eq!(t.to_string(), "price_get timed out after 500 ms");
    }

    #[test]
    fn error_replies_carry_their_code() {
        let code = |m: &str| Error::error_reply(m).response_code().map(str::to_owned);
        assert_eq!(
            code("NOGROUP No such key 's' or consumer group 'g'").as_deref(),
            Some("NOGROUP")
        );
        assert_eq!(code("OOM command not allowed").as_deref(), Some("OOM"));
        assert_eq!(code("READONLY: You can't write").as_deref(), Some("READONLY"));
        assert_eq!(code("no code here"), None);
        assert_eq!(code(""), None);
        assert_eq!(
            Error::unexpected_reply("MGET of 2 keys returned 1 values").response_code(),
            None
        );
        assert_eq!(Error::invalid("OOM").response_code(), None);
        let refused = |m: &str| Error::authentication("redis://h", m).response_code().map(str::to_owned);
        assert_eq!(
            refused("WRONGPASS invalid username-password pair").as_deref(),
            Some("WRONGPASS")
        );
        assert_eq!(
            refused("AuthenticationFailed: NOAUTH: required").as_deref(),
            Some("NOAUTH")
        );
        assert_eq!(refused("NOAUTHX something").as_deref(), None);
        assert_eq!(refused("").as_deref(), None);
        let auth = |m: &str| Error::auth_refused("redis://h", m).response_code().map(str::to_owned);
        assert_eq!(
            auth("AuthenticationFailed: Password authentication failed").as_deref(),
            Some("WRONGPASS")
        );
        assert_eq!(auth("NOAUTH Authentication required").as_deref(), Some("NOAUTH"));
    }

    #[test]
    fn redis_errors_keep_the_code_redis_rs_parsed() {
        let server = |code: &str| redis::make_extension_error(code.to_owned(), Some("the detail".to_owned()));
        for wanted in ["NOGROUP", "BUSYGROUP", "OOM", "READONLY", "WRONGTYPE"] {
            let err = Error::from_redis(server(wanted), "redis://h", "x", Duration::from_millis(1));
            assert_eq!(err.response_code(), Some(wanted), "{err:?}");
            assert!(err.to_string().contains("the detail"), "{err}");
        }
    }
}
