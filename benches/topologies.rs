//! The same operations on one server and on a 3-primary Redis Cluster (both started here, on
//! loopback), the cluster once with the default key layout and once with the tagged one (one
//! hash tag per family), and once with reads through the cluster client (`direct_reads` off;
//! by default they take a socket per primary), rounds interleaved: `get` and `get_many(5)` latency (p50 / p99),
//! `set_many(100)` latency and throughput, `publish_many(1000)` throughput, CPU time of this
//! process beside wall time; then the commands and server time each primary spent on the same
//! reads and writes in either layout (`INFO commandstats`): the load on the hot node.
//!
//! `cargo bench --no-default-features --bench topologies`
#[path = "../tests/support/mod.rs"]
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::keys::KeyLayout;
use solcache::{EventStream, PoolConfig, PriceCache, PriceData, PriceUpdate, RedisPool, TradingEvent};
use support::topologies::RedisCluster;
use support::RedisServer;

const TOKENS: [&str; 5] = ["SOL", "BTC", "ETH", "USDC", "BONK"];
const ROUNDS: usize = 7;
const READS_PER_ROUND: usize = 500;

fn price(token: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str("187.25").unwrap(), Utc::now(), "bench").unwrap()
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid rusage.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

#[derive(Default)]
struct Row {
    samples_us: Vec<f64>,
    wall: Duration,
    cpu: Duration,
    items: usize,
}

impl Row {
    fn pct(&mut self, p: f64) -> f64 {
        self.samples_us.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let i = ((self.samples_us.len() as f64 - 1.0) * p).round() as usize;
        self.samples_us[i]
    }
}

async fn reads(cache: &PriceCache, many: bool, row: &mut Row) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..READS_PER_ROUND {
        let t = Instant::now();
        if many {
            cache.get_many(&TOKENS, None).await.unwrap();
        } else {
            cache.get("SOL", None).await.unwrap();
        }
        row.samples_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    row.wall += wall.elapsed();
    row.cpu += cpu_time() - cpu;
}

async fn writes(cache: &PriceCache, events: &EventStream, publish: bool, row: &mut Row) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    if publish {
        let batch: Vec<TradingEvent> = (0..1000)
            .map(|n| {
                TradingEvent::PriceUpdate(PriceUpdate {
                    token: "SOL".into(),
                    price: Decimal::from(n),
                    timestamp: Utc::now(),
                })
            })
            .collect();
        events.publish_many(&batch, Some("stream:bench")).await.unwrap();
        row.items += batch.len();
    } else {
        let batch: Vec<PriceData> = (0..100).map(|i| price(&format!("T{i}"))).collect();
        for _ in 0..10 {
            let t = Instant::now();
            cache.set_many(&batch).await.unwrap();
            row.samples_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        row.items += 1000;
    }
    row.wall += wall.elapsed();
    row.cpu += cpu_time() - cpu;
}

/// Per primary of `cluster`: (port, commands, server µs) since the last `CONFIG RESETSTAT`.
fn node_load(cluster: &RedisCluster) -> Vec<(u16, u64, u64)> {
    let field = |line: &str, name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name))
            .map_or(0, |v| v.parse().unwrap())
    };
    cluster
        .nodes
        .iter()
        .filter(|n| cluster.raw(n.port, &["ROLE"]).starts_with("master"))
        .map(|n| {
            let stats = cluster.raw(n.port, &["INFO", "commandstats"]);
            let (mut calls, mut usec) = (0, 0);
            for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
                if line.starts_with("cmdstat_info") || line.starts_with("cmdstat_config") {
                    continue; // this benchmark's own questions
                }
                calls += field(line, "calls=");
                usec += field(line, "usec=");
            }
            (n.port, calls, usec)
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let cluster = RedisCluster::start();
    runtime.block_on(async {
        let one = RedisPool::connect(PoolConfig::new(server.url())).await.unwrap();
        let many = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
        let client_only = RedisPool::connect(PoolConfig {
            direct_reads: false,
            ..PoolConfig::new(cluster.url())
        })
        .await
        .unwrap();
        let mut config = PoolConfig::new(cluster.url());
        config.key_layout = KeyLayout::Tagged;
        let tagged = RedisPool::connect(config).await.unwrap();
        let pools = [
            ("standalone", one),
            ("cluster", many),
            ("cluster client", client_only),
            ("cluster tagged", tagged),
        ];
        let mut rows: Vec<[Row; 4]> = (0..pools.len()).map(|_| Default::default()).collect();
        for _ in 0..ROUNDS {
            for (i, (_, pool)) in pools.iter().enumerate() {
                let cache = PriceCache::new(pool.clone());
                let events = EventStream::new(pool.clone());
                cache.set_many(&TOKENS.map(price)).await.unwrap();
                reads(&cache, false, &mut rows[i][0]).await;
                reads(&cache, true, &mut rows[i][1]).await;
                writes(&cache, &events, false, &mut rows[i][2]).await;
                writes(&cache, &events, true, &mut rows[i][3]).await;
            }
        }
        println!("{READS_PER_ROUND} reads x {ROUNDS} interleaved rounds per row; 3-primary cluster on loopback");
        println!(
            "{:<15} {:>14} {:>14} {:>16} {:>18} {:>18} {:>9}",
            "topology",
            "get p50/p99",
            "get_many(5)",
            "set_many(100)",
            "set_many items/s",
            "publish_many ev/s",
            "cpu/wall"
        );
        for (i, (name, _)) in pools.iter().enumerate() {
            let r = &mut rows[i];
            let (g50, g99) = (r[0].pct(0.5), r[0].pct(0.99));
            let (m50, m99) = (r[1].pct(0.5), r[1].pct(0.99));
            let (s50, s99) = (r[2].pct(0.5), r[2].pct(0.99));
            let set_rate = r[2].items as f64 / r[2].wall.as_secs_f64();
            let pub_rate = r[3].items as f64 / r[3].wall.as_secs_f64();
            let wall: Duration = r.iter().map(|x| x.wall).sum();
            let cpu: Duration = r.iter().map(|x| x.cpu).sum();
            println!(
                "{name:<15} {g50:>6.0}/{g99:<6.0}µs {m50:>6.0}/{m99:<6.0}µs {s50:>6.0}/{s99:<6.0}µs {set_rate:>18.0} \
                 {pub_rate:>18.0} {:>8.0}%",
                100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
            );
        }

        // The load per primary: the same reads and writes of prices in either layout.
        println!("\nper primary, {READS_PER_ROUND} get + {READS_PER_ROUND} get_many(5) + 10 set_many(100) of prices:");
        for (name, pool) in &pools[1..] {
            for n in &cluster.nodes {
                cluster.raw(n.port, &["CONFIG", "RESETSTAT"]);
            }
            let cache = PriceCache::new(pool.clone());
            let events = EventStream::new(pool.clone());
            let mut scratch: [Row; 3] = Default::default();
            reads(&cache, false, &mut scratch[0]).await;
            reads(&cache, true, &mut scratch[1]).await;
            writes(&cache, &events, false, &mut scratch[2]).await;
            let load = node_load(&cluster);
            let total_usec: u64 = load.iter().map(|l| l.2).sum();
            let shown: Vec<String> = load
                .iter()
                .map(|(port, calls, usec)| {
                    format!(
                        "{port}: {calls} commands, {usec} µs ({:.0}%)",
                        100.0 * *usec as f64 / total_usec.max(1) as f64
                    )
                })
                .collect();
            println!("{name:<15} {}", shown.join("; "));
        }
        for (_, pool) in &pools {
            pool.close().await;
        }
    });
}
