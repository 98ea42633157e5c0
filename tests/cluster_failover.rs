//! A SIGKILLed primary of a Redis Cluster (3 primaries + 3 replicas started here) under 10 Hz
//! writes and reads: followed without a manual step once its replica is promoted; the gap is
//! split into the servers' part (kill to promotion) and ours (promotion to first success).
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{PoolConfig, PriceCache, PriceData, RedisPool};
use support::topologies::{watch_promotion, RedisCluster, NODE_TIMEOUT_MS};

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_after_its_replica_is_promoted() {
    failover_once(NODE_TIMEOUT_MS).await;
}

/// The failover of [`failover_once`] at longer node timeouts, several runs each, medians
/// printed (minutes; not part of CI). `SOLCACHE_FAILOVER_NODE_TIMEOUTS_MS` (default
/// `3000,5000`) and `SOLCACHE_FAILOVER_RUNS` (default 5) choose what is run:
/// `cargo nextest run --test cluster_failover --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes of failovers; run by hand to measure the gap"]
async fn failover_gap_at_longer_node_timeouts() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let timeouts: Vec<u64> = env("SOLCACHE_FAILOVER_NODE_TIMEOUTS_MS", "3000,5000")
        .split(',')
        .map(|t| t.trim().parse().expect("node timeouts in ms, comma-separated"))
        .collect();
    let runs: usize = env("SOLCACHE_FAILOVER_RUNS", "5").parse().expect("a number of runs");
    let median = |mut v: Vec<u128>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mut summary = Vec::new();
    for timeout in timeouts {
        let measured: Vec<FailoverRun> = {
            let mut all = Vec::new();
            for _ in 0..runs {
                all.push(failover_once(timeout).await);
            }
            all
        };
        let column = |f: fn(&FailoverRun) -> u128| {
            let v: Vec<u128> = measured.iter().map(f).collect();
            (*v.iter().min().unwrap(), median(v.clone()), *v.iter().max().unwrap())
        };
        summary.push(format!(
            "cluster-node-timeout {timeout} ms, {runs} runs (min / median / max ms): gap {:?}, \
             kill to promotion {:?}, promotion to first success {:?}",
            column(|r| r.gap_ms),
            column(|r| r.promotion_ms),
            column(|r| r.ours_ms)
        ));
    }
    println!("{}", summary.join("\n"));
}

/// One failover of [`failover_once`], in ms.
struct FailoverRun {
    /// Start of the first failed round to the first success.
    gap_ms: u128,
    /// Kill to the replica answering `ROLE` with `master`.
    promotion_ms: u128,
    /// Promotion to the first success (ours plus up to one round's pause).
    ours_ms: u128,
}

/// A cluster with `node_timeout_ms`, 10 Hz writes and reads of `price:SOL`, its primary
/// SIGKILLed: reads and writes come back with no manual step; the gap is printed and returned.
async fn failover_once(node_timeout_ms: u64) -> FailoverRun {
    let mut cluster = RedisCluster::start_with_node_timeout(node_timeout_ms);
    let mut config = PoolConfig::new(cluster.url());
    config.response_timeout = Duration::from_millis(300);
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "1")).await.unwrap();

    let victim = cluster.primary_of("price:SOL");
    let writer = {
        let cache = cache.clone();
        tokio::spawn(async move {
            // 10 Hz writes and reads until 60 s passed or 2 s of successes followed the kill.
            let mut first_error: Option<Instant> = None;
            let mut recovered: Option<Instant> = None;
            let (mut ok_after, mut failed) = (0u32, 0u32);
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(60) && ok_after < 20 {
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
    let promotion = watch_promotion(replicas, Duration::from_secs(60));
    let (first_error, recovered, failed) = writer.await.unwrap();
    let promoted = promotion.join().unwrap().expect("a replica was promoted");
    let first_error = first_error.expect("the kill was noticed");
    let recovered = recovered.expect("reads and writes came back with no manual step");
    let run = FailoverRun {
        gap_ms: (recovered - first_error).as_millis(),
        promotion_ms: (promoted - killed).as_millis(),
        ours_ms: recovered.saturating_duration_since(promoted).as_millis(),
    };
    println!(
        "cluster failover: gap {} ms (start of the first failed round to the first success), \
         kill to first success {} ms, kill to promotion {} ms, {failed} failed rounds, {} fresh \
         cluster clients, cluster-node-timeout {node_timeout_ms} ms",
        run.gap_ms,
        (recovered - killed).as_millis(),
        run.promotion_ms,
        pool.cluster_rebuilds()
    );
    assert!(pool.cluster_rebuilds() >= 1, "a fresh client read the new slot map");
    let health = pool.health().await;
    assert_eq!(health.topology, "cluster");
    assert_eq!(health.failovers_followed, pool.cluster_rebuilds());
    cluster.wait_ok();
    assert_ne!(cluster.primary_of("price:SOL"), victim, "a replica took over the slot");
    pool.close().await;
    run
}
