//! [`LoneLink`]: a direct connection that one caller at a time drives from its own thread
//! (blocking) or task (on the runtime's reactor), one request at a time. The pools keep one
//! beside each pooled connection for cache reads: the request is written by the caller, the
//! reply polled for up to the spin budget (a local reply comes before a sleeping thread
//! would wake), then waited for. No driver task, no thread hop.
//!
//! The [`Link`] does the bookkeeping (pairing, polling policy); a request left in flight by a
//! cancelled caller makes the link unusable ([`LoneLink::is_clean`]), never misread.

use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use super::link::{Link, Submitted};
use super::socket::DirectSocket;
use crate::error::{Error, Result};
use crate::transport::endpoint::Endpoint;
use crate::transport::resp::Reply;

/// A pool's direct read connection; see the module docs.
pub struct LoneLink {
    link: Link<()>,
    answered: Vec<((), Reply)>,
    response_timeout: Duration,
}

/// The blocking form: the socket is used on the caller's thread.
pub struct BlockingLone {
    socket: DirectSocket,
    lone: LoneLink,
}

/// The async form: the socket is registered with the tokio reactor of the task that opened it.
pub struct TaskLone {
    socket: AsyncFd<DirectSocket>,
    lone: LoneLink,
}

impl LoneLink {
    fn new(response_timeout: Duration, spin: Duration) -> Self {
        let now = Instant::now();
        let mut link = Link::new(true, response_timeout, spin, now);
        link.route(now); // Down → Connecting: the socket is open already
        link.connected();
        LoneLink {
            link,
            answered: Vec::with_capacity(1),
            response_timeout,
        }
    }

    /// Nothing in flight: the next reply on the socket will be the next request's.
    fn is_clean(&self) -> bool {
        self.link.in_flight() == 0
    }

    /// Queue `cmd`, write it, and poll for its reply within the budget (unless `busy`: other
    /// reads are in flight, so polling would hold a thread they need). The reply when it came.
    fn start(&mut self, socket: &mut DirectSocket, cmd: &redis::Cmd, busy: bool) -> Result<Option<Reply>> {
        let Submitted::WriteNow { spin } = self.link.submit(cmd, (), Instant::now(), busy) else {
            return Err(Error::unexpected_reply("a lone direct link had a request in flight"));
        };
        socket.write_blocking(&mut self.link, self.response_timeout)?;
        if spin && socket.spin(&mut self.link, &mut self.answered)? {
            return Ok(self.take());
        }
        Ok(None)
    }

    fn take(&mut self) -> Option<Reply> {
        self.answered.pop().map(|((), reply)| reply)
    }
}

impl BlockingLone {
    /// Connect and handshake (blocking, within `connect_timeout`), naming the connection
    /// `client_name`.
    pub fn connect(
        endpoint: &Endpoint,
        client_name: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
        spin: Duration,
    ) -> Result<Self> {
        Ok(BlockingLone {
            socket: DirectSocket::connect_as(endpoint, connect_timeout, client_name)?,
            lone: LoneLink::new(response_timeout, spin),
        })
    }

    /// Send `cmd` and return its reply, on this thread: poll first (see [`LoneLink`]), then
    /// block in the kernel until the response timeout. Any error leaves the link unusable.
    pub fn call(&mut self, cmd: &redis::Cmd, busy: bool) -> Result<Reply> {
        if !self.lone.is_clean() {
            return Err(Error::unexpected_reply("a lone direct link had a request in flight"));
        }
        if let Some(reply) = self.lone.start(&mut self.socket, cmd, busy)? {
            return Ok(reply);
        }
        let deadline = Instant::now() + self.lone.response_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    operation: "response",
                    timeout: self.lone.response_timeout,
                });
            }
            self.socket
                .read_blocking(&mut self.lone.link, &mut self.lone.answered, left)
                .map_err(|e| with_timeout(e, self.lone.response_timeout))?;
            if let Some(reply) = self.lone.take() {
                return Ok(reply);
            }
        }
    }
}

impl TaskLone {
    /// Connect and handshake on a blocking thread (within `connect_timeout`), then register
    /// the socket with the current runtime. Must be called inside a tokio runtime.
    pub async fn connect(
        endpoint: std::sync::Arc<Endpoint>,
        client_name: &'static str,
        connect_timeout: Duration,
        response_timeout: Duration,
        spin: Duration,
    ) -> Result<Self> {
        let socket =
            tokio::task::spawn_blocking(move || DirectSocket::connect_as(&endpoint, connect_timeout, client_name))
                .await
                .map_err(|e| Error::Connection {
                    url: String::new(),
                    message: format!("direct connect task failed: {e}"),
                })??;
        // Deprecated for types that could close or swap their fd while registered; this
        // `AsyncFd` owns the `DirectSocket`, which owns its stream and never replaces it.
        #[allow(deprecated)]
        let socket = AsyncFd::new(socket).map_err(|e| Error::Connection {
            url: String::new(),
            message: format!("cannot watch the direct socket: {e}"),
        })?;
        Ok(TaskLone {
            socket,
            lone: LoneLink::new(response_timeout, spin),
        })
    }

    /// Whether the next call can use this link (a cancelled call may have left a request in
    /// flight: then it is dropped, not read).
    pub fn is_clean(&self) -> bool {
        self.lone.is_clean()
    }

    /// Send `cmd` and await its reply from the calling task: poll first (see [`LoneLink`]),
    /// then wait on the reactor until the response timeout. Any error leaves the link
    /// unusable; so does dropping the future before it finishes.
    pub async fn call(&mut self, cmd: &redis::Cmd, busy: bool) -> Result<Reply> {
        if !self.lone.is_clean() {
            return Err(Error::unexpected_reply("a lone direct link had a request in flight"));
        }
        if let Some(reply) = self.lone.start(self.socket.get_mut(), cmd, busy)? {
            return Ok(reply);
        }
        let timeout = self.lone.response_timeout;
        let wait = async {
            loop {
                let mut ready = self.socket.readable_mut().await.map_err(|e| Error::Connection {
                    url: String::new(),
                    message: e.to_string(),
                })?;
                ready
                    .get_inner_mut()
                    .read(&mut self.lone.link, &mut self.lone.answered)?;
                if let Some(reply) = self.lone.take() {
                    return Ok(reply);
                }
                ready.clear_ready();
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                operation: "response",
                timeout,
            }),
        }
    }
}

/// A wait that ran out is reported with the whole response timeout, not what was left of it.
fn with_timeout(e: Error, timeout: Duration) -> Error {
    match e {
        Error::Timeout { operation, .. } => Error::Timeout { operation, timeout },
        other => other,
    }
}
