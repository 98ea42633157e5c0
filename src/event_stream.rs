//! Publishing to and reading from Redis Streams.
//!
//! Every XADD carries `MAXLEN ~ N` (10 000 unless configured per stream), so a stream keeps at
//! least N entries and at most about one radix-tree node (100 entries) more. Entries have two
//! fields, `type` and `data` (see [`crate::events`]). Consumer groups live in
//! [`crate::subscription`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::error::{Error, Result};
use crate::events::TradingEvent;
use crate::metrics::Operation;
use crate::stream_publish::Publisher;
use crate::stream_reply::{self, RawEntry};
use crate::stream_wire;
use crate::transport::resp::Reply;
use crate::transport::{RedisPool, Request};

/// The entry id in an XADD's reply; an error reply is `Err` with its code.
pub fn publish_reply(reply: Reply) -> Result<String> {
    match reply {
        Reply::Bulk(id) => String::from_utf8(id).map_err(|_| Error::unexpected_reply("non-UTF-8 entry id")),
        Reply::Simple(id) => Ok(id),
        Reply::Error(message) => Err(Error::error_reply(message)),
        other => Err(Error::unexpected_reply(format!("XADD replied {other:?}"))),
    }
}

/// Default approximate length limit of every stream.
pub const DEFAULT_MAXLEN: usize = 10_000;
/// Longest accepted stream or group name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// One entry read from a stream: the event, or why it could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub stream: String,
    pub id: String,
    /// The decoded event, or what is wrong with the entry (unknown type, bad JSON, …).
    pub event: std::result::Result<TradingEvent, String>,
    /// Times the entry has been delivered to the group (1 for a first delivery and for XREAD).
    pub deliveries: u64,
}

impl StreamEntry {
    /// Decode the `type` and `data` fields of a raw entry.
    pub fn decode(raw: RawEntry, deliveries: u64) -> Self {
        Self::decode_keeping_fields(raw, deliveries).0
    }

    /// [`StreamEntry::decode`], handing back the raw fields too (moved, not copied), for a
    /// caller that may still need them, e.g. to copy an entry to the dead-letter stream.
    pub fn decode_keeping_fields(raw: RawEntry, deliveries: u64) -> (Self, stream_reply::Fields) {
        let event = Self::decode_event(&raw);
        let entry = StreamEntry {
            stream: raw.stream,
            id: raw.id,
            event,
            deliveries,
        };
        (entry, raw.fields)
    }

    fn decode_event(raw: &RawEntry) -> std::result::Result<TradingEvent, String> {
        Self::decode_fields(raw.field("type"), raw.field("data"))
    }

    /// The event of an entry whose `type` and `data` fields are these (None: missing), or what
    /// is wrong with it.
    pub fn decode_fields(kind: Option<&[u8]>, data: Option<&[u8]>) -> std::result::Result<TradingEvent, String> {
        match (kind, data) {
            (Some(t), Some(d)) => match std::str::from_utf8(t) {
                Ok(t) => TradingEvent::decode(t, d).map_err(|e| match e {
                    Error::InvalidInput(m) => m,
                    other => other.to_string(),
                }),
                Err(_) => Err("the type field is not UTF-8".to_owned()),
            },
            (None, _) => Err("the entry has no type field".to_owned()),
            (_, None) => Err("the entry has no data field".to_owned()),
        }
    }
}

/// A group's state, from XINFO GROUPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub consumers: u64,
    /// Entries delivered but not yet acknowledged.
    pub pending: u64,
    pub last_delivered_id: String,
    /// Entries not yet delivered to the group (Redis 7+; `None` when Redis cannot tell).
    pub lag: Option<u64>,
}

/// A stream's state, from XINFO STREAM and XINFO GROUPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream: String,
    pub length: u64,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub groups: Vec<GroupInfo>,
}

/// Events per pipeline in [`EventStream::publish_many`].
pub const PUBLISH_CHUNK: usize = 128;

/// Stream names: 1–128 bytes of `A–Z a–z 0–9 : . _ -` (no `{}` hash tags, spaces or globs).
pub fn validate_stream_name(name: &str) -> Result<()> {
    validate_name("stream", name)?;
    // A stream under a cache key would break that cache (WRONGTYPE) or be deleted by its SET.
    for prefix in [crate::keys::PRICE_PREFIX, crate::keys::POOL_PREFIX] {
        if name.starts_with(prefix) {
            return Err(Error::invalid(format!(
                "stream name {name:?} is in the {prefix}* key space of the caches"
            )));
        }
    }
    Ok(())
}

/// Group and consumer names follow the same rule as stream names.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} name {:?} must be 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 : . _ -",
            name.chars().take(MAX_NAME_LEN).collect::<String>()
        )))
    }
}

/// A stream id as XREAD / XGROUP take it: `ms-seq`, `ms`, `0`, or `$`.
pub fn validate_id(id: &str) -> Result<()> {
    let numeric = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = id == "$"
        || match id.split_once('-') {
            Some((ms, seq)) => numeric(ms) && numeric(seq),
            None => numeric(id),
        };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{id:?} is not a stream id (ms-seq, ms, 0 or $)"
        )))
    }
}

/// `XADD stream MAXLEN ~ maxlen * type <type> data <json>`, its argument list and bytes sized
/// up front (one allocation each instead of one per growth step).
fn xadd_with(stream: &str, maxlen: &str, event: &TradingEvent) -> redis::Cmd {
    let (type_name, data) = (event.type_name(), event.data_json());
    let bytes = "XADDMAXLEN~*typedata".len() + stream.len() + maxlen.len() + type_name.len() + data.len();
    let mut cmd = redis::Cmd::with_capacity(10, bytes);
    cmd.arg("XADD")
        .arg(stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(maxlen)
        .arg("*")
        .arg("type")
        .arg(type_name)
        .arg("data")
        .arg(data);
    cmd
}

/// [`xadd_with`] written as RESP2 straight into `out` (the same bytes).
fn push_xadd(out: &mut Vec<u8>, stream: &str, maxlen: &str, event: &TradingEvent) {
    let data = event.data_json();
    out.reserve(96 + stream.len() + data.len());
    stream_wire::push_command(out, 10);
    for arg in [
        "XADD",
        stream,
        "MAXLEN",
        "~",
        maxlen,
        "*",
        "type",
        event.type_name(),
        "data",
        &data,
    ] {
        stream_wire::push_arg(out, arg.as_bytes());
    }
}

/// Publishing, tailing and group administration over one [`RedisPool`].
#[derive(Clone)]
pub struct EventStream {
    pool: RedisPool,
    default_maxlen: usize,
    maxlen: HashMap<String, usize>,
    /// Connections of its own that XADDs are written on as RESP (single server, no TLS);
    /// None: XADDs go through the pool.
    publisher: Option<Arc<Publisher>>,
}

impl EventStream {
    /// Streams trimmed to about [`DEFAULT_MAXLEN`] entries.
    pub fn new(pool: RedisPool) -> Self {
        EventStream {
            publisher: Publisher::for_pool(&pool).map(Arc::new),
            pool,
            default_maxlen: DEFAULT_MAXLEN,
            maxlen: HashMap::new(),
        }
    }

    /// Streams trimmed to about `default_maxlen`, except those named in `per_stream`.
    pub fn with_maxlen(pool: RedisPool, default_maxlen: usize, per_stream: HashMap<String, usize>) -> Result<Self> {
        for name in per_stream.keys() {
            validate_stream_name(name)?;
        }
        if default_maxlen == 0 || per_stream.values().any(|&n| n == 0) {
            return Err(Error::invalid("maxlen must be at least 1"));
        }
        Ok(EventStream {
            publisher: Publisher::for_pool(&pool).map(Arc::new),
            pool,
            default_maxlen,
            maxlen: per_stream,
        })
    }

    /// This handle (and its clones) publishing through the pool's connections, as on TLS,
    /// Cluster and Sentinel, instead of connections of its own (`solcache-publish`), e.g.
    /// where the server's connection limit is tight.
    pub fn publishing_through_pool(mut self) -> Self {
        self.publisher = None;
        self
    }

    /// The pool this stream handle sends through.
    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    /// The approximate length limit of `stream`.
    pub fn maxlen(&self, stream: &str) -> usize {
        self.maxlen.get(stream).copied().unwrap_or(self.default_maxlen)
    }

    /// `XADD stream MAXLEN ~ N * type <type> data <json>`.
    pub fn xadd(&self, stream: &str, event: &TradingEvent) -> redis::Cmd {
        xadd_with(stream, &self.maxlen(stream).to_string(), event)
    }

    fn target<'a>(event: &'a TradingEvent, stream: Option<&'a str>) -> Result<&'a str> {
        event.validate()?;
        match stream {
            Some(s) => validate_stream_name(s).map(|_| s),
            None => Ok(event.default_stream()),
        }
    }

    /// Append one event to `stream` (its default stream when `None`); returns the entry id.
    /// Written on a publish connection ([`crate::stream_publish`]) where the topology has
    /// them, through the pool otherwise; both resend under the same retry policy.
    pub async fn publish(&self, event: &TradingEvent, stream: Option<&str>) -> Result<String> {
        let target = Self::target(event, stream)?;
        if let Some(publisher) = &self.publisher {
            let maxlen = self.maxlen(target).to_string();
            let ids = publisher
                .publish(Operation::StreamPublish, 1, |out| {
                    push_xadd(out, target, &maxlen, event);
                    false
                })
                .await?;
            return ids
                .into_iter()
                .next()
                .ok_or_else(|| Error::unexpected_reply("no XADD reply"));
        }
        let cmd = self.xadd(target, event);
        self.pool.execute(Operation::StreamPublish, Request::Cmd(&cmd)).await
    }

    /// The XADD that [`EventStream::publish`] sends for `event` (validated first), for a
    /// driver that writes it on a connection of its own (an event loop's direct connection,
    /// `src/python/direct.rs`); its reply is read with [`publish_reply`], and a publish lost
    /// with that connection follows [`crate::stream_publish::resend_lost`].
    pub fn publish_command(&self, event: &TradingEvent, stream: Option<&str>) -> Result<redis::Cmd> {
        Ok(self.xadd(Self::target(event, stream)?, event))
    }

    /// [`EventStream::publish`] for an XADD already sent once and lost (the one resend the
    /// retry policy allows): written on a new publish connection and never resent.
    pub async fn publish_resend(&self, event: &TradingEvent, stream: Option<&str>) -> Result<String> {
        let target = Self::target(event, stream)?;
        let Some(publisher) = &self.publisher else {
            let cmd = self.xadd(target, event);
            return self.pool.execute(Operation::StreamPublish, Request::Cmd(&cmd)).await;
        };
        let maxlen = self.maxlen(target).to_string();
        let ids = publisher
            .publish_resend(Operation::StreamPublish, 1, |out| {
                push_xadd(out, target, &maxlen, event);
                false
            })
            .await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::unexpected_reply("no XADD reply"))
    }

    /// Append many events in pipelines of [`PUBLISH_CHUNK`] sent back to back on one
    /// connection (about one round trip); ids in the order of `events`. Every event is
    /// validated before anything is sent. On a single server over plain TCP or a unix socket
    /// the XADDs are written as RESP on a publish connection ([`crate::stream_publish`]),
    /// through the pool otherwise; both resend under the same retry policy.
    pub async fn publish_many(&self, events: &[TradingEvent], stream: Option<&str>) -> Result<Vec<String>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(publisher) = &self.publisher {
            // Every event validated first; then each chunk is written while the next is encoded.
            let targets = events
                .iter()
                .map(|event| Self::target(event, stream))
                .collect::<Result<Vec<_>>>()?;
            let mut limits: Vec<(&str, String)> = Vec::new();
            let mut next = 0;
            return publisher
                .publish(Operation::StreamPublishMany, events.len(), |out| {
                    let end = (next + PUBLISH_CHUNK).min(events.len());
                    for (event, target) in events[next..end].iter().zip(&targets[next..end]) {
                        let maxlen = Self::limit(&mut limits, target, |t| self.maxlen(t));
                        push_xadd(out, target, maxlen, event);
                    }
                    next = end;
                    next < events.len()
                })
                .await;
        }
        // Chunks in flight together on one connection (in order): the server appends one
        // while the next is encoded, instead of waiting for the whole batch.
        let mut pipes = Vec::with_capacity(events.len().div_ceil(PUBLISH_CHUNK));
        // Each target stream's length limit, formatted once per call, not once per event.
        let mut limits: Vec<(&str, String)> = Vec::new();
        for chunk in events.chunks(PUBLISH_CHUNK) {
            let mut pipe = redis::Pipeline::with_capacity(chunk.len());
            for event in chunk {
                let target = Self::target(event, stream)?;
                let maxlen = Self::limit(&mut limits, target, |t| self.maxlen(t));
                pipe.add_command(xadd_with(target, maxlen, event));
            }
            pipes.push(pipe);
        }
        let request = match pipes.as_slice() {
            [one] => Request::Pipeline(one),
            many => Request::Pipelines(many),
        };
        self.pool.execute(Operation::StreamPublishMany, request).await
    }

    /// `target`'s length limit as text, formatted once per call (kept in `limits`).
    fn limit<'a, 'b>(
        limits: &'b mut Vec<(&'a str, String)>,
        target: &'a str,
        maxlen: impl Fn(&str) -> usize,
    ) -> &'b str {
        match limits.iter().position(|(s, _)| *s == target) {
            Some(i) => &limits[i].1,
            None => {
                limits.push((target, maxlen(target).to_string()));
                &limits[limits.len() - 1].1
            }
        }
    }

    /// Read up to `count` entries after `last_id` (`$` for only new ones), waiting up to
    /// `block` for the first (zero: do not wait). Runs on a connection of its own.
    pub async fn read(&self, stream: &str, last_id: &str, count: usize, block: Duration) -> Result<Vec<StreamEntry>> {
        validate_stream_name(stream)?;
        validate_id(last_id)?;
        if count == 0 {
            return Err(Error::invalid("count must be at least 1"));
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(stream).arg(last_id);
        let reply: Value = if block.is_zero() {
            self.pool.execute(Operation::StreamRead, Request::Cmd(&cmd)).await?
        } else {
            let mut conn = self.pool.blocking_connection(block).await?;
            conn.execute(Operation::StreamRead, Request::Cmd(&cmd)).await?
        };
        Ok(stream_reply::read_reply_owned(reply)?
            .into_iter()
            .map(|raw| StreamEntry::decode(raw, 1))
            .collect())
    }

    /// Create `group` on `stream` at `start_id` (`$`: only new entries, `0`: everything),
    /// creating the stream if needed. Idempotent: returns false if the group existed.
    pub async fn ensure_group(&self, stream: &str, group: &str, start_id: &str) -> Result<bool> {
        validate_stream_name(stream)?;
        validate_name("group", group)?;
        validate_id(start_id)?;
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE").arg(stream).arg(group).arg(start_id).arg("MKSTREAM");
        match self
            .pool
            .execute::<()>(Operation::StreamAdmin, Request::Cmd(&cmd))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.response_code() == Some("BUSYGROUP") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove `group` from `stream` with its consumers and pending entries (`XGROUP DESTROY`),
    /// e.g. when the worker that used it is retired; returns false if there was no such group.
    /// A stream that does not exist has no group.
    pub async fn delete_group(&self, stream: &str, group: &str) -> Result<bool> {
        validate_stream_name(stream)?;
        validate_name("group", group)?;
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("DESTROY").arg(stream).arg(group);
        match self
            .pool
            .execute::<i64>(Operation::StreamAdmin, Request::Cmd(&cmd))
            .await
        {
            Ok(n) => Ok(n > 0),
            // Redis answers a plain ERR, not 0, when the stream itself is missing.
            Err(e) if e.response_code() == Some("ERR") && !self.stream_exists(stream).await? => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn stream_exists(&self, stream: &str) -> Result<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(stream);
        let n: i64 = self.pool.execute(Operation::StreamAdmin, Request::Cmd(&cmd)).await?;
        Ok(n > 0)
    }

    /// Remove `consumer` from `group` (`XGROUP DELCONSUMER`) if it holds no pending entries;
    /// returns true if it was removed. A consumer that still holds entries is kept: deleting it
    /// would drop them from the group's pending list, and nobody could claim them any more.
    /// A missing stream, group or consumer counts as removed (there is nothing left behind).
    pub async fn delete_consumer(&self, stream: &str, group: &str, consumer: &str) -> Result<bool> {
        validate_stream_name(stream)?;
        validate_name("group", group)?;
        validate_name("consumer", consumer)?;
        let mut pending = redis::cmd("XPENDING");
        pending.arg(stream).arg(group).arg("-").arg("+").arg(1).arg(consumer);
        let held: Vec<Value> = match self.pool.execute(Operation::StreamAdmin, Request::Cmd(&pending)).await {
            Ok(v) => v,
            Err(e) if e.response_code() == Some("NOGROUP") => return Ok(true),
            Err(e) => return Err(e),
        };
        if !held.is_empty() {
            return Ok(false);
        }
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("DELCONSUMER").arg(stream).arg(group).arg(consumer);
        match self
            .pool
            .execute::<i64>(Operation::StreamAdmin, Request::Cmd(&cmd))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.response_code() == Some("NOGROUP") => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Let `stream` expire `ttl` from now (`PEXPIRE`), for throw-away streams such as a
    /// benchmark's; returns false if the stream does not exist. Publishing keeps the TTL.
    pub async fn expire(&self, stream: &str, ttl: Duration) -> Result<bool> {
        validate_stream_name(stream)?;
        if ttl.is_zero() {
            return Err(Error::invalid("ttl must be at least 1 ms"));
        }
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(stream).arg(ttl.as_millis() as u64);
        let set: i64 = self.pool.execute(Operation::StreamAdmin, Request::Cmd(&cmd)).await?;
        Ok(set == 1)
    }

    /// Length, first and last id, and every group's consumers, pending and lag (a stream that
    /// does not exist yet is reported empty).
    pub async fn info(&self, stream: &str) -> Result<StreamInfo> {
        validate_stream_name(stream)?;
        // XINFO fails on a missing key; a stream nobody wrote to yet is just empty.
        let mut exists = redis::cmd("EXISTS");
        exists.arg(stream);
        if self
            .pool
            .execute::<i64>(Operation::StreamAdmin, Request::Cmd(&exists))
            .await?
            == 0
        {
            return Ok(StreamInfo {
                stream: stream.to_owned(),
                length: 0,
                first_id: None,
                last_id: None,
                groups: vec![],
            });
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(stream);
        let (s, g): (Value, Value) = self
            .pool
            .execute(Operation::StreamAdmin, Request::Pipeline(&pipe))
            .await?;
        let s = stream_reply::map(&s)?;
        let get = |m: &HashMap<String, &Value>, k: &str| m.get(k).copied().cloned().unwrap_or(Value::Nil);
        let groups = match &g {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let m = stream_reply::map(item)?;
                    Ok(GroupInfo {
                        name: stream_reply::text(&get(&m, "name"))?,
                        consumers: stream_reply::int(&get(&m, "consumers"))?.max(0) as u64,
                        pending: stream_reply::int(&get(&m, "pending"))?.max(0) as u64,
                        last_delivered_id: stream_reply::text(&get(&m, "last-delivered-id"))?,
                        lag: stream_reply::int(&get(&m, "lag")).ok().map(|n| n.max(0) as u64),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        Ok(StreamInfo {
            stream: stream.to_owned(),
            length: stream_reply::int(&get(&s, "length"))?.max(0) as u64,
            first_id: stream_reply::entry_id(&get(&s, "first-entry"))?,
            last_id: stream_reply::entry_id(&get(&s, "last-entry"))?,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xadd_reply_is_its_entry_id_or_the_error_with_its_code() {
        assert_eq!(publish_reply(Reply::Bulk(b"1-0".to_vec())).unwrap(), "1-0");
        let refused = publish_reply(Reply::Error("WRONGTYPE Operation against a key".into())).unwrap_err();
        assert_eq!(refused.response_code(), Some("WRONGTYPE"));
        assert!(publish_reply(Reply::Nil).is_err());
    }

    #[test]
    fn xadd_sends_the_stream_limit_type_and_data() {
        let event = TradingEvent::decode(
            "price_update",
            br#"{"token":"SOL","price":"187.25","timestamp":"2026-11-26T15:00:00.123000Z"}"#,
        )
        .unwrap();
        let mut expected = redis::cmd("XADD");
        expected
            .arg("stream:x")
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000usize)
            .arg("*")
            .arg("type")
            .arg("price_update")
            .arg("data")
            .arg(event.data_json());
        let cmd = xadd_with("stream:x", "10000", &event);
        assert_eq!(cmd.get_packed_command(), expected.get_packed_command());
        let mut wire = b"leading".to_vec();
        push_xadd(&mut wire, "stream:x", "10000", &event);
        assert_eq!(&wire[7..], expected.get_packed_command());
    }

    #[test]
    fn names_and_ids_are_validated() {
        for ok in ["stream:price-updates", "a", "x.y_z-1:2"] {
            assert!(validate_stream_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "stream {x}", "s*", "with space", "a\nb", &"s".repeat(129)] {
            assert!(validate_stream_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["$", "0", "0-0", "1735689600000-3"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ">", "-", "1-", "a-1", "1-2-3", "+"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_entries_decode_to_reasons() {
        let raw = |fields: Vec<(&str, &str)>| RawEntry {
            stream: "s".into(),
            id: "1-0".into(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        };
        let missing = StreamEntry::decode(raw(vec![("data", "{}")]), 1);
        assert_eq!(missing.event, Err("the entry has no type field".to_owned()));
        let unknown = StreamEntry::decode(raw(vec![("type", "liquidation"), ("data", "{}")]), 1);
        assert!(unknown.event.unwrap_err().contains("unknown event type"));
        let bad_json = StreamEntry::decode(raw(vec![("type", "price_update"), ("data", "{")]), 1);
        assert!(bad_json.event.is_err());
    }
}
