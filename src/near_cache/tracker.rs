//! [`Tracker`]: the store and the tracking connection under one lock, and the background
//! thread that keeps the connection alive.
//!
//! Correct by construction: every byte of the tracking connection is handled in wire order,
//! under the lock that guards the store. A fill's reply is put into the store when it is
//! read, so an invalidation the server sent after it is handled after it and wins; one the
//! server sent before it concerned an older value. Before any hit is served, everything the
//! socket received is applied: the hit looks at the connection's readiness ring (a memory
//! read, see [`super::watch`]) and reads the socket, without blocking, only when the ring says
//! something came, or on every hit where there is no ring. So an invalidation that has reached
//! this host is applied before the hit. Hits are served only while the connection is up; losing it (closed, killed, a
//! protocol error, no reply to a PING or a fill within the response timeout) empties the
//! store first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::fill::{self, Filled};
use super::invalidation::{self, Invalidation};
use super::stats::NearStats;
use super::store::{Entry, Lookup, Store};
use super::tracking::{wait_readable, TrackingConnection};
use super::NearCacheConfig;
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::transport::endpoint::Endpoint;
use crate::transport::resp::Reply;

/// Longest the background thread sleeps between looks at the connection (so a close is seen
/// within it).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Longest a waiting fill sleeps before looking again. The background thread may read the
/// fill's reply between the waiter's look and its poll, leaving the socket empty: the poll
/// then sleeps its whole timeout, so it is kept short (a millisecond here was the median
/// staleness of a blocking reader).
const FILL_WAIT: Duration = Duration::from_micros(50);

/// A request awaiting its replies on the tracking connection.
enum Flight {
    Fill {
        id: u64,
        keys: Vec<String>,
        sent_at: Instant,
        /// Replies still due (acknowledgements, then EXEC's).
        left: usize,
    },
    Ping {
        sent_at: Instant,
    },
}

impl Flight {
    fn sent_at(&self) -> Instant {
        match self {
            Flight::Fill { sent_at, .. } | Flight::Ping { sent_at } => *sent_at,
        }
    }
}

struct Inner {
    conn: Option<TrackingConnection>,
    flight: VecDeque<Flight>,
    done: HashMap<u64, Result<Vec<Filled>>>,
    next_id: u64,
    store: Store,
    last_ping: Instant,
    ping_outstanding: bool,
    connections: u64,
    /// Keys this process wrote while a fill of them was in flight: a fill sent at or before
    /// the instant (so possibly holding the value before the write) is not stored.
    barriers: HashMap<String, Instant>,
}

/// Whether [`Inner::pump`] reads the socket in any case, or only when the readiness ring
/// says something came (a hit: no system call when nothing did).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pump {
    Always,
    IfSignalled,
}

/// A fill sent and not collected yet.
#[derive(Debug)]
pub struct Ticket(u64);

/// What [`Tracker::wait_fill`] found.
#[derive(Debug)]
pub enum Waited {
    /// The values (one per key), or `None`: the connection broke, read through the pool.
    Done(Option<Vec<Filled>>),
    /// Not yet: wait again with the ticket.
    Pending(Ticket),
}

/// What the store says about one key.
pub enum Local {
    /// The tracking connection is down: ask the pool.
    Down,
    /// Held and live.
    Hit(Arc<Entry>),
    /// Not held (or expired).
    Miss,
}

/// The shared state of one near cache; see the module docs.
pub struct Tracker {
    inner: Mutex<Inner>,
    pub(super) stats: NearStats,
    pub(super) config: NearCacheConfig,
    endpoint: Endpoint,
    closed: AtomicBool,
}

impl Tracker {
    /// A tracker over `first`, an open tracking connection.
    pub fn new(endpoint: Endpoint, config: NearCacheConfig, first: TrackingConnection) -> Tracker {
        let tracker = Tracker {
            inner: Mutex::new(Inner {
                conn: None,
                flight: VecDeque::new(),
                done: HashMap::new(),
                next_id: 0,
                store: Store::new(config.max_bytes),
                last_ping: Instant::now(),
                ping_outstanding: false,
                connections: 0,
                barriers: HashMap::new(),
            }),
            stats: NearStats::default(),
            config,
            endpoint,
            closed: AtomicBool::new(false),
        };
        tracker.lock().install(first, &tracker.stats);
        tracker
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the store holds for `key` at `now`, after applying everything the connection
    /// received.
    pub fn lookup(&self, key: &str, now: Instant) -> Local {
        let mut inner = self.lock();
        inner.pump(now, &self.config, &self.stats, Pump::IfSignalled);
        if inner.conn.is_none() {
            return Local::Down;
        }
        match inner.store.get(key, now) {
            Lookup::Live(entry) => Local::Hit(entry),
            Lookup::Absent => Local::Miss,
        }
    }

    /// [`Tracker::lookup`] of many keys under one lock.
    pub fn lookup_many(&self, keys: &[String]) -> Option<Vec<Option<Arc<Entry>>>> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.pump(now, &self.config, &self.stats, Pump::IfSignalled);
        inner.conn.as_ref()?;
        Some(
            keys.iter()
                .map(|key| match inner.store.get(key, now) {
                    Lookup::Live(entry) => Some(entry),
                    Lookup::Absent => None,
                })
                .collect(),
        )
    }

    /// Read `keys` on the tracking connection, filling the store in wire order, and wait for
    /// the values (blocking the calling thread up to the response timeout). `None` when the
    /// connection is down or broke meanwhile: read through the pool instead.
    pub fn fill(&self, keys: Vec<String>) -> Option<Vec<Filled>> {
        match self.wait_fill(self.send_fill(keys)?, None) {
            Waited::Done(filled) => filled,
            Waited::Pending(_) => unreachable!("a wait without a deadline ends done"),
        }
    }

    /// Send a fill of `keys`; collect it with [`Tracker::wait_fill`]. `None` when the
    /// connection is down (or broke sending it).
    pub fn send_fill(&self, keys: Vec<String>) -> Option<Ticket> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.pump(now, &self.config, &self.stats, Pump::Always);
        let (bytes, replies) = fill::packed(&keys);
        let sent = inner.conn.as_mut()?.send(&bytes, self.config.response_timeout);
        if let Err(err) = sent {
            inner.break_connection(&err.to_string(), &self.stats);
            return None;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.flight.push_back(Flight::Fill {
            id,
            keys,
            sent_at: now,
            left: replies,
        });
        self.stats.filled();
        Some(Ticket(id))
    }

    /// Wait for a fill's values: until `until` (polling, for a short budget on a thread that
    /// must not sleep), or, with `None`, until it is done (at most the response timeout).
    /// `Done(None)`: the connection broke, read through the pool.
    pub fn wait_fill(&self, ticket: Ticket, until: Option<Instant>) -> Waited {
        loop {
            let mut inner = self.lock();
            inner.pump(Instant::now(), &self.config, &self.stats, Pump::Always);
            if let Some(result) = inner.done.remove(&ticket.0) {
                return Waited::Done(result.ok());
            }
            // Not done, so still in flight on a connection that is up (a loss would have
            // recorded it as failed).
            let Some(fd) = inner.conn.as_ref().map(TrackingConnection::fd) else {
                return Waited::Done(None);
            };
            drop(inner);
            match until {
                None => wait_readable(fd, FILL_WAIT),
                Some(until) if Instant::now() >= until => return Waited::Pending(ticket),
                Some(_) => std::hint::spin_loop(),
            }
        }
    }

    /// This process wrote `keys` and Redis acknowledged it: drop them, and refuse any fill
    /// of them sent before now, so no later read here sees the value from before the write
    /// even before the server's invalidation arrives (read-your-writes within the process).
    pub fn written(&self, keys: &[String]) {
        let now = Instant::now();
        let mut inner = self.lock();
        for key in keys {
            let held = inner.store.remove(key);
            let in_flight = inner
                .flight
                .iter()
                .any(|f| matches!(f, Flight::Fill { keys, .. } if keys.contains(key)));
            if held || in_flight {
                inner.barriers.insert(key.clone(), now);
            }
        }
        self.stats.set_held(inner.store.bytes(), inner.store.len());
    }

    /// Arm the connection's readiness ring if it is not (see [`super::watch`]); true when
    /// hits are answered by it. The background thread calls this; the ring's task work runs on
    /// the calling thread.
    pub fn arm_watch(&self) -> bool {
        self.lock().arm_watch(&self.config, &self.stats)
    }

    /// Stop: the background thread ends, the connection closes, the store empties.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.lock().break_connection("closed", &self.stats);
    }

    /// The background thread: PING every `ping_interval`, drain invalidations while nobody
    /// reads, reconnect with backoff after a loss. Ends after [`Tracker::close`].
    pub fn run(self: Arc<Self>) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2)).expect("valid backoff");
        let mut retry_at = Instant::now();
        while !self.closed.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut inner = self.lock();
            if inner.conn.is_none() {
                drop(inner);
                if now < retry_at {
                    std::thread::sleep((retry_at - now).min(IDLE_WAIT));
                    continue;
                }
                match TrackingConnection::open(&self.endpoint, self.config.connect_timeout, self.config.io_uring) {
                    Ok(conn) if !self.closed.load(Ordering::Relaxed) => {
                        self.lock().install(conn, &self.stats);
                        backoff.reset();
                    }
                    Ok(_) => break,
                    Err(err) => {
                        let delay = backoff.next_delay();
                        retry_at = Instant::now() + delay;
                        log::debug!(target: "solcache::near_cache", "tracking connection failed ({err}); retry in {delay:?}");
                    }
                }
                continue;
            }
            inner.pump(now, &self.config, &self.stats, Pump::Always);
            inner.ping_if_due(now, &self.config, &self.stats);
            // Armed from this thread: the ring's task work runs here, on a thread that lives
            // as long as the connection and wakes when the socket does.
            inner.arm_watch(&self.config, &self.stats);
            let Some(fd) = inner.conn.as_ref().map(TrackingConnection::fd) else {
                continue;
            };
            let next_ping = (inner.last_ping + self.config.ping_interval).saturating_duration_since(now);
            let deadline = inner
                .flight
                .front()
                .map(|f| (f.sent_at() + self.config.response_timeout).saturating_duration_since(now));
            drop(inner);
            let wait = deadline.map_or(next_ping, |d| d.min(next_ping)).min(IDLE_WAIT);
            wait_readable(fd, wait.max(Duration::from_millis(1)));
        }
    }
}

impl Inner {
    fn install(&mut self, conn: TrackingConnection, stats: &NearStats) {
        self.store.clear();
        stats.set_held(0, 0);
        stats.set_io_uring(false);
        self.conn = Some(conn);
        self.last_ping = Instant::now();
        self.ping_outstanding = false;
        if self.connections > 0 {
            stats.reconnected();
        }
        self.connections += 1;
        stats.set_connected(true);
    }

    fn arm_watch(&mut self, config: &NearCacheConfig, stats: &NearStats) -> bool {
        let armed = config.io_uring && self.conn.as_mut().is_some_and(TrackingConnection::arm_watch);
        stats.set_io_uring(armed);
        armed
    }

    /// Apply everything the connection has received; break it if a request is overdue.
    fn pump(&mut self, now: Instant, config: &NearCacheConfig, stats: &NearStats, pump: Pump) {
        if self.conn.is_none() {
            return;
        }
        // Overdue first: a PING answered only after its timeout (a stopped server that came
        // back) still counts as failed.
        if let Some(first) = self.flight.front() {
            if now.saturating_duration_since(first.sent_at()) > config.response_timeout {
                return self.break_connection("no reply within the response timeout", stats);
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // Always consumed, so the ring never fills up, even when a hit reads the socket anyway.
        let signalled = conn.signalled();
        if pump == Pump::IfSignalled && !signalled {
            return;
        }
        let mut received = Vec::new();
        let drained = conn.drain(|reply| received.push(reply));
        let mut outcome = drained;
        for reply in received {
            if outcome.is_err() {
                break;
            }
            outcome = self.on_reply(reply, config, stats);
        }
        if let Err(err) = outcome {
            return self.break_connection(&err.to_string(), stats);
        }
        stats.set_held(self.store.bytes(), self.store.len());
    }

    /// One reply or push, in wire order.
    fn on_reply(&mut self, reply: Reply, config: &NearCacheConfig, stats: &NearStats) -> Result<()> {
        if let Reply::Push(items) = reply {
            match invalidation::parse(items) {
                Some(Invalidation::Keys(keys)) => {
                    stats.invalidated(keys.len() as u64);
                    for key in &keys {
                        self.store.remove(key);
                    }
                }
                Some(Invalidation::All) => {
                    self.store.clear();
                    stats.flushed();
                }
                None => {}
            }
            return Ok(());
        }
        let Some(front) = self.flight.front_mut() else {
            return Err(Error::unexpected_reply(
                "tracking connection out of step: a reply with no request",
            ));
        };
        match front {
            Flight::Fill { left, .. } if *left > 1 => {
                *left -= 1;
                Ok(())
            }
            Flight::Fill { .. } => {
                let Some(Flight::Fill { id, keys, sent_at, .. }) = self.flight.pop_front() else {
                    unreachable!("the front is a fill");
                };
                let result = fill::decode(reply, keys.len());
                if let Ok(filled) = &result {
                    for (key, item) in keys.iter().zip(filled) {
                        let before_a_write = self.barriers.get(key).is_some_and(|&at| sent_at <= at);
                        if let (Some(value), false) = (&item.value, before_a_write) {
                            self.store.insert(
                                key,
                                Entry {
                                    value: value.clone(),
                                    filled_at: sent_at,
                                    expires_at: fill::expires_at(sent_at, item.ttl, config.max_entry_ttl),
                                    decoded: Default::default(),
                                },
                            );
                        }
                    }
                }
                self.done.insert(id, result);
                // A barrier only matters while a fill sent before it is in flight.
                if !self.barriers.is_empty() {
                    let oldest = self.flight.iter().find_map(|f| match f {
                        Flight::Fill { sent_at, .. } => Some(*sent_at),
                        Flight::Ping { .. } => None,
                    });
                    self.barriers.retain(|_, at| oldest.is_some_and(|o| o <= *at));
                }
                Ok(())
            }
            Flight::Ping { .. } => {
                self.flight.pop_front();
                self.ping_outstanding = false;
                match reply {
                    Reply::Error(message) => Err(Error::error_reply(message)),
                    _ => Ok(()),
                }
            }
        }
    }

    fn ping_if_due(&mut self, now: Instant, config: &NearCacheConfig, stats: &NearStats) {
        if self.ping_outstanding || now.saturating_duration_since(self.last_ping) < config.ping_interval {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut ping = Vec::with_capacity(16);
        redis::cmd("PING").write_packed_command(&mut ping);
        if let Err(err) = conn.send(&ping, config.response_timeout) {
            return self.break_connection(&err.to_string(), stats);
        }
        self.flight.push_back(Flight::Ping { sent_at: now });
        self.ping_outstanding = true;
        self.last_ping = now;
    }

    /// Close the connection and empty the store before anything else can be served; fills
    /// waiting on it go to the pool.
    fn break_connection(&mut self, reason: &str, stats: &NearStats) {
        let was_up = self.conn.take().is_some();
        for flight in self.flight.drain(..) {
            if let Flight::Fill { id, .. } = flight {
                self.done.insert(
                    id,
                    Err(Error::Connection {
                        url: String::new(),
                        message: format!("near cache tracking connection lost: {reason}"),
                    }),
                );
            }
        }
        self.ping_outstanding = false;
        self.barriers.clear();
        if was_up {
            self.store.clear();
            stats.flushed();
            stats.set_held(0, 0);
            stats.set_connected(false);
            stats.set_io_uring(false);
            if reason != "closed" {
                log::warn!(target: "solcache::near_cache", "near cache flushed: tracking connection lost ({reason})");
            }
        }
    }
}
