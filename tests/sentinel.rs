//! A Sentinel-managed primary (primary + replica + 3 sentinels started here): the pool finds
//! the primary through the sentinels and follows a failover; what asynchronous replication
//! loses is counted and printed.
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{
    EventStream, PoolConfig, PriceCache, PriceData, PriceUpdate, RedisPool, Subscription, SubscriptionOptions,
    SyncPool, TradingEvent,
};
use support::topologies::{raw_command, watch_promotion, SentinelGroup, DOWN_AFTER_MS};

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

fn event(n: u64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_the_primary_the_sentinels_promote() {
    let mut group = SentinelGroup::start();
    let mut config = PoolConfig::new(group.url());
    config.response_timeout = Duration::from_millis(300);
    let pool = RedisPool::connect(config.clone()).await.unwrap();
    assert_eq!(pool.topology(), "sentinel");
    assert_eq!(pool.primary(), Some(format!("127.0.0.1:{}", group.primary.port)));
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "1")).await.unwrap();
    // The blocking API reaches the same primary.
    let sync = SyncPool::connect(config).unwrap();
    let sync_cache: solcache::SyncCache<PriceData> = solcache::SyncCache::new(sync.clone());
    assert_eq!(sync_cache.get("SOL", None).unwrap().unwrap().price, Decimal::from(1));

    let events = EventStream::new(pool.clone());
    let options = SubscriptionOptions {
        block: Duration::from_millis(100),
        start_id: "0".into(),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        ..SubscriptionOptions::default()
    };
    let stream = "stream:failover";
    let mut sub = Subscription::new(events.clone(), vec![stream.into()], "g", "c", options).unwrap();

    // 10 Hz: one event published and one price written per round; the consumer reads along.
    let writer = {
        let (cache, events) = (cache.clone(), events.clone());
        tokio::spawn(async move {
            let (mut acked, mut first_error, mut recovered, mut ok_after) = (Vec::new(), None, None, 0u32);
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(40) && ok_after < 20 {
                n += 1;
                let round = Instant::now();
                let published = events.publish(&event(n), Some(stream)).await;
                let wrote = cache.set(&price("SOL", &n.to_string())).await;
                match (published, wrote) {
                    (Ok(_), Ok(())) => {
                        acked.push(n);
                        if first_error.is_some() {
                            recovered.get_or_insert_with(Instant::now);
                            ok_after += 1;
                        }
                    }
                    _ => {
                        first_error.get_or_insert(round);
                        recovered = None;
                        ok_after = 0;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (acked, first_error, recovered)
        })
    };
    let mut consumed = Vec::new();
    let killed_at = Instant::now() + Duration::from_millis(800);
    let mut promotion = None;
    while !writer.is_finished() {
        if promotion.is_none() && Instant::now() >= killed_at {
            let killed = Instant::now();
            group.primary.stop(); // SIGKILL
            promotion = Some((
                killed,
                watch_promotion(vec![group.replica.port], Duration::from_secs(40)),
            ));
        }
        if let Ok(batch) = sub.next_batch().await {
            for e in batch {
                sub.ack_later(&e.stream, &e.id);
                if let Ok(TradingEvent::PriceUpdate(p)) = e.event {
                    consumed.push(u64::try_from(p.price).unwrap());
                }
            }
        }
    }
    let (acked, first_error, recovered) = writer.await.unwrap();
    let recovered = recovered.expect("writes came back with no manual step");
    let gap = recovered - first_error.expect("the kill was noticed");
    let (killed, promotion) = promotion.expect("the primary was killed");
    let promoted_at = promotion.join().unwrap().expect("the replica was promoted");
    // Drain what the new primary holds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let batch = sub.next_batch().await.unwrap_or_default();
        if batch.is_empty() && consumed.last() == acked.last() {
            break;
        }
        for e in batch {
            sub.ack_later(&e.stream, &e.id);
            if let Ok(TradingEvent::PriceUpdate(p)) = e.event {
                consumed.push(u64::try_from(p.price).unwrap());
            }
        }
    }
    sub.flush_acks().await.unwrap();
    let promoted = group.named_primary_port();
    assert_eq!(promoted, group.replica.port, "the replica was promoted");
    assert_eq!(
        pool.primary(),
        Some(format!("127.0.0.1:{promoted}")),
        "the pool follows it"
    );
    assert_eq!(
        pool.switches_seen(),
        1,
        "the sentinel subscription announced the switch"
    );
    let health = pool.health().await;
    assert_eq!(
        (health.switches_seen, health.promotions_taken),
        (1, pool.promotions_taken()),
        "the switch watcher's counters reach the health report"
    );
    let stored: u64 = raw_command(promoted, &["XLEN", stream]).trim().parse().unwrap();
    let lost: Vec<u64> = acked.iter().copied().filter(|n| !consumed.contains(n)).collect();
    println!(
        "sentinel failover: gap {} ms (start of the first failed round to the first success), \
         kill to first success {} ms, kill to promotion {} ms, down-after-milliseconds \
         {DOWN_AFTER_MS} ms; {} acknowledged publishes, {} on the new primary, {} consumed, lost \
         (acked, never consumed): {lost:?}; connections to the promoted replica before the \
         sentinels named it: {}",
        gap.as_millis(),
        (recovered - killed).as_millis(),
        (promoted_at - killed).as_millis(),
        acked.len(),
        stored,
        consumed.len(),
        pool.promotions_taken()
    );
    // Only writes acknowledged by the old primary before it died can be lost (asynchronous
    // replication); everything written to the new one is consumed.
    let last_lost = lost.last().copied().unwrap_or(0);
    let after_failover: Vec<u64> = acked.iter().copied().filter(|&n| n > last_lost).collect();
    assert!(after_failover.len() >= 20);
    assert!(
        after_failover.iter().all(|n| consumed.contains(n)),
        "{after_failover:?} {consumed:?}"
    );
    assert_eq!(
        sync_cache.get("SOL", None).unwrap().unwrap().price,
        Decimal::from(*acked.last().unwrap()),
        "the blocking pool follows too"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_that_stays_up_is_left_for_the_new_one() {
    let group = SentinelGroup::start();
    let pool = RedisPool::connect(PoolConfig::new(group.url())).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "1")).await.unwrap();
    let old = group.primary.port;
    // A graceful failover: the old primary stays up and turns replica (it answers READONLY).
    raw_command(group.sentinels[0].port, &["SENTINEL", "FAILOVER", "mymaster"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 1u64;
    loop {
        assert!(Instant::now() < deadline, "the pool never reached the new primary");
        n += 1;
        let wrote = cache.set(&price("SOL", &n.to_string())).await;
        let new = group.named_primary_port();
        if wrote.is_ok() && new != old && pool.primary() == Some(format!("127.0.0.1:{new}")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sentinels turn the old primary into a replica shortly after the promotion.
    while !raw_command(old, &["ROLE"]).starts_with("slave") {
        assert!(Instant::now() < deadline, "the old primary never became a replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cache
        .set(&price("SOL", "2"))
        .await
        .expect("writes reach the new primary");
    // Reads come from the new primary: a value written there directly is what the pool reads.
    let direct = price("SOL", "424242");
    raw_command(group.named_primary_port(), &["SET", "price:SOL", &direct.to_json()]);
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(direct));
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_announced_by_a_sentinel_drops_the_connections_to_the_old_primary() {
    let group = SentinelGroup::start();
    let mut config = PoolConfig::new(group.url());
    // No sentinel poll during the test: only the subscription can tell the pool.
    config.health_check_interval = Duration::from_secs(3600);
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "1")).await.unwrap();
    let old = format!("127.0.0.1:{}", group.primary.port);
    assert_eq!(pool.primary(), Some(old.clone()));
    // Let the task subscribe before the failover (it subscribes right after connect).
    tokio::time::sleep(Duration::from_millis(200)).await;
    raw_command(group.sentinels[0].port, &["SENTINEL", "FAILOVER", "mymaster"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.switches_seen() == 0 {
        assert!(Instant::now() < deadline, "no +switch-master reached the pool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reads only (a demoted primary serves them without an error): the next one opens a new
    // connection, which reaches the new primary, because the announcement dropped the old ones.
    cache.get("SOL", None).await.unwrap();
    let new = format!("127.0.0.1:{}", group.named_primary_port());
    assert_ne!(new, old);
    assert_eq!(pool.primary(), Some(new));
    assert_eq!(pool.switch_watch_errors(), 0);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_watchers_subscriptions_and_their_losses_show_in_health() {
    let mut group = SentinelGroup::start();
    let pool = RedisPool::connect(PoolConfig::new(group.url())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut health = pool.health().await;
    while health.switch_watches_up < 3 {
        assert!(Instant::now() < deadline, "not every sentinel subscribed: {health:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = pool.health().await;
    }
    assert_eq!(
        (health.topology, health.switch_watch_errors, health.switches_seen),
        ("sentinel", 0, 0)
    );

    // A sentinel dies: its subscription is lost, counted, and retried under backoff.
    drop(group.sentinels.pop()); // SIGKILL
    while health.switch_watches_up != 2 || health.switch_watch_errors == 0 {
        assert!(
            Instant::now() < deadline,
            "the lost subscription was not counted: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = pool.health().await;
    }
    let errors = health.switch_watch_errors;
    while pool.switch_watch_errors() < errors + 2 {
        assert!(Instant::now() < deadline, "the dead sentinel is not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pool.health().await.reachable,
        "the other sentinels still find the primary"
    );

    // A failover the two remaining sentinels announce is seen and shown.
    raw_command(group.sentinels[0].port, &["SENTINEL", "FAILOVER", "mymaster"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while health.switches_seen == 0 {
        assert!(
            Instant::now() < deadline,
            "no +switch-master reached the pool: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = pool.health().await;
    }
    assert_eq!(health.switches_seen, pool.switches_seen());
    pool.close().await;

    // One server: the counters exist and stay 0.
    let server = support::RedisServer::start();
    let pool = RedisPool::connect(PoolConfig::new(server.url())).await.unwrap();
    let health = pool.health().await;
    assert_eq!(
        (
            health.switch_watches_up,
            health.switch_watch_errors,
            health.switches_seen,
            health.promotions_taken
        ),
        (0, 0, 0, 0)
    );
    pool.close().await;
}
