//! Tailing several streams on one kept connection, against real redis-server processes.
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{EventStream, PoolConfig, PriceUpdate, RedisPool, StreamEntry, Tail, TailRetry, TradingEvent};
use support::{raw, RedisServer};

fn price(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

fn names(streams: &[&str]) -> Vec<String> {
    streams.iter().map(|s| s.to_string()).collect()
}

async fn open(server: &RedisServer) -> EventStream {
    EventStream::new(RedisPool::connect(PoolConfig::new(server.url())).await.unwrap())
}

/// Connections named `solcache-tail` in CLIENT LIST.
async fn tail_connections(server: &RedisServer) -> usize {
    let mut conn = raw(server).await;
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
    list.lines().filter(|l| l.contains(" name=solcache-tail ")).count()
}

/// Read batches until `want` entries arrived or 10 s passed.
async fn collect(tail: &mut Tail, want: usize) -> Vec<StreamEntry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        match tail.next_batch().await {
            Ok(batch) => got.extend(batch),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await, // the server is restarting
        }
    }
    got
}

fn price_of(entry: &StreamEntry) -> i64 {
    match entry.event.as_ref().unwrap() {
        TradingEvent::PriceUpdate(p) => p.price.try_into().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn three_streams_arrive_in_publish_order_with_their_names() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let streams = names(&["tail:a", "tail:b", "tail:c"]);
    let mut tail = events
        .tail(&streams, &names(&["$", "$", "$"]), 100, Duration::from_millis(200))
        .unwrap();
    tail.open().await.unwrap();
    // Published before the first read, after the open: `$` was pinned, so they are read.
    // Across streams the order is the ids' millisecond: publish each in a millisecond of its own.
    for n in 0..30 {
        events
            .publish(&price(n), Some(&streams[(n as usize * 7) % 3]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let got = collect(&mut tail, 30).await;
    assert_eq!(
        got.iter().map(price_of).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    for (n, entry) in got.iter().enumerate() {
        assert_eq!(entry.stream, streams[(n * 7) % 3]);
    }
    assert_eq!(
        tail.positions()[0],
        got.iter().rev().find(|e| e.stream == "tail:a").unwrap().id
    );
}

#[tokio::test]
async fn a_backlog_larger_than_count_never_lets_another_stream_jump_ahead() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let streams = names(&["tail:busy", "tail:quiet"]);
    // 20 on the busy stream, then one on the quiet one, then 5 more on the busy one.
    for n in 0..20 {
        events.publish(&price(n), Some("tail:busy")).await.unwrap();
    }
    // Across streams the order is the ids' millisecond: switch streams in a new millisecond.
    tokio::time::sleep(Duration::from_millis(2)).await;
    events.publish(&price(20), Some("tail:quiet")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    for n in 21..26 {
        events.publish(&price(n), Some("tail:busy")).await.unwrap();
    }
    let mut tail = events
        .tail(&streams, &names(&["0", "0"]), 3, Duration::from_millis(100))
        .unwrap();
    let got = collect(&mut tail, 26).await;
    assert_eq!(
        got.iter().map(price_of).collect::<Vec<_>>(),
        (0..26).collect::<Vec<_>>()
    );
    assert!(tail.next_batch().await.unwrap().is_empty(), "nothing twice");
}

#[tokio::test]
async fn a_restart_costs_one_reconnect_no_gap_and_no_duplicate() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let events = open(&server).await;
    let streams = names(&["tail:a", "tail:b", "tail:c"]);
    let mut tail = events
        .tail(&streams, &names(&["$", "$", "$"]), 100, Duration::from_millis(100))
        .unwrap();
    tail.open().await.unwrap();
    for n in 0..9 {
        events.publish(&price(n), Some(&streams[n as usize % 3])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut got = collect(&mut tail, 9).await;
    assert_eq!(got.len(), 9);
    // Empty reads on the kept connection: still only one, no connection per call.
    for _ in 0..5 {
        tail.next_batch().await.unwrap();
    }
    assert_eq!(tail_connections(&server).await, 1);
    assert_eq!(tail.connections_opened(), 1);

    server.restart(); // SIGKILL; the AOF brings the streams back, so ids continue
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 9;
    while n < 18 {
        match events.publish(&price(n), Some(&streams[n as usize % 3])).await {
            Ok(_) => {
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("Redis did not come back: {e}"),
        }
    }
    got.extend(collect(&mut tail, 9).await);
    assert_eq!(
        got.iter().map(price_of).collect::<Vec<_>>(),
        (0..18).collect::<Vec<_>>()
    );
    assert_eq!(tail.connections_opened(), 2, "one reconnect");
    assert_eq!(tail_connections(&server).await, 1);
}

#[tokio::test]
async fn an_empty_read_waits_about_block_ms_and_no_longer() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let mut tail = events
        .tail(&names(&["tail:idle"]), &names(&["$"]), 10, Duration::from_millis(300))
        .unwrap();
    tail.open().await.unwrap();
    let started = Instant::now();
    assert!(tail.next_batch().await.unwrap().is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "returned after {waited:?}");
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
}

#[tokio::test]
async fn dropping_or_closing_the_tail_releases_its_connection() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let wait_for = |want: usize| {
        let server = &server;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while tail_connections(server).await != want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tail_connections(server).await
        }
    };
    let mut tail = events
        .tail(&names(&["tail:x"]), &names(&["$"]), 10, Duration::from_millis(50))
        .unwrap();
    assert_eq!(wait_for(0).await, 0, "nothing is opened before the first read");
    tail.next_batch().await.unwrap();
    assert_eq!(wait_for(1).await, 1);
    tail.close();
    assert_eq!(wait_for(0).await, 0);

    let mut tail = events
        .tail(&names(&["tail:x"]), &names(&["$"]), 10, Duration::from_secs(30))
        .unwrap();
    tail.open().await.unwrap();
    // A read cancelled mid-block (its future dropped) must not leave the server blocked on it.
    assert!(tokio::time::timeout(Duration::from_millis(100), tail.next_batch())
        .await
        .is_err());
    drop(tail);
    assert_eq!(wait_for(0).await, 0);
}

#[tokio::test]
async fn bad_arguments_are_refused_before_redis_is_touched() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let block = Duration::from_millis(10);
    let bad = [
        events.tail(&[], &[], 10, block).err(),
        events.tail(&names(&["a", "b"]), &names(&["$"]), 10, block).err(),
        events.tail(&names(&["a", "a"]), &names(&["$", "$"]), 10, block).err(),
        events.tail(&names(&["bad name"]), &names(&["$"]), 10, block).err(),
        events.tail(&names(&["a"]), &names(&["x-1"]), 10, block).err(),
        events.tail(&names(&["a"]), &names(&["$"]), 0, block).err(),
        events.tail(&names(&["a"]), &names(&["$"]), 10, Duration::ZERO).err(),
    ];
    for err in bad {
        assert!(matches!(err, Some(solcache::Error::InvalidInput(_))), "{err:?}");
    }
    assert_eq!(tail_connections(&server).await, 0);
}

#[tokio::test]
async fn riding_through_an_outage_waits_counts_and_resumes() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let events = open(&server).await;
    let streams = names(&["tail:a", "tail:b"]);
    let retry = TailRetry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        give_up_after: None,
    };
    let mut tail = events
        .tail_with_retry(&streams, &names(&["$", "$"]), 100, Duration::from_millis(100), retry)
        .unwrap();
    tail.open().await.unwrap();
    events.publish(&price(0), Some("tail:a")).await.unwrap();
    assert_eq!(tail.next_batch_riding().await.unwrap().len(), 1);

    server.stop();
    // Down: each call waits one backoff step and answers an empty batch, never an error.
    for _ in 0..3 {
        assert!(tail.next_batch_riding().await.unwrap().is_empty());
    }
    let stats = tail.stats().clone();
    assert!(stats.retrying && stats.last_error.is_some(), "{stats:?}");
    assert_eq!(stats.outages, 1, "one outage, however many failed reads");
    assert!(stats.retries >= 3, "{stats:?}");

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.publish(&price(1), Some("tail:b")).await.is_err() {
        assert!(Instant::now() < deadline, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(Instant::now() < deadline, "nothing read after the restart");
        got.extend(tail.next_batch_riding().await.unwrap());
    }
    assert_eq!(got.iter().map(price_of).collect::<Vec<_>>(), vec![1]);
    let stats = tail.stats();
    assert!(!stats.retrying && stats.last_error.is_none(), "{stats:?}");
    assert_eq!((stats.outages, stats.entries), (1, 2));
}

#[tokio::test]
async fn riding_gives_up_after_the_configured_time() {
    let mut server = RedisServer::start();
    let events = open(&server).await;
    let retry = TailRetry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(50),
        give_up_after: Some(Duration::from_millis(300)),
    };
    let mut tail = events
        .tail_with_retry(
            &names(&["tail:a"]),
            &names(&["$"]),
            10,
            Duration::from_millis(50),
            retry,
        )
        .unwrap();
    tail.open().await.unwrap();
    server.stop();
    let started = Instant::now();
    let err = loop {
        match tail.next_batch_riding().await {
            Ok(batch) => assert!(batch.is_empty()),
            Err(err) => break err,
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never gave up");
    };
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}
