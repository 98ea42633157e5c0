//! Direct cache reads on a Redis Cluster (3 primaries + 3 replicas started here): `get` and
//! `get_many` over a socket per primary, routed by slot, correct across slots, while a slot
//! moves and after a primary is killed; the cluster client answers whatever they cannot. The
//! route a loop's own connection takes (`RedisPool::cluster_primary_of`) is checked here too.
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::keys::KeyLayout;
use solcache::{PoolConfig, PriceCache, PriceData, RedisPool};
use support::topologies::{raw_command, watch_promotion, RedisCluster};

const TOKENS: [&str; 8] = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF"];

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

/// `CLIENT LIST` lines of clients named `solcache-direct` on the node at `port`.
fn direct_clients(cluster: &RedisCluster, port: u16) -> Vec<String> {
    cluster
        .raw(port, &["CLIENT", "LIST", "TYPE", "normal"])
        .lines()
        .filter(|l| l.contains(" name=solcache-direct "))
        .map(str::to_owned)
        .collect()
}

/// Ports of the nodes that are primaries right now.
fn primaries(cluster: &RedisCluster) -> Vec<u16> {
    cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| n.port)
        .filter(|&p| cluster.raw(p, &["ROLE"]).starts_with("master"))
        .collect()
}

/// Read `get` until `n` reads in a row were direct (the table caught up), within 10 s.
async fn until_direct_again(pool: &RedisPool, cache: &PriceCache, token: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut streak = 0;
    while streak < n {
        assert!(
            Instant::now() < deadline,
            "reads never went direct again: {:?}",
            pool.cluster_direct_counts()
        );
        let before = pool.cluster_direct_counts();
        cache.get(token, None).await.unwrap();
        streak = if pool.cluster_direct_counts().direct > before.direct {
            streak + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_across_slots_go_direct_to_each_primary_in_key_order() {
    let cluster = RedisCluster::start();
    let pool = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "1.5")).collect();
    cache.set_many(&batch).await.unwrap();
    let owners: std::collections::HashSet<usize> = TOKENS
        .iter()
        .map(|t| cluster.primary_of(&format!("price:{t}")))
        .collect();
    assert_eq!(owners.len(), 3, "the test tokens cover every primary");
    let before = pool.cluster_direct_counts();
    assert_eq!(
        (before.direct, before.sockets),
        (0, 0),
        "sockets open on the first read"
    );

    for (token, want) in TOKENS.iter().zip(&batch) {
        assert_eq!(cache.get(token, None).await.unwrap().as_ref(), Some(want), "{token}");
    }
    let mut asked: Vec<&str> = TOKENS.iter().rev().copied().collect();
    asked.extend(["NOPE", "SOL", "BTC"]);
    let got = cache.get_many(&asked, None).await.unwrap();
    let mut want: Vec<Option<PriceData>> = batch.iter().rev().cloned().map(Some).collect();
    want.extend([None, Some(batch[0].clone()), Some(batch[1].clone())]);
    assert_eq!(got, want, "grouped per primary and per slot, put back in key order");
    // One slot only (the tagged layout's whole family): the caller's MGET as it is.
    let mut config = PoolConfig::new(cluster.url());
    config.key_layout = KeyLayout::Tagged;
    let tagged = RedisPool::connect(config).await.unwrap();
    let tagged_cache = PriceCache::new(tagged.clone());
    tagged_cache.set_many(&batch).await.unwrap();
    assert_eq!(
        tagged_cache.get_many(&TOKENS, None).await.unwrap(),
        batch.iter().cloned().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(tagged.cluster_direct_counts().direct, 1);

    let counts = pool.cluster_direct_counts();
    assert_eq!(counts.direct, TOKENS.len() as u64 + 1, "{counts:?}");
    assert_eq!(counts.fallbacks, 0, "{counts:?}");
    assert!(counts.sockets >= 3, "a socket per primary: {counts:?}");
    for port in primaries(&cluster) {
        let named = direct_clients(&cluster, port);
        assert!(!named.is_empty(), "{port}: no solcache-direct client");
        assert!(
            named
                .iter()
                .any(|l| l.contains(" cmd=get ") || l.contains(" cmd=mget ")),
            "{port}: {named:?}"
        );
    }
    pool.close().await;
    tagged.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_can_be_turned_off_and_then_take_the_cluster_client() {
    let cluster = RedisCluster::start();
    let config = PoolConfig {
        direct_reads: false,
        ..PoolConfig::new(cluster.url())
    };
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "2")).await.unwrap();
    assert!(cache.get("SOL", None).await.unwrap().is_some());
    assert_eq!(cache.get_many(&TOKENS, None).await.unwrap().len(), TOKENS.len());
    assert_eq!(pool.cluster_direct_counts(), Default::default());
    for port in primaries(&cluster) {
        assert!(direct_clients(&cluster, port).is_empty(), "{port}");
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_slot_is_read_through_the_cluster_client_then_direct_on_its_new_primary() {
    let cluster = RedisCluster::start();
    let pool = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "2")).collect();
    cache.set_many(&batch).await.unwrap();
    assert_eq!(cache.get_many(&TOKENS, None).await.unwrap().len(), TOKENS.len());

    let key = "price:SOL";
    let src = cluster.primary_of(key);
    let dst = TOKENS
        .iter()
        .map(|t| cluster.primary_of(&format!("price:{t}")))
        .find(|&p| p != src)
        .unwrap();
    let dst_port = cluster.nodes[dst].port;

    let load = {
        let (cache, batch) = (cache.clone(), batch.clone());
        tokio::spawn(async move {
            let (mut rounds, mut errors) = (0u32, Vec::new());
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(2) {
                rounds += 1;
                // Prices live 2 s: written again every round.
                if let Err(e) = cache.set_many(&batch).await {
                    errors.push(format!("set_many: {e}"));
                }
                match cache.get_many(&TOKENS, None).await {
                    Ok(got) if got == batch.iter().cloned().map(Some).collect::<Vec<_>>() => {}
                    other => errors.push(format!("get_many: {other:?}")),
                }
                match cache.get("SOL", None).await {
                    Ok(Some(p)) if p == batch[0] => {}
                    other => errors.push(format!("get: {other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (rounds, errors)
        })
    };
    // Resharded while the load runs: ASK redirections from the source, then MOVED.
    tokio::task::block_in_place(|| cluster.reshard_slot_of(key, src, dst, [200, 200, 300]));
    let (rounds, errors) = load.await.unwrap();
    assert!(
        errors.is_empty(),
        "{} of {rounds} rounds failed: {errors:?}",
        errors.len()
    );
    let counts = pool.cluster_direct_counts();
    assert!(
        counts.fallbacks > 0,
        "ASK / MOVED went through the cluster client: {counts:?}"
    );
    assert!(counts.refreshes >= 2, "the slot table was read again: {counts:?}");

    // The table names the new primary: reads of the moved key are direct again, there.
    cache.set_many(&batch).await.unwrap();
    let before = direct_clients(&cluster, dst_port).len();
    until_direct_again(&pool, &cache, "SOL", 5).await;
    cache.set_many(&batch).await.unwrap();
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(batch[0].clone()));
    assert!(direct_clients(&cluster, dst_port).len() >= before.max(1));
    let fallbacks = pool.cluster_direct_counts().fallbacks;
    assert_eq!(
        cache.get_many(&TOKENS, None).await.unwrap(),
        batch.iter().cloned().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.cluster_direct_counts().fallbacks,
        fallbacks,
        "get_many direct again"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_read_through_the_cluster_client_then_direct_on_its_replica() {
    let mut cluster = RedisCluster::start();
    let mut config = PoolConfig::new(cluster.url());
    config.response_timeout = Duration::from_millis(300);
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "3")).collect();
    cache.set_many(&batch).await.unwrap();
    assert_eq!(cache.get_many(&TOKENS, None).await.unwrap().len(), TOKENS.len());
    // The replica must hold the data before its primary dies.
    let victim = cluster.primary_of("price:SOL");
    let victim_port = cluster.nodes[victim].port;
    let replicas: Vec<u16> = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .filter(|&p| cluster.raw(p, &["ROLE"]).starts_with("slave"))
        .collect();
    raw_command(victim_port, &["WAIT", "1", "2000"]);

    cluster.nodes[victim].stop(); // SIGKILL
    let promotion = watch_promotion(replicas, Duration::from_secs(60));
    // Reads fail only while no primary serves the slot, then come back with no manual step.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "reads never came back");
        // Prices live 2 s, about as long as the promotion: written again first.
        if promotion.is_finished() && cache.set_many(&batch).await.is_ok() {
            if let Ok(Some(p)) = cache.get("SOL", None).await {
                assert_eq!(p, batch[0]);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    promotion.join().unwrap().expect("a replica was promoted");
    cluster.wait_ok();
    assert_ne!(cluster.primary_of("price:SOL"), victim);
    until_direct_again(&pool, &cache, "SOL", 5).await;
    let new_primary = cluster.nodes[cluster.primary_of("price:SOL")].port;
    assert!(
        !direct_clients(&cluster, new_primary).is_empty(),
        "a socket to the promoted replica"
    );
    cache.set_many(&batch).await.unwrap();
    let fallbacks = pool.cluster_direct_counts().fallbacks;
    assert_eq!(
        cache.get_many(&TOKENS, None).await.unwrap(),
        batch.iter().cloned().map(Some).collect::<Vec<_>>()
    );
    let counts = pool.cluster_direct_counts();
    assert_eq!(
        counts.fallbacks, fallbacks,
        "get_many direct on every primary: {counts:?}"
    );
    assert!(counts.refreshes >= 2, "{counts:?}");
    pool.close().await;
}

/// Whether `cache.get(token)` polled its socket for the reply (the pool's counts tell).
async fn get_polled(pool: &RedisPool, cache: &PriceCache, token: &str) -> bool {
    let before = pool.cluster_direct_counts().polled;
    assert!(cache.get(token, None).await.unwrap().is_some(), "{token}");
    pool.cluster_direct_counts().polled > before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_gets_keep_polling_while_another_primary_is_slow() {
    let cluster = RedisCluster::start();
    // The longest budget: on loopback a reply always comes within it, so a poll misses only
    // where the test makes a primary slow.
    let config = PoolConfig {
        read_spin: Duration::from_millis(1),
        ..PoolConfig::new(cluster.url())
    };
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set_many(&TOKENS.map(|t| price(t, "3"))).await.unwrap();
    let fast = "SOL";
    let owner = cluster.primary_of(&format!("price:{fast}"));
    let slow = *TOKENS
        .iter()
        .find(|t| cluster.primary_of(&format!("price:{t}")) != owner)
        .unwrap();
    let slow_port = cluster.nodes[cluster.primary_of(&format!("price:{slow}"))].port;
    // A socket polls once it has seen 32 calls in a row with nothing else outstanding.
    for _ in 0..40 {
        get_polled(&pool, &cache, fast).await;
        get_polled(&pool, &cache, slow).await;
    }

    // A steady lone-get workload polls on every call.
    let mut polled = 0;
    cache.set_many(&[price(fast, "3")]).await.unwrap();
    for _ in 0..200 {
        polled += u32::from(get_polled(&pool, &cache, fast).await);
    }
    assert!(
        polled >= 190,
        "{polled} of 200 gets polled: {:?}",
        pool.cluster_direct_counts()
    );

    // Reads over both primaries while the other one is paused: its replies miss the budget,
    // the fast primary's do not, and the fast primary's gets go on polling.
    let mut polled = 0;
    for _ in 0..20 {
        // Prices live 2 s: written again each round (writes take the cluster client).
        cache.set_many(&[price(fast, "3"), price(slow, "3")]).await.unwrap();
        for _ in 0..4 {
            cluster.raw(slow_port, &["CLIENT", "PAUSE", "5", "ALL"]);
            let got = cache.get_many(&[fast, slow], None).await.unwrap();
            assert!(got.iter().all(Option::is_some));
        }
        polled += u32::from(get_polled(&pool, &cache, fast).await);
    }
    let counts = pool.cluster_direct_counts();
    assert!(polled >= 18, "{polled} of 20 gets polled: {counts:?}");
    assert!(
        counts.poll_hits < counts.polled,
        "the paused primary missed: {counts:?}"
    );
    assert_eq!(counts.fallbacks, 0, "{counts:?}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_of_a_read_is_the_one_its_slot_names() {
    let cluster = RedisCluster::start();
    let pool = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    let addr_of = |key: &str| format!("127.0.0.1:{}", cluster.nodes[cluster.primary_of(key)].port);
    for token in TOKENS {
        let key = format!("price:{token}");
        let primary = pool.cluster_primary_of(redis::cmd("GET").arg(&key)).expect("a route");
        assert_eq!(&*primary.addr, addr_of(&key), "{key}");
    }
    // An MGET within one slot (a hash tag) has a route; one across slots, or another command,
    // has none (the caller takes the pool's read path).
    let tagged = pool.cluster_primary_of(redis::cmd("MGET").arg("price:{p}:SOL").arg("price:{p}:BTC"));
    assert_eq!(tagged.map(|p| p.addr.to_string()), Some(addr_of("price:{p}:SOL")));
    let spread = ["price:SOL", "price:BTC", "price:ETH"];
    assert!(pool.cluster_primary_of(redis::cmd("MGET").arg(&spread[..])).is_none());
    assert!(pool.cluster_primary_of(redis::cmd("GET").arg("a").arg("b")).is_none());
    assert!(pool
        .cluster_primary_of(redis::cmd("SET").arg("price:SOL").arg("1"))
        .is_none());

    // Without direct reads, or on one server, there is no slot table to ask.
    let mut config = PoolConfig::new(cluster.url());
    config.direct_reads = false;
    let plain = RedisPool::connect(config).await.unwrap();
    assert!(plain.cluster_primary_of(redis::cmd("GET").arg("price:SOL")).is_none());
}
