//! solcache: sub-millisecond Solana price and pool-state reads from Redis.
//!
//! Open a [`RedisPool`], then read and write through [`PriceCache`] and [`PoolStateCache`]:
//!
//! ```no_run
//! # async fn demo() -> solcache::Result<()> {
//! use solcache::{PoolConfig, PriceCache, PriceData, RedisPool};
//! let pool = RedisPool::connect(PoolConfig::new("redis://127.0.0.1:6379/0")).await?;
//! let prices = PriceCache::new(pool.clone());
//! let sol = PriceData::new("SOL", "187.2345".parse().unwrap(), chrono::Utc::now(), "pyth")?;
//! prices.set(&sol).await?;
//! assert_eq!(prices.get("SOL", None).await?, Some(sol));
//! pool.close().await;
//! # Ok(()) }
//! ```
//!
//! Every connection to Redis goes through [`transport`]: the async pool, the blocking pool and
//! the event-loop-driven direct connection share one handshake and one retry policy, and the
//! caches are written against its seam ([`Transport`], [`BlockingTransport`]).
//!
//! Nothing outside `python/` touches PyO3: the binding only converts types and maps errors.

pub mod backoff;
pub mod cache;
pub mod error;
mod event_json;
pub mod event_stream;
pub mod events;
pub mod keys;
pub mod metrics;
pub mod models;
pub mod near_cache;
pub mod pool_state_cache;
pub mod price_cache;
pub mod price_impact;
pub mod read_ahead;
pub mod slow_calls;
pub mod stream_publish;
pub mod stream_reply;
pub mod stream_tail;
pub mod stream_wire;
pub mod subscription;
pub mod sync_cache;
pub mod transport;

#[cfg(feature = "python")]
mod python;

pub use backoff::Backoff;
pub use cache::{Cache, Cached, Get, GetMany, ReadPlan, DEFAULT_TTL};
pub use error::{Error, Result};
pub use event_stream::{EventStream, GroupInfo, StreamEntry, StreamInfo};
pub use events::{PositionUpdate, PriceUpdate, SystemStatus, TradeAction, TradeExecuted, TradingEvent};
pub use keys::MVP_TOKENS;
pub use metrics::{Operation, OperationStats};
pub use models::{PoolState, PriceData};
pub use near_cache::{NearCache, NearCacheConfig, NearStatsSnapshot};
pub use pool_state_cache::PoolStateCache;
pub use price_cache::PriceCache;
pub use price_impact::{Direction, SwapQuote};
pub use stream_tail::{Tail, TailRetry, TailStats};
pub use subscription::{Subscription, SubscriptionOptions, SubscriptionState, SubscriptionStats};
pub use sync_cache::SyncCache;
pub use transport::{
    redact_url, BlockingTransport, Health, PoolConfig, PoolCounts, RedisPool, Request, SyncPool, Transport,
};
