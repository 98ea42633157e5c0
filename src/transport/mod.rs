//! Every way solcache talks to Redis, behind one seam.
//!
//! The rules every transport shares, each written once:
//! - [`settings`]: [`PoolConfig`], the URL, sizes and timeouts (none infinite);
//! - [`endpoint`]: the URL parsed once (address, TLS, credentials, database) and
//!   [`redact_url`];
//! - [`handshake`]: `AUTH`, `SELECT`, `CLIENT SETNAME` and the server-version check, one
//!   pipeline sent by every new connection;
//! - [`retry`]: which failures break a connection, which requests are sent once more;
//! - [`request`]: what a transport sends; [`resp`]: how replies are read off a raw socket;
//! - [`topology`]: which deployment the URL names (one server, Cluster, Sentinel);
//!   [`cluster`] sends through redis-rs' cluster client, [`cluster_direct`] reads a cluster's
//!   cache keys on a socket per primary, [`sentinel`] finds the primary.
//!
//! The transports:
//! - [`async_pool`]: [`RedisPool`], bb8 over redis-rs multiplexed connections (tokio);
//! - [`sync_pool`]: [`SyncPool`], blocking connections used on the caller's thread
//!   ([`sync_node`] per server, [`sync_cluster`] routing by slot on a cluster);
//! - [`direct`]: a connection an event loop drives itself, as a sans-IO state machine;
//! - [`wire_connection`]: a dedicated connection whose replies are read as bytes (group reads,
//!   publishing).
//!
//! Caches are written against [`Transport`] and [`BlockingTransport`], not against a pool: a
//! new topology (a cluster) is one more implementation of these two traits.

pub mod async_pool;
pub mod cluster;
pub mod cluster_direct;
pub mod direct;
pub mod endpoint;
pub mod handshake;
pub mod request;
pub mod resp;
pub mod retry;
pub mod sentinel;
pub mod settings;
pub mod sync_cluster;
pub mod sync_node;
pub mod sync_pool;
pub mod topology;
pub mod wire_connection;

use std::future::Future;

use redis::FromRedisValue;

pub use async_pool::{BlockingConnection, Health, PoolCounts, RedisPool};
pub use cluster_direct::{ClusterDirectCounts, ClusterPrimary};
pub use endpoint::{redact_url, Endpoint};
pub use request::Request;
pub use settings::PoolConfig;
pub use sync_pool::SyncPool;
pub use topology::Topology;
pub use wire_connection::WireConnection;

use crate::error::Result;
use crate::keys::KeyLayout;
use crate::metrics::{Metrics, Operation};
use resp::Reply;

/// The seam for async callers: send a request (under the [`retry`] policy) and convert the
/// reply, recording its latency under `op` in [`Transport::metrics`].
pub trait Transport: Clone + Send + Sync + 'static {
    /// Send an idempotent request and convert its reply.
    fn execute<T: FromRedisValue + Send>(
        &self,
        op: Operation,
        request: Request<'_>,
    ) -> impl Future<Output = Result<T>> + Send;

    /// Send a cache read (`GET`, `MGET`) and return its reply. A transport may carry reads
    /// its own faster way; by default they are one more [`Transport::execute`].
    fn read(&self, op: Operation, cmd: &redis::Cmd) -> impl Future<Output = Result<Reply>> + Send {
        self.execute(op, Request::Cmd(cmd))
    }

    /// Latency histograms and error counts of every call sent this way.
    fn metrics(&self) -> &Metrics;

    /// The server URL with any password replaced by `***`.
    fn redacted_url(&self) -> &str;

    /// How the caches sending through it name their keys (by default
    /// [`KeyLayout::Spread`]).
    fn key_layout(&self) -> KeyLayout {
        KeyLayout::Spread
    }
}

/// The seam for blocking callers: like [`Transport`], on the calling thread.
pub trait BlockingTransport: Clone + Send + Sync + 'static {
    /// Send an idempotent request and convert its reply.
    fn execute<T: FromRedisValue>(&self, op: Operation, request: Request<'_>) -> Result<T>;

    /// Send a cache read; see [`Transport::read`].
    fn read(&self, op: Operation, cmd: &redis::Cmd) -> Result<Reply> {
        self.execute(op, Request::Cmd(cmd))
    }

    /// Latency histograms and error counts of every call sent this way.
    fn metrics(&self) -> &Metrics;

    /// The server URL with any password replaced by `***`.
    fn redacted_url(&self) -> &str;

    /// How the caches sending through it name their keys (by default
    /// [`KeyLayout::Spread`]).
    fn key_layout(&self) -> KeyLayout {
        KeyLayout::Spread
    }
}

impl Transport for RedisPool {
    fn execute<T: FromRedisValue + Send>(
        &self,
        op: Operation,
        request: Request<'_>,
    ) -> impl Future<Output = Result<T>> + Send {
        RedisPool::execute(self, op, request)
    }

    fn read(&self, op: Operation, cmd: &redis::Cmd) -> impl Future<Output = Result<Reply>> + Send {
        RedisPool::read(self, op, cmd)
    }

    fn metrics(&self) -> &Metrics {
        RedisPool::metrics(self)
    }

    fn redacted_url(&self) -> &str {
        RedisPool::redacted_url(self)
    }

    fn key_layout(&self) -> KeyLayout {
        self.config().key_layout
    }
}

impl BlockingTransport for SyncPool {
    fn execute<T: FromRedisValue>(&self, op: Operation, request: Request<'_>) -> Result<T> {
        SyncPool::execute(self, op, request)
    }

    fn read(&self, op: Operation, cmd: &redis::Cmd) -> Result<Reply> {
        SyncPool::read(self, op, cmd)
    }

    fn metrics(&self) -> &Metrics {
        SyncPool::metrics(self)
    }

    fn redacted_url(&self) -> &str {
        SyncPool::redacted_url(self)
    }

    fn key_layout(&self) -> KeyLayout {
        self.config().key_layout
    }
}
