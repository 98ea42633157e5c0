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
use tokio::io::Interest;

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

/// The async form: the caller's task polls the socket; only when it has to wait is the
/// socket registered with the tokio reactor (and while polling succeeds it is not: a
/// registered socket wakes a runtime thread for every reply, wanted or not).
pub struct TaskLone {
    socket: Watched,
    lone: LoneLink,
}

/// Where a [`TaskLone`]'s socket is.
enum Watched {
    /// Not registered: polled by the caller.
    Plain(DirectSocket),
    /// Registered with the reactor of the runtime that registered it.
    Reactor(AsyncFd<DirectSocket>),
    /// Lost while moving between the two (registration failed): the link is unusable.
    Gone,
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

    /// Queue `cmd`; true when its reply is worth polling for (not when `busy`: other reads
    /// are in flight, so polling would hold a thread they need).
    fn submit(&mut self, cmd: &redis::Cmd, busy: bool) -> Result<bool> {
        if !self.is_clean() {
            return Err(Error::unexpected_reply("a lone direct link had a request in flight"));
        }
        match self.link.submit(cmd, (), Instant::now(), busy) {
            Submitted::WriteNow { spin } => Ok(spin),
            Submitted::Buffered { .. } => Err(Error::unexpected_reply("a lone direct link batched a request")),
        }
    }

    /// Write the queued request, then, with `spin`, poll for its reply within the budget.
    /// The reply when it came.
    fn send(&mut self, socket: &mut DirectSocket, spin: bool) -> Result<Option<Reply>> {
        socket.write_blocking(&mut self.link, self.response_timeout)?;
        if spin && socket.spin(&mut self.link, &mut self.answered)? {
            return Ok(self.take());
        }
        Ok(None)
    }

    fn take(&mut self) -> Option<Reply> {
        self.answered.pop().map(|((), reply)| reply)
    }

    /// Queue `cmds` as one pipeline; true when their replies are worth polling for (the
    /// link's policy for its first request).
    fn submit_all(&mut self, cmds: &[redis::Cmd], busy: bool) -> Result<bool> {
        if !self.is_clean() {
            return Err(Error::unexpected_reply("a lone direct link had a request in flight"));
        }
        let requests = cmds.iter().map(|cmd| (cmd, ()));
        let spin = match self.link.submit_pipeline(requests, Instant::now(), busy) {
            Submitted::WriteNow { spin } => spin,
            Submitted::Buffered { .. } => return Err(Error::unexpected_reply("a lone direct link was not idle")),
        };
        self.link.flush_due();
        Ok(spin)
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
            socket: DirectSocket::connect_named(endpoint, connect_timeout, client_name)?,
            lone: LoneLink::new(response_timeout, spin),
        })
    }

    /// Send `cmd` and return its reply, on this thread: poll first (see [`LoneLink`]), then
    /// block in the kernel until the response timeout. Any error leaves the link unusable.
    pub fn call(&mut self, cmd: &redis::Cmd, busy: bool) -> Result<Reply> {
        let spin = self.lone.submit(cmd, busy)?;
        if let Some(reply) = self.lone.send(&mut self.socket, spin)? {
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
            tokio::task::spawn_blocking(move || DirectSocket::connect_named(&endpoint, connect_timeout, client_name))
                .await
                .map_err(|e| Error::Connection {
                    url: String::new(),
                    message: format!("direct connect task failed: {e}"),
                })??;
        // Deprecated for types that could close or swap their fd while registered; this
        // `AsyncFd` owns the `DirectSocket`, which owns its stream and never replaces it.
        #[allow(deprecated)]
        Ok(TaskLone {
            socket: Watched::Plain(socket),
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
        let spin = self.lone.submit(cmd, busy)?;
        let socket = if spin {
            self.socket.plain()?
        } else {
            self.socket.watched()?.get_mut()
        };
        if let Some(reply) = self.lone.send(socket, spin)? {
            return Ok(reply);
        }
        self.read_until(|lone| !lone.answered.is_empty()).await?;
        self.lone.take().ok_or_else(lost)
    }

    /// Read on the reactor until `done` says the awaited replies are in, within the response
    /// timeout.
    async fn read_until(&mut self, done: impl Fn(&LoneLink) -> bool) -> Result<()> {
        let timeout = self.lone.response_timeout;
        let fd = self.socket.watched()?;
        let lone = &mut self.lone;
        let wait = async {
            loop {
                let mut ready = fd.readable_mut().await.map_err(|e| Error::Connection {
                    url: String::new(),
                    message: e.to_string(),
                })?;
                ready.get_inner_mut().read(&mut lone.link, &mut lone.answered)?;
                if done(lone) {
                    return Ok(());
                }
                ready.clear_ready();
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| Error::Timeout {
            operation: "response",
            timeout,
        })?
    }
}

impl TaskLone {
    /// Write `cmds` as one pipeline without waiting for their replies (finish with
    /// [`TaskLone::poll`] and [`TaskLone::wait_all`]): true when the link's policy says their
    /// replies are worth polling for. Any error leaves the link unusable.
    pub fn start(&mut self, cmds: &[redis::Cmd], busy: bool) -> Result<bool> {
        let spin = self.lone.submit_all(cmds, busy)?;
        let timeout = self.lone.response_timeout;
        self.socket.any()?.write_blocking(&mut self.lone.link, timeout)?;
        Ok(spin)
    }

    /// Read what the socket has now, without blocking: true once every started request is
    /// answered.
    pub fn poll(&mut self) -> Result<bool> {
        self.socket.any()?.read(&mut self.lone.link, &mut self.lone.answered)?;
        Ok(self.lone.is_clean())
    }

    /// What the link's polling policy saw since the socket opened.
    pub fn spin_counts(&self) -> super::link::SpinCounts {
        self.lone.link.spin_counts()
    }

    /// Tell the link's polling policy whether polling found every reply within the budget.
    pub fn spun(&mut self, hit: bool) {
        self.lone.link.spun(hit);
    }

    /// Await every reply of [`TaskLone::start`] (on the reactor, within the response
    /// timeout), in request order. Any error leaves the link unusable; so does dropping the
    /// future before it finishes.
    pub async fn wait_all(&mut self) -> Result<Vec<Reply>> {
        if !self.lone.is_clean() {
            self.read_until(LoneLink::is_clean).await?;
        }
        Ok(self.lone.answered.drain(..).map(|((), reply)| reply).collect())
    }
}

impl Watched {
    /// The socket, registered or not.
    fn any(&mut self) -> Result<&mut DirectSocket> {
        match self {
            Watched::Plain(socket) => Ok(socket),
            Watched::Reactor(fd) => Ok(fd.get_mut()),
            Watched::Gone => Err(lost()),
        }
    }

    /// The socket, out of the reactor if it was registered.
    fn plain(&mut self) -> Result<&mut DirectSocket> {
        if let Watched::Reactor(_) = self {
            let Watched::Reactor(fd) = std::mem::replace(self, Watched::Gone) else {
                unreachable!("checked above");
            };
            *self = Watched::Plain(fd.into_inner());
        }
        match self {
            Watched::Plain(socket) => Ok(socket),
            _ => Err(lost()),
        }
    }

    /// The socket, registered with the current runtime's reactor (readable only). Bytes that
    /// came before it was registered are reported at once.
    fn watched(&mut self) -> Result<&mut AsyncFd<DirectSocket>> {
        if let Watched::Plain(_) = self {
            let Watched::Plain(socket) = std::mem::replace(self, Watched::Gone) else {
                unreachable!("checked above");
            };
            // Deprecated for types that could close or swap their fd while registered; this
            // `AsyncFd` owns the `DirectSocket`, which owns its stream and never replaces it.
            #[allow(deprecated)]
            let registered = AsyncFd::try_with_interest(socket, Interest::READABLE);
            *self = match registered {
                Ok(fd) => Watched::Reactor(fd),
                Err(e) => Watched::Plain(e.into_parts().0),
            };
        }
        match self {
            Watched::Reactor(fd) => Ok(fd),
            _ => Err(lost()),
        }
    }
}

/// The socket was lost moving in or out of the reactor.
fn lost() -> Error {
    Error::Connection {
        url: String::new(),
        message: "the direct socket could not be registered with the runtime".into(),
    }
}

/// A wait that ran out is reported with the whole response timeout, not what was left of it.
fn with_timeout(e: Error, timeout: Duration) -> Error {
    match e {
        Error::Timeout { operation, .. } => Error::Timeout { operation, timeout },
        other => other,
    }
}
