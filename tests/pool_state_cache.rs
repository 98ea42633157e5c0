//! Pool-state cache against a real redis-server.
mod support;

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{Direction, Error, PoolConfig, PoolState, PoolStateCache, RedisPool};
use support::{raw, RedisServer};

const SOL_USDC: &str = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";
const OTHER: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn state(address: &str) -> PoolState {
    PoolState::new(
        address,
        d("12500000.5"),
        d("41250.123"),
        d("7723456.5"),
        d("98765432.1"),
        Utc::now(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_states_round_trip_with_ttl() {
    let server = RedisServer::start();
    let pool = RedisPool::connect(PoolConfig::new(server.url())).await.unwrap();
    let cache = PoolStateCache::new(pool.clone());
    let s = state(SOL_USDC);
    cache.set(&s).await.unwrap();
    assert_eq!(cache.get(SOL_USDC, None).await.unwrap(), Some(s.clone()));
    cache.set_many(&[state(OTHER)]).await.unwrap();
    let both = cache.get_many(&[OTHER, SOL_USDC], None).await.unwrap();
    assert_eq!(both[1], Some(s.clone()));
    assert_eq!(both[0].as_ref().map(|p| p.pool_address.as_str()), Some(OTHER));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("pool:{SOL_USDC}"))
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 2000, "{pttl}");
    assert_eq!(
        cache.get(SOL_USDC, Some(Duration::from_secs(5))).await.unwrap(),
        Some(s)
    );
    assert_eq!(pool.metrics().stats(solcache::Operation::PoolGet).count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_and_corrupt_states_are_typed_errors() {
    let server = RedisServer::start();
    let cache = PoolStateCache::new(RedisPool::connect(PoolConfig::new(server.url())).await.unwrap());
    for bad in ["", "0OIl", "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo0"] {
        assert!(
            matches!(cache.get(bad, None).await, Err(Error::InvalidInput(_))),
            "{bad:?}"
        );
    }
    redis::cmd("SET")
        .arg(format!("pool:{SOL_USDC}"))
        .arg("[]")
        .query_async::<()>(&mut raw(&server).await)
        .await
        .unwrap();
    match cache.get(SOL_USDC, None).await {
        Err(Error::Serialization { key, .. }) => assert_eq!(key, format!("pool:{SOL_USDC}")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cached_state_feeds_the_swap_quote() {
    let s = state(SOL_USDC);
    let q = s.quote_swap(d("100"), Direction::AToB, 25, 50).unwrap();
    assert!(q.amount_out > Decimal::ZERO && q.amount_out < q.spot_price * d("100"));
    assert_eq!(q.max_sandwich_loss, q.amount_out - q.min_amount_out);
}
