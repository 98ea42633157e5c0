//! The same operations on one server and on a 3-primary Redis Cluster (both started here, on
//! loopback), rounds interleaved: `get` and `get_many(5)` latency (p50 / p99), `set_many(100)`
//! and `publish_many(1000)` throughput, CPU time of this process beside wall time.
//!
//! `cargo bench --no-default-features --bench topologies`
#[path = "../tests/support/mod.rs"]
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{
    EventStream, Operation, PoolConfig, PriceCache, PriceData, PriceUpdate, RedisPool, Request, TradingEvent,
};
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

/// MGET of `keys` as bytes (no decoding): the hash-tag comparison.
async fn mget(pool: &RedisPool, keys: &[String], row: &mut Row) {
    let mut cmd = redis::cmd("MGET");
    cmd.arg(keys);
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..READS_PER_ROUND {
        let t = Instant::now();
        let got: Vec<Option<Vec<u8>>> = pool.execute(Operation::PriceGetMany, Request::Cmd(&cmd)).await.unwrap();
        assert!(got.iter().all(Option::is_some));
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
            cache.set_many(&batch).await.unwrap();
        }
        row.items += 1000;
    }
    row.wall += wall.elapsed();
    row.cpu += cpu_time() - cpu;
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
        let pools = [("standalone", one), ("cluster", many)];
        let mut rows: Vec<[Row; 4]> = (0..2).map(|_| Default::default()).collect();
        let mut tags: Vec<[Row; 2]> = (0..2).map(|_| Default::default()).collect();
        let plain: Vec<String> = TOKENS.iter().map(|t| format!("price:{t}")).collect();
        let tagged: Vec<String> = TOKENS.iter().map(|t| format!("price:{{p}}:{t}")).collect();
        for (_, pool) in &pools {
            let cache = PriceCache::new(pool.clone());
            cache.set_many(&TOKENS.map(price)).await.unwrap();
            for (key, t) in tagged.iter().zip(TOKENS) {
                let mut set = redis::cmd("SET");
                set.arg(key).arg(price(t).to_json());
                let () = pool.execute(Operation::PriceSet, Request::Cmd(&set)).await.unwrap();
            }
        }
        for _ in 0..ROUNDS {
            for (i, (_, pool)) in pools.iter().enumerate() {
                let cache = PriceCache::new(pool.clone());
                let events = EventStream::new(pool.clone());
                cache.set_many(&TOKENS.map(price)).await.unwrap();
                reads(&cache, false, &mut rows[i][0]).await;
                reads(&cache, true, &mut rows[i][1]).await;
                writes(&cache, &events, false, &mut rows[i][2]).await;
                writes(&cache, &events, true, &mut rows[i][3]).await;
                mget(pool, &plain, &mut tags[i][0]).await;
                mget(pool, &tagged, &mut tags[i][1]).await;
            }
        }
        println!("{READS_PER_ROUND} reads x {ROUNDS} interleaved rounds per row; 3-primary cluster on loopback");
        println!(
            "{:<11} {:>14} {:>14} {:>18} {:>18} {:>12}",
            "topology", "get p50/p99", "get_many(5)", "set_many items/s", "publish_many ev/s", "cpu/wall"
        );
        for (i, (name, _)) in pools.iter().enumerate() {
            let r = &mut rows[i];
            let (g50, g99) = (r[0].pct(0.5), r[0].pct(0.99));
            let (m50, m99) = (r[1].pct(0.5), r[1].pct(0.99));
            let set_rate = r[2].items as f64 / r[2].wall.as_secs_f64();
            let pub_rate = r[3].items as f64 / r[3].wall.as_secs_f64();
            let wall: Duration = r.iter().map(|x| x.wall).sum();
            let cpu: Duration = r.iter().map(|x| x.cpu).sum();
            println!(
                "{name:<11} {:>6.0}/{:<6.0}µs {:>6.0}/{:<6.0}µs {set_rate:>18.0} {pub_rate:>18.0} {:>11.0}%",
                g50,
                g99,
                m50,
                m99,
                100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
            );
        }
        println!("\nraw MGET of 5 keys (bytes, no decoding), p50/p99:");
        for (i, (name, _)) in pools.iter().enumerate() {
            let t = &mut tags[i];
            println!(
                "{name:<11} price:<token> {:>6.0}/{:<6.0}µs   price:{{p}}:<token> (one slot) {:>6.0}/{:<6.0}µs",
                t[0].pct(0.5),
                t[0].pct(0.99),
                t[1].pct(0.5),
                t[1].pct(0.99)
            );
        }
        for (_, pool) in &pools {
            pool.close().await;
        }
    });
}
