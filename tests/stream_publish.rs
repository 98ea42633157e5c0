//! XADDs written as RESP on publish connections (`solcache-publish`) against a real
//! redis-server: what the stream holds is what the pool path writes, error replies keep their
//! codes, a killed connection is replaced.
mod support;

use std::collections::HashMap;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use solcache::events::{PRICE_UPDATES, TRADE_EVENTS};
use solcache::{
    EventStream, PoolConfig, PriceUpdate, RedisPool, SystemStatus, TradeAction, TradeExecuted, TradingEvent,
};
use support::{raw, RedisServer};

fn price(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::new(1_872_345 + n, 4),
        timestamp: Utc.timestamp_opt(1_764_600_000 + n, 123_456_000).unwrap(),
    })
}

async fn pool(server: &RedisServer) -> RedisPool {
    RedisPool::connect(PoolConfig::new(server.url())).await.unwrap()
}

type Entry = (String, Vec<Vec<u8>>);

async fn xrange(con: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<Entry> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(con)
        .await
        .unwrap()
}

/// Ids of the `solcache-publish` connections in CLIENT LIST.
async fn publish_clients(con: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(con).await.unwrap();
    list.lines()
        .filter(|l| l.contains("name=solcache-publish "))
        .map(|l| l.split(' ').next().unwrap().trim_start_matches("id=").to_owned())
        .collect()
}

fn mixed_events() -> Vec<TradingEvent> {
    let mut events: Vec<_> = (0..300).map(price).collect();
    // A string that needs escaping (the JSON is written by serde_json then).
    events[7] = TradingEvent::SystemStatus(SystemStatus {
        component: "price-service".into(),
        status: "degraded".into(),
        message: "quote \" backslash \\ \u{e9} newline \n".into(),
        timestamp: Utc::now(),
    });
    events[150] = TradingEvent::TradeExecuted(TradeExecuted {
        id: "sig-1".into(),
        action: TradeAction::Buy,
        token_pair: "SOL/USDC".into(),
        amount: Decimal::new(15, 1),
        price: Decimal::new(18725, 2),
        timestamp: Utc::now(),
    });
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_entries_are_those_of_the_pool_path_in_order() {
    let server = RedisServer::start();
    let pool = pool(&server).await;
    let wire = EventStream::new(pool.clone());
    let pooled = EventStream::new(pool).publishing_through_pool();
    let mut con = raw(&server).await;
    let events = mixed_events();
    let mut ids = wire.publish_many(&events, Some("stream:wire")).await.unwrap();
    ids.push(wire.publish(&events[7], Some("stream:wire")).await.unwrap());
    pooled.publish_many(&events, Some("stream:pool")).await.unwrap();
    pooled.publish(&events[7], Some("stream:pool")).await.unwrap();
    let (on_wire, on_pool) = (
        xrange(&mut con, "stream:wire").await,
        xrange(&mut con, "stream:pool").await,
    );
    assert_eq!(on_wire.iter().map(|e| e.0.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(on_wire.len(), events.len() + 1);
    let fields = |entries: &[Entry]| entries.iter().map(|e| e.1.clone()).collect::<Vec<_>>();
    assert_eq!(fields(&on_wire), fields(&on_pool));
    assert_eq!(on_wire[150].1[1], b"trade_executed".to_vec());
    // One publish connection served both calls; the pooled handle opened none.
    assert_eq!(publish_clients(&mut con).await.len(), 1);
    // Without a stream, each event goes to its own type's default stream.
    let routed = wire.publish_many(&events[149..151], None).await.unwrap();
    assert_eq!(xrange(&mut con, PRICE_UPDATES).await[0].0, routed[0]);
    assert_eq!(xrange(&mut con, TRADE_EVENTS).await[0].0, routed[1]);
    assert_eq!(xrange(&mut con, "stream:wire").await[7].1[1], b"system_status".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_is_that_of_the_pool_path() {
    let server = RedisServer::start();
    let pool = pool(&server).await;
    let limits = HashMap::from([("stream:wire".to_owned(), 150), ("stream:pool".to_owned(), 150)]);
    let wire = EventStream::with_maxlen(pool.clone(), 10_000, limits).unwrap();
    let pooled = wire.clone().publishing_through_pool();
    let mut con = raw(&server).await;
    let batch: Vec<_> = (0..250).map(price).collect();
    let mut lens = Vec::new();
    for (events, stream) in [(&wire, "stream:wire"), (&pooled, "stream:pool")] {
        for _ in 0..8 {
            events.publish_many(&batch, Some(stream)).await.unwrap();
        }
        let len: u64 = redis::cmd("XLEN").arg(stream).query_async(&mut con).await.unwrap();
        lens.push(len);
    }
    // Approximate trimming keeps at least the limit and at most one node (100 entries) more;
    // where nodes end depends on the ids, so the two streams may differ within that.
    for len in &lens {
        assert!((150..=250).contains(len), "{lens:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_keep_their_codes_and_the_connection() {
    let server = RedisServer::start();
    let events = EventStream::new(pool(&server).await);
    let mut con = raw(&server).await;
    events.publish(&price(0), None).await.unwrap();
    // WRONGTYPE in the middle of a batch: the entries around it are appended, the call fails.
    let _: () = redis::cmd("SET")
        .arg(TRADE_EVENTS)
        .arg("x")
        .query_async(&mut con)
        .await
        .unwrap();
    let batch = mixed_events();
    let err = events.publish_many(&batch, None).await.unwrap_err();
    assert_eq!(err.response_code(), Some("WRONGTYPE"), "{err}");
    assert_eq!(xrange(&mut con, PRICE_UPDATES).await.len(), 1 + batch.len() - 2);
    // OOM: every XADD refused.
    for (k, v) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let err = events.publish_many(&batch[..3], Some("stream:oom")).await.unwrap_err();
    assert_eq!(err.response_code(), Some("OOM"), "{err}");
    let err = events.publish(&price(1), Some("stream:oom")).await.unwrap_err();
    assert_eq!(err.response_code(), Some("OOM"), "{err}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut con)
        .await
        .unwrap();
    // The connection stayed in step and is still the one in use.
    let before = publish_clients(&mut con).await;
    let ids = events.publish_many(&batch[..3], Some("stream:oom")).await.unwrap();
    assert_eq!(
        xrange(&mut con, "stream:oom")
            .await
            .into_iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(publish_clients(&mut con).await, before);
    assert_eq!(before.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_replaced_and_nothing_is_lost_or_doubled() {
    let server = RedisServer::start();
    let events = EventStream::new(pool(&server).await);
    let mut con = raw(&server).await;
    events
        .publish_many(&[price(0), price(1)], Some("stream:k"))
        .await
        .unwrap();
    let old = publish_clients(&mut con).await;
    assert_eq!(old.len(), 1);
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&old[0])
        .query_async(&mut con)
        .await
        .unwrap();
    // The idle connection was dropped: the batch goes out once, on a new connection.
    let ids = events
        .publish_many(&[price(2), price(3)], Some("stream:k"))
        .await
        .unwrap();
    let held = xrange(&mut con, "stream:k").await;
    assert_eq!(held.len(), 4);
    assert_eq!(held[2..].iter().map(|e| e.0.clone()).collect::<Vec<_>>(), ids);
    let new = publish_clients(&mut con).await;
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_fails_the_batch_with_a_connection_error() {
    let mut server = RedisServer::start();
    let events = EventStream::new(pool(&server).await);
    events.publish(&price(0), Some("stream:gone")).await.unwrap();
    server.stop();
    let err = events
        .publish_many(&[price(1), price(2)], Some("stream:gone"))
        .await
        .unwrap_err();
    assert!(matches!(err, solcache::Error::Connection { .. }), "{err:?}");
    server.restart();
    let id = events.publish(&price(3), Some("stream:gone")).await.unwrap();
    assert!(!id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_late_in_a_batch_stops_it_before_anything_is_sent() {
    let server = RedisServer::start();
    let events = EventStream::new(pool(&server).await);
    let mut con = raw(&server).await;
    let mut batch: Vec<_> = (0..300).map(price).collect();
    batch[290] = TradingEvent::PriceUpdate(PriceUpdate {
        token: "not a token".into(),
        price: Decimal::ONE,
        timestamp: Utc::now(),
    });
    let err = events.publish_many(&batch, Some("stream:bad")).await.unwrap_err();
    assert!(matches!(err, solcache::Error::InvalidInput(_)), "{err:?}");
    assert!(xrange(&mut con, "stream:bad").await.is_empty());
    batch.truncate(290);
    let ids = events.publish_many(&batch, Some("stream:bad")).await.unwrap();
    assert_eq!(
        xrange(&mut con, "stream:bad")
            .await
            .into_iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        ids
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_batch_is_not_written_again() {
    let server = RedisServer::start();
    let mut config = PoolConfig::new(server.url());
    config.response_timeout = std::time::Duration::from_millis(300);
    let events = EventStream::new(RedisPool::connect(config).await.unwrap());
    events.publish(&price(0), Some("stream:slow")).await.unwrap();
    server.pause();
    let err = events
        .publish_many(&[price(1), price(2)], Some("stream:slow"))
        .await
        .unwrap_err();
    server.resume();
    assert!(err.is_timeout(), "{err:?}");
    // The server applies the batch it had read once it runs again; the call did not resend it.
    let mut con = raw(&server).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while xrange(&mut con, "stream:slow").await.len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let ids = events.publish(&price(3), Some("stream:slow")).await.unwrap();
    let held = xrange(&mut con, "stream:slow").await;
    assert_eq!(held.len(), 4, "{held:?}");
    assert_eq!(held[3].0, ids);
}
