//! [`Publisher`]: XADD pipelines written as RESP bytes on connections of their own, their
//! entry ids read straight from the reply bytes, for
//! [`EventStream::publish`](crate::event_stream::EventStream::publish) and
//! [`EventStream::publish_many`](crate::event_stream::EventStream::publish_many).
//!
//! Why: through the pool, redis-rs builds a command per XADD, encodes the pipeline and builds
//! a reply tree, about 4k client instructions per event of the 8.3k `publish_many` cost (5.7k here)
//! (`scripts/count_stream_instructions.py --publish`). Here each XADD is appended to one
//! reused buffer and each reply is read where it lies in the read buffer.
//!
//! Connections: [`WireConnection`]s named `solcache-publish`, one per concurrent caller, up to
//! [`IDLE_CONNECTIONS`] kept open between calls (a caller beyond that opens one and closes it
//! afterwards). Only a single server over plain TCP or a unix socket
//! ([`WireConnection::supported`]); TLS, Cluster and Sentinel publish through the pool.
//!
//! Failures follow the pool's [retry policy](crate::transport::retry), so a batch is handled
//! exactly as on a pooled connection:
//! - a connection that is found closed or reset (`ConnectionError`) after it had served a
//!   call before (most likely dropped by a server restart or `CLIENT KILL` while idle) is
//!   replaced and the batch written once more on the new one. An XADD may then be written
//!   twice if the old connection died after the server read it: at-least-once delivery
//!   allows that and never loses an event. A failure on a fresh connection, or a second one,
//!   is the caller's `ConnectionError`;
//! - a timeout is never followed by a resend (the connection is discarded: its replies may
//!   still arrive);
//! - error replies (`OOM`, `WRONGTYPE`, …) leave the connection in step: every reply of the
//!   batch is read, the entries before and after the refused one are appended, and the call
//!   fails with the first error reply (`ResponseError` with its code). `READONLY` (the server
//!   became a replica) discards the connection and writes the batch once more on a new one.
//! - a call cancelled while its batch is on the wire closes its connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::metrics::Operation;
use crate::stream_wire;
use crate::transport::handshake::PUBLISH_CLIENT_NAME;
use crate::transport::retry::{Attempts, Failure};
use crate::transport::{RedisPool, WireConnection};

/// Publish connections kept open between calls (one per caller publishing at the same time).
pub const IDLE_CONNECTIONS: usize = 4;

/// A publish connection with the buffer its pipelines are written into (kept for the next).
struct Slot {
    conn: WireConnection,
    packed: Vec<u8>,
}

/// The publish connections of one [`EventStream`](crate::event_stream::EventStream) (shared by
/// its clones); see the module docs.
pub struct Publisher {
    pool: RedisPool,
    idle: Mutex<Vec<Slot>>,
}

impl Publisher {
    /// The publisher of `pool`'s server; None when its topology has no publish connections
    /// (publish through the pool). No connection is opened until the first publish.
    pub fn for_pool(pool: &RedisPool) -> Option<Self> {
        WireConnection::supported(pool).then(|| Publisher {
            pool: pool.clone(),
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn open(&self) -> Result<WireConnection> {
        WireConnection::open(&self.pool, Duration::ZERO, PUBLISH_CLIENT_NAME)
            .await?
            .ok_or_else(|| Error::invalid("this topology has no publish connections"))
    }

    /// An idle connection (true: it served a call before) or a new one.
    async fn take(&self) -> Result<(WireConnection, Vec<u8>, bool)> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(slot) if !slot.conn.is_broken() => Ok((slot.conn, slot.packed, true)),
            _ => Ok((self.open().await?, Vec::new(), false)),
        }
    }

    fn give_back(&self, conn: WireConnection, packed: Vec<u8>) {
        if conn.is_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(Slot { conn, packed });
        }
    }

    /// Close every idle connection (e.g. after a failover: they reach a replica now).
    fn drop_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Write `commands` XADDs and return their entry ids in order, recorded as `op`. `encode`
    /// appends the next part of the pipeline to the buffer and returns false once it appended
    /// the last; each part is written as soon as it is appended (see
    /// [`WireConnection::send_in_parts`]). Events are validated before this is called.
    pub async fn publish(
        &self,
        op: Operation,
        commands: usize,
        encode: impl FnMut(&mut Vec<u8>) -> bool,
    ) -> Result<Vec<String>> {
        self.publish_with(op, commands, encode, true).await
    }

    /// [`Publisher::publish`] for XADDs already sent once elsewhere and lost with their
    /// connection (the one resend the retry policy allows): written on a new connection, never
    /// resent; a failure is the caller's.
    pub async fn publish_resend(
        &self,
        op: Operation,
        commands: usize,
        encode: impl FnMut(&mut Vec<u8>) -> bool,
    ) -> Result<Vec<String>> {
        self.publish_with(op, commands, encode, false).await
    }

    /// With `first_send` false the batch goes out once, on a new connection.
    async fn publish_with(
        &self,
        op: Operation,
        commands: usize,
        encode: impl FnMut(&mut Vec<u8>) -> bool,
        first_send: bool,
    ) -> Result<Vec<String>> {
        let started = Instant::now();
        let taken = if first_send {
            self.take().await
        } else {
            self.open().await.map(|conn| (conn, Vec::new(), false))
        };
        let (mut conn, mut packed, mut reused) = match taken {
            Ok(taken) => taken,
            Err(e) => {
                self.pool
                    .metrics()
                    .record_outcome::<()>(op, started.elapsed(), &Err(e.clone()));
                return Err(e);
            }
        };
        packed.clear();
        let mut sent = conn.send_in_parts(&mut packed, commands, encode).await;
        let mut resent = !first_send;
        let result = loop {
            let failure = match sent {
                Ok(()) => match ids(&conn, commands) {
                    Err(e) if e.response_code() == Some("READONLY") && !resent => {
                        self.drop_idle();
                        e
                    }
                    done => {
                        self.give_back(conn, packed);
                        break done;
                    }
                },
                Err(e) if matches!(e, Error::Connection { .. }) && reused && !resent => e,
                Err(e) => break Err(e),
            };
            // Once more on a new connection (the retry policy in the module docs).
            drop(failure);
            resent = true;
            reused = false;
            conn = match self.open().await {
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            sent = conn.send(&packed, commands).await;
        };
        self.pool.metrics().record_outcome(op, started.elapsed(), &result);
        result
    }
}

/// A lone publish written on an event loop's direct connection (`src/python/direct.rs`) that
/// was lost with that connection before its reply came: `Ok` when the retry policy sends it
/// once more ([`Publisher::publish_resend`]: the connection was `Dropped` and had served
/// calls before), else the caller's error. A connection closed under it for a timeout (an
/// older request's), or by the pool closing, is never resent: the XADD may have been applied.
pub fn resend_lost(failure: Failure, served: bool, redacted_url: &str) -> Result<()> {
    if Attempts::default().again(failure, served) {
        return Ok(());
    }
    Err(Error::Connection {
        url: redacted_url.to_owned(),
        message: "the connection was lost with the publish in flight (it may have been applied)".into(),
    })
}

/// A lone publish written on an event loop's direct connection that was closed because an
/// older request on it got no reply within `response_timeout`: the server is not answering, so
/// the caller gets a timeout, and the XADD (which may still be applied) is never resent.
pub fn unanswered(response_timeout: Duration) -> Error {
    Error::Timeout {
        operation: Operation::StreamPublish.name(),
        timeout: response_timeout,
    }
}

/// A lone publish refused on an event loop's direct connection with this error: true when the
/// retry policy sends it once more ([`Publisher::publish_resend`]; `READONLY`, a failover).
pub fn resend_refused(err: &Error) -> bool {
    err.response_code() == Some("READONLY")
}

/// The entry ids of the last round trip's `commands` replies; the first error reply fails.
fn ids(conn: &WireConnection, commands: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(commands);
    for i in 0..commands {
        ids.push(stream_wire::text_reply(conn.reply(i))?.to_owned());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_lost_on_a_direct_connection_is_resent_only_as_the_policy_says() {
        assert!(
            resend_lost(Failure::Dropped, true, "redis://h:1").is_ok(),
            "a used connection found dropped"
        );
        for (failure, served) in [
            (Failure::Dropped, false), // a fresh connection failed: real
            (Failure::Broken, true),   // closed here (the pool closed): may have been applied
            (Failure::Broken, false),
        ] {
            let err = resend_lost(failure, served, "redis://h:1").expect_err("not resent");
            assert!(
                matches!(&err, Error::Connection { url, .. } if url == "redis://h:1"),
                "{err:?}"
            );
        }
        let err = unanswered(Duration::from_millis(300));
        assert!(err.is_timeout(), "closed after an older request timed out: {err:?}");
        assert!(resend_refused(&Error::error_reply(
            "READONLY You can't write against a read only replica."
        )));
        assert!(!resend_refused(&Error::error_reply("OOM command not allowed")));
    }
}
