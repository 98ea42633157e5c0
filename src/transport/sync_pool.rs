//! A blocking connection pool for synchronous callers: no runtime, no thread hop.
//!
//! Each call checks out a plain redis-rs connection, writes the request and reads the reply
//! on the calling thread, so a read costs one round trip plus decoding; cache reads take a
//! direct socket polled for up to [`PoolConfig::read_spin`] (see [`super::sync_node`], which
//! holds the connections of one server, their timeouts and the retry policy).
//!
//! Topologies, from the URL:
//! - one server;
//! - a Sentinel-managed primary: each new connection asks the sentinels where it is and checks
//!   `ROLE`; a `READONLY` reply drops every idle connection and the request is sent once more;
//! - a Redis Cluster: one set of connections per primary, requests routed by the slot of their
//!   key, batches split per slot and sent to every primary at once, `MOVED` / `ASK` followed
//!   and a killed primary followed after its replica is promoted (see [`super::sync_cluster`]).

use std::sync::Arc;
use std::time::Instant;

use redis::FromRedisValue;

use super::async_pool::PoolCounts;
use super::handshake::{Handshake, SYNC_CLIENT_NAME};
use super::resp::Reply;
use super::sentinel::SentinelResolver;
use super::settings::PoolConfig;
use super::sync_cluster::SyncCluster;
use super::sync_node::{NodePool, NodeTarget};
use super::topology::Topology;
use super::Request;
use crate::error::Result;
use crate::metrics::{Metrics, Operation};

/// A blocking pool of Redis connections; clones share it.
#[derive(Clone)]
pub struct SyncPool {
    inner: Arc<SyncInner>,
}

/// What carries the requests.
enum Backend {
    /// One server, or the primary the sentinels name.
    Server(Box<NodePool>),
    /// A Redis Cluster, routed by slot.
    Cluster(Box<SyncCluster>),
}

struct SyncInner {
    backend: Backend,
    topology: &'static str,
    config: PoolConfig,
    redacted_url: String,
    metrics: Metrics,
}

impl SyncPool {
    /// Open a pool: connect once (so a bad URL, password or server fails here, within
    /// `connect_timeout`; on a cluster, the slot map is read from the first seed node that
    /// answers) and check the server is Redis ≥ 6.2. Blocks the calling thread.
    pub fn connect(config: PoolConfig) -> Result<SyncPool> {
        config.validate()?;
        let topology = Topology::parse(&config.url)?;
        let kind = topology.kind_name();
        let redacted_url = topology.redacted_url().to_owned();
        let backend = match topology {
            Topology::Standalone(endpoint) => {
                let node = NodePool::new(
                    NodeTarget::Fixed(endpoint.client()?),
                    Handshake::new(&endpoint, SYNC_CLIENT_NAME),
                    Some(endpoint),
                    config.clone(),
                    redacted_url.clone(),
                );
                node.open_first()?;
                Backend::Server(Box::new(node))
            }
            Topology::Sentinel(spec) => {
                let resolver = SentinelResolver::new(spec, config.connect_timeout);
                // Credentials and database are the same wherever the primary is.
                let template = resolver.primary(&("sentinel-named-primary".to_owned(), 0));
                let node = NodePool::new(
                    NodeTarget::Sentinel(resolver),
                    Handshake::new(&template, SYNC_CLIENT_NAME),
                    None,
                    config.clone(),
                    redacted_url.clone(),
                );
                node.open_first()?;
                Backend::Server(Box::new(node))
            }
            Topology::Cluster(spec) => Backend::Cluster(Box::new(SyncCluster::open(spec, config.clone())?)),
        };
        Ok(SyncPool {
            inner: Arc::new(SyncInner {
                backend,
                topology: kind,
                metrics: Metrics::new(config.slow_threshold),
                redacted_url,
                config,
            }),
        })
    }

    /// Send an idempotent request and convert its reply, recording latency under `op`.
    /// Blocks the calling thread for at most about checkout + connect + response timeouts
    /// (on a cluster, per node a batch reaches, the nodes' replies awaited together).
    pub fn execute<T: FromRedisValue>(&self, op: Operation, request: Request<'_>) -> Result<T> {
        let started = Instant::now();
        let result = match &self.inner.backend {
            Backend::Server(node) => node.execute(request),
            Backend::Cluster(cluster) => cluster.execute(request),
        };
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    /// Send a cache read and return its reply, recording latency under `op`: over a direct
    /// socket (see the module docs), or like [`SyncPool::execute`] when reads are not direct
    /// (TLS, Sentinel, turned off).
    pub fn read(&self, op: Operation, cmd: &redis::Cmd) -> Result<Reply> {
        let started = Instant::now();
        let result = match &self.inner.backend {
            Backend::Server(node) => node.read(cmd),
            Backend::Cluster(cluster) => cluster.read(cmd),
        };
        self.inner.metrics.record_outcome(op, started.elapsed(), &result);
        result
    }

    /// Close idle connections and refuse new calls; connections in use close when returned.
    pub fn close(&self) {
        match &self.inner.backend {
            Backend::Server(node) => node.close(),
            Backend::Cluster(cluster) => cluster.close(),
        }
    }

    /// Whether [`SyncPool::close`] was called.
    pub fn is_closed(&self) -> bool {
        match &self.inner.backend {
            Backend::Server(node) => node.is_closed(),
            Backend::Cluster(cluster) => cluster.is_closed(),
        }
    }

    /// Connections, idle, in use and waiting callers right now (on a cluster, summed over
    /// the primaries).
    pub fn counts(&self) -> PoolCounts {
        match &self.inner.backend {
            Backend::Server(node) => node.counts(),
            Backend::Cluster(cluster) => cluster.counts(),
        }
    }

    /// `"standalone"`, `"cluster"` or `"sentinel"`, from the URL.
    pub fn topology(&self) -> &'static str {
        self.inner.topology
    }

    /// Cluster topologies: times a slot map read after a failure or a `MOVED` named another
    /// primary for some slot (a failover or a slot move followed). 0 otherwise.
    pub fn cluster_map_changes(&self) -> u64 {
        match &self.inner.backend {
            Backend::Server(_) => 0,
            Backend::Cluster(cluster) => cluster.map_changes(),
        }
    }

    /// Latency histograms and error counts of this pool's calls.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The server URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    /// The configuration this pool was opened with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The server's version, read by the latest connect (on a cluster, by the first node's).
    pub fn redis_version(&self) -> String {
        match &self.inner.backend {
            Backend::Server(node) => node.redis_version(),
            Backend::Cluster(cluster) => cluster.redis_version(),
        }
    }
}

impl std::fmt::Debug for SyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPool")
            .field("url", &self.inner.redacted_url)
            .field("counts", &self.counts())
            .finish()
    }
}
