//! Tailing several streams at once: one `XREAD BLOCK` over all of them on one kept connection.
//!
//! A [`Tail`] owns a connection of its own (named `solcache-tail` in `CLIENT LIST`), opened on
//! first use and kept for every read; its response timeout is `block + response_timeout`, so a
//! full block is never mistaken for a dead server. A connection that breaks is dropped and a
//! new one opened under the [retry policy](crate::transport::retry): a read whose kept
//! connection was dropped (a server restart) is sent once more at once; any other failure is
//! returned, and the next call opens a fresh connection. The tail remembers the last id it
//! handed out per stream and always reads after it, so a reconnect leaves no gap and repeats
//! nothing. `$` is pinned to the stream's last id when the connection first opens, so entries
//! added during an outage are read too.
//!
//! **Outages.** [`Tail::next_batch`] returns every failure; [`Tail::next_batch_riding`]
//! rides through the retryable ones (connection lost, timeout): it waits one step of the
//! shared [`Backoff`] and returns an empty batch, counted in [`TailStats`], until Redis is
//! back, or until the outage has lasted [`TailRetry::give_up_after`], when it returns the
//! error.
//!
//! **Order.** XREAD answers stream by stream; a batch is put in arrival order by entry id (the
//! server's millisecond clock at XADD, then the sequence number; equal ids by the order the
//! streams were given). Ids are exact within a stream and to the millisecond across streams.
//! `COUNT` applies per stream, so when a stream returns a full `count` its later entries may
//! still be waiting: entries of the other streams newer than the last one it returned are held
//! back (read again next time, never skipped), so a batch never jumps ahead of an entry that
//! has not been read yet.

use std::time::{Duration, Instant};

use redis::Value;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::event_stream::{validate_id, validate_stream_name, EventStream, StreamEntry};
use crate::metrics::Operation;
use crate::stream_reply::{self, RawEntry};
use crate::transport::handshake::TAIL_CLIENT_NAME;
use crate::transport::retry::Attempts;
use crate::transport::{BlockingConnection, RedisPool, Request};

/// How [`Tail::next_batch_riding`] waits through an outage.
#[derive(Debug, Clone)]
pub struct TailRetry {
    /// First wait after a failure (default 100 ms), doubling per failure…
    pub initial: Duration,
    /// …up to this (default 2 s).
    pub max: Duration,
    /// Return the error once failures have lasted this long (default: never give up).
    pub give_up_after: Option<Duration>,
}

impl Default for TailRetry {
    fn default() -> Self {
        TailRetry {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            give_up_after: None,
        }
    }
}

/// What a tail went through since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Entries returned.
    pub entries: u64,
    /// Times reading started failing (a run of failures counts once).
    pub outages: u64,
    /// Failed reads that were tried again.
    pub retries: u64,
    /// True while the latest read failed.
    pub retrying: bool,
    /// Connections opened (1 + the reconnects).
    pub connections_opened: u64,
    /// The latest failure, until a read succeeds.
    pub last_error: Option<String>,
}

/// Reads new entries of several streams, in arrival order, on one kept connection; see the
/// module docs. Dropping it (or [`Tail::close`]) closes its connection.
pub struct Tail {
    pool: RedisPool,
    streams: Vec<String>,
    /// The last id handed out per stream (`$` until the first connection pins it).
    ids: Vec<String>,
    count: usize,
    block: Duration,
    conn: Option<BlockingConnection>,
    /// Set while an XREAD is on the wire: if the future is dropped (a cancelled task), the
    /// server may still be blocked on it, so the connection is replaced.
    read_in_flight: bool,
    backoff: Backoff,
    give_up_after: Option<Duration>,
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    stats: TailStats,
}

impl EventStream {
    /// Tail `streams` after `from_ids` (one per stream: an entry id, `0` for everything the
    /// stream holds, `$` for entries after its last one), up to `count` entries per stream per
    /// batch, each read waiting up to `block` (at least 1 ms) for the first new entry. Nothing
    /// is sent until the first [`Tail::next_batch`] (or [`Tail::open`]).
    pub fn tail(&self, streams: &[String], from_ids: &[String], count: usize, block: Duration) -> Result<Tail> {
        Tail::new(
            self.pool().clone(),
            streams,
            from_ids,
            count,
            block,
            TailRetry::default(),
        )
    }

    /// Like [`EventStream::tail`], riding through outages as `retry` says (see
    /// [`Tail::next_batch_riding`]).
    pub fn tail_with_retry(
        &self,
        streams: &[String],
        from_ids: &[String],
        count: usize,
        block: Duration,
        retry: TailRetry,
    ) -> Result<Tail> {
        Tail::new(self.pool().clone(), streams, from_ids, count, block, retry)
    }
}

impl Tail {
    fn new(
        pool: RedisPool,
        streams: &[String],
        from_ids: &[String],
        count: usize,
        block: Duration,
        retry: TailRetry,
    ) -> Result<Tail> {
        if streams.is_empty() {
            return Err(Error::invalid("tail at least one stream"));
        }
        if from_ids.len() != streams.len() {
            return Err(Error::invalid(format!(
                "{} from_ids for {} streams: give one id per stream",
                from_ids.len(),
                streams.len()
            )));
        }
        for (i, stream) in streams.iter().enumerate() {
            validate_stream_name(stream)?;
            if streams[..i].contains(stream) {
                return Err(Error::invalid(format!("stream {stream:?} is named twice")));
            }
        }
        for id in from_ids {
            validate_id(id)?;
        }
        if count == 0 {
            return Err(Error::invalid("count must be at least 1"));
        }
        if block.is_zero() {
            return Err(Error::invalid("block must be at least 1 ms"));
        }
        if retry.give_up_after.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid("give_up_after must be at least 1 ms"));
        }
        let backoff = Backoff::new(retry.initial, retry.max)?;
        Ok(Tail {
            pool,
            streams: streams.to_vec(),
            ids: from_ids.to_vec(),
            count,
            block,
            conn: None,
            read_in_flight: false,
            backoff,
            give_up_after: retry.give_up_after,
            failing_since: None,
            stats: TailStats::default(),
        })
    }

    /// The streams tailed, in the order given.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The last id handed out per stream (in [`Tail::streams`] order): where the next read,
    /// and a reconnect, resume. `$` until the first connection pinned it.
    pub fn positions(&self) -> &[String] {
        &self.ids
    }

    /// The server URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        self.pool.redacted_url()
    }

    /// True while the tail holds an open connection.
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_broken())
    }

    /// Connections opened so far (1 + the reconnects).
    pub fn connections_opened(&self) -> u64 {
        self.stats.connections_opened
    }

    /// Counters and the latest failure since the tail was made.
    pub fn stats(&self) -> &TailStats {
        &self.stats
    }

    /// Open the connection now (if not open) and pin every `$` to its stream's last id.
    pub async fn open(&mut self) -> Result<()> {
        if self.read_in_flight {
            self.conn = None;
            self.read_in_flight = false;
        }
        if self.conn.as_ref().is_some_and(|c| c.is_broken()) {
            self.conn = None;
        }
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = self
            .pool
            .named_blocking_connection(self.block, TAIL_CLIENT_NAME)
            .await?;
        self.stats.connections_opened += 1;
        let unpinned: Vec<usize> = (0..self.ids.len()).filter(|&i| self.ids[i] == "$").collect();
        if !unpinned.is_empty() {
            let mut pipe = redis::pipe();
            for &i in &unpinned {
                pipe.cmd("XREVRANGE")
                    .arg(&self.streams[i])
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1);
            }
            let lasts: Vec<Value> = conn.execute(Operation::StreamRead, Request::Pipeline(&pipe)).await?;
            for (&i, last) in unpinned.iter().zip(&lasts) {
                let newest = match last {
                    Value::Array(entries) => entries.first().map(stream_reply::entry_id).transpose()?.flatten(),
                    _ => None,
                };
                self.ids[i] = newest.unwrap_or_else(|| "0-0".to_owned());
            }
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// The next entries in arrival order, waiting up to `block` for the first; empty when none
    /// arrived in time. On an error the tail stays usable: the next call reconnects and resumes
    /// after the last entry returned.
    pub async fn next_batch(&mut self) -> Result<Vec<StreamEntry>> {
        let result = self.read().await;
        match &result {
            Ok(batch) => {
                self.stats.entries += batch.len() as u64;
                if self.stats.retrying {
                    log::info!(target: "solcache::stream", "tail of {:?} reading again", self.streams);
                }
                self.stats.retrying = false;
                self.stats.last_error = None;
                self.failing_since = None;
                self.backoff.reset();
            }
            Err(err) => {
                if !self.stats.retrying {
                    self.stats.outages += 1;
                    log::warn!(target: "solcache::stream", "tail of {:?} failing: {err}", self.streams);
                }
                self.stats.retrying = true;
                self.stats.last_error = Some(err.to_string());
            }
        }
        result
    }

    async fn read(&mut self) -> Result<Vec<StreamEntry>> {
        let mut attempts = Attempts::default();
        loop {
            // A connection that served a read before may have died with a server restart.
            let reused = self.conn.is_some() && !self.read_in_flight;
            self.open().await?;
            let conn = self.conn.as_mut().expect("opened above");
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(self.count)
                .arg("BLOCK")
                .arg(self.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.streams)
                .arg(&self.ids);
            self.read_in_flight = true;
            let reply = conn.execute::<Value>(Operation::StreamRead, Request::Cmd(&cmd)).await;
            self.read_in_flight = false;
            match reply {
                Ok(reply) => return self.accept(stream_reply::read_reply(&reply)?),
                Err(err) => {
                    let failure = conn.last_failure();
                    if conn.is_broken() {
                        self.conn = None;
                    }
                    match failure {
                        Some(failure) if attempts.again(failure, reused) => continue,
                        _ => return Err(err),
                    }
                }
            }
        }
    }

    /// Like [`Tail::next_batch`], riding through retryable failures (connection lost,
    /// timeout): such a failure is counted, waited out for one step of the backoff, and
    /// answered with an empty batch; the next call reconnects and resumes. Once failures have
    /// lasted `give_up_after` (if set), or on any other error, the error is returned.
    pub async fn next_batch_riding(&mut self) -> Result<Vec<StreamEntry>> {
        match self.next_batch().await {
            Ok(batch) => Ok(batch),
            // LOADING: a restarted server still reading its AOF answers this for a while.
            Err(err) if err.is_retryable() || err.response_code() == Some("LOADING") => {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if self.give_up_after.is_some_and(|limit| since.elapsed() >= limit) {
                    return Err(err);
                }
                self.stats.retries += 1;
                tokio::time::sleep(self.backoff.next_delay()).await;
                Ok(Vec::new())
            }
            Err(err) => Err(err),
        }
    }

    /// Close the connection (also done on drop).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// Order one XREAD reply, hold back what could jump ahead, and move the positions.
    fn accept(&mut self, raw: Vec<RawEntry>) -> Result<Vec<StreamEntry>> {
        let mut keyed = Vec::with_capacity(raw.len());
        let mut returned = vec![0usize; self.streams.len()];
        let mut newest = vec![(0u64, 0u64); self.streams.len()];
        for entry in raw {
            let Some(index) = self.streams.iter().position(|s| *s == entry.stream) else {
                return Err(Error::unexpected_reply(format!(
                    "XREAD answered for stream {:?}",
                    entry.stream
                )));
            };
            let key = id_key(&entry.id)?;
            returned[index] += 1;
            newest[index] = newest[index].max(key);
            keyed.push((key, index, entry));
        }
        // A stream that filled its COUNT may hold more: nothing newer than its last is safe yet.
        let cutoff = (0..self.streams.len())
            .filter(|&i| returned[i] >= self.count)
            .map(|i| newest[i])
            .min();
        if let Some(cutoff) = cutoff {
            keyed.retain(|(key, _, _)| *key <= cutoff);
        }
        keyed.sort_by_key(|(key, index, _)| (*key, *index));
        Ok(keyed
            .into_iter()
            .map(|(_, index, entry)| {
                self.ids[index].clone_from(&entry.id);
                StreamEntry::decode(entry, 1)
            })
            .collect())
    }
}

/// `ms-seq` as a pair of numbers, for ordering.
fn id_key(id: &str) -> Result<(u64, u64)> {
    let parse = |s: &str| s.parse::<u64>().ok();
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    match (parse(ms), parse(seq)) {
        (Some(ms), Some(seq)) => Ok((ms, seq)),
        _ => Err(Error::unexpected_reply(format!("XREAD answered an entry id {id:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_numerically() {
        assert!(id_key("9-0").unwrap() < id_key("10-0").unwrap());
        assert!(id_key("5-2").unwrap() < id_key("5-10").unwrap());
        assert_eq!(id_key("7").unwrap(), (7, 0));
        assert!(id_key("x-1").is_err());
    }
}
