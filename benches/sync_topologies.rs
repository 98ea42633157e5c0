//! The blocking API on one server and on a 3-primary Redis Cluster (both started here, on
//! loopback), rounds interleaved with `redis-benchmark -t get -c 1 -P 1` (the raw round trip):
//! `get` and `get_many(5)` p50 / p99, `set_many(100)` items/s. Beside them, redis-rs' own
//! blocking cluster client (`redis::cluster::ClusterConnection`, raw bytes, no decoding): the
//! alternative to routing by slot ourselves.
//!
//! `cargo bench --no-default-features --bench sync_topologies`
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use redis::TypedCommands;
use rust_decimal::Decimal;
use solcache::{PoolConfig, PriceData, SyncCache, SyncPool};
use support::topologies::RedisCluster;
use support::RedisServer;

const TOKENS: [&str; 5] = ["SOL", "BTC", "ETH", "USDC", "BONK"];
const ROUNDS: usize = 7;
const READS_PER_ROUND: usize = 1000;

fn price(token: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str("187.25").unwrap(), Utc::now(), "bench").unwrap()
}

fn pct(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    pct(&mut values, 0.5)
}

/// p50 and p99 (µs) of `READS_PER_ROUND` calls of `call`.
fn timed(mut call: impl FnMut()) -> (f64, f64) {
    let mut samples = Vec::with_capacity(READS_PER_ROUND);
    for _ in 0..READS_PER_ROUND {
        let t = Instant::now();
        call();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (pct(&mut samples, 0.5), pct(&mut samples, 0.99))
}

/// `redis-benchmark -t get -c 1 -P 1` p50 (µs) against `port`.
fn raw_round_trip(port: u16) -> f64 {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "get",
            "-c",
            "1",
            "-P",
            "1",
            "-n",
            "5000",
            "--csv",
        ])
        .output()
        .expect("redis-benchmark must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("\"GET\"")).expect("a GET row");
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|v| v.trim_matches('"').parse().unwrap())
        .collect();
    fields[3] * 1000.0
}

#[derive(Default)]
struct Row {
    get: Vec<(f64, f64)>,
    many: Vec<(f64, f64)>,
    set_rate: Vec<f64>,
}

impl Row {
    fn p50(v: &[(f64, f64)]) -> f64 {
        median(v.iter().map(|x| x.0).collect())
    }
    fn p99(v: &[(f64, f64)]) -> f64 {
        median(v.iter().map(|x| x.1).collect())
    }
}

fn caches(pool: &SyncPool, row: &mut Row) {
    // A TTL that outlives the round (the redis-rs row reads what the cluster row wrote).
    let cache: SyncCache<PriceData> = SyncCache::with_ttl(pool.clone(), Duration::from_secs(60)).unwrap();
    cache.set_many(&TOKENS.map(price)).unwrap();
    row.get
        .push(timed(|| assert!(cache.get("SOL", None).unwrap().is_some())));
    row.many.push(timed(|| {
        assert!(cache.get_many(&TOKENS, None).unwrap().iter().all(Option::is_some));
    }));
    let batch: Vec<PriceData> = (0..100).map(|i| price(&format!("T{i}"))).collect();
    let started = Instant::now();
    for _ in 0..100 {
        cache.set_many(&batch).unwrap();
    }
    row.set_rate.push(10_000.0 / started.elapsed().as_secs_f64());
}

fn redis_rs_cluster(conn: &mut redis::cluster::ClusterConnection, row: &mut Row) {
    let keys: Vec<String> = TOKENS.iter().map(|t| format!("price:{t}")).collect();
    row.get
        .push(timed(|| assert!(conn.get("price:SOL").unwrap().is_some())));
    row.many.push(timed(|| {
        let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query(conn).unwrap();
        assert!(got.iter().all(Option::is_some));
    }));
    let batch: Vec<PriceData> = (0..100).map(|i| price(&format!("T{i}"))).collect();
    let started = Instant::now();
    for _ in 0..100 {
        // Built per batch, as `set_many` builds its pipeline: the same JSON encoding per item.
        let mut pipe = redis::cluster::cluster_pipe();
        for item in &batch {
            pipe.cmd("SET")
                .arg(format!("price:{}", item.token))
                .arg(item.to_json())
                .arg("PX")
                .arg(2000)
                .ignore();
        }
        pipe.exec(conn).unwrap();
    }
    row.set_rate.push(10_000.0 / started.elapsed().as_secs_f64());
}

fn main() {
    let server = RedisServer::start();
    let cluster = RedisCluster::start();
    let one = SyncPool::connect(PoolConfig::new(server.url())).unwrap();
    let many = SyncPool::connect(PoolConfig::new(cluster.url())).unwrap();
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}", n.port))
        .collect();
    let mut theirs = redis::cluster::ClusterClientBuilder::new(nodes)
        .response_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .get_connection()
        .unwrap();
    let mut rows: Vec<Row> = (0..3).map(|_| Row::default()).collect();
    let (mut raw_one, mut raw_cluster) = (Vec::new(), Vec::new());
    let sol_port = cluster.nodes[cluster.primary_of("price:SOL")].port;
    for _ in 0..ROUNDS {
        raw_one.push(raw_round_trip(server.port));
        caches(&one, &mut rows[0]);
        raw_cluster.push(raw_round_trip(sol_port));
        caches(&many, &mut rows[1]);
        redis_rs_cluster(&mut theirs, &mut rows[2]);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{READS_PER_ROUND} calls x {ROUNDS} interleaved rounds, medians of the rounds' p50/p99; load {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let (raw1, rawc) = (median(raw_one), median(raw_cluster));
    println!(
        "raw round trip (redis-benchmark -t get -c 1 -P 1) p50: one server {raw1:.0} µs, SOL's primary {rawc:.0} µs"
    );
    println!(
        "{:<34} {:>16} {:>9} {:>18} {:>16}",
        "blocking", "get p50/p99", "get/raw", "get_many(5) p50/99", "set_many items/s"
    );
    let names = [
        "SyncPool, one server",
        "SyncPool, cluster",
        "redis-rs ClusterConnection (bytes)",
    ];
    for (name, row) in names.iter().zip(&rows) {
        println!(
            "{name:<34} {:>7.0}/{:<6.0}µs {:>8.2}x {:>8.0}/{:<7.0}µs {:>16.0}",
            Row::p50(&row.get),
            Row::p99(&row.get),
            Row::p50(&row.get) / raw1,
            Row::p50(&row.many),
            Row::p99(&row.many),
            median(row.set_rate.clone())
        );
    }
    println!(
        "cluster / one server, get p50: {:.2}x; get_many(5) p50: {:.2}x",
        Row::p50(&rows[1].get) / Row::p50(&rows[0].get),
        Row::p50(&rows[1].many) / Row::p50(&rows[0].many)
    );
}
