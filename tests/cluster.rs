//! The same caches and streams on a Redis Cluster (3 primaries + 3 replicas started here):
//! reads split per slot, batched writes grouped per slot, streams and groups unchanged, and a
//! SIGKILLed primary followed without a manual step. One cluster per test (a few seconds).
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::events::PRICE_UPDATES;
use solcache::{
    Error, EventStream, PoolConfig, PriceCache, PriceData, PriceUpdate, RedisPool, Subscription, SubscriptionOptions,
    TradingEvent,
};
use support::topologies::{raw_command, watch_promotion, RedisCluster, NODE_TIMEOUT_MS};

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

fn event(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

const TOKENS: [&str; 8] = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_streams_and_groups_work_unchanged_on_a_cluster() {
    let cluster = RedisCluster::start();
    let pool = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    assert_eq!(pool.topology(), "cluster");
    assert!(pool.endpoint().is_none(), "no single server: direct reads stay off");

    // The keys spread over all three primaries, so a batch spans slots and nodes.
    let owners: std::collections::HashSet<usize> = TOKENS
        .iter()
        .map(|t| cluster.primary_of(&format!("price:{t}")))
        .collect();
    assert_eq!(owners.len(), 3, "the test tokens cover every primary");

    let cache = PriceCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "1.5")).collect();
    cache.set_many(&batch).await.unwrap();
    let mut asked: Vec<&str> = TOKENS.iter().rev().copied().collect();
    asked.push("NOPE");
    asked.push("SOL");
    let got = cache.get_many(&asked, None).await.unwrap();
    let mut want: Vec<Option<PriceData>> = batch.iter().rev().cloned().map(Some).collect();
    want.push(None);
    want.push(Some(batch[0].clone()));
    assert_eq!(got, want, "MGET split per slot and put back in request order");
    for t in TOKENS {
        // Each key lives on the primary that owns its slot, written with its TTL.
        let owner = cluster.nodes[cluster.primary_of(&format!("price:{t}"))].port;
        let ttl: i64 = raw_command(owner, &["PTTL", &format!("price:{t}")])
            .trim()
            .parse()
            .unwrap();
        assert!(ttl > 0 && ttl <= 2000, "{t}: {ttl}");
    }
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(batch[0].clone()));

    // Streams: publish_many in several pipelines, ids in order; a group reads and acks.
    let events = EventStream::new(pool.clone());
    let published: Vec<TradingEvent> = (0..300).map(event).collect();
    let ids = events.publish_many(&published, None).await.unwrap();
    assert_eq!(ids.len(), 300);
    let parsed: Vec<(u64, u64)> = ids
        .iter()
        .map(|id| {
            let (ms, seq) = id.split_once('-').unwrap();
            (ms.parse().unwrap(), seq.parse().unwrap())
        })
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] < w[1]), "ids in publish order");
    let options = SubscriptionOptions {
        block: Duration::from_millis(50),
        start_id: "0".into(),
        ..SubscriptionOptions::default()
    };
    // A second stream in another slot: one group reads both (the read is split per slot).
    let other = "stream:trade-events";
    let other_ids = events.publish_many(&published[..50], Some(other)).await.unwrap();
    let streams = vec![PRICE_UPDATES.to_owned(), other.to_owned()];
    let mut sub = Subscription::new(events.clone(), streams, "g", "c", options).unwrap();
    let (mut seen, mut seen_other) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() + seen_other.len() < 350 && Instant::now() < deadline {
        for e in sub.next_batch().await.unwrap() {
            sub.ack_later(&e.stream, &e.id);
            if e.stream == other {
                seen_other.push(e.id);
            } else {
                seen.push(e.id);
            }
        }
    }
    sub.flush_acks().await.unwrap();
    assert_eq!(seen, ids, "every entry once, in order");
    assert_eq!(seen_other, other_ids, "the other stream's too");
    // Blocking on the split read: an entry published meanwhile on either stream arrives.
    let late = events.publish(&event(1000), Some(other)).await.unwrap();
    let batch = sub.next_batch().await.unwrap();
    assert_eq!(batch.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![late]);
    sub.ack_later(&batch[0].stream, &batch[0].id);
    sub.flush_acks().await.unwrap();
    let info = events.info(PRICE_UPDATES).await.unwrap();
    assert_eq!((info.length, info.groups[0].pending), (300, 0));

    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_after_its_replica_is_promoted() {
    let mut cluster = RedisCluster::start();
    let mut config = PoolConfig::new(cluster.url());
    config.response_timeout = Duration::from_millis(300);
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "1")).await.unwrap();

    let victim = cluster.primary_of("price:SOL");
    let writer = {
        let cache = cache.clone();
        tokio::spawn(async move {
            // 10 Hz writes and reads until 30 s passed or 2 s of successes followed the kill.
            let mut first_error: Option<Instant> = None;
            let mut recovered: Option<Instant> = None;
            let (mut ok_after, mut failed) = (0u32, 0u32);
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(30) && ok_after < 20 {
                n += 1;
                let round = Instant::now();
                let wrote = cache.set(&price("SOL", &n.to_string())).await;
                let read = cache.get("SOL", None).await;
                match (wrote, read) {
                    (Ok(()), Ok(Some(p))) if p.price == Decimal::from(n) => {
                        if first_error.is_some() {
                            recovered.get_or_insert_with(Instant::now);
                            ok_after += 1;
                        }
                    }
                    _ => {
                        failed += 1;
                        first_error.get_or_insert(round);
                        recovered = None;
                        ok_after = 0;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (first_error, recovered, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replicas: Vec<u16> = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .filter(|&p| cluster.raw(p, &["ROLE"]).starts_with("slave"))
        .collect();
    let killed = Instant::now();
    cluster.nodes[victim].stop(); // SIGKILL
    let promotion = watch_promotion(replicas, Duration::from_secs(30));
    let (first_error, recovered, failed) = writer.await.unwrap();
    let promoted = promotion.join().unwrap().expect("a replica was promoted");
    let first_error = first_error.expect("the kill was noticed");
    let recovered = recovered.expect("reads and writes came back with no manual step");
    let gap = recovered - first_error;
    println!(
        "cluster failover: gap {} ms (start of the first failed round to the first success), \
         kill to first success {} ms, kill to promotion {} ms, {failed} failed rounds, {} fresh \
         cluster clients, cluster-node-timeout {NODE_TIMEOUT_MS} ms",
        gap.as_millis(),
        (recovered - killed).as_millis(),
        (promoted - killed).as_millis(),
        pool.cluster_rebuilds()
    );
    assert!(pool.cluster_rebuilds() >= 1, "a fresh client read the new slot map");
    let health = pool.health().await;
    assert_eq!(health.topology, "cluster");
    assert_eq!(health.failovers_followed, pool.cluster_rebuilds());
    cluster.wait_ok();
    assert_ne!(cluster.primary_of("price:SOL"), victim, "a replica took over the slot");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_slot_under_load_is_followed_with_no_error_reaching_the_caller() {
    let cluster = RedisCluster::start();
    let pool = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "2")).collect();
    cache.set_many(&batch).await.unwrap();

    let key = "price:SOL";
    let src = cluster.primary_of(key);
    let dst = TOKENS
        .iter()
        .map(|t| cluster.primary_of(&format!("price:{t}")))
        .find(|&p| p != src)
        .unwrap();
    let (src_port, dst_port) = (cluster.nodes[src].port, cluster.nodes[dst].port);
    let id = |port: u16| raw_command(port, &["CLUSTER", "MYID"]).trim().to_owned();
    let (src_id, dst_id) = (id(src_port), id(dst_port));
    let slot = raw_command(src_port, &["CLUSTER", "KEYSLOT", key]).trim().to_owned();

    let load = {
        let (cache, batch) = (cache.clone(), batch.clone());
        tokio::spawn(async move {
            let (mut rounds, mut errors) = (0u32, Vec::new());
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                rounds += 1;
                if let Err(e) = cache.set_many(&batch).await {
                    errors.push(e.to_string());
                }
                match cache.get_many(&TOKENS, None).await {
                    Ok(got) if got.iter().all(Option::is_some) => {}
                    other => errors.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (rounds, errors)
        })
    };
    // The steps of `redis-cli --cluster reshard` for one slot, with time under load between
    // them: IMPORTING / MIGRATING (ASK redirections), the key moved, then the slot (MOVED).
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw_command(dst_port, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]);
    raw_command(src_port, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dst_port_text = dst_port.to_string();
    raw_command(
        src_port,
        &["MIGRATE", "127.0.0.1", &dst_port_text, "", "0", "5000", "KEYS", key],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for node in [dst_port, src_port] {
        raw_command(node, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
    }
    let (rounds, errors) = load.await.unwrap();
    assert!(
        errors.is_empty(),
        "{} of {rounds} rounds failed: {errors:?}",
        errors.len()
    );
    cluster.wait_ok();
    assert_eq!(cluster.primary_of(key), dst, "the slot moved");
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(batch[0].clone()));
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_reaches_every_node_and_a_wrong_password_is_refused() {
    let cluster = RedisCluster::start_with_password(Some("admin-pw"));
    for node in &cluster.nodes {
        cluster.raw(
            node.port,
            &["ACL", "SETUSER", "trader", "on", ">trader-pw", "~*", "&*", "+@all"],
        );
    }
    let hosts = cluster.url().replace("redis+cluster://", "");
    let pool = RedisPool::connect(PoolConfig::new(format!("redis+cluster://trader:trader-pw@{hosts}")))
        .await
        .unwrap();
    assert!(pool.redacted_url().starts_with("redis+cluster://trader:***@"));
    let cache = PriceCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "3")).collect();
    cache.set_many(&batch).await.unwrap();
    assert_eq!(
        cache.get_many(&TOKENS, None).await.unwrap(),
        batch.into_iter().map(Some).collect::<Vec<_>>()
    );
    pool.close().await;
    let err = RedisPool::connect(PoolConfig::new(format!("redis+cluster://trader:wrong@{hosts}")))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong"), "{err}");
    assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
}
