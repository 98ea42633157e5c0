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

#[tokio::test]
async fn delete_consumer_removes_an_idle_consumer_and_keeps_one_holding_entries() {
    let server = RedisServer::start();
    let events = open(&server).await;
    assert!(
        events.delete_consumer(PRICE_UPDATES, "ui", "c1").await.unwrap(),
        "no stream, nothing left behind"
    );
    events.ensure_group(PRICE_UPDATES, "ui", "$").await.unwrap();
    events.publish(&price(), None).await.unwrap();
    let mut conn = raw(&server).await;
    // c1 reads the entry and does not ack it; c2 holds nothing.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("ui")
        .arg("c1")
        .arg("STREAMS")
        .arg(PRICE_UPDATES)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(PRICE_UPDATES)
        .arg("ui")
        .arg("c2")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(consumer_names(&mut conn).await, ["c1", "c2"]);
    assert!(events.delete_consumer(PRICE_UPDATES, "ui", "c2").await.unwrap());
    assert!(
        !events.delete_consumer(PRICE_UPDATES, "ui", "c1").await.unwrap(),
        "c1 still holds an entry: keeping it keeps the entry claimable"
    );
    assert_eq!(consumer_names(&mut conn).await, ["c1"]);
    assert!(
        events.delete_consumer(PRICE_UPDATES, "gone", "c1").await.unwrap(),
        "no such group"
    );
    let bad = events.delete_consumer(PRICE_UPDATES, "ui", "").await;
    assert!(matches!(bad, Err(Error::InvalidInput(_))), "{bad:?}");
}

/// The names of group `ui`'s consumers on the price stream, sorted (XINFO CONSUMERS).
async fn consumer_names(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let rows: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(PRICE_UPDATES)
        .arg("ui")
        .query_async(conn)
        .await
        .unwrap();
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| redis::from_redis_value(r["name"].clone()).unwrap())
        .collect();
    names.sort();
    names
}
