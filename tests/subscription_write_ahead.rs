//! A subscription writes its next read while it decodes a full batch: what that changes on a
//! real redis-server (entries delivered ahead, close, a killed connection) and what it must not
//! (order, at-least-once, acknowledgements).
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::events::PRICE_UPDATES;
use solcache::{
    EventStream, PoolConfig, PriceUpdate, RedisPool, StreamEntry, Subscription, SubscriptionOptions, TradingEvent,
};
use support::{raw, RedisServer};

fn price(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

fn number(e: &StreamEntry) -> i64 {
    match &e.event {
        Ok(TradingEvent::PriceUpdate(p)) => p.price.try_into().unwrap(),
        other => panic!("not a price update: {other:?}"),
    }
}

async fn setup(server: &RedisServer, n: i64) -> EventStream {
    let events = EventStream::new(RedisPool::connect(PoolConfig::new(server.url())).await.unwrap());
    events.ensure_group(PRICE_UPDATES, "g", "$").await.unwrap();
    events
        .publish_many(&(0..n).map(price).collect::<Vec<_>>(), None)
        .await
        .unwrap();
    events
}

fn subscribe(events: &EventStream, consumer: &str) -> Subscription {
    let options = SubscriptionOptions {
        count: 100,
        block: Duration::from_millis(50),
        read_ahead: true,
        ..SubscriptionOptions::default()
    };
    Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g", consumer, options).unwrap()
}

/// XPENDING's summary: count, smallest and largest id, and per consumer its count.
type PendingSummary = (u64, Option<String>, Option<String>, Vec<(String, String)>);

/// Entries delivered to `consumer` and not acknowledged (XPENDING's summary, per consumer).
async fn pending_of(con: &mut redis::aio::MultiplexedConnection, consumer: &str) -> u64 {
    let (_, _, _, consumers): PendingSummary = redis::cmd("XPENDING")
        .arg(PRICE_UPDATES)
        .arg("g")
        .query_async(con)
        .await
        .unwrap();
    consumers
        .iter()
        .find(|(name, _)| name == consumer)
        .map_or(0, |(_, n)| n.parse().unwrap())
}

/// Poll until `consumer` has `want` entries pending, for at most 5 s; the last count seen.
async fn wait_pending(con: &mut redis::aio::MultiplexedConnection, consumer: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = pending_of(con, consumer).await;
        if n == want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Read and acknowledge until `want` entries came or 10 s passed.
async fn drain(sub: &mut Subscription, want: usize, got: &mut Vec<i64>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        for e in sub.next_batch().await.unwrap() {
            sub.ack_later(&e.stream, &e.id);
            got.push(number(&e));
        }
    }
    sub.flush_acks().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_batch_the_next_one_is_on_its_way_before_it_is_asked_for() {
    let server = RedisServer::start();
    let events = setup(&server, 350).await;
    let mut con = raw(&server).await;
    let mut sub = subscribe(&events, "c");
    assert_eq!(sub.next_batch().await.unwrap().len(), 100);
    // One call, two batches delivered: the second was read while the first was decoded.
    assert_eq!(wait_pending(&mut con, "c", 200).await, 200);
    let mut got = Vec::new();
    drain(&mut sub, 250, &mut got).await;
    assert_eq!(got, (100..350).collect::<Vec<_>>(), "in order, each once");
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.acked), (350, 250), "{stats:?}");
    assert_eq!(
        pending_of(&mut con, "c").await,
        100,
        "only the first batch, never acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_read_ahead_only_the_batch_asked_for_is_delivered() {
    let server = RedisServer::start();
    let events = setup(&server, 350).await;
    let mut con = raw(&server).await;
    let mut sub = subscribe(&events, "c");
    sub.set_read_ahead(false);
    assert_eq!(sub.next_batch().await.unwrap().len(), 100);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pending_of(&mut con, "c").await, 100);
    // Switched on between calls: from the next full batch on.
    sub.set_read_ahead(true);
    assert_eq!(sub.next_batch().await.unwrap().len(), 100);
    assert_eq!(wait_pending(&mut con, "c", 300).await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_batch_reads_nothing_ahead() {
    let server = RedisServer::start();
    let events = setup(&server, 150).await;
    let mut con = raw(&server).await;
    let mut sub = subscribe(&events, "c");
    let mut got = Vec::new();
    drain(&mut sub, 150, &mut got).await;
    assert_eq!(got, (0..150).collect::<Vec<_>>());
    // The 50 were a short batch: no read followed it, so these stay undelivered until asked.
    events
        .publish_many(&(150..250).map(price).collect::<Vec<_>>(), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pending_of(&mut con, "c").await, 0);
    drain(&mut sub, 250, &mut got).await;
    assert_eq!(got, (0..250).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_leaves_the_batch_read_ahead_pending_for_the_same_consumer() {
    let server = RedisServer::start();
    let events = setup(&server, 250).await;
    let mut con = raw(&server).await;
    let mut first = subscribe(&events, "same");
    let batch = first.next_batch().await.unwrap();
    assert_eq!(batch.len(), 100);
    for e in &batch {
        first.ack_later(&e.stream, &e.id);
    }
    first.close().await.unwrap();
    let stats = first.stats();
    assert_eq!((stats.delivered, stats.acked), (100, 100), "{stats:?}");
    assert_eq!(
        pending_of(&mut con, "same").await,
        100,
        "the batch read ahead, never handed out"
    );
    let mut again = subscribe(&events, "same");
    let mut got = Vec::new();
    drain(&mut again, 150, &mut got).await;
    assert_eq!(
        got,
        (100..250).collect::<Vec<_>>(),
        "its pending entries first, then new ones"
    );
    assert_eq!(pending_of(&mut con, "same").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_with_a_read_ahead_on_it_loses_nothing_and_repeats_nothing() {
    let server = RedisServer::start();
    let events = setup(&server, 1000).await;
    let mut con = raw(&server).await;
    let mut sub = subscribe(&events, "c");
    let mut got = Vec::new();
    let (mut kills, mut killed_at) = (0, usize::MAX);
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 1000 && Instant::now() < deadline {
        for e in sub.next_batch().await.unwrap() {
            sub.ack_later(&e.stream, &e.id);
            got.push(number(&e));
        }
        if got.len() % 200 == 100 && got.len() != killed_at {
            killed_at = got.len();
            // Right after a full batch: the next read is written ahead on this connection.
            let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut con).await.unwrap();
            for line in list.lines().filter(|l| l.contains("name=solcache-group")) {
                let id = line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap();
                let _: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(id)
                    .query_async(&mut con)
                    .await
                    .unwrap();
            }
            kills += 1;
        }
    }
    // The last kill came with acknowledgements on their way: the flush sends them again.
    sub.flush_acks().await.unwrap();
    assert_eq!(kills, 5, "after the batches ending at 100, 300, 500, 700 and 900");
    let distinct: HashSet<_> = got.iter().copied().collect();
    assert_eq!(distinct.len(), 1000, "every entry handed out");
    assert_eq!(
        got.len(),
        1000,
        "none twice: acknowledged ones go out before pending ones are read"
    );
    assert_eq!(pending_of(&mut con, "c").await, 0);
    let stats = sub.stats();
    assert!(stats.outages >= 1, "{stats:?}");
}
