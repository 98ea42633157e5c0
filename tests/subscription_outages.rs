//! Consumers through outages, against real redis-server processes: error codes, retrying
//! instead of failing, groups created again at the chosen start id, giving up when asked.
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::events::PRICE_UPDATES;
use solcache::{
    Error, EventStream, Operation, PoolConfig, PriceUpdate, RedisPool, Request, Subscription, SubscriptionOptions,
    SubscriptionState, TradingEvent,
};
use support::RedisServer;

fn price(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

fn prices(from: i64, n: i64) -> Vec<TradingEvent> {
    (from..from + n).map(price).collect()
}

async fn open(server: &RedisServer) -> EventStream {
    let mut config = PoolConfig::new(server.url());
    config.response_timeout = Duration::from_secs(2);
    EventStream::new(RedisPool::connect(config).await.unwrap())
}

fn options(start_id: &str) -> SubscriptionOptions {
    SubscriptionOptions {
        block: Duration::from_millis(50),
        start_id: start_id.to_owned(),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ..SubscriptionOptions::default()
    }
}

fn subscribe(events: &EventStream, start_id: &str) -> Subscription {
    Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g", "c", options(start_id)).unwrap()
}

/// Read (acknowledging) until `want` prices arrived or 15 s passed; the prices in order.
async fn drain(sub: &mut Subscription, want: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        for e in sub.next_batch().await.expect("rides through") {
            sub.ack_later(&e.stream, &e.id);
            match e.event {
                Ok(TradingEvent::PriceUpdate(p)) => got.push(p.price.try_into().unwrap()),
                other => panic!("not a price: {other:?}"),
            }
        }
    }
    sub.flush_acks().await.unwrap();
    got
}

async fn publish_retrying(events: &EventStream, batch: &[TradingEvent]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match events.publish_many(batch, None).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("Redis did not come back: {e}"),
        }
    }
}

async fn command(events: &EventStream, args: &[&str]) -> Result<redis::Value, Error> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    events.pool().execute(Operation::StreamAdmin, Request::Cmd(&cmd)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_carry_the_code_redis_sent() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let code = |r: Result<redis::Value, Error>| r.expect_err("an error reply").response_code().map(str::to_owned);

    let nogroup = command(&events, &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]).await;
    assert_eq!(code(nogroup).as_deref(), Some("NOGROUP"));
    command(&events, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await
        .unwrap();
    let busy = command(&events, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]).await;
    assert_eq!(code(busy).as_deref(), Some("BUSYGROUP"));
    command(&events, &["SET", "k", "v"]).await.unwrap();
    assert_eq!(
        code(command(&events, &["XLEN", "k"]).await).as_deref(),
        Some("WRONGTYPE")
    );
    assert_eq!(code(command(&events, &["NOSUCHCMD"]).await).as_deref(), Some("ERR"));

    // In a pipeline too (the subscription reads with its acknowledgements in one).
    let mut pipe = redis::pipe();
    pipe.cmd("PING")
        .cmd("XREADGROUP")
        .arg("GROUP")
        .arg("x")
        .arg("c")
        .arg("STREAMS")
        .arg("s")
        .arg(">");
    let piped: Result<Vec<redis::Value>, Error> = events
        .pool()
        .execute(Operation::StreamAdmin, Request::Pipeline(&pipe))
        .await;
    assert_eq!(piped.unwrap_err().response_code(), Some("NOGROUP"));

    command(&events, &["CONFIG", "SET", "maxmemory", "1"]).await.unwrap();
    let oom = events.publish(&price(1), None).await;
    assert_eq!(oom.unwrap_err().response_code(), Some("OOM"));
    command(&events, &["CONFIG", "SET", "maxmemory", "0"]).await.unwrap();

    let nowhere = support::free_port().to_string();
    command(&events, &["REPLICAOF", "127.0.0.1", &nowhere]).await.unwrap();
    let readonly = events.publish(&price(1), None).await;
    assert_eq!(readonly.unwrap_err().response_code(), Some("READONLY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_means_retrying_not_an_error_and_a_lost_group_is_created_again() {
    let mut server = RedisServer::start(); // no persistence: a restart loses stream and group
    let events = open(&server).await;
    let mut sub = subscribe(&events, "0");
    events.publish_many(&prices(0, 3), None).await.unwrap();
    assert_eq!(
        drain(&mut sub, 3).await,
        [0, 1, 2],
        "the group is created at 0 on first read"
    );
    assert_eq!(
        sub.stats().group_recreations,
        0,
        "creating a new group is not a re-creation"
    );

    server.stop();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sub.state() != SubscriptionState::Retrying && Instant::now() < deadline {
        assert!(sub.next_batch().await.expect("no error while Redis is down").is_empty());
    }
    assert_eq!(sub.state(), SubscriptionState::Retrying);
    assert!(sub.last_error().is_some());
    for _ in 0..5 {
        assert!(sub.next_batch().await.unwrap().is_empty());
    }
    let stats = sub.stats();
    assert_eq!(stats.outages, 1, "{stats:?}");
    assert!(stats.retries >= 2, "{stats:?}");

    server.restart();
    publish_retrying(&events, &prices(3, 2)).await; // the stream exists again, the group does not
    assert_eq!(
        drain(&mut sub, 2).await,
        [3, 4],
        "start id 0 replays what the new stream holds"
    );
    assert_eq!(sub.state(), SubscriptionState::Connected);
    assert_eq!(sub.last_error(), None);
    let stats = sub.stats();
    assert!(stats.outages >= 1 && stats.group_recreations == 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_id_decides_what_a_recreated_group_replays() {
    let server = RedisServer::start();
    let events = open(&server).await;
    for (start_id, group) in [("$", "skip"), ("0", "replay")] {
        let mut sub = Subscription::new(
            events.clone(),
            vec![PRICE_UPDATES.into()],
            group,
            "c",
            options(start_id),
        )
        .unwrap();
        assert!(sub.next_batch().await.unwrap().is_empty()); // creates the group
        events.publish_many(&prices(0, 2), None).await.unwrap();
        assert_eq!(drain(&mut sub, 2).await, [0, 1]);
        // The group goes (an operator, a failover) while entries are added that nobody read.
        command(&events, &["XGROUP", "DESTROY", PRICE_UPDATES, group])
            .await
            .unwrap();
        events.publish_many(&prices(2, 2), None).await.unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sub.stats().group_recreations == 0 && Instant::now() < deadline {
            got.extend(drain(&mut sub, 0).await);
            let _ = sub.next_batch().await.unwrap();
        }
        events.publish_many(&prices(4, 1), None).await.unwrap();
        let want = if start_id == "$" { vec![4] } else { vec![2, 3, 4] };
        got.extend(drain(&mut sub, want.len()).await);
        // Never the acknowledged 0 and 1, even with start id 0.
        assert_eq!(got, want, "start id {start_id}");
        assert_eq!(sub.stats().group_recreations, 1);
        command(&events, &["DEL", PRICE_UPDATES]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn give_up_after_returns_the_last_error_once_the_outage_lasted_that_long() {
    let mut server = RedisServer::start();
    let events = open(&server).await;
    let give_up = Duration::from_millis(600);
    let mut sub = Subscription::new(
        events.clone(),
        vec![PRICE_UPDATES.into()],
        "g",
        "c",
        SubscriptionOptions {
            give_up_after: Some(give_up),
            ..options("$")
        },
    )
    .unwrap();
    assert!(sub.next_batch().await.unwrap().is_empty());
    server.stop();
    let started = Instant::now();
    let err = loop {
        match sub.next_batch().await {
            Ok(batch) => assert!(batch.is_empty()),
            Err(e) => break e,
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never gave up");
    };
    assert!(started.elapsed() >= give_up, "gave up after {:?}", started.elapsed());
    assert!(err.is_retryable(), "the outage's own error: {err:?}");
    assert_eq!(sub.state(), SubscriptionState::Stopped);
}
