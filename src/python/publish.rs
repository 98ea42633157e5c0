//! `EventStream.publish` on an asyncio loop: a lone XADD written on that loop's direct
//! connection (`direct.rs`, the one cache reads use), its reply read by the loop's own reader.
//! No runtime thread wakes for it: at 10 Hz, where every hop wakes a sleeping thread, that is
//! most of what a publish costs. Where the loop has no direct connection (not up yet, down,
//! Cluster, Sentinel, TLS, `direct_reads=False`) the publish goes through the runtime.
//!
//! An XADD is not idempotent: a publish lost with its direct connection is sent again only as
//! the core's retry policy says ([`stream_publish::resend_lost`]), once and on a new
//! connection; `READONLY` likewise ([`stream_publish::resend_refused`]).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use super::bridge::{spawn, spawn_into, LoopQueue};
use super::direct::{self, DirectCall, DirectOptions, Redo, Replied};
use crate::event_stream::{publish_reply, EventStream};
use crate::events::TradingEvent;
use crate::metrics::{Metrics, Operation};
use crate::stream_publish;
use crate::transport::resp::Reply;

/// One publish as the binding sends it.
struct Publish {
    events: EventStream,
    event: TradingEvent,
    stream: Option<String>,
}

impl Publish {
    /// Through the runtime, under the publisher's whole retry policy.
    async fn run(self) -> PyResult<String> {
        Ok(self.events.publish(&self.event, self.stream.as_deref()).await?)
    }

    /// The one resend the retry policy allows, on a new connection.
    async fn resend(self) -> PyResult<String> {
        Ok(self.events.publish_resend(&self.event, self.stream.as_deref()).await?)
    }
}

impl DirectCall for Publish {
    fn on_reply(self: Box<Self>, py: Python<'_>, reply: Reply, metrics: &Metrics) -> Replied {
        match publish_reply(reply) {
            Ok(id) => Replied::Done(id.into_py_any(py)),
            Err(e) if stream_publish::resend_refused(&e) => Replied::Again(self),
            Err(e) => {
                metrics.record_error(&e);
                Replied::Done(Err(e.into()))
            }
        }
    }

    fn redo(
        self: Box<Self>,
        py: Python<'_>,
        future: &Bound<'_, PyAny>,
        queue: Arc<LoopQueue>,
        why: Redo,
    ) -> PyResult<()> {
        let never_resent = match why {
            Redo::Lost { failure, served } => {
                stream_publish::resend_lost(failure, served, self.events.pool().redacted_url()).err()
            }
            Redo::Expired => Some(stream_publish::unanswered(self.events.pool().config().response_timeout)),
            Redo::Refused | Redo::Redirected => None,
        };
        if let Some(err) = never_resent {
            self.events.pool().metrics().record_error(&err);
            return Err(err.into());
        }
        spawn_into(py, future, queue, self.resend())
    }
}

/// Publish `event`: directly when this loop has its connection up, else through the runtime.
/// An event refused before any I/O (bad input) fails when awaited, like any call.
pub fn publish<'py>(
    py: Python<'py>,
    events: &EventStream,
    direct: DirectOptions,
    event: TradingEvent,
    stream: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let call = Publish {
        events: events.clone(),
        event,
        stream,
    };
    if !direct.enabled {
        return spawn(py, call.run());
    }
    let cmd = match events.publish_command(&call.event, call.stream.as_deref()) {
        Ok(cmd) => cmd,
        Err(_) => return spawn(py, call.run()), // the runtime path raises and counts it
    };
    match direct::submit(py, events.pool(), direct.spin, Operation::StreamPublish, &cmd, call)? {
        Ok(future) => Ok(future),
        Err(call) => spawn(py, call.run()),
    }
}
