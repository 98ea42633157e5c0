//! The tracking connection: one socket that speaks RESP3 (`HELLO 3`) with
//! `CLIENT TRACKING ON`, so the keys read on it are tracked by the server and their
//! invalidations arrive on it, in wire order with the replies of the reads (fills).
//!
//! Non-blocking like the direct reads' socket (it is one, named `solcache-near`); waiting is
//! [`wait_readable`], a `poll(2)` with a timeout. Its [`Watch`] tells a hit whether anything
//! came since the last read without a system call.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::watch::Watch;
use crate::error::{Error, Result};
use crate::transport::direct::DirectSocket;
use crate::transport::endpoint::Endpoint;
use crate::transport::handshake::NEAR_CLIENT_NAME;
use crate::transport::resp::{Decoder, Reply};

/// A RESP3 connection with client tracking on; see the module docs.
pub struct TrackingConnection {
    /// Declared first, so its ring (whose poll holds the socket) goes before the socket.
    watch: Watch,
    socket: DirectSocket,
    decoder: Decoder,
    /// Where reads land before the decoder takes them (allocated once).
    scratch: Vec<u8>,
}

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

impl TrackingConnection {
    /// Connect, run the shared handshake, then `HELLO 3` and `CLIENT TRACKING ON`, each step
    /// within `connect_timeout`; with `io_uring`, give it a readiness ring (see [`Watch`]).
    pub fn open(endpoint: &Endpoint, connect_timeout: Duration, io_uring: bool) -> Result<TrackingConnection> {
        let socket = DirectSocket::connect_named(endpoint, connect_timeout, NEAR_CLIENT_NAME)?;
        let mut conn = TrackingConnection {
            watch: Watch::new(socket.raw_fd(), io_uring),
            socket,
            decoder: Decoder::new(),
            scratch: vec![0; READ_CHUNK],
        };
        let mut setup = Vec::new();
        redis::cmd("HELLO").arg(3).write_packed_command(&mut setup);
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .write_packed_command(&mut setup);
        conn.send(&setup, connect_timeout)?;
        let deadline = Instant::now() + connect_timeout;
        for step in ["HELLO 3", "CLIENT TRACKING ON"] {
            match conn.next_blocking(deadline, connect_timeout)? {
                Reply::Error(message) => {
                    return Err(Error::error_reply(format!("near cache {step}: {message}")));
                }
                Reply::Push(_) => return Err(Error::unexpected_reply("near cache: a push during setup")),
                _ => {}
            }
        }
        Ok(conn)
    }

    /// The socket's descriptor, to wait on.
    pub fn fd(&self) -> RawFd {
        self.socket.raw_fd()
    }

    /// Arm the readiness ring if it is not (the near cache's thread calls this); true when
    /// hits are answered by it.
    pub fn arm_watch(&mut self) -> bool {
        self.watch.arm()
    }

    /// Whether something may have come since the last [`TrackingConnection::drain`]
    /// (consumes the ring's report: drain after a true).
    pub fn signalled(&mut self) -> bool {
        self.watch.signalled()
    }

    /// Write all of `bytes`, waiting for the socket to take them for up to `within`.
    pub fn send(&mut self, bytes: &[u8], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut written = 0;
        while written < bytes.len() {
            let n = self.socket.write_some(&bytes[written..])?;
            written += n;
            if n == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timeout("near cache write", within));
                }
                wait(self.fd(), libc::POLLOUT, left);
            }
        }
        Ok(())
    }

    /// Every complete reply and push received so far, without blocking, in wire order.
    pub fn drain(&mut self, mut each: impl FnMut(Reply)) -> Result<()> {
        self.socket.read_into(&mut self.decoder, &mut self.scratch)?;
        while let Some(reply) = self.decoder.next_reply()? {
            each(reply);
        }
        Ok(())
    }

    /// The next reply or push, waiting until `deadline` (setup only).
    fn next_blocking(&mut self, deadline: Instant, within: Duration) -> Result<Reply> {
        loop {
            if let Some(reply) = self.decoder.next_reply()? {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout("near cache setup", within));
            }
            wait_readable(self.fd(), left);
            self.socket.read_into(&mut self.decoder, &mut self.scratch)?;
        }
    }
}

impl Drop for TrackingConnection {
    fn drop(&mut self) {
        // The ring's poll keeps the socket open until the kernel tears the ring down (after
        // this returns): end the connection now, so the server sees it go at once.
        // SAFETY: the descriptor is open until `socket` drops, after this.
        unsafe {
            libc::shutdown(self.socket.raw_fd(), libc::SHUT_RDWR);
        }
    }
}

fn timeout(operation: &'static str, timeout: Duration) -> Error {
    Error::Timeout { operation, timeout }
}

/// Wait until `fd` has bytes to read (or is closed) or `timeout` passes.
pub fn wait_readable(fd: RawFd, timeout: Duration) {
    wait(fd, libc::POLLIN, timeout);
}

fn wait(fd: RawFd, events: libc::c_short, timeout: Duration) {
    let mut poll = libc::pollfd { fd, events, revents: 0 };
    // `ppoll` keeps sub-millisecond timeouts (`poll` rounds them up to a whole millisecond).
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and timespec for the duration of the call, no signal mask;
    // the result only says whether to look again, so errors (EINTR) are the same as a timeout.
    unsafe {
        libc::ppoll(&mut poll, 1, &timeout, std::ptr::null());
    }
}
