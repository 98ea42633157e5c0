//! The same caches and streams on a Redis Cluster (3 primaries + 3 replicas started here):
//! reads split per slot, batched writes grouped per slot, streams and groups unchanged, a slot
//! moved under load, ACL users, the tagged key layout. One cluster per test (a few seconds).
//! A killed primary: `cluster_failover.rs`.
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::events::PRICE_UPDATES;
use solcache::keys::KeyLayout;
use solcache::{
    Error, EventStream, PoolConfig, PoolState, PoolStateCache, PriceCache, PriceData, PriceUpdate, RedisPool,
    Subscription, SubscriptionOptions, TradingEvent,
};
use support::topologies::{raw_command, RedisCluster};

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

    // An undecodable entry: XADD to the dead-letter stream and XACK of the source, two slots
    // in one pipeline, whose replies (an id, a count) are both read.
    let dead_letter = "stream:dead-letter";
    assert_ne!(cluster.primary_of(dead_letter), cluster.primary_of(other), "two nodes");
    let bad_port = cluster.nodes[cluster.primary_of(other)].port;
    let bad_id = raw_command(bad_port, &["XADD", other, "*", "type", "liquidation", "data", "{}"]);
    let acked_before = sub.stats().acked;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sub.stats().dead_lettered == 0 && Instant::now() < deadline {
        assert!(sub.next_batch().await.unwrap().is_empty(), "nothing decodable arrived");
    }
    assert_eq!((sub.stats().bad_entries, sub.stats().dead_lettered), (1, 1));
    assert_eq!(
        sub.stats().acked,
        acked_before + 1,
        "the XACK's count, not the XADD's id"
    );
    let dead_port = cluster.nodes[cluster.primary_of(dead_letter)].port;
    let dead = raw_command(dead_port, &["XRANGE", dead_letter, "-", "+"]);
    assert!(
        dead.contains(bad_id.trim()) && dead.contains("unknown event type"),
        "{dead}"
    );
    assert_eq!(events.info(other).await.unwrap().groups[0].pending, 0);

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
    // Resharded while the load runs: ASK redirections, then MOVED.
    tokio::task::block_in_place(|| cluster.reshard_slot_of(key, src, dst, [300, 300, 300]));
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
    assert_eq!(err.response_code(), Some("WRONGPASS"), "{err:?}");
}

/// `MGET` calls each node served since its stats were reset (`INFO commandstats`).
fn mget_calls(cluster: &RedisCluster) -> Vec<u64> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            let stats = cluster.raw(n.port, &["INFO", "commandstats"]);
            stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_mget:calls="))
                .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
        })
        .collect()
}

fn reset_stats(cluster: &RedisCluster) {
    for n in &cluster.nodes {
        cluster.raw(n.port, &["CONFIG", "RESETSTAT"]);
    }
}

const POOLS: [&str; 3] = [
    "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
    "So11111111111111111111111111111111111111112",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
];

fn pool_state(address: &str) -> PoolState {
    let d = Decimal::from;
    PoolState::new(address, d(1000), d(5), d(935), d(10), Utc::now()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tagged_key_layout_keeps_each_family_in_one_slot_and_reads_it_with_one_mget() {
    let cluster = RedisCluster::start();
    let mut config = PoolConfig::new(cluster.url());
    config.key_layout = KeyLayout::Tagged;
    let tagged = RedisPool::connect(config).await.unwrap();
    let spread = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    let (prices, pools) = (PriceCache::new(tagged.clone()), PoolStateCache::new(tagged.clone()));
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "4")).collect();
    prices.set_many(&batch).await.unwrap();
    let states: Vec<PoolState> = POOLS.iter().map(|a| pool_state(a)).collect();
    pools.set_many(&states).await.unwrap();

    // Every key of a family hashes to one slot, and lives on that slot's primary.
    let slot_of = |key: &str| cluster.raw(cluster.nodes[0].port, &["CLUSTER", "KEYSLOT", key]);
    for (family, keys) in [
        (
            "price",
            TOKENS
                .iter()
                .map(|t| format!("price:{{prices}}:{t}"))
                .collect::<Vec<_>>(),
        ),
        ("pool", POOLS.iter().map(|a| format!("pool:{{pools}}:{a}")).collect()),
    ] {
        let slots: std::collections::HashSet<String> = keys.iter().map(|k| slot_of(k)).collect();
        assert_eq!(slots.len(), 1, "{family}: {slots:?}");
        let owner = cluster.nodes[cluster.primary_of(&keys[0])].port;
        for key in &keys {
            assert_eq!(cluster.raw(owner, &["EXISTS", key]).trim(), "1", "{key}");
        }
    }
    // The default layout names other keys: it does not see these.
    assert_eq!(PriceCache::new(spread.clone()).get("SOL", None).await.unwrap(), None);

    // get_many of the whole family: one MGET on one node (spread: one per primary).
    reset_stats(&cluster);
    let got = prices.get_many(&TOKENS, None).await.unwrap();
    assert_eq!(got, batch.iter().cloned().map(Some).collect::<Vec<_>>());
    let calls = mget_calls(&cluster);
    assert_eq!(calls.iter().sum::<u64>(), 1, "{calls:?}");
    let owner = cluster.primary_of("price:{prices}:SOL");
    assert_eq!(calls[owner], 1, "{calls:?}");
    assert_eq!(
        pools.get_many(&POOLS, None).await.unwrap(),
        states.into_iter().map(Some).collect::<Vec<_>>()
    );

    PriceCache::new(spread.clone()).set_many(&batch).await.unwrap();
    reset_stats(&cluster);
    PriceCache::new(spread.clone()).get_many(&TOKENS, None).await.unwrap();
    let calls = mget_calls(&cluster);
    assert_eq!(
        calls.iter().filter(|&&c| c > 0).count(),
        3,
        "spread: every primary, {calls:?}"
    );
    tagged.close().await;
    spread.close().await;
}
