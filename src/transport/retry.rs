//! One retry policy for every transport: which failures break a connection, and which requests
//! are sent once more.
//!
//! Every request solcache sends may be sent twice: reads and `SET … PX` are idempotent, and an
//! `XADD` written twice is what at-least-once delivery allows (it never loses an event).
//!
//! - After an I/O error, a timeout or an unreadable reply the connection's reply stream may be
//!   out of step: it is *broken* and never reused. An error reply leaves it in step.
//! - A request whose connection was *dropped* (closed, reset, unreadable) is sent once more on
//!   a fresh connection if that connection had served calls or sat idle before the call
//!   began: it most likely died with a server restart, not because of this request. Never
//!   more than once, and never after a timeout (a stuck server would double the wait).
//! - A `READONLY` reply means the server was a primary and is a replica now (a failover): the
//!   connection is *demoted*. It is discarded with every connection opened before it (they
//!   reach the same server) and the request, which the replica refused, is sent once more on
//!   a fresh connection, which finds the new primary.
//! - A direct connection (driven by an event loop) that breaks hands its reads in flight back
//!   to be sent through the async pool, where this same policy applies.

use redis::{ErrorKind, RedisError};

/// What a failed attempt says about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection is gone: closed by the peer, reset, or it sent bytes that are not RESP.
    Dropped,
    /// Any other I/O failure, timeouts included: the reply may still arrive, out of step.
    Broken,
    /// The server refused a write with `READONLY`: it is a replica now (a failover).
    Demoted,
    /// The server answered (an error reply, or a reply of another type): the connection is fine.
    Answered,
}

impl Failure {
    /// Classify a redis-rs error.
    pub fn of(err: &RedisError) -> Failure {
        if err.is_connection_dropped() || err.kind() == ErrorKind::Parse {
            Failure::Dropped
        } else if err.is_io_error() {
            Failure::Broken
        } else if err.code() == Some("READONLY") {
            Failure::Demoted
        } else {
            Failure::Answered
        }
    }

    /// True when the connection must be discarded.
    pub fn breaks_connection(self) -> bool {
        self != Failure::Answered
    }
}

/// The attempts of one request; asks the policy after each failure.
#[derive(Debug, Default)]
pub struct Attempts {
    failed: u32,
}

impl Attempts {
    /// After a failed attempt on a connection that had been `reused` (it served calls or sat
    /// idle before this call began): true when the request is to be sent once more.
    pub fn again(&mut self, failure: Failure, reused: bool) -> bool {
        self.failed += 1;
        self.failed == 1 && (failure == Failure::Demoted || failure == Failure::Dropped && reused)
    }

    /// True for the failures that condemn every connection opened before them: a dropped one
    /// (a server restart kills all) and a demoted one (all reach a server that is a replica now).
    pub fn drops_siblings(failure: Failure) -> bool {
        matches!(failure, Failure::Dropped | Failure::Demoted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> RedisError {
        std::io::Error::from(kind).into()
    }

    #[test]
    fn failures_are_classified_by_meaning() {
        assert_eq!(Failure::of(&io(std::io::ErrorKind::ConnectionReset)), Failure::Dropped);
        assert_eq!(Failure::of(&io(std::io::ErrorKind::UnexpectedEof)), Failure::Dropped);
        assert_eq!(Failure::of(&io(std::io::ErrorKind::TimedOut)), Failure::Broken);
        let parse: RedisError = (ErrorKind::Parse, "not RESP").into();
        assert_eq!(Failure::of(&parse), Failure::Dropped);
        let readonly = RedisError::from((
            redis::ServerErrorKind::ReadOnly.into(),
            "READONLY You can't write against a read only replica.",
        ));
        assert_eq!(Failure::of(&readonly), Failure::Demoted, "{:?}", readonly.code());
        assert!(Failure::Demoted.breaks_connection() && Attempts::drops_siblings(Failure::Demoted));
        let typed: RedisError = (ErrorKind::UnexpectedReturnType, "wrong type").into();
        assert_eq!(Failure::of(&typed), Failure::Answered);
        assert!(!Failure::Answered.breaks_connection() && Failure::Broken.breaks_connection());
    }

    #[test]
    fn only_a_dropped_reused_connection_earns_one_retry() {
        let mut attempts = Attempts::default();
        assert!(attempts.again(Failure::Dropped, true));
        assert!(!attempts.again(Failure::Dropped, true), "never twice");
        assert!(
            !Attempts::default().again(Failure::Dropped, false),
            "a fresh connection failed: real"
        );
        assert!(
            !Attempts::default().again(Failure::Broken, true),
            "a timeout is not retried"
        );
        assert!(!Attempts::default().again(Failure::Answered, true));
        let mut demoted = Attempts::default();
        assert!(
            demoted.again(Failure::Demoted, false),
            "a refused write was not applied"
        );
        assert!(!demoted.again(Failure::Demoted, false), "never twice");
    }
}
