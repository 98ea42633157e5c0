//! Redis Cluster: redis-rs' async cluster client behind the same [`Request`] seam.
//!
//! The client keeps one multiplexed connection per node, follows `MOVED` / `ASK`, refreshes
//! its slot map after a failover and splits `MGET` per slot (reassembled in key order). It
//! refuses pipelines whose keys span slots, so [`send`] splits those: the commands are grouped
//! by the slot of their key, every group is one pipeline, the groups run concurrently, and the
//! replies are put back in request order. A pipeline that spans slots answers every command,
//! including those marked `ignore` (the mark cannot be read outside redis-rs); the callers
//! that ignore replies convert into `()`, which accepts any reply.
//!
//! A batch whose keys lie on several nodes is first grouped per *node* instead, from the slot
//! map solcache reads itself (`CLUSTER SLOTS`, again after each fresh client): one pipeline per
//! primary, routed by address. If a node answers an error (a slot moved since), the batch is
//! sent again grouped per slot, which the client routes and redirects itself; every request
//! solcache batches may be sent twice (see [`super::retry`]).
//!
//! A stream read over several streams (`XREAD` / `XREADGROUP … STREAMS a b c`) whose streams
//! lie in different slots is split too: every slot's part is polled at once without `BLOCK`;
//! when all are empty and the caller asked to block, only the first stream's part blocks. An
//! entry of another stream then waits up to `BLOCK` ms when the first stream is quiet (on one
//! server, or with streams in one slot, the read wakes for any of them).
//!
//! Failover: the client reconnects a dead node by its address and refreshes its slot map only
//! when a node answers `MOVED`; a killed primary never answers, so the client would keep
//! trying it after its replica took over. [`ClusterLink`] therefore follows a failure itself:
//! from the first request that fails at the I/O level, a background task reads `CLUSTER
//! SLOTS` at once and then every [`FOLLOW_INTERVAL`]; the moment the map names another
//! primary for some slot (a replica was promoted), it opens a fresh client (slot map read
//! again from the seed nodes) and swaps it in. It stops without a fresh client once no
//! request failed for [`QUIET`] (the node came back), and opens one anyway after
//! [`FOLLOW_MAX`] of failures with an unchanged map. A request still waiting when a fresh
//! client is swapped in (most likely on the dead primary) is sent once more on the fresh one.
//!
//! Limits: `response_timeout` bounds each attempt on a node; one request, with its
//! redirections and retries, is bounded by `response_timeout` too (a request to a dead node
//! fails within it instead of waiting for the client's reconnect backoff).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{SingleNodeRoutingInfo, Slot};
use redis::io::tcp::TcpSettings;
use redis::{Arg, Cmd, ConnectionInfo, FromRedisValue, Pipeline, RedisResult, Value};

use super::request::joined;
use super::retry::Failure;
use super::settings::PoolConfig;
use super::topology::{ClusterSpec, Tls};
use super::Request;
use crate::error::{Error, Result};

/// How often the slot map is read while requests fail, until it names a new primary.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);
/// No request failed for this long: the failure passed without a failover.
pub const QUIET: Duration = Duration::from_secs(2);
/// Failures this long with an unchanged slot map: a fresh client anyway.
pub const FOLLOW_MAX: Duration = Duration::from_secs(10);

/// The cluster client of a pool, replaced by a fresh one after I/O failures; see the module docs.
pub(crate) struct ClusterLink {
    spec: ClusterSpec,
    config: PoolConfig,
    current: RwLock<ClusterConnection>,
    /// Which primary serves each slot, for grouping batches per node (None until read).
    owners: RwLock<Option<Arc<SlotOwners>>>,
    rebuilding: AtomicBool,
    rebuilds: AtomicU64,
    /// Bumped when a fresh client is swapped in: requests waiting on the old one resend.
    rebuilt: tokio::sync::watch::Sender<u64>,
    /// When a request last failed at the I/O level, in ms since `born`.
    last_failure_ms: AtomicU64,
    born: Instant,
}

/// Which primary serves each slot, from `CLUSTER SLOTS` (also the blocking pool's slot map).
pub(super) struct SlotOwners {
    /// Slot → index in `nodes`.
    pub owner: HashMap<Slot, usize>,
    /// Primary addresses.
    pub nodes: Vec<(String, u16)>,
}

impl SlotOwners {
    async fn read(conn: &mut ClusterConnection) -> Option<SlotOwners> {
        let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await.ok()?;
        SlotOwners::parse(&reply)
    }

    /// The slot map a `CLUSTER SLOTS` reply describes; `None` when it has another shape.
    pub(super) fn parse(reply: &Value) -> Option<SlotOwners> {
        let mut owners = SlotOwners {
            owner: HashMap::with_capacity(16384),
            nodes: Vec::new(),
        };
        for (start, end, addr) in slot_ranges(reply)? {
            let node = match owners.nodes.iter().position(|n| *n == addr) {
                Some(i) => i,
                None => {
                    owners.nodes.push(addr);
                    owners.nodes.len() - 1
                }
            };
            for slot in start..=end {
                owners.owner.insert(Slot::new(slot)?, node);
            }
        }
        Some(owners)
    }

    /// True when some slot is served by another primary in `fresh` than here.
    pub(super) fn differs_from(&self, fresh: &SlotOwners) -> bool {
        self.owner.len() != fresh.owner.len()
            || fresh
                .owner
                .iter()
                .any(|(slot, &i)| self.owner.get(slot).map(|&k| &self.nodes[k]) != Some(&fresh.nodes[i]))
    }
}

/// First slot, last slot, and the address of the primary serving them.
pub(crate) type SlotRange = (u16, u16, (String, u16));

/// The slot ranges of a `CLUSTER SLOTS` reply, each with its primary's address: `(first
/// slot, last slot, (host, port))`. `None` when the reply is not one.
pub(crate) fn slot_ranges(reply: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = reply else { return None };
    let mut parsed = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else { return None };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        let (Some(Value::BulkString(host)), Some(Value::Int(port))) = (primary.first(), primary.get(1)) else {
            return None;
        };
        let addr = (String::from_utf8_lossy(host).into_owned(), u16::try_from(*port).ok()?);
        parsed.push((u16::try_from(*start).ok()?, u16::try_from(*end).ok()?, addr));
    }
    Some(parsed)
}

impl ClusterLink {
    /// Open the first client; fails like [`connect`].
    pub async fn open(spec: ClusterSpec, config: PoolConfig) -> Result<Arc<ClusterLink>> {
        let conn = connect(&spec, &config, config.response_timeout).await?;
        let owners = SlotOwners::read(&mut conn.clone()).await.map(Arc::new);
        Ok(Arc::new(ClusterLink {
            spec,
            config,
            current: RwLock::new(conn),
            owners: RwLock::new(owners),
            rebuilding: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
            rebuilt: tokio::sync::watch::channel(0).0,
            last_failure_ms: AtomicU64::new(0),
            born: Instant::now(),
        }))
    }

    /// What the link was made from (for a blocking reader's client of its own).
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Times a fresh client replaced the previous one.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }

    /// Send `request`; an I/O failure starts a fresh client in the background.
    pub async fn send<T: FromRedisValue>(self: &Arc<Self>, request: Request<'_>) -> RedisResult<T> {
        let mut rebuilt = self.rebuilt.subscribe();
        rebuilt.mark_unchanged();
        let mut resent = false;
        loop {
            let mut conn = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
            let attempt = async {
                if let Some(replies) = self.send_by_node(request, &mut conn).await {
                    return Ok(T::from_redis_value(replies)?);
                }
                send(request, &mut conn).await
            };
            // A fresh client swapped in meanwhile knows the new primary: the request, which
            // may still wait on a dead one, is sent once more on it.
            let result = tokio::select! {
                result = attempt => result,
                _ = rebuilt.changed(), if !resent => {
                    resent = true;
                    continue;
                }
            };
            if let Err(e) = &result {
                // Not an error reply: a dead node, a timeout, a dropped socket.
                if e.code().is_none() || Failure::of(e).breaks_connection() {
                    self.follow_failure();
                }
            }
            return result;
        }
    }

    /// A batch over several nodes as one pipeline per node; `None` when the request is not
    /// such a batch, the slot map is unknown, or a node answered an error (then the slot map
    /// is read again and the caller sends the batch per slot).
    async fn send_by_node(&self, request: Request<'_>, conn: &mut ClusterConnection) -> Option<Value> {
        let pipes: &[Pipeline] = match request {
            Request::Cmd(_) => return None,
            Request::Pipeline(pipe) => std::slice::from_ref(pipe),
            Request::Pipelines(pipes) => pipes,
        };
        if one_slot(pipes.iter()) {
            return None;
        }
        let owners = self.owners.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        let mut groups: Vec<(Pipeline, Vec<usize>)> = vec![(redis::pipe(), Vec::new()); owners.nodes.len()];
        for (i, cmd) in pipes.iter().flat_map(Pipeline::cmd_iter).enumerate() {
            if SplitRead::of(cmd).is_some() {
                return None;
            }
            let node = *owners.owner.get(&Slot::for_key(key_of(cmd)?))?;
            groups[node].0.add_command(cmd.clone());
            groups[node].1.push(i);
        }
        let total = groups.iter().map(|(_, i)| i.len()).sum();
        let sent = futures_util::future::join_all(groups.iter().enumerate().filter(|(_, (_, i))| !i.is_empty()).map(
            |(node, (pipe, indexes))| {
                let mut conn = conn.clone();
                let (host, port) = owners.nodes[node].clone();
                let route = SingleNodeRoutingInfo::ByAddress { host, port };
                async move {
                    (
                        indexes,
                        conn.route_pipeline(pipe.clone(), 0, indexes.len(), route).await,
                    )
                }
            },
        ))
        .await;
        let mut ordered = vec![Value::Nil; total];
        for (indexes, replies) in sent {
            let replies = match replies {
                Ok(r) if r.len() == indexes.len() && !r.iter().any(|v| matches!(v, Value::ServerError(_))) => r,
                _ => {
                    let fresh = SlotOwners::read(conn).await.map(Arc::new);
                    *self.owners.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    return None;
                }
            };
            for (&i, value) in indexes.iter().zip(replies) {
                ordered[i] = value;
            }
        }
        Some(Value::Array(ordered))
    }

    fn since_born_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request failed at the I/O level: start following (see the module docs) unless
    /// already under way.
    fn follow_failure(self: &Arc<Self>) {
        self.last_failure_ms.store(self.since_born_ms(), Ordering::Release);
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut started = Instant::now();
            loop {
                let Some(this) = link.upgrade() else { return };
                let known = this.owners.read().unwrap_or_else(|p| p.into_inner()).clone();
                let mut conn = this.current.read().unwrap_or_else(|p| p.into_inner()).clone();
                let changed = match (SlotOwners::read(&mut conn).await, known) {
                    (Some(fresh), Some(known)) => known.differs_from(&fresh),
                    (Some(_), None) => true,
                    (None, _) => false, // asked a dead node: again next tick
                };
                let quiet_ms = this
                    .since_born_ms()
                    .saturating_sub(this.last_failure_ms.load(Ordering::Acquire));
                if !changed && Duration::from_millis(quiet_ms) >= QUIET {
                    this.rebuilding.store(false, Ordering::Release);
                    return;
                }
                if changed || started.elapsed() >= FOLLOW_MAX {
                    if this.rebuild().await {
                        this.rebuilding.store(false, Ordering::Release);
                        return;
                    }
                    started = Instant::now();
                }
                drop(this);
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        });
    }

    /// Open a fresh client and swap it in; false when it could not be opened.
    async fn rebuild(&self) -> bool {
        match connect(&self.spec, &self.config, self.config.response_timeout).await {
            Ok(conn) => {
                let owners = SlotOwners::read(&mut conn.clone()).await.map(Arc::new);
                *self.owners.write().unwrap_or_else(|p| p.into_inner()) = owners;
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = conn;
                let generation = self.rebuilds.fetch_add(1, Ordering::Relaxed) + 1;
                self.rebuilt.send_replace(generation);
                true
            }
            Err(e) => {
                log::info!(target: "solcache::pool", "{}: fresh cluster client failed: {e}", self.spec.redacted_url);
                false
            }
        }
    }
}

/// Open a cluster connection (slot map loaded from the first seed node that answers), with
/// `response_timeout` per node request; fails within about `connect_timeout` per seed node.
pub(crate) async fn connect(
    spec: &ClusterSpec,
    config: &PoolConfig,
    response_timeout: Duration,
) -> Result<ClusterConnection> {
    super::endpoint::install_tls_provider();
    let nodes: Vec<ConnectionInfo> = spec
        .nodes
        .iter()
        .map(|(host, port)| Tls::info(spec.tls, host, *port))
        .collect();
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(config.connect_timeout)
        .response_timeout(response_timeout)
        .overall_response_timeout(Some(response_timeout))
        .tcp_settings(TcpSettings::default().set_nodelay(true));
    if let Some(credentials) = &spec.credentials {
        builder = builder.password(&credentials.password);
        if let Some(user) = &credentials.user {
            builder = builder.username(user);
        }
    }
    if let Some(tls) = spec.tls {
        builder = builder.tls(match tls {
            Tls::Verified => redis::TlsMode::Secure,
            Tls::Insecure => redis::TlsMode::Insecure,
        });
    }
    let client = builder
        .build()
        .map_err(|e| Error::invalid(format!("bad Redis URL {}: {e}", spec.redacted_url)))?;
    let opened = tokio::time::timeout(
        config.connect_timeout * spec.nodes.len() as u32,
        client.get_async_connection(),
    )
    .await;
    match opened {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(connect_error(e, spec, config.connect_timeout)),
        Err(_) => Err(Error::Timeout {
            operation: "connect",
            timeout: config.connect_timeout * spec.nodes.len() as u32,
        }),
    }
}

fn connect_error(e: redis::RedisError, spec: &ClusterSpec, timeout: Duration) -> Error {
    let message = e.to_string();
    if message.contains("WRONGPASS") || message.contains("NOAUTH") || message.contains("AuthenticationFailed") {
        return Error::auth_refused(spec.redacted_url.clone(), message);
    }
    Error::from_redis(e, &spec.redacted_url, "connect", timeout)
}

/// Send `request` on a cluster connection; see the module docs for how pipelines are split.
pub(crate) async fn send<T: FromRedisValue>(request: Request<'_>, conn: &mut ClusterConnection) -> RedisResult<T> {
    match request {
        Request::Cmd(cmd) => match SplitRead::of(cmd) {
            Some(split) => Ok(T::from_redis_value(split.send(conn).await?)?),
            None => cmd.query_async(conn).await,
        },
        Request::Pipeline(pipe) => {
            if one_slot(std::iter::once(pipe)) {
                return pipe.query_async(conn).await;
            }
            send_groups(by_slot(std::iter::once(pipe)), pipe.len(), conn).await
        }
        Request::Pipelines(pipes) => {
            if one_slot(pipes.iter()) {
                // As on one server: every pipeline in flight at once, to the one node.
                let replies = futures_util::future::try_join_all(pipes.iter().map(|pipe| {
                    let mut conn = conn.clone();
                    async move { pipe.query_async::<Value>(&mut conn).await }
                }))
                .await?;
                return joined(replies);
            }
            let total = pipes.iter().map(Pipeline::len).sum();
            send_groups(by_slot(pipes.iter()), total, conn).await
        }
    }
}

/// True when every command of `pipes` has its key in one slot (no split stream read).
fn one_slot<'a>(pipes: impl Iterator<Item = &'a Pipeline>) -> bool {
    let mut first: Option<Option<Slot>> = None;
    for cmd in pipes.flat_map(Pipeline::cmd_iter) {
        if SplitRead::of(cmd).is_some() {
            return false;
        }
        let slot = key_of(cmd).map(Slot::for_key);
        match first {
            None => first = Some(slot),
            Some(f) if f != slot => return false,
            Some(_) => {}
        }
    }
    true
}

/// What one concurrent request of a split pipeline is.
enum Part {
    /// Commands of one slot.
    Pipe(Pipeline),
    /// A stream read over several slots.
    Read(SplitRead),
}

/// Every part in flight at once, replies put back at their command's index.
async fn send_groups<T: FromRedisValue>(
    groups: Vec<(Part, Vec<usize>)>,
    total: usize,
    conn: &mut ClusterConnection,
) -> RedisResult<T> {
    let replies = futures_util::future::try_join_all(groups.iter().map(|(part, _)| {
        let mut conn = conn.clone();
        async move {
            match part {
                Part::Pipe(pipe) => pipe.query_async::<Vec<Value>>(&mut conn).await,
                Part::Read(read) => Ok(vec![read.send(&mut conn).await?]),
            }
        }
    }))
    .await?;
    let mut ordered = vec![Value::Nil; total];
    for ((_, indexes), values) in groups.iter().zip(replies) {
        for (&i, value) in indexes.iter().zip(values) {
            ordered[i] = value;
        }
    }
    joined(vec![Value::Array(ordered)])
}

/// The commands of `pipes` grouped by the slot of their key, each group with the indexes
/// (across all pipes) of its commands, groups in order of first appearance; a stream read
/// over several slots is a part of its own.
fn by_slot<'a>(pipes: impl Iterator<Item = &'a Pipeline>) -> Vec<(Part, Vec<usize>)> {
    let mut groups: Vec<(Part, Vec<usize>)> = Vec::new();
    let mut index_of: HashMap<Option<Slot>, usize> = HashMap::new();
    for (i, cmd) in pipes.flat_map(Pipeline::cmd_iter).enumerate() {
        if let Some(split) = SplitRead::of(cmd) {
            groups.push((Part::Read(split), vec![i]));
            continue;
        }
        let slot = key_of(cmd).map(Slot::for_key);
        let group = *index_of.entry(slot).or_insert_with(|| {
            groups.push((Part::Pipe(redis::pipe()), Vec::new()));
            groups.len() - 1
        });
        if let (Part::Pipe(pipe), indexes) = &mut groups[group] {
            pipe.add_command(cmd.clone());
            indexes.push(i);
        }
    }
    groups
}

/// An `XREAD` / `XREADGROUP` whose streams lie in several slots, split per slot.
pub(super) struct SplitRead {
    /// One read per slot, without `BLOCK`.
    pub polls: Vec<Cmd>,
    /// The first stream's part with the caller's `BLOCK`, when the caller asked to block.
    pub blocking: Option<Cmd>,
}

impl SplitRead {
    /// `None` unless `cmd` is a stream read over streams in more than one slot.
    pub(super) fn of(cmd: &Cmd) -> Option<SplitRead> {
        let args = args_of(cmd);
        let name = args.first()?;
        if !(name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP")) {
            return None;
        }
        let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
        let rest = &args[at + 1..];
        let n = rest.len() / 2;
        let (streams, ids) = rest.split_at(n);
        let mut slots: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, stream) in streams.iter().enumerate() {
            let slot = Slot::for_key(stream);
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, members)) => members.push(i),
                None => slots.push((slot, vec![i])),
            }
        }
        if slots.len() < 2 {
            return None;
        }
        let block = args[..at].iter().position(|a| a.eq_ignore_ascii_case(b"BLOCK"));
        let part = |members: &[usize], blocking: bool| {
            let mut part = redis::cmd(std::str::from_utf8(name).unwrap_or("XREAD"));
            let mut k = 1;
            while k < at {
                if Some(k) == block {
                    if blocking {
                        part.arg(args[k]).arg(args[k + 1]);
                    }
                    k += 2;
                    continue;
                }
                part.arg(args[k]);
                k += 1;
            }
            part.arg("STREAMS");
            for &i in members {
                part.arg(streams[i]);
            }
            for &i in members {
                part.arg(ids[i]);
            }
            part
        };
        Some(SplitRead {
            polls: slots.iter().map(|(_, m)| part(m, false)).collect(),
            blocking: block.map(|_| part(&slots[0].1, true)),
        })
    }

    /// Poll every part; block on the first one only when all were empty. The replies merged
    /// into one (`Nil` when nothing was read).
    async fn send(&self, conn: &mut ClusterConnection) -> RedisResult<Value> {
        let polled = futures_util::future::try_join_all(self.polls.iter().map(|cmd| {
            let mut conn = conn.clone();
            async move { cmd.query_async::<Value>(&mut conn).await }
        }))
        .await?;
        if let Some(merged) = SplitRead::merge(polled) {
            return Ok(merged);
        }
        match &self.blocking {
            Some(cmd) => cmd.query_async(conn).await,
            None => Ok(Value::Nil),
        }
    }
}

impl SplitRead {
    /// The polls' replies as one stream-read reply; `None` when nothing was read.
    pub(super) fn merge(polled: Vec<Value>) -> Option<Value> {
        let mut merged: Vec<Value> = Vec::new();
        for reply in polled {
            match reply {
                Value::Array(streams) => merged.extend(streams),
                Value::Map(streams) => merged.extend(streams.into_iter().map(|(k, v)| Value::Array(vec![k, v]))),
                _ => {}
            }
        }
        (!merged.is_empty()).then_some(Value::Array(merged))
    }
}

pub(super) fn args_of(cmd: &Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .map(|a| match a {
            Arg::Simple(bytes) => bytes,
            _ => &b""[..], // a cursor placeholder: never a key
        })
        .collect()
}

/// The first key of the commands solcache pipelines: the argument after the name, after the
/// subcommand for `XINFO` / `XGROUP`, after `STREAMS` for `XREAD` / `XREADGROUP`.
pub(super) fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    key_in(&args_of(cmd))
}

/// [`key_of`] for a command's arguments already listed by [`args_of`].
pub(super) fn key_in<'a>(args: &[&'a [u8]]) -> Option<&'a [u8]> {
    let name = args.first()?;
    let at = if name.eq_ignore_ascii_case(b"XINFO") || name.eq_ignore_ascii_case(b"XGROUP") {
        2
    } else if name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP") {
        args.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS"))? + 1
    } else {
        1
    };
    args.get(at).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_grouped_by_the_slot_of_their_key() {
        let mut a = redis::pipe();
        a.cmd("SET").arg("price:SOL").arg("1");
        a.cmd("SET").arg("price:BTC").arg("2");
        let mut b = redis::pipe();
        b.cmd("SET").arg("price:SOL").arg("3");
        b.cmd("XINFO").arg("STREAM").arg("price:BTC");
        let groups = by_slot([&a, &b].into_iter());
        let indexes: Vec<Vec<usize>> = groups.iter().map(|(_, i)| i.clone()).collect();
        assert!(groups.iter().all(|(p, _)| matches!(p, Part::Pipe(_))));
        assert_eq!(indexes, vec![vec![0, 2], vec![1, 3]]);
        let mut tagged = redis::pipe();
        tagged.cmd("SET").arg("price:{p}:SOL").arg("1");
        tagged.cmd("SET").arg("price:{p}:BTC").arg("2");
        assert_eq!(by_slot(std::iter::once(&tagged)).len(), 1);
    }

    #[test]
    fn stream_reads_are_routed_by_their_stream() {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg("s1")
            .arg(">");
        assert_eq!(key_of(&cmd), Some(&b"s1"[..]));
        assert!(SplitRead::of(&cmd).is_none(), "one stream: one slot");
        let mut many = redis::cmd("XREADGROUP");
        many.arg("GROUP").arg("g").arg("c").arg("BLOCK").arg(100);
        many.arg("STREAMS")
            .arg("stream:price-updates")
            .arg("stream:trade-events")
            .arg(">")
            .arg(">");
        let split = SplitRead::of(&many).expect("two slots");
        let packed = |c: &Cmd| String::from_utf8_lossy(&c.get_packed_command()).replace("\r\n", " ");
        assert_eq!(split.polls.len(), 2);
        assert!(split.polls.iter().all(|p| !packed(p).contains("BLOCK")));
        assert!(packed(&split.polls[1]).contains("stream:trade-events $1 >"));
        let blocking = packed(split.blocking.as_ref().unwrap());
        assert!(
            blocking.contains("BLOCK $3 100") && blocking.contains("stream:price-updates $1 >"),
            "{blocking}"
        );
        let mut xadd = redis::cmd("XADD");
        xadd.arg("stream:x").arg("*");
        assert_eq!(key_of(&xadd), Some(&b"stream:x"[..]));
    }
}
