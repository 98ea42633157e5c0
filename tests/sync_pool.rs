//! The blocking `SyncPool` / `SyncCache` against real redis-server processes.

mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use solcache::{Error, PoolConfig, PriceData, SyncCache, SyncPool};
use support::RedisServer;

fn sol() -> PriceData {
    PriceData::new("SOL", "187.2345".parse().unwrap(), Utc::now(), "test").unwrap()
}

#[test]
fn round_trip_and_many() {
    let server = RedisServer::start();
    let pool = SyncPool::connect(PoolConfig::new(server.url())).unwrap();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    assert_eq!(cache.get("SOL", None).unwrap(), None);
    cache.set(&sol()).unwrap();
    assert_eq!(cache.get("SOL", None).unwrap().unwrap().token, "SOL");
    let many = cache.get_many(&["SOL", "USDC"], None).unwrap();
    assert!(many[0].is_some() && many[1].is_none());
    assert!(matches!(cache.get("bad token", None), Err(Error::InvalidInput(_))));
    assert_eq!(pool.metrics().stats(solcache::Operation::PriceGet).count, 2);
    assert_eq!(pool.counts().in_use, 0);
}

#[test]
fn a_restarted_server_is_recovered_on_the_first_call() {
    let mut server = RedisServer::start();
    let pool = SyncPool::connect(PoolConfig::new(server.url())).unwrap();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    cache.set(&sol()).unwrap();
    server.stop();
    let started = Instant::now();
    let err = cache.get("SOL", None).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    server.restart();
    cache.set(&sol()).unwrap();
    assert!(cache.get("SOL", None).unwrap().is_some());
}

#[test]
fn a_paused_server_times_out_and_the_connection_is_discarded() {
    let server = RedisServer::start();
    let config = PoolConfig {
        response_timeout: Duration::from_millis(300),
        ..PoolConfig::new(server.url())
    };
    let pool = SyncPool::connect(config).unwrap();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    cache.set(&sol()).unwrap();
    server.pause();
    let err = cache.get("SOL", None).unwrap_err();
    server.resume();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(pool.counts().connections, 0, "the timed-out connection is not reused");
    assert!(cache.get("SOL", None).unwrap().is_some());
}

#[test]
fn close_is_final() {
    let server = RedisServer::start();
    let pool = SyncPool::connect(PoolConfig::new(server.url())).unwrap();
    pool.close();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    assert!(matches!(cache.get("SOL", None), Err(Error::PoolClosed)));
    assert_eq!(pool.counts().connections, 0);
}
