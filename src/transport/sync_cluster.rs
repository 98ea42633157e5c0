//! [`SyncCluster`]: the blocking pool on a Redis Cluster, routing every command by the slot of
//! its key to the primary that serves it, on the calling thread.
//!
//! - One [`NodePool`] per primary (same `max_size` and timeouts each, direct reads included),
//!   opened when first needed; the slot map comes from `CLUSTER SLOTS`, read from the first
//!   seed node that answers.
//! - A read of one slot (`GET`, `MGET` of keys in one slot) goes to its primary like a read on
//!   one server: one round trip over a direct socket.
//! - A request over several slots is split: an `MGET` into one `MGET` per slot (replies put back
//!   in key order), a stream read over several streams into one read per slot (as the async
//!   pool does, see [`super::cluster`]), a pipeline into its commands. The parts are grouped
//!   per primary, each group is one pipeline, and every group is written before any reply is
//!   read, so a batch over three primaries costs about one round trip, not three. Connections
//!   of several primaries are checked out in address order, so concurrent batches never wait
//!   on each other in a cycle.
//! - `MOVED` updates the slot map (read again in full before the next request) and sends the
//!   part to the named node; `ASK` sends `ASKING` and the part to the named node;
//!   `TRYAGAIN` / `CLUSTERDOWN` wait a little and send the part again. One request's
//!   redirections and retries are bounded by `response_timeout` and [`MAX_ROUNDS`].
//! - Failover: a primary that fails at the I/O level (a killed one refuses connections or never
//!   answers) makes the pool read the slot map again at once, and before each request while
//!   requests keep failing (at most every [`FOLLOW_INTERVAL`], until [`QUIET`] passed without
//!   a failure); the moment the map names another primary for the slot (its replica was
//!   promoted), requests go there. A failed part is sent once more when the fresh map routes it
//!   elsewhere, or when the [retry policy](super::retry) allows (a dropped connection that
//!   had served calls). Until the promotion, calls to the dead primary's slots fail fast.
//!
//! Pipelines are sent as their commands: a reply marked `ignore` is returned too (the mark
//! cannot be read outside redis-rs), and an atomic pipeline (`MULTI`) is not supported.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::cluster_routing::Slot;
use redis::{Cmd, FromRedisValue, RedisError, Value};

use super::async_pool::PoolCounts;
use super::cluster::{args_of, key_in, key_of, SlotOwners, SplitRead, FOLLOW_INTERVAL, QUIET};
use super::endpoint::Endpoint;
use super::handshake::{Handshake, SYNC_CLIENT_NAME};
use super::resp::Reply;
use super::retry::{Attempts, Failure};
use super::settings::PoolConfig;
use super::sync_node::{Checkout, NodePool, NodeTarget};
use super::topology::{ClusterSpec, Tls};
use super::Request;
use crate::error::{Error, Result};

/// Rounds of redirections and retries one request may take.
pub const MAX_ROUNDS: usize = 6;

/// A node's address, as `CLUSTER SLOTS` names it.
type Addr = (String, u16);

/// The blocking pool's cluster backend; see the module docs.
pub(super) struct SyncCluster {
    spec: ClusterSpec,
    config: PoolConfig,
    map: RwLock<Arc<SlotOwners>>,
    nodes: Mutex<HashMap<Addr, Arc<NodePool>>>,
    /// When a request last failed at the I/O level, in ms since `born` (0: never).
    last_failure_ms: AtomicU64,
    /// When the slot map was last read, in ms since `born`.
    last_refresh_ms: AtomicU64,
    /// A `MOVED` was seen: read the whole map before the next request.
    refresh_wanted: AtomicBool,
    /// A thread is reading the slot map: the others route with the current one.
    refreshing: AtomicBool,
    /// The node that failed last: asked for the slot map after the others.
    suspect: Mutex<Option<Addr>>,
    map_changes: AtomicU64,
    closed: AtomicBool,
    born: Instant,
}

/// Where a part goes instead of its slot's owner.
#[derive(Clone)]
enum Redirect {
    Moved(Addr),
    Ask(Addr),
}

/// One command as sent to one node, with the slot of its key (none: any node).
struct Part<'a> {
    cmd: Cow<'a, Cmd>,
    slot: Option<Slot>,
}

/// How the replies of a request's parts become the reply to one of its commands.
enum Unit {
    /// The reply of part `i`, as is.
    Whole(usize),
    /// An `MGET` split per slot: `keys` replies, each part filling the key positions listed.
    Mget {
        keys: usize,
        parts: Vec<(usize, Vec<usize>)>,
    },
    /// A stream read split per slot: its polls, and the part that blocks when all were empty.
    Read {
        polls: std::ops::Range<usize>,
        blocking: Option<Cmd>,
    },
}

/// A request's commands as parts (see the module docs) and how to put the replies together.
struct Plan<'a> {
    parts: Vec<Part<'a>>,
    units: Vec<Unit>,
}

impl<'a> Plan<'a> {
    fn of(cmds: impl Iterator<Item = &'a Cmd>) -> Plan<'a> {
        let mut plan = Plan {
            parts: Vec::new(),
            units: Vec::new(),
        };
        for cmd in cmds {
            let args = args_of(cmd);
            let name = args.first().copied().unwrap_or_default();
            if name.eq_ignore_ascii_case(b"MGET") {
                if let Some(unit) = plan.split_mget(&args[1..]) {
                    plan.units.push(unit);
                    continue;
                }
            } else if name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP") {
                if let Some(split) = SplitRead::of(cmd) {
                    let start = plan.parts.len();
                    for poll in split.polls {
                        let slot = key_of(&poll).map(Slot::for_key);
                        plan.parts.push(Part {
                            cmd: Cow::Owned(poll),
                            slot,
                        });
                    }
                    plan.units.push(Unit::Read {
                        polls: start..plan.parts.len(),
                        blocking: split.blocking,
                    });
                    continue;
                }
            }
            plan.units.push(Unit::Whole(plan.parts.len()));
            plan.parts.push(Part {
                cmd: Cow::Borrowed(cmd),
                slot: key_in(&args).map(Slot::for_key),
            });
        }
        plan
    }

    /// An `MGET` of `keys` over several slots as one `MGET` per slot; `None` in one slot.
    fn split_mget(&mut self, keys: &[&[u8]]) -> Option<Unit> {
        let mut slots: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let slot = Slot::for_key(key);
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, members)) => members.push(i),
                None => slots.push((slot, vec![i])),
            }
        }
        if slots.len() < 2 {
            return None;
        }
        let mut parts = Vec::with_capacity(slots.len());
        for (slot, members) in slots {
            let mut part = redis::cmd("MGET");
            for &i in &members {
                part.arg(keys[i]);
            }
            parts.push((self.parts.len(), members));
            self.parts.push(Part {
                cmd: Cow::Owned(part),
                slot: Some(slot),
            });
        }
        Some(Unit::Mget {
            keys: keys.len(),
            parts,
        })
    }
}

/// The slot `cmd`'s keys all lie in, if it reads one slot (a `GET`, an `MGET` in one slot).
fn single_slot(cmd: &Cmd) -> Option<Slot> {
    let args = args_of(cmd);
    if args.first()?.eq_ignore_ascii_case(b"MGET") {
        let first = Slot::for_key(args.get(1)?);
        return args[2..].iter().all(|k| Slot::for_key(k) == first).then_some(first);
    }
    if SplitRead::of(cmd).is_some() {
        return None;
    }
    key_of(cmd).map(Slot::for_key)
}

/// What a cluster error reply asks for; `None` for any other reply.
enum ClusterReply {
    Moved(Slot, Addr),
    Ask(Addr),
    /// `TRYAGAIN`, `CLUSTERDOWN`: send again a little later.
    Again,
}

impl ClusterReply {
    /// From the text of an error reply (`MOVED 3999 127.0.0.1:6381`); `answered_by` stands in
    /// for a node address without a host.
    fn parse(text: &str, answered_by: &Addr) -> Option<ClusterReply> {
        let mut words = text.split_ascii_whitespace();
        let code = words.next()?;
        if code == "TRYAGAIN" || code == "CLUSTERDOWN" {
            return Some(ClusterReply::Again);
        }
        if code != "MOVED" && code != "ASK" {
            return None;
        }
        let slot = Slot::new(words.next()?.parse().ok()?)?;
        let (host, port) = words.next()?.rsplit_once(':')?;
        let host = if host.is_empty() {
            answered_by.0.clone()
        } else {
            host.to_owned()
        };
        let addr = (host, port.parse().ok()?);
        Some(if code == "MOVED" {
            ClusterReply::Moved(slot, addr)
        } else {
            ClusterReply::Ask(addr)
        })
    }

    fn of(value: &Value, answered_by: &Addr) -> Option<ClusterReply> {
        let Value::ServerError(err) = value else { return None };
        let text = match err.details() {
            Some(details) => format!("{} {details}", err.code()),
            None => err.code().to_owned(),
        };
        ClusterReply::parse(&text, answered_by)
    }
}

/// A node that failed during a round, with what the failure says.
struct NodeFailure {
    addr: Addr,
    error: Error,
    failure: Failure,
    reused: bool,
}

impl SyncCluster {
    /// Read the slot map from the first seed node that answers; a wrong password or an old
    /// server fails at once, unreachable seeds after `connect_timeout` each.
    pub fn open(spec: ClusterSpec, config: PoolConfig) -> Result<SyncCluster> {
        let cluster = SyncCluster {
            map: RwLock::new(Arc::new(SlotOwners {
                owner: HashMap::new(),
                nodes: Vec::new(),
            })),
            nodes: Mutex::new(HashMap::new()),
            last_failure_ms: AtomicU64::new(0),
            last_refresh_ms: AtomicU64::new(0),
            refresh_wanted: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            suspect: Mutex::new(None),
            map_changes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            born: Instant::now(),
            spec,
            config,
        };
        let mut last_error = None;
        for seed in cluster.spec.nodes.clone() {
            match cluster.read_map(&seed) {
                Ok(map) => {
                    cluster.install(map);
                    return Ok(cluster);
                }
                Err(e @ (Error::Authentication { .. } | Error::UnsupportedServer { .. })) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::invalid("a cluster URL needs at least one node")))
    }

    /// `CLUSTER SLOTS` from the node at `addr`.
    fn read_map(&self, addr: &Addr) -> Result<SlotOwners> {
        let node = self.node(addr)?;
        let reply: Value = node.execute(Request::Cmd(redis::cmd("CLUSTER").arg("SLOTS")))?;
        SlotOwners::parse(&reply)
            .filter(|map| !map.owner.is_empty())
            .ok_or_else(|| Error::Response {
                code: None,
                message: format!("{} answered CLUSTER SLOTS without a slot map", node.redacted_url()),
            })
    }

    /// Use `map`, and drop the pools of nodes it does not name (requests using them finish).
    fn install(&self, map: SlotOwners) {
        let mut nodes = self.lock_nodes();
        nodes.retain(|addr, _| map.nodes.contains(addr));
        drop(nodes);
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
    }

    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, HashMap<Addr, Arc<NodePool>>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self) -> Arc<SlotOwners> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pool of the node at `addr`, opened (without connecting) when first asked.
    fn node(&self, addr: &Addr) -> Result<Arc<NodePool>> {
        let mut nodes = self.lock_nodes();
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let scheme = if self.spec.tls.is_some() { "rediss" } else { "redis" };
        let url = format!("{scheme}://{}:{}", addr.0, addr.1);
        let info = Tls::info(self.spec.tls, &addr.0, addr.1);
        let endpoint = Endpoint::from_parts(info, self.spec.credentials.clone(), 0, url.clone());
        let node = Arc::new(NodePool::new(
            NodeTarget::Fixed(endpoint.client()?),
            Handshake::new(&endpoint, SYNC_CLIENT_NAME),
            Some(endpoint),
            self.config.clone(),
            url,
        ));
        nodes.insert(addr.clone(), node.clone());
        Ok(node)
    }

    /// The primary serving `slot` (any primary for a command without a key).
    fn owner<'m>(map: &'m SlotOwners, slot: Option<Slot>, fallback: &'m Addr) -> &'m Addr {
        let node = match slot {
            Some(slot) => map.owner.get(&slot).copied(),
            None => (!map.nodes.is_empty()).then_some(0),
        };
        node.map_or(fallback, |i| &map.nodes[i])
    }

    fn since_born_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A request failed at the I/O level on `addr`: follow (see the module docs).
    fn note_failure(&self, addr: &Addr) {
        self.last_failure_ms.store(self.since_born_ms(), Ordering::Release);
        *self.suspect.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
    }

    /// Read the slot map again when a `MOVED` asked for it, or while requests fail, at most
    /// every [`FOLLOW_INTERVAL`] and by one thread at a time. True when it names another
    /// primary for some slot.
    fn refresh_if_due(&self) -> bool {
        let now = self.since_born_ms();
        let failed = self.last_failure_ms.load(Ordering::Acquire);
        let failing = failed != 0 && Duration::from_millis(now.saturating_sub(failed)) < QUIET;
        if !(failing || self.refresh_wanted.load(Ordering::Acquire)) {
            return false;
        }
        let last = self.last_refresh_ms.load(Ordering::Acquire);
        if Duration::from_millis(now.saturating_sub(last)) < FOLLOW_INTERVAL
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        self.refresh_wanted.store(false, Ordering::Release);
        self.last_refresh_ms.store(now, Ordering::Release);
        let changed = self.refresh();
        self.refreshing.store(false, Ordering::Release);
        changed
    }

    /// Read the slot map from the known primaries and the seeds (the node that failed last
    /// asked last); true when it names another primary for some slot.
    fn refresh(&self) -> bool {
        let current = self.map();
        let suspect = self.suspect.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut candidates: Vec<Addr> = current.nodes.clone();
        for seed in &self.spec.nodes {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        if let Some(suspect) = suspect {
            candidates.retain(|a| *a != suspect);
            candidates.push(suspect);
        }
        for addr in candidates {
            let Ok(fresh) = self.read_map(&addr) else { continue };
            if !current.differs_from(&fresh) {
                // Seeds asked on the way keep no connections.
                self.lock_nodes().retain(|addr, _| current.nodes.contains(addr));
                return false;
            }
            self.install(fresh);
            self.map_changes.fetch_add(1, Ordering::Relaxed);
            log::info!(target: "solcache::pool", "{}: the slot map names another primary", self.spec.redacted_url);
            return true;
        }
        false
    }

    /// `MOVED`: `slot` is served by `addr` now; the whole map is read before the next request.
    fn moved(&self, slot: Slot, addr: &Addr) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let index = match map.nodes.iter().position(|n| n == addr) {
            Some(i) => i,
            None => {
                let mut nodes = map.nodes.clone();
                nodes.push(addr.clone());
                *map = Arc::new(SlotOwners {
                    owner: map.owner.clone(),
                    nodes,
                });
                map.nodes.len() - 1
            }
        };
        if map.owner.get(&slot) != Some(&index) {
            let mut owner = map.owner.clone();
            owner.insert(slot, index);
            *map = Arc::new(SlotOwners {
                owner,
                nodes: map.nodes.clone(),
            });
            self.map_changes.fetch_add(1, Ordering::Relaxed);
        }
        self.refresh_wanted.store(true, Ordering::Release);
    }

    /// Send an idempotent request and convert its reply; see the module docs.
    pub fn execute<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T> {
        let (cmds, single): (Vec<&Cmd>, bool) = match request {
            Request::Cmd(cmd) => (vec![cmd], true),
            Request::Pipeline(pipe) => (pipe.cmd_iter().collect(), false),
            Request::Pipelines(pipes) => (pipes.iter().flat_map(|p| p.cmd_iter()).collect(), false),
        };
        let plan = Plan::of(cmds.into_iter());
        let replies = self.exchange(&plan.parts)?;
        let mut values = self.assemble(plan, replies)?;
        let value = match single {
            true => values.pop().unwrap_or(Value::Nil),
            false => Value::Array(values),
        };
        let converted: redis::RedisResult<T> = value.extract_error().and_then(|v| Ok(T::from_redis_value(v)?));
        converted.map_err(|e| self.error(e))
    }

    fn error(&self, err: RedisError) -> Error {
        Error::from_redis(err, &self.spec.redacted_url, "response", self.config.response_timeout)
    }

    /// Send a cache read: a read of one slot over its primary's direct socket, anything else
    /// (or a redirection) like [`SyncCluster::execute`].
    pub fn read(&self, cmd: &Cmd) -> Result<Reply> {
        self.refresh_if_due();
        let Some(slot) = single_slot(cmd) else {
            return self.execute(Request::Cmd(cmd));
        };
        let map = self.map();
        let Some(&index) = map.owner.get(&slot) else {
            return self.execute(Request::Cmd(cmd));
        };
        let addr = &map.nodes[index];
        let node = self.node(addr)?;
        let redirected = |text: &str| match ClusterReply::parse(text, addr) {
            Some(ClusterReply::Moved(slot, to)) => {
                self.moved(slot, &to);
                true
            }
            Some(_) => true,
            None => false,
        };
        match node.read(cmd) {
            Ok(Reply::Error(text)) if redirected(&text) => {}
            // A redirection the pooled connection read (sent again, it is followed there).
            Err(Error::Response { code: Some(code), .. })
                if matches!(code.as_str(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN") => {}
            Err(e @ (Error::Connection { .. } | Error::Timeout { .. })) => {
                // The node already had its one retry: send again only where a fresh map says.
                self.note_failure(addr);
                self.refresh_if_due();
                let fresh = self.map();
                if fresh.owner.get(&slot).map(|&i| &fresh.nodes[i]) == Some(addr) {
                    return Err(e);
                }
            }
            other => return other,
        }
        self.execute(Request::Cmd(cmd))
    }

    /// Every part's reply, in order: parts grouped per node, one pipeline per node, every
    /// pipeline written before any reply is read; redirections, retries and failures handled
    /// as the module docs say.
    fn exchange(&self, parts: &[Part]) -> Result<Vec<Value>> {
        self.refresh_if_due();
        let started = Instant::now();
        let mut replies: Vec<Option<Value>> = vec![None; parts.len()];
        let mut redirects: Vec<Option<Redirect>> = vec![None; parts.len()];
        let mut attempts = Attempts::default();
        let mut rerouted = false;
        let mut rounds = 0;
        let mut last_refusal: Option<Value> = None;
        loop {
            let pending: Vec<usize> = (0..parts.len()).filter(|&i| replies[i].is_none()).collect();
            if pending.is_empty() {
                return Ok(replies.into_iter().map(|v| v.unwrap_or(Value::Nil)).collect());
            }
            rounds += 1;
            if rounds > MAX_ROUNDS || (rounds > 1 && started.elapsed() >= self.config.response_timeout) {
                let refusal = last_refusal.unwrap_or(Value::Nil);
                return Err(match refusal.extract_error() {
                    Err(e) => self.error(e),
                    Ok(_) => Error::Timeout {
                        operation: "response",
                        timeout: self.config.response_timeout,
                    },
                });
            }
            let map = self.map();
            let fallback = self.spec.nodes[0].clone();
            // BTreeMap: nodes in address order, the order connections are checked out in.
            let mut by_node: BTreeMap<&Addr, Vec<usize>> = BTreeMap::new();
            for i in pending {
                let addr = match &redirects[i] {
                    Some(Redirect::Moved(addr) | Redirect::Ask(addr)) => addr,
                    None => Self::owner(&map, parts[i].slot, &fallback),
                };
                by_node.entry(addr).or_default().push(i);
            }
            let groups: BTreeMap<Addr, Vec<usize>> = by_node.into_iter().map(|(a, i)| (a.clone(), i)).collect();
            let (answers, failure) = self.round(&groups, parts, &redirects)?;
            let mut again = false;
            for (addr, i, value) in answers {
                match ClusterReply::of(&value, &addr) {
                    Some(ClusterReply::Moved(slot, to)) => {
                        self.moved(slot, &to);
                        redirects[i] = Some(Redirect::Moved(to));
                        last_refusal = Some(value);
                    }
                    Some(ClusterReply::Ask(to)) => {
                        redirects[i] = Some(Redirect::Ask(to));
                        last_refusal = Some(value);
                    }
                    Some(ClusterReply::Again) => {
                        redirects[i] = None;
                        again = true;
                        last_refusal = Some(value);
                    }
                    None => replies[i] = Some(value),
                }
            }
            if let Some(failed) = failure {
                self.note_failure(&failed.addr);
                let moved_away = self.refresh_if_due() && {
                    let map = self.map();
                    groups[&failed.addr]
                        .iter()
                        .any(|&i| *Self::owner(&map, parts[i].slot, &fallback) != failed.addr)
                };
                let retry = if moved_away && !rerouted {
                    rerouted = true;
                    true
                } else {
                    attempts.again(failed.failure, failed.reused)
                };
                if !retry || self.is_closed() {
                    return Err(failed.error);
                }
                for &i in &groups[&failed.addr] {
                    redirects[i] = None;
                }
            }
            if again {
                let pause = Duration::from_millis(10 * rounds as u64);
                std::thread::sleep(pause.min(self.config.response_timeout.saturating_sub(started.elapsed())));
            }
        }
    }

    /// One round of [`SyncCluster::exchange`]: the replies that came, as (node, part index,
    /// reply), and the first node that failed, if any.
    #[allow(clippy::type_complexity)]
    fn round(
        &self,
        groups: &BTreeMap<Addr, Vec<usize>>,
        parts: &[Part],
        redirects: &[Option<Redirect>],
    ) -> Result<(Vec<(Addr, usize, Value)>, Option<NodeFailure>)> {
        let nodes: Vec<(&Addr, &Vec<usize>, Arc<NodePool>)> = groups
            .iter()
            .map(|(addr, indexes)| Ok((addr, indexes, self.node(addr)?)))
            .collect::<Result<_>>()?;
        let mut failure: Option<NodeFailure> = None;
        let mut fail = |addr: &Addr, error: Error, failure_kind: Failure, reused: bool| {
            failure.get_or_insert(NodeFailure {
                addr: addr.clone(),
                error,
                failure: failure_kind,
                reused,
            });
        };
        // Check out and write every group first.
        let mut sent: Vec<(&Addr, &Vec<usize>, &NodePool, Checkout<'_>)> = Vec::with_capacity(nodes.len());
        for (addr, indexes, node) in &nodes {
            let mut checkout = match node.checkout() {
                Ok(c) => c,
                Err(e @ (Error::PoolClosed | Error::PoolExhausted { .. })) => return Err(e),
                Err(e) => {
                    let kind = if e.is_timeout() {
                        Failure::Broken
                    } else {
                        Failure::Dropped
                    };
                    fail(addr, e, kind, false);
                    continue;
                }
            };
            let mut packed = Vec::new();
            for &i in indexes.iter() {
                if let Some(Redirect::Ask(_)) = &redirects[i] {
                    redis::cmd("ASKING").write_packed_command(&mut packed);
                }
                parts[i].cmd.write_packed_command(&mut packed);
            }
            match checkout.connection().send_packed_command(&packed) {
                Ok(()) => sent.push((addr, indexes, node, checkout)),
                Err(e) => {
                    checkout.broken = true;
                    fail(addr, node.error(e.clone()), Failure::of(&e), checkout.reused);
                }
            }
        }
        // Then read every group's replies.
        let mut answers = Vec::new();
        for (addr, indexes, node, mut checkout) in sent {
            for &i in indexes.iter() {
                let asking = matches!(redirects[i], Some(Redirect::Ask(_)));
                let received = match asking {
                    true => checkout
                        .connection()
                        .recv_response()
                        .and_then(|_| checkout.connection().recv_response()),
                    false => checkout.connection().recv_response(),
                };
                match received {
                    Ok(value) => answers.push((addr.clone(), i, value)),
                    Err(e) => {
                        checkout.broken = true;
                        fail(addr, node.error(e.clone()), Failure::of(&e), checkout.reused);
                        break;
                    }
                }
            }
        }
        Ok((answers, failure))
    }

    /// Each command's reply from its parts' replies (see [`Unit`]); a split stream read whose
    /// polls were all empty sends its blocking part.
    fn assemble(&self, plan: Plan, mut replies: Vec<Value>) -> Result<Vec<Value>> {
        let mut values = Vec::with_capacity(plan.units.len());
        for unit in plan.units {
            values.push(match unit {
                Unit::Whole(i) => std::mem::replace(&mut replies[i], Value::Nil),
                Unit::Mget { keys, parts } => {
                    let mut ordered = vec![Value::Nil; keys];
                    for (i, members) in parts {
                        match std::mem::replace(&mut replies[i], Value::Nil) {
                            Value::Array(items) => {
                                for (&k, item) in members.iter().zip(items) {
                                    ordered[k] = item;
                                }
                            }
                            refused => return Ok(vec![refused]),
                        }
                    }
                    Value::Array(ordered)
                }
                Unit::Read { polls, blocking } => {
                    let polled = polls.map(|i| std::mem::replace(&mut replies[i], Value::Nil)).collect();
                    match (SplitRead::merge(polled), blocking) {
                        (Some(merged), _) => merged,
                        (None, Some(cmd)) => {
                            let slot = key_of(&cmd).map(Slot::for_key);
                            let part = Part {
                                cmd: Cow::Owned(cmd),
                                slot,
                            };
                            self.exchange(&[part])?.pop().unwrap_or(Value::Nil)
                        }
                        (None, None) => Value::Nil,
                    }
                }
            });
        }
        Ok(values)
    }

    /// Close every node's idle connections and refuse new calls.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for node in self.lock_nodes().values() {
            node.close();
        }
    }

    /// Whether [`SyncCluster::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The counts of every node's pool, summed.
    pub fn counts(&self) -> PoolCounts {
        self.lock_nodes().values().map(|n| n.counts()).fold(
            PoolCounts {
                connections: 0,
                idle: 0,
                in_use: 0,
                waiting: 0,
            },
            |a, b| PoolCounts {
                connections: a.connections + b.connections,
                idle: a.idle + b.idle,
                in_use: a.in_use + b.in_use,
                waiting: a.waiting + b.waiting,
            },
        )
    }

    /// Times the slot map named another primary for some slot.
    pub fn map_changes(&self) -> u64 {
        self.map_changes.load(Ordering::Relaxed)
    }

    /// The version a node's latest connect read.
    pub fn redis_version(&self) -> String {
        self.lock_nodes()
            .values()
            .map(|n| n.redis_version())
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mget_over_several_slots_is_split_and_refilled_in_key_order() {
        let mut mget = redis::cmd("MGET");
        mget.arg("price:SOL")
            .arg("price:BTC")
            .arg("price:SOL")
            .arg("price:{p}:a");
        let plan = Plan::of(std::iter::once(&mget));
        let Unit::Mget { keys, parts } = &plan.units[0] else {
            panic!("split")
        };
        assert_eq!(*keys, 4);
        assert_eq!(
            parts.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
            vec![vec![0, 2], vec![1], vec![3]]
        );
        assert!(plan.parts.iter().all(|p| p.slot.is_some()));
        assert_eq!(single_slot(&mget), None);
        let mut tagged = redis::cmd("MGET");
        tagged.arg("price:{p}:a").arg("price:{p}:b");
        assert_eq!(single_slot(&tagged), Some(Slot::for_key("p")));
        assert!(matches!(Plan::of(std::iter::once(&tagged)).units[0], Unit::Whole(0)));
    }

    #[test]
    fn redirections_are_read_from_error_replies() {
        let by = ("10.0.0.1".to_owned(), 7000);
        match ClusterReply::parse("MOVED 3999 127.0.0.1:6381", &by) {
            Some(ClusterReply::Moved(slot, addr)) => {
                assert_eq!((slot, addr), (Slot::new(3999).unwrap(), ("127.0.0.1".to_owned(), 6381)))
            }
            _ => panic!("moved"),
        }
        assert!(
            matches!(ClusterReply::parse("ASK 1 :7001", &by), Some(ClusterReply::Ask(a)) if a == ("10.0.0.1".to_owned(), 7001))
        );
        assert!(matches!(
            ClusterReply::parse("TRYAGAIN Multiple keys", &by),
            Some(ClusterReply::Again)
        ));
        assert!(ClusterReply::parse("WRONGTYPE Operation", &by).is_none());
    }
}
