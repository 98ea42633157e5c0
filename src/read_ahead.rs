//! [`ReadAhead`]: a [`Subscription`] shared by its caller and a read of the next batch that runs
//! while the caller handles the current one.
//!
//! Without it, every batch costs the caller a full round trip: Redis prepares the next batch
//! only after the caller asked for it. With `read_ahead`, [`ReadAhead::next_batch`] hands back
//! a batch and at once starts reading the next one on the runtime, so the server's work and
//! the caller's overlap. The acknowledgements the caller passes with a call then ride with the
//! read after the one already under way (one batch later than without). Calls with
//! `read_ahead` also switch on the subscription's own read ahead on its connection
//! ([`Subscription::set_read_ahead`]: after a full batch, the read after it is written before
//! the batch is decoded); calls without switch it off.
//!
//! Closing waits for a read ahead to finish (at most its `block`). A batch read ahead that
//! nobody asked for when the subscription closes stays pending for this consumer: it is read
//! again first when the consumer comes back (its own pending entries come first), or reclaimed
//! by another consumer after `claim_min_idle`. At-least-once, as always.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::event_stream::StreamEntry;
use crate::subscription::{Subscription, SubscriptionState};

/// Called with the subscription after each read (to publish its state and counters).
pub type OnRead = Arc<dyn Fn(&Subscription) + Send + Sync>;

/// A subscription with an optional read ahead; see the module docs.
pub struct ReadAhead {
    sub: Arc<Mutex<Subscription>>,
    /// The read of the next batch, while one runs or its batch waits for the caller.
    ahead: Mutex<Option<JoinHandle<Result<Vec<StreamEntry>>>>>,
    on_read: OnRead,
}

impl ReadAhead {
    /// `sub`, calling `on_read` after each of its reads.
    pub fn new(sub: Subscription, on_read: OnRead) -> Self {
        ReadAhead {
            sub: Arc::new(Mutex::new(sub)),
            ahead: Mutex::new(None),
            on_read,
        }
    }

    /// The next batch: the one read ahead if there is one, else one read now (after `mark`
    /// queued acknowledgements on the subscription). With `read_ahead`, the read of the batch
    /// after it starts before this returns. Cancel-safe: a batch read ahead is kept until a
    /// call takes it.
    pub async fn next_batch(&self, mark: impl FnOnce(&mut Subscription), read_ahead: bool) -> Result<Vec<StreamEntry>> {
        let mut ahead = self.ahead.lock().await;
        let early = match ahead.as_mut() {
            Some(read) => {
                // A read ahead that ended without a batch (a panic, a runtime shutting down)
                // is read again now; what it fetched is pending and re-read first.
                let batch = read.await.ok();
                *ahead = None;
                batch
            }
            None => None,
        };
        let mut sub = self.sub.lock().await;
        mark(&mut sub);
        sub.set_read_ahead(read_ahead);
        let batch = match early {
            Some(batch) => batch,
            None => {
                let batch = sub.next_batch().await;
                (self.on_read)(&sub);
                batch
            }
        };
        if read_ahead && batch.is_ok() && sub.state() != SubscriptionState::Stopped {
            *ahead = Some(self.read_next());
        }
        batch
    }

    /// True when a batch read ahead is there to take (see [`ReadAhead::take_ready`]).
    pub fn is_ready(&self) -> bool {
        self.ahead
            .try_lock()
            .is_ok_and(|ahead| ahead.as_ref().is_some_and(JoinHandle::is_finished))
    }

    /// The batch read ahead if its read has finished, taken without waiting (no hop to the
    /// runtime and back): `mark` queues acknowledgements and the read of the batch after it
    /// starts. `None` when there is none ready yet (`mark` was not called): use
    /// [`ReadAhead::next_batch`]. Must be called within the runtime's context.
    pub fn take_ready(&self, mark: impl FnOnce(&mut Subscription)) -> Option<Result<Vec<StreamEntry>>> {
        let mut ahead = self.ahead.try_lock().ok()?;
        if !ahead.as_ref()?.is_finished() {
            return None;
        }
        // Free once the read finished, unless a flush or close holds it: then wait for it.
        let mut sub = self.sub.try_lock().ok()?;
        let batch = match ahead.take()?.now_or_never()? {
            Ok(batch) => batch,
            Err(_) => return None, // ended without a batch: next_batch reads again
        };
        mark(&mut sub);
        if batch.is_ok() && sub.state() != SubscriptionState::Stopped {
            drop(sub);
            *ahead = Some(self.read_next());
        }
        Some(batch)
    }

    /// Start reading the next batch on the runtime.
    fn read_next(&self) -> JoinHandle<Result<Vec<StreamEntry>>> {
        let (shared, on_read) = (self.sub.clone(), self.on_read.clone());
        tokio::spawn(async move {
            let mut sub = shared.lock().await;
            sub.set_read_ahead(true);
            let batch = sub.next_batch().await;
            on_read(&sub);
            batch
        })
    }

    /// Run `f` on the subscription (waiting for a read ahead to finish its read).
    pub async fn with<T>(&self, f: impl AsyncFnOnce(&mut Subscription) -> T) -> T {
        let mut sub = self.sub.lock().await;
        let out = f(&mut sub).await;
        (self.on_read)(&sub);
        out
    }

    /// Let a read ahead finish (up to its `block`: the acknowledgements it carried are counted
    /// by their replies; its batch, if one came, stays pending: see the module docs), then
    /// queue `mark`'s acknowledgements, send them and close the connection.
    pub async fn close(&self, mark: impl FnOnce(&mut Subscription)) -> Result<()> {
        let mut ahead = self.ahead.lock().await;
        let unread = match ahead.take() {
            Some(read) => read.await.ok().and_then(|b| b.ok()).map_or(0, |b| b.len()),
            None => 0,
        };
        self.with(async |sub: &mut Subscription| {
            sub.not_handed(unread);
            mark(sub);
            sub.close().await
        })
        .await
    }
}
