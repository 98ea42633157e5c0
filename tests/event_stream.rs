//! Event streams against a real redis-server: trimming, groups, redelivery, dead-letter.
mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::events::{DEAD_LETTER, PRICE_UPDATES};
use solcache::{EventStream, PoolConfig, PriceUpdate, RedisPool, Subscription, SubscriptionOptions, TradingEvent};
use support::{raw, RedisServer};

fn price(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

async fn open(server: &RedisServer) -> EventStream {
    EventStream::new(RedisPool::connect(PoolConfig::new(server.url())).await.unwrap())
}

fn fast_claims() -> SubscriptionOptions {
    SubscriptionOptions {
        block: Duration::from_millis(50),
        claim_min_idle: Duration::from_millis(150),
        claim_interval: Duration::from_millis(50),
        max_deliveries: 3,
        ..SubscriptionOptions::default()
    }
}

/// Read until `want` entries arrived or 5 s passed, acknowledging each batch.
async fn drain(sub: &mut Subscription, want: usize) -> Vec<solcache::StreamEntry> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < want && std::time::Instant::now() < deadline {
        for e in sub.next_batch().await.unwrap() {
            sub.ack_later(&e.stream, &e.id);
            got.push(e);
        }
    }
    sub.flush_acks().await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approximate_trimming_bounds_length_and_memory() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let mut con = raw(&server).await;
    let batch: Vec<_> = (0..1000).map(price).collect();
    let mut usage = Vec::new();
    for round in 0..30 {
        events.publish_many(&batch, None).await.unwrap();
        if round == 14 || round == 29 {
            let len: u64 = redis::cmd("XLEN")
                .arg(PRICE_UPDATES)
                .query_async(&mut con)
                .await
                .unwrap();
            assert!(
                (10_000..=10_100).contains(&len),
                "XLEN {len} after {} entries",
                (round + 1) * 1000
            );
            let bytes: u64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(PRICE_UPDATES)
                .query_async(&mut con)
                .await
                .unwrap();
            usage.push(bytes);
        }
    }
    assert!(
        usage[1] as f64 <= usage[0] as f64 * 1.2,
        "stream memory grew: {usage:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_routes_and_read_resumes() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let ids = events
        .publish_many(&[price(1), price(2), price(3)], None)
        .await
        .unwrap();
    let first = events.read(PRICE_UPDATES, "0", 2, Duration::ZERO).await.unwrap();
    assert_eq!(first.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids[..2]);
    let rest = events
        .read(PRICE_UPDATES, &first[1].id, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    match &rest[0].event {
        Ok(TradingEvent::PriceUpdate(p)) => assert_eq!(p.price, Decimal::from(3)),
        other => panic!("expected the third price update, got {other:?}"),
    }
    let other = events.publish(&price(4), Some("stream:custom")).await.unwrap();
    assert_eq!(
        events.read("stream:custom", "0", 10, Duration::ZERO).await.unwrap()[0].id,
        other
    );
    let nothing = events
        .read(PRICE_UPDATES, "$", 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(nothing.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_get_everything_and_two_consumers_split_it() {
    let server = RedisServer::start();
    let events = open(&server).await;
    for g in ["g1", "g2"] {
        assert!(events.ensure_group(PRICE_UPDATES, g, "$").await.unwrap());
        assert!(!events.ensure_group(PRICE_UPDATES, g, "$").await.unwrap());
    }
    let ids: Vec<String> = events
        .publish_many(&(0..200).map(price).collect::<Vec<_>>(), None)
        .await
        .unwrap();
    let opts = SubscriptionOptions {
        count: 7,
        ..fast_claims()
    };
    let mut g2 = Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g1", "solo", opts.clone()).unwrap();
    let solo: Vec<_> = drain(&mut g2, 200).await.into_iter().map(|e| e.id).collect();
    assert_eq!(solo, ids, "one consumer gets everything, in order");
    assert_eq!(g2.stats().acked, 200, "{:?}", g2.stats());

    let mut a = Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g2", "a", opts.clone()).unwrap();
    let mut b = Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g2", "b", opts).unwrap();
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    while seen_a.len() + seen_b.len() < 200 {
        let (ba, bb) = tokio::join!(a.next_batch(), b.next_batch());
        for e in ba.unwrap() {
            a.ack_later(&e.stream, &e.id);
            seen_a.push(e.id);
        }
        for e in bb.unwrap() {
            b.ack_later(&e.stream, &e.id);
            seen_b.push(e.id);
        }
    }
    let (sa, sb): (HashSet<_>, HashSet<_>) = (seen_a.iter().collect(), seen_b.iter().collect());
    assert!(sa.is_disjoint(&sb), "no entry goes to both consumers");
    assert_eq!(sa.len() + sb.len(), 200, "no gaps");
    assert!(!seen_a.is_empty() && !seen_b.is_empty(), "both consumers got work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_consumers_batch_is_redelivered_and_poison_is_dead_lettered() {
    let server = RedisServer::start();
    let events = open(&server).await;
    events.ensure_group(PRICE_UPDATES, "g", "$").await.unwrap();
    let ids = events
        .publish_many(&(0..10).map(price).collect::<Vec<_>>(), None)
        .await
        .unwrap();

    // The first consumer takes the whole batch and "crashes": it never acknowledges.
    let mut crashed = Subscription::new(
        events.clone(),
        vec![PRICE_UPDATES.into()],
        "g",
        "crashed",
        fast_claims(),
    )
    .unwrap();
    assert_eq!(crashed.next_batch().await.unwrap().len(), 10);
    drop(crashed);

    // A second consumer reclaims all ten after claim_min_idle; the poison one (id[3]) is never
    // acknowledged and ends in the dead-letter stream after max_deliveries.
    let mut rescuer = Subscription::new(
        events.clone(),
        vec![PRICE_UPDATES.into()],
        "g",
        "rescuer",
        fast_claims(),
    )
    .unwrap();
    let mut handled = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rescuer.stats().dead_lettered == 0 && std::time::Instant::now() < deadline {
        for e in rescuer.next_batch().await.unwrap() {
            if e.id != ids[3] {
                assert!(e.deliveries >= 2, "reclaimed entries count their deliveries: {e:?}");
                rescuer.ack_later(&e.stream, &e.id);
                handled.insert(e.id);
            }
        }
    }
    rescuer.flush_acks().await.unwrap();
    assert_eq!(handled.len(), 9, "every good entry was redelivered");
    assert_eq!(rescuer.stats().dead_lettered, 1);
    let mut con = raw(&server).await;
    let dead: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(DEAD_LETTER)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let fields: std::collections::HashMap<_, _> = dead[0].1.iter().cloned().collect();
    assert_eq!(fields["source_id"], ids[3]);
    assert_eq!(fields["source_stream"], PRICE_UPDATES);
    assert!(fields["reason"].contains("max_deliveries=3"), "{fields:?}");
    assert_eq!(fields["type"], "price_update");
    // Nothing is left pending: every entry was acknowledged or dead-lettered.
    let info = events.info(PRICE_UPDATES).await.unwrap();
    assert_eq!(info.groups[0].pending, 0, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_dead_lettered_and_the_loop_goes_on() {
    let server = RedisServer::start();
    let events = open(&server).await;
    events.ensure_group(PRICE_UPDATES, "g", "$").await.unwrap();
    let mut con = raw(&server).await;
    for fields in [
        vec![("data", "{}")],
        vec![("type", "price_update"), ("data", "{not json")],
        vec![("type", "liquidation"), ("data", "{}")],
    ] {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(PRICE_UPDATES).arg("*");
        for (k, v) in fields {
            cmd.arg(k).arg(v);
        }
        cmd.query_async::<String>(&mut con).await.unwrap();
    }
    let good = events.publish(&price(7), None).await.unwrap();
    let mut sub = Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g", "c", fast_claims()).unwrap();
    let got = drain(&mut sub, 1).await;
    assert_eq!(got.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![good]);
    assert_eq!(sub.stats().bad_entries, 3);
    assert_eq!(sub.stats().dead_lettered, 3);
    let reasons: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(DEAD_LETTER)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .unwrap();
    let reasons: Vec<String> = reasons
        .into_iter()
        .map(|(_, f)| f.into_iter().find(|(k, _)| k == "reason").unwrap().1)
        .collect();
    assert!(reasons[0].contains("no type field"), "{reasons:?}");
    assert!(reasons[1].contains("bad price_update data"), "{reasons:?}");
    assert!(reasons[2].contains("unknown event type"), "{reasons:?}");
    assert_eq!(events.info(PRICE_UPDATES).await.unwrap().groups[0].pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_rereads_its_own_pending_entries_first() {
    let server = RedisServer::start();
    let events = open(&server).await;
    events.ensure_group(PRICE_UPDATES, "g", "$").await.unwrap();
    events
        .publish_many(&(0..5).map(price).collect::<Vec<_>>(), None)
        .await
        .unwrap();
    let mut first = Subscription::new(
        events.clone(),
        vec![PRICE_UPDATES.into()],
        "g",
        "same",
        SubscriptionOptions::default(),
    )
    .unwrap();
    assert_eq!(first.next_batch().await.unwrap().len(), 5);
    drop(first); // crashed before acknowledging
    let mut again = Subscription::new(
        events.clone(),
        vec![PRICE_UPDATES.into()],
        "g",
        "same",
        SubscriptionOptions::default(),
    )
    .unwrap();
    let batch = again.next_batch().await.unwrap();
    assert_eq!(batch.len(), 5, "own pending entries come back at once, no claim delay");
    assert!(batch.iter().all(|e| e.deliveries == 2), "{batch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_publish_many_keeps_order_across_its_chunks() {
    let server = RedisServer::start();
    let events = open(&server).await;
    let n = solcache::event_stream::PUBLISH_CHUNK * 7 + 5;
    let batch: Vec<_> = (0..n as i64).map(price).collect();
    let ids = events.publish_many(&batch, None).await.unwrap();
    assert_eq!(ids.len(), n);
    let mut read = Vec::new();
    let mut last = "0".to_string();
    while read.len() < n {
        let page = events.read(PRICE_UPDATES, &last, 1000, Duration::ZERO).await.unwrap();
        assert!(!page.is_empty(), "stream ended after {} of {n}", read.len());
        last = page.last().unwrap().id.clone();
        read.extend(page);
    }
    // Ids come back in the order of the events, and the stream holds them in that order.
    assert_eq!(read.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    for (i, entry) in read.iter().enumerate() {
        match entry.event.as_ref().unwrap() {
            TradingEvent::PriceUpdate(p) => assert_eq!(p.price, Decimal::from(i as i64)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
