//! [`Watch`]: whether the tracking socket may hold bytes not read yet, answered by reading
//! memory the kernel writes (an io_uring ring) instead of making a system call.
//!
//! A hit must apply every invalidation that has reached this host before it serves. Asking
//! the socket (a non-blocking `recv`) costs a system call on every hit: 149–152 ns on a quiet
//! loopback socket (`benches/near_cache.rs`, 2-vCPU VM, kernel 6.18, load average 11–14),
//! more than half of a Rust sync hit (0.29 µs p50 that way, 0.13 µs with the ring). Instead a
//! multishot `IORING_OP_POLL_ADD` (`POLLIN`) on the socket has the kernel report readiness into
//! shared memory from the socket's own wake-up (the moment `poll(2)` would return): with
//! `IORING_SETUP_TASKRUN_FLAG` it sets `IORING_SQ_TASKRUN` in the ring's flags word there and
//! then, by task work on the thread that armed the poll, posts a completion. A hit reads that
//! flag, then the completion queue's head and tail: 1.8–2.1 ns measured in the same run. Only
//! when one of them says "something came" does the hit read the socket, having consumed the
//! completions first, so bytes landing after that read post a new one.
//!
//! The near cache's own thread arms the poll (task work goes to the thread that submitted,
//! and this one lives as long as the connection). Until it is armed, after the multishot poll
//! ended (a completion without `IORING_CQE_F_MORE`) and after a completion overflow, every hit
//! reads the socket, as it does when io_uring cannot be set up (seccomp, `io_uring_disabled`,
//! a kernel older than 5.19) or is turned off ([`super::NearCacheConfig::io_uring`]).

use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, types, IoUring};

/// Submission queue entries (the completion queue gets twice as many): one poll is all that
/// is ever submitted; completions are consumed at every look.
const RING_ENTRIES: u32 = 8;
/// The poll's `user_data`.
const POLL_ID: u64 = 1;

/// Readiness of one socket; see the module docs.
pub struct Watch {
    /// `None`: no io_uring here (or it failed): every look says "read the socket".
    ring: Option<IoUring>,
    fd: RawFd,
    /// The multishot poll is in place, so a quiet ring means a quiet socket.
    armed: bool,
    /// A completion may have been lost (overflow): the next arm starts on a new ring.
    stale: bool,
}

/// Whether this process can set up an io_uring ring with the flags a [`Watch`] needs.
pub fn available() -> bool {
    open_ring().is_ok()
}

fn open_ring() -> std::io::Result<IoUring> {
    IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(RING_ENTRIES)
}

impl Watch {
    /// A watch of `fd`, with a ring when `io_uring` is asked for and can be set up (not armed
    /// yet: see [`Watch::arm`]).
    pub fn new(fd: RawFd, io_uring: bool) -> Watch {
        let ring = if io_uring {
            open_ring()
                .map_err(|err| {
                    log::info!(target: "solcache::near_cache", "io_uring unavailable ({err}): every near-cache hit reads its socket");
                })
                .ok()
        } else {
            None
        };
        Watch {
            ring,
            fd,
            armed: false,
            stale: false,
        }
    }

    /// Whether hits are answered by the ring (armed) rather than by reading the socket.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Put the multishot poll in place if it is not; true when it is. Call it from the thread
    /// that should run the ring's task work (the near cache's own); a failure drops the ring
    /// for good (every hit then reads the socket).
    pub fn arm(&mut self) -> bool {
        if self.armed {
            return true;
        }
        if self.stale {
            self.stale = false;
            self.ring = self.ring.take().and_then(|_| open_ring().ok());
        }
        let Some(ring) = self.ring.as_mut() else {
            return false;
        };
        ring.completion().for_each(drop);
        let poll = opcode::PollAdd::new(types::Fd(self.fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(POLL_ID);
        // SAFETY: the entry points to no memory of ours; the fd stays open while the ring
        // lives (the ring is dropped with the connection, before the socket).
        let pushed = unsafe { ring.submission().push(&poll) }.is_ok();
        match pushed.then(|| ring.submit()) {
            Some(Ok(1)) => self.armed = true,
            outcome => {
                log::info!(target: "solcache::near_cache", "io_uring poll not armed ({outcome:?}): every near-cache hit reads its socket");
                self.ring = None;
            }
        }
        self.armed
    }

    /// Whether the socket may hold bytes not read yet. Consumes what the ring reported, so
    /// after a true the caller must read the socket until it would block.
    pub fn signalled(&mut self) -> bool {
        let Some(ring) = self.ring.as_mut() else {
            return true;
        };
        // The flag first: the kernel sets it before posting the completion and clears it
        // after, so a quiet flag then an empty queue means nothing came before the flag load.
        let (taskrun, overflow) = {
            let sq = ring.submission();
            (sq.taskrun(), sq.cq_overflow())
        };
        let mut seen = taskrun || !self.armed;
        for completion in ring.completion() {
            seen = true;
            if !cqueue::more(completion.flags()) {
                self.armed = false;
            }
        }
        if overflow {
            self.armed = false;
            self.stale = true;
            seen = true;
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn drained(socket: &mut UnixStream) {
        let mut buf = [0u8; 64];
        while socket.read(&mut buf).is_ok_and(|n| n > 0) {}
    }

    #[test]
    fn an_armed_ring_reports_bytes_and_stays_quiet_otherwise() {
        if !available() {
            return; // no io_uring here: the path below is covered where it exists
        }
        let (mut ours, mut peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut watch = Watch::new(ours.as_raw_fd(), true);
        assert!(watch.signalled(), "not armed yet: read the socket");
        assert!(watch.arm() && watch.armed());
        watch.signalled();
        for round in 0..100 {
            assert!(!watch.signalled(), "round {round}: nothing came");
            peer.write_all(b"x").unwrap();
            assert!(
                watch.signalled(),
                "round {round}: a byte came and the very next look sees it"
            );
            drained(&mut ours);
        }
        assert!(watch.armed());
    }

    #[test]
    fn without_a_ring_every_look_reads_the_socket() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let mut watch = Watch::new(ours.as_raw_fd(), false);
        assert!(!watch.arm() && !watch.armed());
        assert!(watch.signalled() && watch.signalled());
    }
}
