//! Removing what a stream user leaves in Redis: a retired group, a throw-away stream's TTL.
mod support;

use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::events::PRICE_UPDATES;
use solcache::{Error, EventStream, PoolConfig, PriceUpdate, RedisPool, TradingEvent};
use support::{raw, RedisServer};

async fn open(server: &RedisServer) -> EventStream {
    EventStream::new(RedisPool::connect(PoolConfig::new(server.url())).await.unwrap())
}

fn price() -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(187),
        timestamp: Utc::now(),
    })
}

#[tokio::test]
async fn delete_group_removes_the_group_and_says_whether_there_was_one() {
    let server = RedisServer::start();
    let events = open(&server).await;
    assert!(
        !events.delete_group(PRICE_UPDATES, "ui").await.unwrap(),
        "no stream, no group"
    );
    events.ensure_group(PRICE_UPDATES, "ui", "$").await.unwrap();
    events.ensure_group(PRICE_UPDATES, "other", "$").await.unwrap();
    assert!(events.delete_group(PRICE_UPDATES, "ui").await.unwrap());
    assert!(!events.delete_group(PRICE_UPDATES, "ui").await.unwrap());
    let groups: Vec<String> = events
        .info(PRICE_UPDATES)
        .await
        .unwrap()
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, ["other"]);
    let bad = events.delete_group("price:SOL", "ui").await;
    assert!(matches!(bad, Err(Error::InvalidInput(_))), "{bad:?}");
}

#[tokio::test]
async fn expire_gives_a_stream_a_ttl_that_publishing_keeps() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let stream = "stream:throwaway";
    assert!(
        !events.expire(stream, Duration::from_secs(60)).await.unwrap(),
        "no stream yet"
    );
    events.publish(&price(), Some(stream)).await.unwrap();
    assert!(events.expire(stream, Duration::from_secs(60)).await.unwrap());
    events.publish(&price(), Some(stream)).await.unwrap();
    let mut conn = raw(&server).await;
    let pttl: i64 = redis::cmd("PTTL").arg(stream).query_async(&mut conn).await.unwrap();
    assert!(0 < pttl && pttl <= 60_000, "PTTL {pttl}");
    let zero = events.expire(stream, Duration::ZERO).await;
    assert!(matches!(zero, Err(Error::InvalidInput(_))), "{zero:?}");
}
