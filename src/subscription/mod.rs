//! Consumer-group reading with at-least-once delivery.
//!
//! A [`Subscription`] reads with XREADGROUP on a connection of its own (blocking reads never
//! starve cache reads): a [`WireConnection`](crate::transport::WireConnection) whose replies are read straight from their bytes
//! ([`crate::stream_wire`]), or a redis-rs one over TLS. [`crate::read_ahead`] runs its next
//! read while the caller handles a batch. Entries are acknowledged only after the caller says they were
//! processed ([`Subscription::ack_later`]); the XACKs ride in the same pipeline as the next
//! XREADGROUP, so acknowledging costs no extra round trip. Never NOACK: a crashed consumer's
//! batch stays pending and is reclaimed.
//!
//! On start (and after a lost connection) the consumer first re-reads its own pending entries
//! (id `0`), then new ones (`>`). Every `claim_interval` it runs XAUTOCLAIM for entries idle
//! longer than `claim_min_idle` (a crashed consumer's, or its own that a handler failed). An
//! entry delivered more than `max_deliveries` times, or one that cannot be decoded, is copied to
//! `stream:dead-letter` with the reason and acknowledged: nothing is dropped silently.
//!
//! It rides through outages: a failed read never reaches the caller. The subscription goes
//! [`SubscriptionState::Retrying`], counts the outage, and tries again after a capped
//! exponential backoff; meanwhile [`Subscription::next_batch`] returns empty batches at least
//! every `block`, so the caller sees the state and can stop. When a read succeeds again it is
//! [`SubscriptionState::Connected`] and reads its own pending entries first. A group that is gone
//! (NOGROUP: a restart without persistence, a deleted stream or group) is created again at the
//! caller's `start_id`, never before an entry this consumer acknowledged. Only `give_up_after`
//! (off by default) ends the retries with the last error.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Value;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::event_stream::{validate_name, validate_stream_name, EventStream, StreamEntry};
use crate::events::DEAD_LETTER;
use crate::metrics::Operation;
use crate::stream_reply::{self, RawEntry};
use crate::transport::Request;

mod ack_queue;
mod group_read;

use ack_queue::{note_acked, parse_id, AckQueue};
use group_read::{Read, ReadConnection};

/// How a subscription reads, reclaims and gives up.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// Most entries per batch (default 100).
    pub count: usize,
    /// Longest wait for new entries per read (default 100 ms).
    pub block: Duration,
    /// Entries pending longer than this are reclaimed from any consumer (default 10 s).
    pub claim_min_idle: Duration,
    /// How often to look for such entries (default 1 s).
    pub claim_interval: Duration,
    /// Deliveries after which an entry goes to the dead-letter stream (default 5).
    pub max_deliveries: u64,
    /// Where a group this subscription (re-)creates starts: `"$"` (the default) skips what the
    /// stream holds, `"0"` replays it, or an entry id.
    pub start_id: String,
    /// First wait after a failed read (default 100 ms); it doubles per failure…
    pub retry_initial: Duration,
    /// …up to this (default 2 s).
    pub retry_max: Duration,
    /// Stop retrying and return the last error once an outage lasted this long (default: never).
    pub give_up_after: Option<Duration>,
    /// After a full batch, read the next one while the caller handles this one (default off):
    /// see [`Subscription::set_read_ahead`].
    pub read_ahead: bool,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            count: 100,
            block: Duration::from_millis(100),
            claim_min_idle: Duration::from_secs(10),
            claim_interval: Duration::from_secs(1),
            max_deliveries: 5,
            start_id: "$".to_owned(),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            give_up_after: None,
            read_ahead: false,
        }
    }
}

/// Whether a subscription reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Its last read succeeded (or it has not read yet).
    #[default]
    Connected,
    /// Its last read failed; it tries again after a backoff.
    Retrying,
    /// Closed, or it gave up (`give_up_after`).
    Stopped,
}

impl SubscriptionState {
    /// `"connected"`, `"retrying"` or `"stopped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Connected => "connected",
            SubscriptionState::Retrying => "retrying",
            SubscriptionState::Stopped => "stopped",
        }
    }
}

/// Counters of one subscription since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Entries handed to the caller.
    pub delivered: u64,
    /// Of those, entries delivered before (reclaimed or re-read after a restart).
    pub redelivered: u64,
    /// Entries acknowledged.
    pub acked: u64,
    /// Entries moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Of those, entries that could not be decoded.
    pub bad_entries: u64,
    /// Times reading stopped working (each run of failed reads counts once).
    pub outages: u64,
    /// Failed reads, each followed by another attempt.
    pub retries: u64,
    /// Groups created again after they were found gone (NOGROUP).
    pub group_recreations: u64,
}

/// A consumer in a group, reading one or more streams.
pub struct Subscription {
    events: EventStream,
    streams: Vec<String>,
    group: String,
    consumer: String,
    options: SubscriptionOptions,
    conn: Option<ReadConnection>,
    reading_own_pending: bool,
    next_claim: Instant,
    claim_cursors: HashMap<String, String>,
    /// Processed entries waiting for their XACK, one queue per stream in first-acked order.
    to_ack: Vec<AckQueue>,
    /// Set while a read of new entries is on the wire: if the future is dropped (a cancelled
    /// Python task), the entries it fetched are pending unseen and must be re-read.
    read_in_flight: bool,
    /// A read of new entries written ahead on the wire connection, its reply not read yet
    /// (see [`Subscription::read_group`]): how many XACKs went in front of it.
    written_ahead: Option<usize>,
    /// The acknowledgements sent with that read, applied once its replies are in.
    acks_ahead: Vec<AckQueue>,
    stats: SubscriptionStats,
    state: SubscriptionState,
    last_error: Option<String>,
    /// The last failed read's error, logged when it differs from the one before.
    last_read_error: Option<String>,
    backoff: Backoff,
    outage_started: Option<Instant>,
    retry_at: Option<Instant>,
    /// A read has succeeded: a missing group is from now on a lost one, not a new one.
    has_read: bool,
    /// Per stream, the highest id this consumer acknowledged: a re-created group starts after it.
    acked_up_to: HashMap<String, (u64, u64)>,
}

impl Subscription {
    /// A consumer `consumer` of `group` on `streams` (the group must exist: see
    /// [`EventStream::ensure_group`]).
    pub fn new(
        events: EventStream,
        streams: Vec<String>,
        group: &str,
        consumer: &str,
        options: SubscriptionOptions,
    ) -> Result<Self> {
        if streams.is_empty() {
            return Err(Error::invalid("subscribe to at least one stream"));
        }
        for s in &streams {
            validate_stream_name(s)?;
        }
        validate_name("group", group)?;
        validate_name("consumer", consumer)?;
        if options.count == 0 || options.max_deliveries == 0 {
            return Err(Error::invalid("count and max_deliveries must be at least 1"));
        }
        if options.block.is_zero() || options.claim_min_idle.is_zero() || options.claim_interval.is_zero() {
            return Err(Error::invalid(
                "block, claim_min_idle and claim_interval must be at least 1 ms",
            ));
        }
        crate::event_stream::validate_id(&options.start_id)?;
        if options.give_up_after.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid("give_up_after must be at least 1 ms"));
        }
        let backoff = Backoff::new(options.retry_initial, options.retry_max)?;
        Ok(Subscription {
            events,
            streams,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            options,
            conn: None,
            reading_own_pending: true,
            next_claim: Instant::now(),
            claim_cursors: HashMap::new(),
            to_ack: Vec::new(),
            read_in_flight: false,
            written_ahead: None,
            acks_ahead: Vec::new(),
            stats: SubscriptionStats::default(),
            state: SubscriptionState::Connected,
            last_error: None,
            last_read_error: None,
            backoff,
            outage_started: None,
            retry_at: None,
            has_read: false,
            acked_up_to: HashMap::new(),
        })
    }

    /// Connected, retrying or stopped.
    pub fn state(&self) -> SubscriptionState {
        self.state
    }

    /// Why the last read failed, while retrying (None once a read succeeded).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Read ahead or not from the next read on. With it, a read that brings a full batch of new
    /// entries (on a plain TCP or unix connection) writes the next read at once, before the batch
    /// is decoded: the server prepares the next batch while the caller handles this one, and
    /// the next call takes it without a wait (a blocking read follows only if it brought
    /// nothing). Those entries are delivered to this consumer meanwhile: if it stops first, they
    /// stay pending for it (read first when it comes back, or reclaimed by another consumer
    /// after `claim_min_idle`). At-least-once either way.
    pub fn set_read_ahead(&mut self, on: bool) {
        self.options.read_ahead = on;
    }

    /// Counters since the subscription started.
    pub fn stats(&self) -> SubscriptionStats {
        self.stats
    }

    /// Entries processed but not acknowledged yet.
    pub fn unacked(&self) -> usize {
        self.to_ack.iter().map(AckQueue::len).sum()
    }

    /// `n` entries of a batch were read but never handed to the caller (a batch read ahead when
    /// the subscription closed): they are pending, not delivered.
    pub fn not_handed(&mut self, n: usize) {
        self.stats.delivered = self.stats.delivered.saturating_sub(n as u64);
    }

    /// Mark an entry processed; its XACK goes out with the next read or [`Self::flush_acks`].
    pub fn ack_later(&mut self, stream: &str, id: &str) {
        // A linear scan: a subscription reads a handful of streams at most.
        match self.to_ack.iter_mut().find(|q| q.stream == stream) {
            Some(queue) => queue.push(id),
            None => {
                let mut queue = AckQueue::new(stream);
                queue.push(id);
                self.to_ack.push(queue);
            }
        }
    }

    /// Send the pending acknowledgements now (on shutdown).
    pub async fn flush_acks(&mut self) -> Result<()> {
        // Acknowledgements already sent with a read ahead are confirmed (or queued again) first.
        self.finish_written_ahead().await;
        if self.unacked() == 0 {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.push_acks(&mut pipe);
        let counts: Vec<i64> = self
            .events
            .pool()
            .execute(Operation::StreamAck, Request::Pipeline(&pipe))
            .await?;
        note_acked(&mut self.acked_up_to, &mut self.to_ack);
        self.stats.acked += counts.iter().map(|&n| n.max(0) as u64).sum::<u64>();
        Ok(())
    }

    /// Send the pending acknowledgements and close this subscription's own connection (a
    /// later [`Subscription::next_batch`] would open a new one).
    pub async fn close(&mut self) -> Result<()> {
        let flushed = self.flush_acks().await;
        self.drop_connection();
        self.state = SubscriptionState::Stopped;
        flushed
    }

    /// Acknowledge what was marked, then return the next batch: reclaimed entries when any are
    /// due, else this consumer's own pending ones (after a start or reconnect), else new ones
    /// (waiting up to `block`). An empty batch means nothing arrived in time, or a read failed
    /// and the subscription is [`SubscriptionState::Retrying`]: see the module doc. Errors only
    /// when it gives up (`give_up_after`) or the pool was closed.
    pub async fn next_batch(&mut self) -> Result<Vec<StreamEntry>> {
        if let Some(at) = self.retry_at {
            let now = Instant::now();
            if now < at {
                // Wait in steps no longer than a read, so the caller can look and stop meanwhile.
                tokio::time::sleep((at - now).min(self.options.block)).await;
                if Instant::now() < at {
                    return Ok(Vec::new());
                }
            }
        }
        match self.attempt().await {
            Ok(batch) => {
                self.recovered();
                Ok(batch)
            }
            Err(err) => {
                self.reading_own_pending = true; // whatever a failed call fetched is pending now
                self.failed(err).await?;
                Ok(Vec::new())
            }
        }
    }

    fn recovered(&mut self) {
        if self.state == SubscriptionState::Retrying {
            let lasted = self.outage_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
            log::warn!(
                target: "solcache::stream",
                "subscription {}/{}: reading again after {:.1} s and {} failed reads",
                self.group,
                self.consumer,
                lasted,
                self.backoff.failures()
            );
        }
        self.state = SubscriptionState::Connected;
        self.has_read = true;
        self.last_error = None;
        self.last_read_error = None;
        self.outage_started = None;
        self.retry_at = None;
        self.backoff.reset();
    }

    /// Count a failed read and schedule the next attempt; `Err` when it is time to give up.
    async fn failed(&mut self, err: Error) -> Result<()> {
        if matches!(err, Error::PoolClosed | Error::InvalidInput(_)) {
            return Err(err); // the caller's doing, not an outage
        }
        let lost_group = err.response_code() == Some("NOGROUP");
        if lost_group && !self.has_read && self.create_groups().await.is_ok() {
            return Ok(()); // never read yet: the group was new, not lost; read at once
        }
        let now = Instant::now();
        let started = *self.outage_started.get_or_insert(now);
        if self.state != SubscriptionState::Retrying {
            self.stats.outages += 1;
            self.state = SubscriptionState::Retrying;
        }
        let message = err.to_string();
        if self.last_read_error.as_ref() != Some(&message) {
            // Once per outage and per distinct error in it, not once per retry.
            log::warn!(
                target: "solcache::stream",
                "subscription {}/{}: {err}; retrying with backoff (at most {} ms apart)",
                self.group,
                self.consumer,
                self.options.retry_max.as_millis()
            );
        }
        self.stats.retries += 1;
        self.last_read_error = Some(message.clone());
        self.last_error = Some(message);
        if lost_group {
            match self.create_groups().await {
                Ok(created) if created > 0 => {
                    self.stats.group_recreations += created;
                    self.retry_at = None; // read again at once
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => self.last_error = Some(e.to_string()),
            }
        }
        if self.options.give_up_after.is_some_and(|limit| now - started >= limit) {
            self.state = SubscriptionState::Stopped;
            log::warn!(
                target: "solcache::stream",
                "subscription {}/{}: giving up after {:.1} s of failed reads: {err}",
                self.group,
                self.consumer,
                (now - started).as_secs_f64()
            );
            return Err(err);
        }
        self.retry_at = Some(now + self.backoff.next_delay());
        Ok(())
    }

    /// `XGROUP CREATE … MKSTREAM` on every stream whose group is missing, at the chosen start
    /// id or just after the last entry this consumer acknowledged there, whichever is later (an
    /// acknowledged entry is never delivered again). Returns how many groups were created.
    async fn create_groups(&mut self) -> Result<u64> {
        let mut created = 0;
        for stream in self.streams.clone() {
            let start = self.start_for(&stream);
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(&stream)
                .arg(&self.group)
                .arg(&start)
                .arg("MKSTREAM");
            match self
                .events
                .pool()
                .execute::<()>(Operation::StreamAdmin, Request::Cmd(&cmd))
                .await
            {
                Ok(()) => {
                    created += 1;
                    self.claim_cursors.remove(&stream);
                    let how = if self.has_read {
                        "was gone: created it again"
                    } else {
                        "did not exist: created it"
                    };
                    let what = match start.as_str() {
                        "$" => "entries already in the stream are skipped",
                        "0" => "entries still in the stream are delivered",
                        _ => "entries after that id are delivered",
                    };
                    log::warn!(
                        target: "solcache::stream",
                        "subscription {}/{}: group {} on {stream} {how} at {start} ({what})",
                        self.group,
                        self.consumer,
                        self.group
                    );
                }
                Err(e) if e.response_code() == Some("BUSYGROUP") => {} // another consumer was first
                Err(e) => return Err(e),
            }
        }
        self.reading_own_pending = true;
        Ok(created)
    }

    /// The id a group created now starts at on `stream`.
    fn start_for(&self, stream: &str) -> String {
        let chosen = &self.options.start_id;
        match (parse_id(chosen), self.acked_up_to.get(stream)) {
            (Some(start), Some(&acked)) if acked > start => format!("{}-{}", acked.0, acked.1),
            _ => chosen.clone(),
        }
    }

    /// One read: reclaimed, own pending or new entries (see [`Subscription::next_batch`]).
    async fn attempt(&mut self) -> Result<Vec<StreamEntry>> {
        if self.read_in_flight {
            self.reading_own_pending = true;
        }
        if Instant::now() >= self.next_claim {
            self.next_claim = Instant::now() + self.options.claim_interval;
            let claimed = self.claim().await?;
            if !claimed.is_empty() {
                return self.accept(claimed).await;
            }
        }
        loop {
            // Opened first: dropping a broken connection may call for own pending entries.
            let opened = self.ensure_connection().await;
            let own_pending = self.reading_own_pending;
            let read = match opened {
                Ok(()) => self.read_group(own_pending).await,
                Err(e) => Err(e),
            };
            let raws = match read {
                Ok(Read::Raw(raws)) => raws,
                Ok(Read::Fresh { entries, bad }) => {
                    self.stats.delivered += entries.len() as u64;
                    if bad.is_empty() {
                        return Ok(entries);
                    }
                    // Undecodable entries go to the dead-letter stream; the rest keep their order.
                    self.accept(bad.into_iter().map(|r| (r, 1)).collect()).await?;
                    return Ok(entries);
                }
                Err(e) => {
                    if self.conn.as_ref().is_none_or(ReadConnection::is_broken) {
                        // Whatever the lost reply held is pending now: re-read it first.
                        self.drop_connection();
                        self.reading_own_pending = true;
                    }
                    return Err(e);
                }
            };
            if own_pending && raws.is_empty() {
                self.reading_own_pending = false;
                continue;
            }
            let with_counts = if own_pending {
                self.with_deliveries(raws).await?
            } else {
                raws.into_iter().map(|r| (r, 1)).collect()
            };
            return self.accept(with_counts).await;
        }
    }

    /// XAUTOCLAIM idle entries from every stream (continuing each stream's scan cursor).
    async fn claim(&mut self) -> Result<Vec<(RawEntry, u64)>> {
        let mut claimed = Vec::new();
        for stream in self.streams.clone() {
            let cursor = self
                .claim_cursors
                .get(&stream)
                .cloned()
                .unwrap_or_else(|| "0-0".to_owned());
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(self.options.claim_min_idle.as_millis() as u64)
                .arg(cursor)
                .arg("COUNT")
                .arg(self.options.count);
            let reply: Value = self
                .events
                .pool()
                .execute(Operation::StreamClaim, Request::Cmd(&cmd))
                .await?;
            let reply = stream_reply::claim_reply(&stream, &reply)?;
            self.claim_cursors.insert(stream.clone(), reply.cursor);
            // Deleted while pending: nothing left to process, just clear it from the group.
            for id in reply.deleted {
                self.ack_later(&stream, &id);
            }
            claimed.extend(reply.entries);
            if claimed.len() >= self.options.count {
                break;
            }
        }
        self.with_deliveries(claimed).await
    }

    /// Look up how often each entry was delivered (one pipelined XPENDING per entry).
    async fn with_deliveries(&self, raws: Vec<RawEntry>) -> Result<Vec<(RawEntry, u64)>> {
        if raws.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for r in &raws {
            pipe.cmd("XPENDING")
                .arg(&r.stream)
                .arg(&self.group)
                .arg(&r.id)
                .arg(&r.id)
                .arg(1);
        }
        let replies: Vec<Value> = self
            .events
            .pool()
            .execute(Operation::StreamClaim, Request::Pipeline(&pipe))
            .await?;
        raws.into_iter()
            .zip(replies)
            .map(|(raw, reply)| {
                let counts = stream_reply::pending_deliveries(&reply)?;
                let n = counts.get(&raw.id).copied().unwrap_or(1);
                Ok((raw, n))
            })
            .collect()
    }

    /// Decode a batch; move undecodable and over-delivered entries to the dead-letter stream.
    async fn accept(&mut self, batch: Vec<(RawEntry, u64)>) -> Result<Vec<StreamEntry>> {
        let mut good = Vec::with_capacity(batch.len());
        let mut dead = redis::pipe();
        let mut dead_count = 0;
        for (raw, deliveries) in batch {
            let (entry, fields) = StreamEntry::decode_keeping_fields(raw, deliveries);
            let reason = match &entry.event {
                Err(why) => {
                    self.stats.bad_entries += 1;
                    Some(format!("undecodable: {why}"))
                }
                Ok(_) if deliveries > self.options.max_deliveries => Some(format!(
                    "delivered {deliveries} times, more than max_deliveries={}",
                    self.options.max_deliveries
                )),
                Ok(_) => None,
            };
            match reason {
                Some(reason) => {
                    log::warn!(
                        target: "solcache::stream",
                        "moving {} {} (group {}) to {DEAD_LETTER}: {reason}",
                        entry.stream,
                        entry.id,
                        self.group
                    );
                    self.add_dead_letter(&mut dead, &entry, &fields, &reason);
                    dead_count += 1;
                }
                None => {
                    self.stats.delivered += 1;
                    if deliveries > 1 {
                        self.stats.redelivered += 1;
                    }
                    good.push(entry);
                }
            }
        }
        if dead_count > 0 {
            // An XADD's id, then its XACK's count, per entry: every reply is read (a pipeline
            // split over cluster slots answers each command, `ignore` or not).
            let replies: Vec<Value> = self
                .events
                .pool()
                .execute(Operation::StreamDeadLetter, Request::Pipeline(&dead))
                .await?;
            self.stats.dead_lettered += dead_count;
            self.stats.acked += replies
                .iter()
                .skip(1)
                .step_by(2)
                .map(|reply| match reply {
                    Value::Int(n) => (*n).max(0) as u64,
                    _ => 0,
                })
                .sum::<u64>();
        }
        Ok(good)
    }

    fn add_dead_letter(
        &self,
        pipe: &mut redis::Pipeline,
        entry: &StreamEntry,
        fields: &[(Vec<u8>, Vec<u8>)],
        reason: &str,
    ) {
        let cmd = pipe
            .cmd("XADD")
            .arg(DEAD_LETTER)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.events.maxlen(DEAD_LETTER))
            .arg("*")
            .arg("source_stream")
            .arg(&entry.stream)
            .arg("source_id")
            .arg(&entry.id)
            .arg("group")
            .arg(&self.group)
            .arg("consumer")
            .arg(&self.consumer)
            .arg("reason")
            .arg(reason)
            .arg("deliveries")
            .arg(entry.deliveries);
        // The original fields travel along, so the entry can be inspected or replayed.
        for (k, v) in fields {
            if k.as_slice() == b"type" || k.as_slice() == b"data" {
                cmd.arg(k.as_slice()).arg(v.as_slice());
            }
        }
        pipe.cmd("XACK").arg(&entry.stream).arg(&self.group).arg(&entry.id);
    }
}
