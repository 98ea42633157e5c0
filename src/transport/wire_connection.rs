//! [`WireConnection`]: a connection of its own, outside the pool, that sends a pipeline and
//! hands back its replies as the bytes Redis sent, for a caller that reads them itself
//! ([`crate::stream_wire`] on the consumer-group read path: no reply tree per entry; entry ids
//! of XADDs in [`crate::stream_publish`]). A pipeline may also be written ahead and its replies
//! read later ([`WireConnection::write_ahead`], [`WireConnection::read_written`]): the server
//! works on it while the caller decodes the replies before.
//!
//! Plain TCP and unix sockets, opened and handshaken like a direct connection
//! ([`DirectSocket::connect_named`], on a blocking thread), then driven by tokio. A `rediss://`
//! endpoint gets none ([`WireConnection::open`] says so): the caller uses a
//! [`BlockingConnection`](super::BlockingConnection) there.

use std::ops::Range;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::direct::{supports, DirectSocket};
use super::RedisPool;
use crate::error::{Error, Result};
use crate::metrics::Operation;
use crate::stream_wire::ReplyScan;

/// Room made in the read buffer before each read (a batch of 100 entries is about 25 KiB).
const READ_CHUNK: usize = 64 * 1024;

enum Socket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A dedicated connection whose replies are read as bytes; see the module docs.
pub struct WireConnection {
    socket: Socket,
    pool: RedisPool,
    response_timeout: Duration,
    /// The last round trip's reply bytes (the buffer is kept for the next one).
    buf: Vec<u8>,
    /// Where each of those replies lies in `buf`.
    replies: Vec<Range<usize>>,
    /// Replies of pipelines written ahead ([`WireConnection::write_ahead`]) not read yet.
    unread: usize,
    /// An I/O error, a timeout or a round trip that did not finish (its future was dropped):
    /// the reply stream can no longer be trusted.
    broken: bool,
}

impl WireConnection {
    /// True when [`WireConnection::open`] can open one for `pool` (a single server reached over
    /// plain TCP or a unix socket).
    pub fn supported(pool: &RedisPool) -> bool {
        pool.endpoint().is_some_and(|e| supports(e))
    }

    /// A connection named `client_name`, whose response timeout is `block + response_timeout`
    /// (a long `BLOCK` is not a dead server); `Ok(None)` for an endpoint it cannot drive (TLS, Cluster,
    /// Sentinel).
    pub async fn open(pool: &RedisPool, block: Duration, client_name: &str) -> Result<Option<WireConnection>> {
        if pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        // Cluster and Sentinel have no one fixed server: their reads take the pool's path.
        let Some(endpoint) = pool.endpoint().filter(|e| supports(e)).cloned() else {
            return Ok(None);
        };
        let connect_timeout = pool.config().connect_timeout;
        let name = client_name.to_owned();
        let connected =
            tokio::task::spawn_blocking(move || DirectSocket::connect_named(&endpoint, connect_timeout, &name))
                .await
                .unwrap_or_else(|e| {
                    Err(Error::Connection {
                        url: pool.redacted_url().to_owned(),
                        message: format!("the connect thread failed: {e}"),
                    })
                });
        let socket = connected.and_then(|s| {
            let io = |e: std::io::Error| Error::Connection {
                url: pool.redacted_url().to_owned(),
                message: e.to_string(),
            };
            // The socket is non-blocking already (DirectSocket set it so).
            Ok(match s {
                DirectSocket::Tcp(s) => Socket::Tcp(tokio::net::TcpStream::from_std(s).map_err(io)?),
                DirectSocket::Unix(s) => Socket::Unix(tokio::net::UnixStream::from_std(s).map_err(io)?),
            })
        });
        let socket = socket.inspect_err(|e| pool.metrics().record_error(e))?;
        Ok(Some(WireConnection {
            socket,
            pool: pool.clone(),
            response_timeout: block + pool.config().response_timeout,
            buf: Vec::new(),
            replies: Vec::new(),
            unread: 0,
            broken: false,
        }))
    }

    /// Send `packed` (a pipeline of `replies` commands) and wait for all its replies, recorded
    /// as `op`; then [`WireConnection::reply`] gives each one's bytes. No retry: after an error
    /// the connection is broken and the caller opens a new one.
    pub async fn round_trip(&mut self, op: Operation, packed: &[u8], replies: usize) -> Result<()> {
        let started = Instant::now();
        let result = self.send(packed, replies).await;
        self.pool.metrics().record_outcome(op, started.elapsed(), &result);
        result
    }

    /// [`WireConnection::round_trip`] without recording it, for a caller that records the
    /// outcome itself (e.g. after reading error replies out of the bytes).
    pub async fn send(&mut self, packed: &[u8], replies: usize) -> Result<()> {
        self.expect_no_unread()?;
        self.guarded(async |conn: &mut Self| {
            conn.write(packed).await?;
            conn.read_replies(replies).await
        })
        .await
    }

    /// [`WireConnection::send`] of a pipeline written in parts: `more` appends the next part
    /// to `packed` (returning false once it appended the last), and each part goes out as soon
    /// as it is appended, so that the server works on one while the next is written. `packed`
    /// holds the whole pipeline afterwards (to be sent again with [`WireConnection::send`]).
    pub async fn send_in_parts(
        &mut self,
        packed: &mut Vec<u8>,
        replies: usize,
        mut more: impl FnMut(&mut Vec<u8>) -> bool,
    ) -> Result<()> {
        self.expect_no_unread()?;
        self.guarded(async |conn: &mut Self| {
            let mut written = packed.len();
            loop {
                let last = !more(packed);
                conn.write(&packed[written..]).await?;
                written = packed.len();
                if last {
                    break;
                }
            }
            conn.read_replies(replies).await
        })
        .await
    }

    /// Write `packed` (a pipeline of `replies` commands) without waiting for its replies: the
    /// server works on it while the caller does something else, then
    /// [`WireConnection::read_written`] reads them. Nothing else may be sent meanwhile.
    pub async fn write_ahead(&mut self, packed: &[u8], replies: usize) -> Result<()> {
        self.guarded(async |conn: &mut Self| conn.write(packed).await).await?;
        self.unread += replies;
        Ok(())
    }

    /// Read the replies of the pipeline [`WireConnection::write_ahead`] wrote, recorded as `op`
    /// (the time waited for them); then [`WireConnection::reply`] gives each one's bytes.
    pub async fn read_written(&mut self, op: Operation) -> Result<()> {
        let started = Instant::now();
        let replies = self.unread;
        let result = self
            .guarded(async |conn: &mut Self| conn.read_replies(replies).await)
            .await;
        self.unread = 0;
        self.pool.metrics().record_outcome(op, started.elapsed(), &result);
        result
    }

    /// A new pipeline's replies would be read as the older one's: a caller's bug, refused.
    fn expect_no_unread(&self) -> Result<()> {
        if self.unread > 0 {
            return Err(Error::unexpected_reply(
                "read connection: a pipeline written ahead was not read before the next one",
            ));
        }
        Ok(())
    }

    /// Run `exchange` under the response timeout, the connection broken unless it finishes.
    async fn guarded(&mut self, exchange: impl AsyncFnOnce(&mut Self) -> Result<()>) -> Result<()> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        self.broken = true; // until the last reply is in: a dropped future leaves it so
        let timeout = self.response_timeout;
        let result = match tokio::time::timeout(timeout, exchange(self)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                operation: "blocking response",
                timeout,
            }),
        };
        self.broken = result.is_err();
        result
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::Connection {
            url: self.pool.redacted_url().to_owned(),
            message: e.to_string(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let written = match &mut self.socket {
            Socket::Tcp(s) => s.write_all(bytes).await,
            Socket::Unix(s) => s.write_all(bytes).await,
        };
        written.map_err(|e| self.io_error(e))
    }

    async fn read_replies(&mut self, replies: usize) -> Result<()> {
        self.buf.clear();
        self.replies.clear();
        let mut scan = ReplyScan::new(0);
        while self.replies.len() < replies {
            match scan.advance(&self.buf)? {
                Some(end) => {
                    self.replies.push(scan.start()..end);
                    scan = ReplyScan::new(end);
                    continue;
                }
                None => {
                    self.buf.reserve(READ_CHUNK);
                    let n = match &mut self.socket {
                        Socket::Tcp(s) => s.read_buf(&mut self.buf).await,
                        Socket::Unix(s) => s.read_buf(&mut self.buf).await,
                    }
                    .map_err(|e| self.io_error(e))?;
                    if n == 0 {
                        return Err(self.io_error(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
        if scan.start() != self.buf.len() {
            return Err(Error::unexpected_reply(
                "read connection out of step: bytes after the last reply",
            ));
        }
        Ok(())
    }

    /// The bytes of reply `i` of the last round trip (one complete RESP2 reply).
    pub fn reply(&self, i: usize) -> &[u8] {
        &self.buf[self.replies[i].clone()]
    }

    /// True once a round trip failed or did not finish: open a new one.
    pub fn is_broken(&self) -> bool {
        self.broken || self.pool.is_closed()
    }
}
