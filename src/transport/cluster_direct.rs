//! Direct cache reads on a Redis Cluster: `get` and `get_many` over a socket per primary that
//! the calling task writes and reads itself, as on one server, instead of through the cluster
//! client's driver task.
//!
//! What it saves, measured with `benches/topologies.rs` on a 3-primary cluster on loopback
//! (docs/scaling.md, "Measured numbers"): through the cluster client every request passes the
//! client's task (two task wake-ups more) and an `MGET` is split into one request per slot,
//! each through that task; a `get` there took 2.3–7.5× and a `get_many(5)` over five slots
//! 3.8–7.3× the same read on one server. This path takes 0.48× the cluster client's time for a
//! `get` and 0.59× for that `get_many(5)` (medians of per-run ratios): a `get` as fast as on
//! one server when the machine is quiet.
//!
//! How:
//! - a slot table (16384 slots → primary), read with `CLUSTER SLOTS` through the cluster
//!   client when the pool opens, and again after any read here that met a redirection
//!   (`MOVED` / `ASK`), an I/O error or a timeout (at most once per [`REFRESH_INTERVAL`]);
//! - per primary, sockets opened lazily (the shared handshake: credentials, `CLIENT SETNAME
//!   solcache-direct`), at most `max_size` per primary, kept idle between reads;
//! - `get`: the key's slot (CRC16 of the key or of its hash tag), that primary's socket;
//!   written, polled for up to `read_spin`, then awaited, like a read on one server;
//! - `get_many`: the keys grouped per primary and, within one, per slot (a cluster refuses an
//!   `MGET` across slots): one pipeline of `MGET`s per primary, every primary's written
//!   before any reply is awaited, the replies put back in key order.
//!
//! Whatever goes wrong on this path sends the read through the cluster client instead, which
//! follows redirections, reconnects and fails over: an error reply of any kind (a `MOVED`,
//! an `ASK`, a `CLUSTERDOWN`, a wrong type: the client answers those itself), a broken socket,
//! a timeout, a primary whose socket could not be opened (skipped for [`NODE_PAUSE`] then), a
//! slot no primary serves, a primary at its socket limit. A read this path could not answer is
//! never failed by it. TLS clusters take the cluster client for every read (the direct socket
//! is plain TCP).
//!
//! The slot table also routes reads this path never sees: `ClusterDirect::primary_of` (via
//! [`crate::transport::RedisPool::cluster_primary_of`]) names the primary of a read's slot
//! for a connection of the caller's own (the Python binding's per-loop connections), which
//! hands back redirected reads and reports them (`ClusterDirect::table_stale`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use redis::{Arg, Cmd, Value};

use super::cluster::{slot_ranges, ClusterLink};
use super::direct::TaskLone;
use super::endpoint::Endpoint;
use super::handshake::DIRECT_CLIENT_NAME;
use super::resp::Reply;
use super::settings::PoolConfig;
use super::topology::ClusterSpec;
use super::Request;

/// Slots of a Redis Cluster.
pub const SLOTS: usize = 16384;
/// Shortest time between two reads of the slot table.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// A primary whose socket could not be opened is left to the cluster client this long.
pub const NODE_PAUSE: Duration = Duration::from_millis(250);

/// Counts of the direct path since the pool opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterDirectCounts {
    /// Reads answered on the direct path.
    pub direct: u64,
    /// Reads sent through the cluster client instead (see the module docs for why).
    pub fallbacks: u64,
    /// Times the slot table was read again.
    pub refreshes: u64,
    /// Sockets open right now, over every primary.
    pub sockets: u64,
    /// Direct reads whose replies were polled for (within `read_spin`) before waiting on
    /// the reactor.
    pub polled: u64,
    /// Of those, the reads whose replies all came while polling.
    pub poll_hits: u64,
}

/// The primary serving a read's slot right now (see `ClusterDirect::primary_of`), for a
/// transport of its own to it (an event loop's direct connection).
#[derive(Clone)]
pub struct ClusterPrimary {
    /// `host:port` as `CLUSTER SLOTS` names it: one connection per primary is keyed by it.
    pub addr: Arc<str>,
    /// Where to connect (the cluster's credentials, plain TCP).
    pub endpoint: Arc<Endpoint>,
}

/// The direct read path of one cluster pool; see the module docs.
pub(crate) struct ClusterDirect {
    link: Arc<ClusterLink>,
    /// The runtime the pool opened on: slot table reads run there, whoever asks for them.
    runtime: tokio::runtime::Handle,
    config: PoolConfig,
    table: RwLock<Arc<SlotTable>>,
    refreshing: AtomicBool,
    last_refresh: Mutex<Option<Instant>>,
    /// Reads in flight on this path (polling is skipped while others wait).
    reading: AtomicUsize,
    direct: AtomicU64,
    fallbacks: AtomicU64,
    refreshes: AtomicU64,
    polled: AtomicU64,
    poll_hits: AtomicU64,
}

/// Which primary serves each slot.
struct SlotTable {
    /// Index into `nodes` per slot; [`NONE`] for a slot no primary serves.
    owner: Vec<u16>,
    nodes: Vec<Arc<Node>>,
}

const NONE: u16 = u16::MAX;

/// The keys of a read on one primary (its index in the table): per slot, the keys' indexes.
type NodeGroup = (u16, Vec<(u16, Vec<usize>)>);

/// One primary: where it is and its idle sockets.
struct Node {
    addr: (String, u16),
    /// `addr` as `host:port`.
    name: Arc<str>,
    endpoint: Arc<Endpoint>,
    idle: Mutex<Vec<TaskLone>>,
    /// Sockets open to it (idle or in use).
    open: AtomicU32,
    /// A connect failed: skipped until this instant.
    paused_until: Mutex<Option<Instant>>,
}

/// A socket taken from a [`Node`]: back to its idle list when dropped clean, else closed.
struct Lease {
    node: Arc<Node>,
    lone: Option<TaskLone>,
    max_idle: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(lone) = self.lone.take() else { return };
        if lone.is_clean() {
            let mut idle = self.node.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push(lone);
                return;
            }
        }
        self.node.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lease {
    fn lone(&mut self) -> &mut TaskLone {
        self.lone.as_mut().expect("a lease holds its socket until dropped")
    }

    /// The socket broke or timed out: close it, and every idle one to the same primary (a
    /// restart or a kill took them all).
    fn discard(mut self) {
        if self.lone.take().is_some() {
            self.node.open.fetch_sub(1, Ordering::Relaxed);
        }
        let dropped = std::mem::take(&mut *self.node.idle.lock().unwrap_or_else(|p| p.into_inner()));
        self.node.open.fetch_sub(dropped.len() as u32, Ordering::Relaxed);
    }
}

/// Why a read left the direct path.
enum Miss {
    /// Nothing suspicious (an error reply such as a wrong type, a busy primary).
    Plain,
    /// The slot table may be stale: read it again.
    Stale,
}

impl ClusterDirect {
    /// The direct path of a cluster pool, `None` when it cannot be used (TLS, turned off).
    /// The slot table is read at once; a failure leaves it empty until the first refresh.
    pub async fn open(link: Arc<ClusterLink>, config: &PoolConfig) -> Option<Arc<ClusterDirect>> {
        if !config.direct_reads || link.spec().tls.is_some() {
            return None;
        }
        let direct = Arc::new(ClusterDirect {
            link,
            runtime: tokio::runtime::Handle::current(),
            config: config.clone(),
            table: RwLock::new(Arc::new(SlotTable {
                owner: vec![NONE; SLOTS],
                nodes: Vec::new(),
            })),
            refreshing: AtomicBool::new(false),
            last_refresh: Mutex::new(None),
            reading: AtomicUsize::new(0),
            direct: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            polled: AtomicU64::new(0),
            poll_hits: AtomicU64::new(0),
        });
        direct.read_table().await;
        Some(direct)
    }

    /// Counts since the pool opened.
    pub fn counts(&self) -> ClusterDirectCounts {
        let table = self.table();
        ClusterDirectCounts {
            direct: self.direct.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            sockets: table
                .nodes
                .iter()
                .map(|n| u64::from(n.open.load(Ordering::Relaxed)))
                .sum(),
            polled: self.polled.load(Ordering::Relaxed),
            poll_hits: self.poll_hits.load(Ordering::Relaxed),
        }
    }

    /// Count a read that polled for its replies, and whether they all came in time.
    fn polled(&self, hit: bool) {
        self.polled.fetch_add(1, Ordering::Relaxed);
        self.poll_hits.fetch_add(u64::from(hit), Ordering::Relaxed);
    }

    /// The primary that serves `cmd` (`GET key`, or an `MGET` whose keys all hash to one slot)
    /// according to the slot table now. `None` sends the read elsewhere: another command,
    /// keys over several slots, a slot no primary serves, a table being read again after a
    /// redirection, a primary whose socket could not be opened lately.
    pub fn primary_of(&self, cmd: &Cmd) -> Option<ClusterPrimary> {
        if self.refreshing.load(Ordering::Acquire) {
            return None;
        }
        let mut args = cmd.args_iter().map(|a| match a {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        });
        let name = args.next()??;
        if !name.eq_ignore_ascii_case(b"GET") && !name.eq_ignore_ascii_case(b"MGET") {
            return None;
        }
        let slot = key_slot(args.next()??);
        for key in args {
            if key_slot(key?) != slot {
                return None;
            }
        }
        if !name.eq_ignore_ascii_case(b"MGET") && cmd.args_iter().count() != 2 {
            return None;
        }
        let table = self.table();
        let node = match table.owner[usize::from(slot)] {
            NONE => return None,
            i => table.nodes.get(usize::from(i))?,
        };
        let paused = node.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        Some(ClusterPrimary {
            addr: node.name.clone(),
            endpoint: node.endpoint.clone(),
        })
    }

    /// A read sent to [`ClusterDirect::primary_of`]'s answer met a redirection or a cluster in
    /// trouble ([`is_redirection`]): read the slot table again (in the background).
    pub fn table_stale(self: &Arc<Self>) {
        self.refresh();
    }

    /// Count a read answered directly on a connection of its own to the key's primary.
    pub fn served_elsewhere(&self) {
        self.direct.fetch_add(1, Ordering::Relaxed);
    }

    /// Close every idle socket (the pool is closing).
    pub fn close(&self) {
        for node in &self.table().nodes {
            let dropped = std::mem::take(&mut *node.idle.lock().unwrap_or_else(|p| p.into_inner()));
            node.open.fetch_sub(dropped.len() as u32, Ordering::Relaxed);
        }
    }

    /// Answer `cmd` (`GET key` or `MGET key…`) on the direct path; `None` when the caller
    /// must send it through the cluster client (see the module docs).
    pub async fn read(self: &Arc<Self>, cmd: &Cmd) -> Option<Reply> {
        let outcome = self.try_read(cmd).await;
        match outcome {
            Ok(reply) => {
                self.direct.fetch_add(1, Ordering::Relaxed);
                Some(reply)
            }
            Err(miss) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                if let Miss::Stale = miss {
                    self.refresh();
                }
                None
            }
        }
    }

    async fn try_read(self: &Arc<Self>, cmd: &Cmd) -> Result<Reply, Miss> {
        let args: Vec<&[u8]> = cmd
            .args_iter()
            .map(|a| match a {
                Arg::Simple(bytes) => Some(bytes),
                _ => None, // a cursor placeholder: never in a read
            })
            .collect::<Option<_>>()
            .ok_or(Miss::Plain)?;
        let (name, keys) = args.split_first().ok_or(Miss::Plain)?;
        let table = self.table();
        let busy = self.reading.load(Ordering::Acquire) > 0;
        let _reading = Reading::new(&self.reading);
        if name.eq_ignore_ascii_case(b"GET") && keys.len() == 1 {
            let node = table.node_of(keys[0])?;
            return self.call(node, cmd, busy).await;
        }
        if !name.eq_ignore_ascii_case(b"MGET") || keys.is_empty() {
            return Err(Miss::Plain);
        }
        // Per primary, per slot: the indexes of the keys.
        let mut groups: Vec<NodeGroup> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let slot = key_slot(key);
            let node = table.owner[usize::from(slot)];
            if node == NONE {
                return Err(Miss::Stale);
            }
            let slots = match groups.iter_mut().find(|(n, _)| *n == node) {
                Some((_, slots)) => slots,
                None => {
                    groups.push((node, Vec::new()));
                    &mut groups.last_mut().expect("just pushed").1
                }
            };
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, indexes)) => indexes.push(i),
                None => slots.push((slot, vec![i])),
            }
        }
        if let [(node, slots)] = groups.as_slice() {
            if slots.len() == 1 {
                // One slot: the caller's MGET as it is.
                return self.call(&table.nodes[usize::from(*node)], cmd, busy).await;
            }
        }
        self.read_spread(&table, &groups, keys, busy).await
    }

    /// One request on `node`'s socket.
    async fn call(&self, node: &Arc<Node>, cmd: &Cmd, busy: bool) -> Result<Reply, Miss> {
        let mut lease = self.lease(node).await?;
        let before = lease.lone().spin_counts();
        let result = lease.lone().call(cmd, busy).await;
        let after = lease.lone().spin_counts();
        if after.polled > before.polled {
            self.polled(after.hits > before.hits);
        }
        match result {
            Ok(Reply::Error(message)) => Err(miss_of(&message)),
            Ok(reply) => Ok(reply),
            Err(_) => {
                lease.discard();
                Err(Miss::Stale)
            }
        }
    }

    /// An `MGET` over several slots: one pipeline per primary, all written before any reply
    /// is awaited, then polled together for up to `read_spin`, then awaited.
    async fn read_spread(
        &self,
        table: &SlotTable,
        groups: &[NodeGroup],
        keys: &[&[u8]],
        busy: bool,
    ) -> Result<Reply, Miss> {
        let mut leases = Vec::with_capacity(groups.len());
        for (node, _) in groups {
            leases.push(self.lease(&table.nodes[usize::from(*node)]).await?);
        }
        // Polled when any socket's policy wants it (each decides alone: requiring all of them
        // would poll only when their probe turns coincide), and every socket polled learns
        // from its own replies only: a slow primary must not stop polling on a fast one.
        // Every pipeline is built before the first is written, so the primaries get theirs
        // back to back and work on them at the same time.
        let pipelines: Vec<Vec<Cmd>> = groups
            .iter()
            .map(|(_, slots)| {
                slots
                    .iter()
                    .map(|(_, indexes)| {
                        let mut mget = redis::cmd("MGET");
                        for &i in indexes {
                            mget.arg(keys[i]);
                        }
                        mget
                    })
                    .collect()
            })
            .collect();
        let mut spin = false;
        for (lease, cmds) in leases.iter_mut().zip(&pipelines) {
            spin |= lease.lone().start(cmds, busy).map_err(|_| Miss::Stale)?;
        }
        if spin && !self.config.read_spin.is_zero() {
            let started = Instant::now();
            let mut done = vec![false; leases.len()];
            while !done.iter().all(|d| *d) && started.elapsed() < self.config.read_spin {
                for (lease, done) in leases.iter_mut().zip(done.iter_mut()).filter(|(_, d)| !**d) {
                    *done = lease.lone().poll().map_err(|_| Miss::Stale)?;
                }
                std::hint::spin_loop();
            }
            self.polled(done.iter().all(|d| *d));
            for (lease, hit) in leases.iter_mut().zip(done) {
                lease.lone().spun(hit);
            }
        }
        let replies = futures_util::future::join_all(leases.iter_mut().map(|l| l.lone().wait_all())).await;
        let mut ordered = vec![Reply::Nil; keys.len()];
        let mut miss = None;
        for ((lease, replies), (_, slots)) in leases.into_iter().zip(replies).zip(groups) {
            let replies = match replies {
                Ok(replies) => replies,
                Err(_) => {
                    lease.discard();
                    miss = Some(Miss::Stale);
                    continue;
                }
            };
            for (reply, (_, indexes)) in replies.into_iter().zip(slots) {
                match reply {
                    Reply::Array(values) if values.len() == indexes.len() => {
                        for (value, &i) in values.into_iter().zip(indexes) {
                            ordered[i] = value;
                        }
                    }
                    Reply::Error(message) => miss = Some(miss_of(&message)),
                    _ => miss = Some(Miss::Stale),
                }
            }
        }
        match miss {
            Some(miss) => Err(miss),
            None => Ok(Reply::Array(ordered)),
        }
    }

    /// An idle socket of `node`, or a fresh one when it has none and is below its limit.
    async fn lease(&self, node: &Arc<Node>) -> Result<Lease, Miss> {
        let max_idle = self.config.max_size as usize;
        if let Some(lone) = node.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(Lease {
                node: node.clone(),
                lone: Some(lone),
                max_idle,
            });
        }
        if node
            .paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(Miss::Stale); // it may have lost its slots meanwhile
        }
        if node.open.fetch_add(1, Ordering::Relaxed) >= self.config.max_size {
            node.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Miss::Plain);
        }
        let opened = TaskLone::connect(
            node.endpoint.clone(),
            DIRECT_CLIENT_NAME,
            self.config.connect_timeout,
            self.config.response_timeout,
            self.config.read_spin,
        )
        .await;
        match opened {
            Ok(lone) => Ok(Lease {
                node: node.clone(),
                lone: Some(lone),
                max_idle,
            }),
            Err(e) => {
                node.open.fetch_sub(1, Ordering::Relaxed);
                *node.paused_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + NODE_PAUSE);
                log::debug!(target: "solcache::pool", "direct read socket to {}:{} failed: {e}", node.addr.0, node.addr.1);
                Err(Miss::Stale)
            }
        }
    }

    fn table(&self) -> Arc<SlotTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Read the slot table again in the background (one read at a time, at most one per
    /// [`REFRESH_INTERVAL`]).
    fn refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this: Weak<Self> = Arc::downgrade(self);
        self.runtime.spawn(async move {
            let last = this
                .upgrade()
                .and_then(|t| *t.last_refresh.lock().unwrap_or_else(|p| p.into_inner()));
            if let Some(last) = last {
                tokio::time::sleep((last + REFRESH_INTERVAL).saturating_duration_since(Instant::now())).await;
            }
            let Some(this) = this.upgrade() else { return };
            this.read_table().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// `CLUSTER SLOTS` through the cluster client, into a fresh table; primaries that stay
    /// keep their sockets. A failed read leaves the table as it was.
    async fn read_table(&self) {
        *self.last_refresh.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let mut ask = redis::cmd("CLUSTER");
        ask.arg("SLOTS");
        let Ok(reply) = self.link.send::<Value>(Request::Cmd(&ask)).await else {
            return;
        };
        let Some(ranges) = slot_ranges(&reply) else { return };
        let known: HashMap<(String, u16), Arc<Node>> =
            self.table().nodes.iter().map(|n| (n.addr.clone(), n.clone())).collect();
        let mut fresh = SlotTable {
            owner: vec![NONE; SLOTS],
            nodes: Vec::new(),
        };
        for (start, end, addr) in ranges {
            let index = match fresh.nodes.iter().position(|n| n.addr == addr) {
                Some(i) => i,
                None => {
                    let node = known
                        .get(&addr)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Node::new(self.link.spec(), addr)));
                    fresh.nodes.push(node);
                    fresh.nodes.len() - 1
                }
            };
            for slot in start..=end.min(SLOTS as u16 - 1) {
                fresh.owner[usize::from(slot)] = u16::try_from(index).unwrap_or(NONE);
            }
        }
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
    }
}

impl SlotTable {
    /// The primary serving `key`'s slot; a slot nobody serves is a stale table.
    fn node_of(&self, key: &[u8]) -> Result<&Arc<Node>, Miss> {
        match self.owner[usize::from(key_slot(key))] {
            NONE => Err(Miss::Stale),
            i => Ok(&self.nodes[usize::from(i)]),
        }
    }
}

impl Node {
    fn new(spec: &ClusterSpec, addr: (String, u16)) -> Node {
        let info = super::topology::Tls::info(None, &addr.0, addr.1);
        let url = format!("{} (node {}:{})", spec.redacted_url, addr.0, addr.1);
        Node {
            endpoint: Arc::new(Endpoint::from_parts(info, spec.credentials.clone(), 0, url)),
            name: format!("{}:{}", addr.0, addr.1).into(),
            addr,
            idle: Mutex::new(Vec::new()),
            open: AtomicU32::new(0),
            paused_until: Mutex::new(None),
        }
    }
}

/// An error reply: a redirection or a cluster in trouble makes the table suspect.
fn miss_of(message: &str) -> Miss {
    let code = message.split(' ').next().unwrap_or("");
    if matches!(code, "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN") {
        Miss::Stale
    } else {
        Miss::Plain
    }
}

/// Whether `reply` is an error reply that says the slot table is out of date or the cluster
/// is in trouble (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`): the read must be sent again
/// through the cluster client, which follows it.
pub fn is_redirection(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(message) if matches!(miss_of(message), Miss::Stale))
}

/// Counts a read in flight for as long as it lives (also when the read is cancelled).
struct Reading<'a>(&'a AtomicUsize);

impl<'a> Reading<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Reading(count)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slot of `key`: CRC16 (XMODEM) of the key, or of the text inside its first non-empty
/// `{…}`, modulo 16384. Computed here because redis-rs' `Slot::for_key` keeps the number
/// private and the slot table is an array indexed by it (the unit test checks both agree).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS as u16
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis Cluster
/// hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        let mut crc = crc ^ (u16::from(byte) << 8);
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // The reference check value of CRC16/XMODEM, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"price:SOL"), 12466);
        assert_eq!(key_slot(b"stream:price-updates"), 3016);
        assert_eq!(key_slot(b"price:{prices}:SOL"), 3628);
        assert_eq!(key_slot(b"pool:{pools}:x"), 10067);
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(key_slot(b"a{}b"), crc16(b"a{}b") % 16384);
        assert_eq!(key_slot(b"{x}{y}"), key_slot(b"x"));
        for key in [
            &b"price:SOL"[..],
            b"price:{prices}:SOL",
            b"{user1000}.following",
            b"foo{}{bar}",
            b"",
            b"{",
        ] {
            let ours = redis::cluster_routing::Slot::new(key_slot(key));
            assert_eq!(ours, Some(redis::cluster_routing::Slot::for_key(key)), "{key:?}");
        }
    }
}
