//! [`Link`]: one event loop's direct connection to one server, as a sans-IO state machine.
//!
//! In: requests (with the caller's token), bytes read from the socket, the time. Out: bytes
//! to write, replies paired with their tokens in request order, the next deadline, and the
//! tokens to send elsewhere when the connection breaks. It owns no socket, no timer and no
//! thread: whoever drives it (an asyncio adapter, a test) does the I/O and keeps time.
//!
//! Its rules:
//! - **Lifecycle.** Down → Connecting (the driver opens a socket) → Up, or back to Down for
//!   [`RECONNECT_DELAY`] after a failed connect; Unsupported for good when the endpoint cannot
//!   be driven (TLS) or the loop cannot watch sockets. While not Up, calls take the pool.
//! - **Pairing.** Replies come back in request order (RESP2, no pub/sub): each complete reply
//!   belongs to the oldest request in flight. A reply with no request, or bytes that are not
//!   RESP, break the connection.
//! - **Deadlines.** Each request must be answered within the response timeout. When the
//!   oldest passes its deadline the connection is closed (its reply stream can no longer be
//!   trusted): requests past their deadline fail with a timeout, the younger ones are handed
//!   back to be re-sent through the pool, like every request in flight on a connection that
//!   breaks (they are reads; see [`crate::transport::retry`]).
//! - **Batching.** A lone request is written at once (the latency case); requests made while
//!   replies are due are buffered and written together at the end of the loop iteration.
//! - **Polling.** After writing a lone request the driver may poll the socket for its reply
//!   for a short budget before yielding to the loop (see [`SpinPolicy`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::transport::resp::{Decoder, Reply};

/// The default poll budget after a lone request: a bit above a local round trip (replies
/// from a Redis on the same host come in 25–60 µs), so a lone read usually finds its reply
/// without a loop iteration; against a remote server polling stops by itself (see
/// [`SpinPolicy`]). `docs/performance.md` has the measured gain.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// How long to wait before trying to open a connection again after a failed connect.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Where a link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection; the next call at or after `retry_at` starts one.
    Down { retry_at: Instant },
    /// The driver is opening a socket.
    Connecting,
    /// Requests go through this link.
    Up,
    /// Never direct (TLS endpoint, or a loop that cannot watch sockets).
    Unsupported,
}

/// Where a call made now goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Submit it to the link.
    Direct,
    /// Send it through the pool; with `connect`, the driver also starts opening a socket now
    /// and reports with [`Link::connected`] or [`Link::connect_failed`].
    Pool { connect: bool },
}

/// What the driver does after [`Link::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// A lone request: write [`Link::output`] now; then, with `spin`, poll for the reply.
    WriteNow { spin: bool },
    /// Buffered until the end of this loop iteration; with `schedule_flush`, the driver
    /// arranges a call to [`Link::flush_due`] there (none is arranged yet).
    Buffered { schedule_flush: bool },
}

/// What [`Link::expire`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry<R> {
    /// Nothing in flight: no timer needed.
    Idle,
    /// The oldest request is due at this instant: check again then.
    Later(Instant),
    /// The oldest passed its deadline: the link is Down, `expired` fail with a timeout and
    /// `orphans` are to be re-sent through the pool.
    Closed { expired: Vec<R>, orphans: Vec<R> },
}

/// Consecutive polls that ran out before the reply came; after this many, poll only every
/// [`SPIN_PROBE_EVERY`]th call (the server is farther away than the budget). A server farther
/// away misses every poll; a local one on a busy 2-core host misses one in seven to ten (its
/// process waits for a core), so three in a row came often enough there to stop polling for
/// up to a quarter of the calls, each then paying a reactor wake-up instead (measured in
/// docs/scaling.md); eight in a row do not come by chance.
const MAX_SPIN_MISSES: u32 = 8;
/// While polling is stopped, one call in this many polls; a hit resumes polling.
const SPIN_PROBE_EVERY: u64 = 16;
/// Poll only after this many calls in a row found nothing else outstanding: with concurrent
/// callers the loop has other work, and batching beats polling.
const QUIET_CALLS_BEFORE_SPIN: u64 = 32;

/// When a lone request's reply is worth polling for; see the constants above.
#[derive(Debug, Default)]
pub struct SpinPolicy {
    calls: u64,
    misses: u32,
    /// The last call that found another call outstanding (concurrent callers).
    last_overlap: u64,
    counts: SpinCounts,
}

/// What a link's polling policy saw since the link opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpinCounts {
    /// Calls (a pipeline is one).
    pub calls: u64,
    /// Calls whose replies were polled for.
    pub polled: u64,
    /// Polls that found their replies within the budget.
    pub hits: u64,
}

impl SpinPolicy {
    fn on_call(&mut self, outstanding: bool) {
        self.calls += 1;
        if outstanding {
            self.last_overlap = self.calls;
        }
    }

    fn worth_it(&self) -> bool {
        let quiet = self.calls - self.last_overlap > QUIET_CALLS_BEFORE_SPIN;
        let probe = self.calls.is_multiple_of(SPIN_PROBE_EVERY);
        quiet && (self.misses < MAX_SPIN_MISSES || probe)
    }

    /// Record whether a poll found its reply within the budget.
    pub fn record(&mut self, hit: bool) {
        self.misses = if hit { 0 } else { self.misses.saturating_add(1) };
        self.counts.polled += 1;
        self.counts.hits += u64::from(hit);
    }

    /// What the policy saw so far.
    pub fn counts(&self) -> SpinCounts {
        SpinCounts {
            calls: self.calls,
            ..self.counts
        }
    }
}

struct InFlight<R> {
    token: R,
    deadline: Instant,
}

/// One loop's direct connection to one server; see the module docs. `R` is the driver's
/// token for a request (what it needs to answer the caller).
pub struct Link<R> {
    phase: Phase,
    response_timeout: Duration,
    /// Poll budget after a lone request (zero: never poll).
    spin: Duration,
    /// Request bytes not written yet.
    out: Vec<u8>,
    /// Requests written or buffered, awaiting replies, oldest first.
    flight: VecDeque<InFlight<R>>,
    decoder: Decoder,
    flush_scheduled: bool,
    spin_policy: SpinPolicy,
    /// A reply was paired since the connection came up: it is a reused connection (see
    /// [`crate::transport::retry`]).
    served: bool,
}

impl<R> Link<R> {
    /// A link that is Down (or Unsupported when `supported` is false); `spin` is the poll
    /// budget after a lone request (zero: never poll).
    pub fn new(supported: bool, response_timeout: Duration, spin: Duration, now: Instant) -> Self {
        Link {
            phase: if supported {
                Phase::Down { retry_at: now }
            } else {
                Phase::Unsupported
            },
            response_timeout,
            spin,
            out: Vec::new(),
            flight: VecDeque::new(),
            decoder: Decoder::new(),
            flush_scheduled: false,
            spin_policy: SpinPolicy::default(),
            served: false,
        }
    }

    /// Where the link is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Where a call made at `now` goes; see [`Route`].
    pub fn route(&mut self, now: Instant) -> Route {
        match self.phase {
            Phase::Up => Route::Direct,
            Phase::Down { retry_at } if now >= retry_at => {
                self.phase = Phase::Connecting;
                Route::Pool { connect: true }
            }
            _ => Route::Pool { connect: false },
        }
    }

    /// The driver's socket is open and handshaken: requests go direct from now on.
    pub fn connected(&mut self) {
        if self.phase == Phase::Connecting {
            self.phase = Phase::Up;
            self.out.clear();
            self.decoder = Decoder::new();
            self.flush_scheduled = false;
            self.served = false;
        }
    }

    /// Whether this connection answered a request before: a request lost with it was most
    /// likely lost to a server restart, not to itself (the retry policy's "reused").
    pub fn has_served(&self) -> bool {
        self.served
    }

    /// Opening failed: try again after [`RECONNECT_DELAY`], or never when `for_good`
    /// (the endpoint or the loop cannot do direct reads).
    pub fn connect_failed(&mut self, for_good: bool, now: Instant) {
        self.phase = if for_good {
            Phase::Unsupported
        } else {
            Phase::Down {
                retry_at: now + RECONNECT_DELAY,
            }
        };
    }

    /// Queue a request sent at `now` (the link must be Up). `busy`: the driver has answered
    /// calls it has not handed back yet (they count as outstanding for the polling policy).
    pub fn submit(&mut self, cmd: &redis::Cmd, token: R, now: Instant, busy: bool) -> Submitted {
        self.submit_pipeline(std::iter::once((cmd, token)), now, busy)
    }

    /// Queue several requests as one pipeline, like [`Link::submit`]: one call for the
    /// polling policy (its own requests do not count as other callers outstanding).
    pub fn submit_pipeline<'c>(
        &mut self,
        requests: impl IntoIterator<Item = (&'c redis::Cmd, R)>,
        now: Instant,
        busy: bool,
    ) -> Submitted {
        debug_assert_eq!(self.phase, Phase::Up, "submit on a link that is not up");
        self.spin_policy.on_call(busy || !self.flight.is_empty());
        let batching = !self.flight.is_empty() || self.flush_scheduled;
        for (cmd, token) in requests {
            cmd.write_packed_command(&mut self.out);
            self.flight.push_back(InFlight {
                token,
                deadline: now + self.response_timeout,
            });
        }
        if batching {
            let schedule_flush = !self.flush_scheduled;
            self.flush_scheduled = true;
            Submitted::Buffered { schedule_flush }
        } else {
            Submitted::WriteNow {
                spin: !self.spin.is_zero() && self.spin_policy.worth_it(),
            }
        }
    }

    /// The end of the loop iteration that buffered requests: write [`Link::output`] now.
    pub fn flush_due(&mut self) {
        self.flush_scheduled = false;
    }

    /// Bytes to write, oldest first.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// The driver wrote the first `n` bytes of [`Link::output`].
    pub fn wrote(&mut self, n: usize) {
        self.out.drain(..n);
    }

    /// The poll budget after a lone request.
    pub fn spin_budget(&self) -> Duration {
        self.spin
    }

    /// Record whether a poll found its reply within the budget.
    pub fn spun(&mut self, hit: bool) {
        self.spin_policy.record(hit);
    }

    /// What the polling policy saw since the link opened.
    pub fn spin_counts(&self) -> SpinCounts {
        self.spin_policy.counts()
    }

    /// Bytes read from the socket: append each reply they complete, with its request's
    /// token, to `answered`. `Err` means the connection broke (not RESP, or a reply nobody
    /// asked for): the driver closes it with [`Link::close`]; replies paired before the
    /// break are in `answered`.
    pub fn receive(&mut self, bytes: &[u8], answered: &mut Vec<(R, Reply)>) -> Result<()> {
        self.decoder.push(bytes);
        while let Some(reply) = self.decoder.next_reply()? {
            let Some(request) = self.flight.pop_front() else {
                return Err(crate::error::Error::unexpected_reply(
                    "direct connection out of step: a reply with no request",
                ));
            };
            answered.push((request.token, reply));
            self.served = true;
        }
        Ok(())
    }

    /// Requests awaiting replies.
    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }

    /// When the oldest request in flight is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.flight.front().map(|r| r.deadline)
    }

    /// Check deadlines at `now`; see [`Expiry`].
    pub fn expire(&mut self, now: Instant) -> Expiry<R> {
        match self.next_deadline() {
            None => Expiry::Idle,
            Some(due) if due > now => Expiry::Later(due),
            Some(_) => {
                let mut expired = Vec::new();
                while self.flight.front().is_some_and(|r| r.deadline <= now) {
                    expired.push(self.flight.pop_front().expect("checked").token);
                }
                Expiry::Closed {
                    expired,
                    orphans: self.close(now),
                }
            }
        }
    }

    /// The connection broke or is being closed: Down (a new one may open at once), and every
    /// request in flight is handed back, oldest first, to be sent elsewhere.
    pub fn close(&mut self, now: Instant) -> Vec<R> {
        if self.phase != Phase::Unsupported {
            self.phase = Phase::Down { retry_at: now };
        }
        self.out.clear();
        self.decoder = Decoder::new();
        self.flush_scheduled = false;
        self.flight.drain(..).map(|r| r.token).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str) -> redis::Cmd {
        redis::cmd(name)
    }

    fn up(spin: Duration) -> (Link<u32>, Instant) {
        let now = Instant::now();
        let mut link = Link::new(true, Duration::from_millis(500), spin, now);
        assert_eq!(link.route(now), Route::Pool { connect: true });
        assert_eq!(link.route(now), Route::Pool { connect: false }, "one connect at a time");
        link.connected();
        assert_eq!(link.route(now), Route::Direct);
        (link, now)
    }

    #[test]
    fn a_failed_connect_waits_before_the_next_and_tls_never_goes_direct() {
        let now = Instant::now();
        let mut link: Link<u32> = Link::new(true, Duration::from_millis(500), Duration::ZERO, now);
        assert_eq!(link.route(now), Route::Pool { connect: true });
        link.connect_failed(false, now);
        assert_eq!(link.route(now + RECONNECT_DELAY / 2), Route::Pool { connect: false });
        assert_eq!(link.route(now + RECONNECT_DELAY), Route::Pool { connect: true });
        link.connect_failed(true, now);
        assert_eq!(
            link.route(now + Duration::from_secs(60)),
            Route::Pool { connect: false }
        );
        let mut tls: Link<u32> = Link::new(false, Duration::from_millis(500), Duration::ZERO, now);
        assert_eq!(tls.route(now), Route::Pool { connect: false });
    }

    #[test]
    fn lone_requests_go_at_once_and_concurrent_ones_are_batched() {
        let (mut link, now) = up(Duration::ZERO);
        assert_eq!(
            link.submit(&cmd("A"), 1, now, false),
            Submitted::WriteNow { spin: false }
        );
        assert_eq!(
            link.submit(&cmd("B"), 2, now, false),
            Submitted::Buffered { schedule_flush: true }
        );
        assert_eq!(
            link.submit(&cmd("C"), 3, now, false),
            Submitted::Buffered { schedule_flush: false }
        );
        assert_eq!(link.output(), b"*1\r\n$1\r\nA\r\n*1\r\n$1\r\nB\r\n*1\r\n$1\r\nC\r\n");
        link.wrote(22);
        assert_eq!(link.output(), b"*1\r\n$1\r\nC\r\n");
        link.flush_due();
        let mut answered = Vec::new();
        assert!(!link.has_served(), "nothing answered yet");
        link.receive(b"+x\r\n:1\r\n$1\r", &mut answered).unwrap();
        assert!(link.has_served());
        assert_eq!(answered, vec![(1, Reply::Simple("x".into())), (2, Reply::Int(1))]);
        link.receive(b"\ny\r\n", &mut answered).unwrap();
        assert_eq!(answered[2], (3, Reply::Bulk(b"y".to_vec())));
        assert!(
            link.receive(b":9\r\n", &mut answered).is_err(),
            "a reply nobody asked for"
        );
    }

    #[test]
    fn polling_needs_quiet_and_stops_after_misses() {
        let (mut link, now) = up(Duration::from_micros(100));
        let mut answered = Vec::new();
        let mut lone = |link: &mut Link<u32>| {
            let submitted = link.submit(&cmd("R"), 0, now, false);
            link.receive(b":1\r\n", &mut answered).unwrap();
            submitted == Submitted::WriteNow { spin: true }
        };
        let spins: Vec<bool> = (0..40).map(|_| lone(&mut link)).collect();
        assert!(!spins[..32].iter().any(|&s| s), "not before 32 quiet calls");
        assert!(spins[32..].iter().all(|&s| s));
        // A local server on a busy host misses now and then: polling goes on.
        for _ in 0..7 {
            link.spun(false);
        }
        assert!(lone(&mut link), "seven misses in a row: still polling");
        link.spun(false);
        let spins: Vec<bool> = (0..32).map(|_| lone(&mut link)).collect();
        assert_eq!(
            spins.iter().filter(|&&s| s).count(),
            2,
            "eight misses in a row: only a probe every 16th call"
        );
        link.spun(true);
        assert!(lone(&mut link), "a probe that hits resumes polling");
        assert!(
            link.submit(&cmd("R"), 0, now, true) == Submitted::WriteNow { spin: false },
            "busy"
        );
    }

    #[test]
    fn the_oldest_deadline_closes_the_link() {
        let (mut link, now) = up(Duration::ZERO);
        let later = now + Duration::from_millis(100);
        link.submit(&cmd("A"), 1, now, false);
        link.submit(&cmd("B"), 2, later, false);
        assert_eq!(link.expire(now), Expiry::Later(now + Duration::from_millis(500)));
        let at = now + Duration::from_millis(500);
        assert_eq!(
            link.expire(at),
            Expiry::Closed {
                expired: vec![1],
                orphans: vec![2]
            }
        );
        assert_eq!(link.phase(), Phase::Down { retry_at: at });
        assert_eq!(link.expire(at), Expiry::Idle);
    }
}
