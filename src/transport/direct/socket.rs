//! [`DirectSocket`]: the non-blocking socket under a [`Link`]. It opens and handshakes the
//! connection (blocking, on a worker thread), then moves bytes between the kernel and the
//! link when its owner's event loop says so. All decisions are the link's.
//!
//! Plain TCP and unix sockets only; `rediss://` endpoints are refused with `InvalidInput`
//! (TLS reads go through the async pool).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use redis::ConnectionAddr;

use super::link::Link;
use crate::error::{Error, Result};
use crate::transport::endpoint::Endpoint;
use crate::transport::handshake::{Handshake, DIRECT_CLIENT_NAME};
use crate::transport::resp::{Decoder, Reply};

/// Bytes read per `read` call.
const CHUNK: usize = 16 * 1024;

/// The socket under a [`Link`]; see the module docs.
pub enum DirectSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// True when `endpoint` can be driven directly (plain TCP or a unix socket).
pub fn supports(endpoint: &Endpoint) -> bool {
    matches!(endpoint.addr(), ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_))
}

impl DirectSocket {
    /// Connect (blocking, up to `connect_timeout` per step), run the shared handshake (named
    /// `solcache-direct`), then switch the socket to non-blocking mode.
    pub fn connect(endpoint: &Endpoint, connect_timeout: Duration) -> Result<DirectSocket> {
        DirectSocket::connect_named(endpoint, connect_timeout, DIRECT_CLIENT_NAME)
    }

    /// [`DirectSocket::connect`] with another `CLIENT SETNAME`.
    pub fn connect_named(endpoint: &Endpoint, connect_timeout: Duration, client_name: &str) -> Result<DirectSocket> {
        let url = endpoint.redacted_url();
        let io_error = |e: std::io::Error| connect_error(e, url, connect_timeout);
        let mut socket = match endpoint.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let mut last = None;
                let mut connected = None;
                for addr in (host.as_str(), *port).to_socket_addrs().map_err(io_error)? {
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
                DirectSocket::Tcp(stream)
            }
            ConnectionAddr::Unix(path) => DirectSocket::Unix(UnixStream::connect(path).map_err(io_error)?),
            _ => {
                return Err(Error::invalid(format!(
                    "{url}: direct connections support redis:// and unix:// only"
                )))
            }
        };
        socket.set_timeouts(connect_timeout).map_err(io_error)?;
        socket.handshake(&Handshake::new(endpoint, client_name), url, connect_timeout)?;
        socket.set_nonblocking().map_err(io_error)?;
        Ok(socket)
    }

    /// The shared handshake, blocking: write it, read its replies, let it judge them.
    fn handshake(&mut self, handshake: &Handshake, url: &str, timeout: Duration) -> Result<()> {
        let io_error = |e: std::io::Error| connect_error(e, url, timeout);
        self.stream().write_all(handshake.packed()).map_err(io_error)?;
        let mut decoder = Decoder::new();
        let mut replies = Vec::with_capacity(handshake.replies());
        let mut chunk = [0u8; 1024];
        while replies.len() < handshake.replies() {
            if let Some(reply) = decoder.next_reply()? {
                replies.push(reply);
                continue;
            }
            match self.stream().read(&mut chunk).map_err(io_error)? {
                0 => {
                    return Err(Error::Connection {
                        url: url.to_owned(),
                        message: "the server closed the connection during the handshake".into(),
                    })
                }
                n => decoder.push(&chunk[..n]),
            }
        }
        handshake.check(replies).map(drop)
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            DirectSocket::Tcp(s) => s,
            DirectSocket::Unix(s) => s,
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            DirectSocket::Tcp(s) => s.set_nonblocking(true),
            DirectSocket::Unix(s) => s.set_nonblocking(true),
        }
    }

    fn set_blocking(&self, blocking: bool) -> std::io::Result<()> {
        match self {
            DirectSocket::Tcp(s) => s.set_nonblocking(!blocking),
            DirectSocket::Unix(s) => s.set_nonblocking(!blocking),
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        match self {
            DirectSocket::Tcp(s) => s
                .set_read_timeout(Some(timeout))
                .and(s.set_write_timeout(Some(timeout))),
            DirectSocket::Unix(s) => s
                .set_read_timeout(Some(timeout))
                .and(s.set_write_timeout(Some(timeout))),
        }
    }

    /// The file descriptor, for the owner's event loop.
    pub fn raw_fd(&self) -> RawFd {
        match self {
            DirectSocket::Tcp(s) => s.as_raw_fd(),
            DirectSocket::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Write as much of `link`'s output as the socket takes now, without blocking: true when
    /// all of it is written, false when the owner must wait until the socket is writable.
    pub fn write<R>(&mut self, link: &mut Link<R>) -> Result<bool> {
        let mut written = 0;
        let outcome = loop {
            let pending = &link.output()[written..];
            if pending.is_empty() {
                break Ok(true);
            }
            match self.stream().write(pending) {
                Ok(0) => break Err(ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        link.wrote(written);
        outcome.map_err(broken)
    }

    /// Read what the socket has, without blocking, into `link`; every reply this completes is
    /// appended to `answered` with its token. `Err` when the connection broke (closed by the
    /// server, an I/O error, or the link refused the bytes).
    pub fn read<R>(&mut self, link: &mut Link<R>, answered: &mut Vec<(R, Reply)>) -> Result<()> {
        let mut chunk = [0u8; CHUNK];
        loop {
            match self.stream().read(&mut chunk) {
                Ok(0) => return Err(broken(ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    link.receive(&chunk[..n], answered)?;
                    if n < CHUNK {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(broken(e)),
            }
        }
    }

    /// Write what the socket takes of `bytes` now, without blocking: how many it took.
    pub fn write_some(&mut self, bytes: &[u8]) -> Result<usize> {
        loop {
            return match self.stream().write(bytes) {
                Ok(0) if !bytes.is_empty() => Err(broken(ErrorKind::WriteZero.into())),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(broken(e)),
            };
        }
    }

    /// Read what the socket has, without blocking, into `decoder`, through `scratch` (kept by
    /// the caller: zeroing a fresh buffer on every call would cost more than the read): how
    /// many bytes came. `Err` when the connection broke (closed by the server or an I/O error).
    pub fn read_into(&mut self, decoder: &mut Decoder, scratch: &mut [u8]) -> Result<usize> {
        let mut total = 0;
        loop {
            match self.stream().read(scratch) {
                Ok(0) => return Err(broken(ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    decoder.push(&scratch[..n]);
                    total += n;
                    if n < scratch.len() {
                        return Ok(total);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(broken(e)),
            }
        }
    }

    /// Poll for the reply of a lone request for up to the link's spin budget; true when it
    /// came (it is in `answered`). The link learns the outcome.
    pub fn spin<R>(&mut self, link: &mut Link<R>, answered: &mut Vec<(R, Reply)>) -> Result<bool> {
        let started = Instant::now();
        let budget = link.spin_budget();
        loop {
            self.read(link, answered)?;
            let hit = !answered.is_empty();
            if hit || started.elapsed() >= budget {
                link.spun(hit);
                return Ok(hit);
            }
            std::hint::spin_loop();
        }
    }

    /// Block the calling thread until the socket has bytes (or `timeout` passes), then read
    /// what it has into `link`, like [`DirectSocket::read`]. A timeout is
    /// [`Error::Timeout`] (the reply is still due: the connection can no longer be trusted).
    pub fn read_blocking<R>(
        &mut self,
        link: &mut Link<R>,
        answered: &mut Vec<(R, Reply)>,
        timeout: Duration,
    ) -> Result<()> {
        let timed_out = || Error::Timeout {
            operation: "response",
            timeout,
        };
        let mut chunk = [0u8; CHUNK];
        let waited = self
            .set_blocking(true)
            .and_then(|()| self.set_timeouts(timeout.max(Duration::from_micros(1))))
            .and_then(|()| loop {
                match self.stream().read(&mut chunk) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    other => break other,
                }
            });
        let restored = self.set_blocking(false);
        match waited {
            Ok(0) => Err(broken(ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                restored.map_err(broken)?;
                link.receive(&chunk[..n], answered)?;
                // More may have come with it: take it without blocking.
                self.read(link, answered)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(timed_out()),
            Err(e) => Err(broken(e)),
        }
    }

    /// Write all of `link`'s output, blocking the calling thread for at most `timeout`.
    pub fn write_blocking<R>(&mut self, link: &mut Link<R>, timeout: Duration) -> Result<()> {
        if self.write(link)? {
            return Ok(());
        }
        let written = self
            .set_blocking(true)
            .and_then(|()| self.set_timeouts(timeout.max(Duration::from_micros(1))))
            .and_then(|()| self.stream().write_all(link.output()));
        let restored = self.set_blocking(false);
        match written {
            Ok(()) => {
                let n = link.output().len();
                link.wrote(n);
                restored.map_err(broken)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(Error::Timeout {
                operation: "response",
                timeout,
            }),
            Err(e) => Err(broken(e)),
        }
    }
}

impl AsRawFd for DirectSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connect-time I/O error: a timeout, or the server could not be reached.
fn connect_error(e: std::io::Error, url: &str, timeout: Duration) -> Error {
    if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) {
        Error::Timeout {
            operation: "connect",
            timeout,
        }
    } else {
        Error::Connection {
            url: url.to_owned(),
            message: e.to_string(),
        }
    }
}

/// A broken connection, as the error its link reports (the url is not needed: the requests
/// in flight are re-sent elsewhere, never failed with this).
fn broken(e: std::io::Error) -> Error {
    Error::Connection {
        url: String::new(),
        message: e.to_string(),
    }
}
