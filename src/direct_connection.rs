//! A non-blocking Redis connection that its owner drives: the owner writes requests when it
//! has them and reads replies when its own event loop says the socket is readable.
//!
//! This lets a caller that already runs an event loop (Python's asyncio) do a cached read with
//! no thread hop at all: the request goes out from the calling thread and the reply wakes the
//! loop that is waiting for it, exactly like the raw round trip. Replies come back in request
//! order (RESP2, no pub/sub), so the owner pairs them with its requests first-in first-out.
//!
//! Plain TCP and unix sockets only; `rediss://` URLs are refused with `InvalidInput` (TLS
//! goes through [`crate::RedisPool`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};

use crate::error::{Error, Result};
use crate::redis_pool::redact_url;
use crate::resp::{self, Reply};

/// The name every direct connection gives itself (`CLIENT SETNAME`).
pub const CLIENT_NAME: &str = "solcache-direct";

/// The socket under a [`DirectConnection`].
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Socket::Tcp(s) => s,
            Socket::Unix(s) => s,
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_nonblocking(on),
            Socket::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s
                .set_read_timeout(Some(timeout))
                .and(s.set_write_timeout(Some(timeout))),
            Socket::Unix(s) => s
                .set_read_timeout(Some(timeout))
                .and(s.set_write_timeout(Some(timeout))),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connection written and read without blocking; see the module docs.
pub struct DirectConnection {
    socket: Socket,
    /// Bytes received and not yet parsed (from `read_pos`).
    read_buf: Vec<u8>,
    read_pos: usize,
    /// Bytes of requests the socket did not take yet.
    write_buf: Vec<u8>,
    url: String,
}

/// What a [`DirectConnection::read_replies`] call found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has nothing more right now.
    Drained,
    /// The server closed the connection.
    Closed,
}

impl DirectConnection {
    /// Connect (blocking, up to `connect_timeout` per step), authenticate and select the
    /// database named by `url`, then switch the socket to non-blocking mode.
    pub fn connect(url: &str, connect_timeout: Duration) -> Result<DirectConnection> {
        let redacted = redact_url(url);
        let info = url
            .into_connection_info()
            .map_err(|e| Error::invalid(format!("bad Redis URL {redacted}: {}", e.category())))?;
        let io_error = |e: std::io::Error| {
            if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) {
                Error::Timeout {
                    operation: "connect",
                    timeout: connect_timeout,
                }
            } else {
                Error::Connection {
                    url: redacted.clone(),
                    message: e.to_string(),
                }
            }
        };
        let socket = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let addrs = (host.as_str(), *port).to_socket_addrs().map_err(io_error)?;
                let mut last = None;
                let mut connected = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, connect_timeout) {
                        Ok(stream) => {
                            connected = Some(stream);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let stream = connected.ok_or_else(|| {
                    io_error(last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address")))
                })?;
                // Nagle's algorithm would hold small requests back for up to 40 ms.
                stream.set_nodelay(true).map_err(io_error)?;
                Socket::Tcp(stream)
            }
            ConnectionAddr::Unix(path) => Socket::Unix(UnixStream::connect(path).map_err(io_error)?),
            _ => {
                return Err(Error::invalid(format!(
                    "{redacted}: direct connections support redis:// and unix:// only"
                )))
            }
        };
        socket.set_timeouts(connect_timeout).map_err(io_error)?;
        let mut conn = DirectConnection {
            socket,
            read_buf: Vec::with_capacity(16 * 1024),
            read_pos: 0,
            write_buf: Vec::new(),
            url: redacted.clone(),
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            conn.handshake(&auth).map_err(|e| match e {
                Error::Response(message) => Error::Authentication {
                    url: redacted.clone(),
                    message,
                },
                other => other,
            })?;
        }
        if settings.db() != 0 {
            conn.handshake(redis::cmd("SELECT").arg(settings.db()))?;
        }
        // Named, so `CLIENT LIST` tells operators which connections read directly.
        conn.handshake(redis::cmd("CLIENT").arg("SETNAME").arg(CLIENT_NAME))?;
        conn.socket.set_nonblocking(true).map_err(io_error)?;
        Ok(conn)
    }

    /// One blocking request/reply while connecting.
    fn handshake(&mut self, cmd: &redis::Cmd) -> Result<()> {
        let closed = || Error::Connection {
            url: self.url.clone(),
            message: "the server closed the connection during the handshake".into(),
        };
        self.socket
            .stream()
            .write_all(&cmd.get_packed_command())
            .map_err(|e| self.io_error(e))?;
        let mut chunk = [0u8; 512];
        loop {
            if let Some((reply, used)) = resp::parse(&self.read_buf)? {
                self.read_buf.drain(..used);
                return match reply {
                    Reply::Error(message) => Err(Error::Response(message)),
                    _ => Ok(()),
                };
            }
            let n = self.socket.stream().read(&mut chunk).map_err(|e| self.io_error(e))?;
            if n == 0 {
                return Err(closed());
            }
            self.read_buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::Connection {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// The socket's file descriptor, for the owner's event loop.
    pub fn raw_fd(&self) -> RawFd {
        match &self.socket {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Queue `cmd` and write as much as the socket takes now. Returns true when everything
    /// queued is written; false means the owner must call [`Self::flush`] once writable.
    pub fn send(&mut self, cmd: &redis::Cmd) -> Result<bool> {
        cmd.write_packed_command(&mut self.write_buf);
        self.flush()
    }

    /// Queue `cmd` without writing; [`Self::flush`] sends it.
    pub fn queue(&mut self, cmd: &redis::Cmd) {
        cmd.write_packed_command(&mut self.write_buf);
    }

    /// Write queued bytes without blocking; true when none are left.
    pub fn flush(&mut self) -> Result<bool> {
        let mut written = 0;
        while written < self.write_buf.len() {
            match self.socket.stream().write(&self.write_buf[written..]) {
                Ok(0) => return Err(self.io_error(ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            }
        }
        self.write_buf.drain(..written);
        Ok(self.write_buf.is_empty())
    }

    /// Read what the socket has without blocking and append every complete reply to
    /// `replies`, in order.
    pub fn read_replies(&mut self, replies: &mut Vec<Reply>) -> Result<ReadOutcome> {
        let mut chunk = [0u8; 16 * 1024];
        let outcome = loop {
            match self.socket.stream().read(&mut chunk) {
                Ok(0) => break ReadOutcome::Closed,
                Ok(n) => {
                    self.read_buf.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break ReadOutcome::Drained;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break ReadOutcome::Drained,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            }
        };
        while let Some((reply, used)) = resp::parse(&self.read_buf[self.read_pos..])? {
            replies.push(reply);
            self.read_pos += used;
        }
        if self.read_pos == self.read_buf.len() {
            self.read_buf.clear();
            self.read_pos = 0;
        } else if self.read_pos > 64 * 1024 {
            self.read_buf.drain(..self.read_pos);
            self.read_pos = 0;
        }
        Ok(outcome)
    }
}
