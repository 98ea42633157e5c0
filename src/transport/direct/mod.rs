//! Direct reads: a connection that its owner's event loop drives, so a caller that already
//! runs a loop (Python's asyncio) makes a cached read with no thread hop: the request goes
//! out from the calling thread and the reply wakes the loop that waits for it, exactly like
//! the raw round trip.
//!
//! Two halves: [`Link`], the sans-IO state machine (request FIFO, pairing, deadlines,
//! batching, polling, reconnect timing), and [`DirectSocket`], the non-blocking socket that
//! feeds it. The event loop adapter (`src/python/direct.rs` for asyncio) maps the loop's
//! reader, writer and timer callbacks onto these two. [`BlockingLone`] and [`TaskLone`] drive
//! the same two from the caller's own thread or task, one request at a time: the pools' reads.

mod link;
mod lone;
mod socket;

pub use link::{Expiry, Link, Phase, Route, SpinCounts, SpinPolicy, Submitted, DEFAULT_SPIN, RECONNECT_DELAY};
pub use lone::{BlockingLone, TaskLone};
pub use socket::{supports, DirectSocket};
