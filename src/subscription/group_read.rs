//! A subscription's group reads on its own connection: XREADGROUP with the queued XACKs
//! pipelined in front, its replies read straight from their bytes on a [`WireConnection`] (or
//! through redis-rs over TLS), and the read written ahead after a full batch.

use redis::Value;

use super::ack_queue::note_acked;
use super::Subscription;
use crate::error::Result;
use crate::event_stream::StreamEntry;
use crate::metrics::Operation;
use crate::stream_reply::{self, RawEntry};
use crate::stream_wire::{self, EntryView};
use crate::transport::handshake::GROUP_CLIENT_NAME;
use crate::transport::{BlockingConnection, Request, WireConnection};

impl Subscription {
    /// One XACK per stream; returns how many commands were added. Their replies count the
    /// entries Redis actually acknowledged, so an XACK sent twice (after a failed read) is
    /// counted once.
    pub(super) fn push_acks(&self, pipe: &mut redis::Pipeline) -> usize {
        let mut commands = 0;
        for queue in self.to_ack.iter().filter(|q| q.len() > 0) {
            let cmd = pipe.cmd("XACK").arg(&queue.stream).arg(&self.group);
            for id in queue.ids() {
                cmd.arg(id);
            }
            commands += 1;
        }
        commands
    }

    /// [`Subscription::push_acks`] written as RESP into `out`.
    fn pack_acks(&self, out: &mut Vec<u8>) -> usize {
        let mut commands = 0;
        for queue in self.to_ack.iter().filter(|q| q.len() > 0) {
            out.reserve(queue.text_len() + queue.len() * 8 + 64);
            stream_wire::push_command(out, 3 + queue.len());
            stream_wire::push_arg(out, b"XACK");
            stream_wire::push_arg(out, queue.stream.as_bytes());
            stream_wire::push_arg(out, self.group.as_bytes());
            for id in queue.ids() {
                stream_wire::push_arg(out, id.as_bytes());
            }
            commands += 1;
        }
        commands
    }

    /// Open the read connection unless one is there and sound (a broken one is dropped first).
    pub(super) async fn ensure_connection(&mut self) -> Result<()> {
        if self.conn.as_ref().is_some_and(|c| !c.is_broken()) {
            return Ok(());
        }
        self.drop_connection();
        let pool = self.events.pool();
        let conn = match WireConnection::open(pool, self.options.block, GROUP_CLIENT_NAME).await? {
            Some(wire) => ReadConnection::Wire(wire),
            // Named too (Sentinel, TLS): `CLIENT LIST` shows it as the group reader.
            None => ReadConnection::Pool(
                pool.named_blocking_connection(self.options.block, GROUP_CLIENT_NAME)
                    .await?,
            ),
        };
        self.conn = Some(conn);
        Ok(())
    }

    /// Let the read connection go. A read written ahead on it may have been delivered: this
    /// consumer's pending entries are read first on the next one, and the acknowledgements sent
    /// with it are queued again (an XACK sent twice is counted once).
    pub(super) fn drop_connection(&mut self) {
        if self.written_ahead.take().is_some() {
            self.reading_own_pending = true;
        }
        self.requeue_acks_ahead();
        self.conn = None;
    }

    /// The acknowledgements sent with a read written ahead, whose replies never came, queued
    /// again.
    fn requeue_acks_ahead(&mut self) {
        let mut ahead = std::mem::take(&mut self.acks_ahead);
        for queue in &mut ahead {
            for id in queue.ids() {
                self.ack_later(&queue.stream, id);
            }
            queue.clear();
        }
        self.acks_ahead = ahead;
    }

    /// The XREADGROUP command: own pending entries from `0`, or new ones (`>`, with `BLOCK`
    /// when `block`).
    fn read_args(&self, own_pending: bool, block: bool) -> Vec<String> {
        let mut args: Vec<String> = ["XREADGROUP", "GROUP", &self.group, &self.consumer, "COUNT"]
            .map(str::to_owned)
            .into();
        args.push(self.options.count.to_string());
        if block && !own_pending {
            args.push("BLOCK".to_owned());
            args.push(self.options.block.as_millis().to_string());
        }
        args.push("STREAMS".to_owned());
        args.extend(self.streams.iter().cloned());
        args.extend(
            self.streams
                .iter()
                .map(|_| (if own_pending { "0" } else { ">" }).to_owned()),
        );
        args
    }

    /// The queued XACKs and an XREADGROUP, written as RESP into `out`; returns how many XACKs.
    fn pack_read(&self, out: &mut Vec<u8>, own_pending: bool, block: bool) -> usize {
        let acks = self.pack_acks(out);
        let args = self.read_args(own_pending, block);
        stream_wire::push_command(out, args.len());
        for arg in &args {
            stream_wire::push_arg(out, arg.as_bytes());
        }
        acks
    }

    fn wire(&mut self) -> &mut WireConnection {
        match self.conn.as_mut() {
            Some(ReadConnection::Wire(conn)) => conn,
            _ => unreachable!("a wire read without a wire connection"),
        }
    }

    /// One XREADGROUP (own pending entries from `0`, or new ones with `BLOCK`), with the queued
    /// XACKs pipelined in front. New entries read on a [`WireConnection`] are decoded straight
    /// from the reply's bytes ([`Read::Fresh`]); everything else comes back raw.
    ///
    /// Reading ahead ([`Subscription::set_read_ahead`]), after a full batch of new entries on a
    /// [`WireConnection`] the next read (no `BLOCK`, with the XACKs queued by then) is written
    /// before the batch is decoded, and the next call reads its reply.
    ///
    /// The connection is open ([`Subscription::ensure_connection`] ran first).
    pub(super) async fn read_group(&mut self, own_pending: bool) -> Result<Read> {
        if !matches!(self.conn, Some(ReadConnection::Wire(_))) {
            return self.read_group_pooled(own_pending).await;
        }
        let read_at = loop {
            let from_ahead = self.written_ahead.is_some();
            let acks_in_front = match self.written_ahead.take() {
                Some(acks) => {
                    self.read_in_flight = true;
                    let read = self.wire().read_written(Operation::StreamReadGroup).await;
                    self.read_in_flight = false;
                    if let Err(e) = read {
                        self.requeue_acks_ahead();
                        return Err(e);
                    }
                    acks
                }
                None => {
                    let mut packed = Vec::new();
                    let acks = self.pack_read(&mut packed, own_pending, true);
                    self.read_in_flight = true;
                    let sent = self
                        .wire()
                        .round_trip(Operation::StreamReadGroup, &packed, acks + 1)
                        .await;
                    self.read_in_flight = false;
                    sent?;
                    acks
                }
            };
            self.apply_ack_replies(acks_in_front, from_ahead)?;
            // A read written ahead that found nothing new (or a switch to own pending entries,
            // which then include what it fetched): read again, now as asked.
            if from_ahead && (own_pending || stream_wire::is_empty_read(self.wire().reply(acks_in_front))) {
                continue;
            }
            break acks_in_front;
        };
        let count = self.options.count;
        if self.options.read_ahead && !own_pending && stream_wire::fills_batch(self.wire().reply(read_at), count) {
            self.write_ahead().await;
        }
        let reply = self.wire().reply(read_at);
        if own_pending {
            let mut raws = Vec::new();
            stream_wire::read_entries(reply, |e| raws.push(owned(e)))?;
            return Ok(Read::Raw(raws));
        }
        let (mut entries, mut bad) = (Vec::with_capacity(count), Vec::new());
        stream_wire::read_entries(reply, |e| {
            match StreamEntry::decode_fields(e.field("type"), e.field("data")) {
                Ok(event) => entries.push(StreamEntry {
                    stream: e.stream.to_owned(),
                    id: e.id.to_owned(),
                    event: Ok(event),
                    deliveries: 1,
                }),
                Err(_) => bad.push(owned(e)),
            }
        })?;
        Ok(Read::Fresh { entries, bad })
    }

    /// Count the replies of the `acks` XACKs in front of the last read and forget those
    /// acknowledgements (`from_ahead`: the ones sent with a read written ahead, queued again
    /// if a reply is an error).
    fn apply_ack_replies(&mut self, acks: usize, from_ahead: bool) -> Result<()> {
        let mut acked = 0;
        for i in 0..acks {
            match stream_wire::integer_reply(self.wire().reply(i)) {
                Ok(n) => acked += n.max(0) as u64,
                Err(e) => {
                    if from_ahead {
                        self.requeue_acks_ahead();
                    }
                    return Err(e);
                }
            }
        }
        let queues = if from_ahead {
            &mut self.acks_ahead
        } else {
            &mut self.to_ack
        };
        note_acked(&mut self.acked_up_to, queues);
        self.stats.acked += acked;
        Ok(())
    }

    /// Before a flush or close: read the replies of a read written ahead. Its XACKs are
    /// counted; the entries it fetched stay pending for this consumer (read first by its next
    /// read or when it comes back, or reclaimed by another after `claim_min_idle`). A failure
    /// queues the XACKs again.
    pub(super) async fn finish_written_ahead(&mut self) {
        let Some(acks) = self.written_ahead.take() else {
            return;
        };
        self.read_in_flight = true; // a flush or close cancelled here leaves them unread
        let read = self.wire().read_written(Operation::StreamReadGroup).await;
        self.read_in_flight = false;
        if read.is_err() {
            self.requeue_acks_ahead();
            self.reading_own_pending = true;
            return;
        }
        let _ = self.apply_ack_replies(acks, true); // an error reply: queued again
        if !stream_wire::is_empty_read(self.wire().reply(acks)) {
            self.reading_own_pending = true;
        }
    }

    /// Write the next read of new entries (no `BLOCK`) and the queued XACKs, not waiting for
    /// the replies (see [`Subscription::read_group`]). A failed write leaves the connection
    /// broken: the next call opens another and reads this consumer's pending entries first.
    async fn write_ahead(&mut self) {
        let mut packed = Vec::new();
        let acks = self.pack_read(&mut packed, false, false);
        self.read_in_flight = true; // a write cut short may still have reached the server
        if self.wire().write_ahead(&packed, acks + 1).await.is_ok() {
            self.read_in_flight = false;
            std::mem::swap(&mut self.to_ack, &mut self.acks_ahead);
            self.written_ahead = Some(acks);
        }
    }

    /// [`Subscription::read_group`] through redis-rs (TLS): one pipelined round trip.
    async fn read_group_pooled(&mut self, own_pending: bool) -> Result<Read> {
        let mut pipe = redis::pipe();
        let ack_commands = self.push_acks(&mut pipe);
        let args = self.read_args(own_pending, true);
        let cmd = pipe.cmd(&args[0]);
        for arg in &args[1..] {
            cmd.arg(arg);
        }
        let Some(ReadConnection::Pool(conn)) = self.conn.as_mut() else {
            unreachable!("a pooled read without a pooled connection");
        };
        self.read_in_flight = true;
        let result = conn
            .execute::<Vec<Value>>(Operation::StreamReadGroup, Request::Pipeline(&pipe))
            .await;
        self.read_in_flight = false;
        let mut replies = result?;
        let read = replies.split_off(ack_commands.min(replies.len()));
        let mut acked = 0;
        for n in &replies {
            acked += stream_reply::int(n)?.max(0) as u64;
        }
        let raws = read
            .into_iter()
            .next()
            .map_or(Ok(Vec::new()), stream_reply::read_reply_owned)?;
        note_acked(&mut self.acked_up_to, &mut self.to_ack);
        self.stats.acked += acked;
        Ok(Read::Raw(raws))
    }
}

/// What one XREADGROUP brought.
pub(super) enum Read {
    /// Entries as Redis sent them (own pending entries, or a read through the pool).
    Raw(Vec<RawEntry>),
    /// New entries decoded from the reply's bytes (each delivered once so far), and the ones
    /// that could not be decoded (for the dead-letter stream).
    Fresh {
        entries: Vec<StreamEntry>,
        bad: Vec<RawEntry>,
    },
}

/// A subscription's own read connection: replies read as bytes, or through redis-rs where
/// that cannot be (TLS).
pub(super) enum ReadConnection {
    Wire(WireConnection),
    Pool(BlockingConnection),
}

impl ReadConnection {
    pub(super) fn is_broken(&self) -> bool {
        match self {
            ReadConnection::Wire(c) => c.is_broken(),
            ReadConnection::Pool(c) => c.is_broken(),
        }
    }
}

/// An entry read from the wire, copied out of the read buffer.
fn owned(e: &EntryView<'_>) -> RawEntry {
    RawEntry {
        stream: e.stream.to_owned(),
        id: e.id.to_owned(),
        fields: e.fields.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
    }
}
