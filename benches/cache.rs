//! Criterion benches of the Rust core against a private `redis-server` (never the one on 6379).
//!
//! Run with `cargo bench --no-default-features --bench cache`. Two parts, one server:
//! 1. criterion: `PriceCache` get / get_many(5) / set / set_many(5) over TCP and a unix socket,
//!    the raw redis-rs `MultiplexedConnection` GET as the floor, bb8's checkout PING on vs off,
//!    and reads from 20 and 200 concurrent tasks (throughput).
//! 2. a per-call latency report (p50 / p99 of individually timed calls, which criterion does
//!    not give) with ratios to `redis-benchmark -t get -c 1 -P 1` run against the same server
//!    in the same run. `docs/performance.md` is written from this table.
//!
//! `SOLCACHE_BENCH_REPORT_ONLY=1` skips part 1. Run as a test (`cargo test --benches`, no
//! `--bench` argument) every case runs once and the report shrinks to a smoke test.
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::IntoConnectionInfo;
use rust_decimal::Decimal;
use solcache::{PoolConfig, PriceCache, PriceData, RedisPool, MVP_TOKENS};
use support::RedisServer;
use tokio::runtime::Runtime;

/// Reads outlive the 2 s production TTL: the seeded prices must still be there at the end.
const SEED_TTL: Duration = Duration::from_secs(3600);
const CONCURRENCY: [usize; 2] = [20, 200];

/// What one transport needs: a default pool (checkout PING off) and a raw connection.
struct Target {
    name: &'static str,
    url: String,
    cache: PriceCache,
    raw: MultiplexedConnection,
    prices: Vec<PriceData>,
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let report_only = std::env::var("SOLCACHE_BENCH_REPORT_ONLY").is_ok_and(|v| v == "1");
    let server = RedisServer::start();
    // The same runtime shape as the Python binding: one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tcp = rt.block_on(target("tcp", server.url()));
    let unix = rt.block_on(target("unix", format!("unix://{}", server.socket_path().display())));
    let ping_on = rt.block_on(open(&tcp.url, true));

    if !report_only {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(50)
            .without_plots()
            .configure_from_args();
        for t in [&tcp, &unix] {
            bench_transport(&mut c, &rt, t);
        }
        bench_checkout_ping(&mut c, &rt, &tcp.cache, &ping_on);
        bench_concurrent(&mut c, &rt, &tcp.cache);
        c.final_summary();
    }

    let n = if bench_mode { 10_000 } else { 50 };
    latency_report(&rt, &server, &tcp, &unix, &ping_on, n);
    rt.block_on(async {
        for cache in [&tcp.cache, &unix.cache, &ping_on] {
            cache.pool().close().await;
        }
    });
}

async fn open(url: &str, test_on_checkout: bool) -> PriceCache {
    let pool = RedisPool::connect(PoolConfig {
        test_on_checkout,
        ..PoolConfig::new(url)
    })
    .await
    .expect("connect to the bench redis-server");
    PriceCache::new(pool)
}

async fn target(name: &'static str, url: String) -> Target {
    let cache = open(&url, false).await;
    let prices: Vec<PriceData> = MVP_TOKENS
        .iter()
        .map(|t| PriceData::new(*t, Decimal::from_str("187.234500001").unwrap(), Utc::now(), "bench").unwrap())
        .collect();
    let seeder = PriceCache::with_ttl(cache.pool().clone(), SEED_TTL).unwrap();
    seeder.set_many(&prices).await.unwrap();
    // Correctness before timing: every read below is a hit, not a miss.
    assert_eq!(cache.get("SOL", None).await.unwrap().as_ref(), Some(&prices[0]));
    let mut info = url.as_str().into_connection_info().unwrap();
    info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true));
    let raw = redis::Client::open(info)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Target {
        name,
        url,
        cache,
        raw,
        prices,
    }
}

async fn raw_get(con: &mut MultiplexedConnection) -> Option<Vec<u8>> {
    redis::cmd("GET").arg("price:SOL").query_async(con).await.unwrap()
}

fn bench_transport(c: &mut Criterion, rt: &Runtime, t: &Target) {
    let mut g = c.benchmark_group(t.name);
    g.bench_function("raw_redis_rs_get", |b| {
        b.to_async(rt).iter(|| {
            let mut con = t.raw.clone();
            async move { black_box(raw_get(&mut con).await) }
        })
    });
    g.bench_function("get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(t.cache.get("SOL", None).await.unwrap()) })
    });
    g.bench_function("get_many_5", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(t.cache.get_many(&MVP_TOKENS, None).await.unwrap()) })
    });
    g.bench_function("set", |b| {
        b.to_async(rt)
            .iter(|| async { t.cache.set(&t.prices[0]).await.unwrap() })
    });
    g.bench_function("set_many_5", |b| {
        b.to_async(rt)
            .iter(|| async { t.cache.set_many(&t.prices).await.unwrap() })
    });
    g.finish();
}

/// bb8's `test_on_check_out` (its default) PINGs every connection it hands out.
fn bench_checkout_ping(c: &mut Criterion, rt: &Runtime, off: &PriceCache, on: &PriceCache) {
    let mut g = c.benchmark_group("checkout_ping");
    for (name, cache) in [("off", off), ("on", on)] {
        g.bench_function(name, |b| {
            b.to_async(rt)
                .iter(|| async { black_box(cache.get("SOL", None).await.unwrap()) })
        });
    }
    g.finish();
}

/// `tasks` tasks each read in a loop; one iteration is one read per task.
fn bench_concurrent(c: &mut Criterion, rt: &Runtime, cache: &PriceCache) {
    let mut g = c.benchmark_group("concurrent_get");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for tasks in CONCURRENCY {
        g.throughput(Throughput::Elements(tasks as u64));
        g.bench_function(tasks.to_string(), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let cache = cache.clone();
                async move {
                    let started = Instant::now();
                    let handles: Vec<_> = (0..tasks)
                        .map(|_| {
                            let cache = cache.clone();
                            tokio::spawn(async move {
                                for _ in 0..iters {
                                    black_box(cache.get("SOL", None).await.unwrap());
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                    started.elapsed()
                }
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- per-call latency report

struct Row {
    case: String,
    calls: usize,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    /// Throughput of the concurrent cases, reads per second.
    per_sec: Option<f64>,
    /// Which raw round trip this row is compared with.
    transport: &'static str,
}

fn row(case: impl Into<String>, transport: &'static str, mut ns: Vec<u64>, per_sec: Option<f64>) -> Row {
    ns.sort_unstable();
    let pct = |p: usize| ns[((ns.len() * p) / 100).min(ns.len() - 1)] as f64 / 1000.0;
    Row {
        case: case.into(),
        calls: ns.len(),
        mean_us: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
        p50_us: pct(50),
        p99_us: pct(99),
        per_sec,
        transport,
    }
}

/// Time `n` sequential calls one by one (after `n / 10` warm-up calls).
async fn timed<F, Fut>(n: usize, mut call: F) -> Vec<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        call().await;
    }
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call().await;
        ns.push(started.elapsed().as_nanos() as u64);
    }
    ns
}

/// `tasks` concurrent readers, `total` reads in all: (per-read latencies, reads per second).
async fn timed_concurrent(cache: &PriceCache, tasks: usize, total: usize) -> (Vec<u64>, f64) {
    let per_task = total.div_ceil(tasks);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut ns = Vec::with_capacity(per_task);
                let mut errors = Vec::new();
                for _ in 0..per_task {
                    let t = Instant::now();
                    match cache.get("SOL", None).await {
                        Ok(v) => {
                            black_box(v);
                            ns.push(t.elapsed().as_nanos() as u64);
                        }
                        Err(e) => errors.push((e, t.elapsed(), cache.pool().counts())),
                    }
                }
                (ns, errors)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(per_task * tasks);
    let mut errors = Vec::new();
    for h in handles {
        let (ns, errs) = h.await.unwrap();
        all.extend(ns);
        errors.extend(errs);
    }
    for e in errors.iter().take(5) {
        eprintln!("DIAG {e:?}");
    }
    eprintln!("DIAG errors {} counts now {:?}", errors.len(), cache.pool().counts());
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (all, rate)
}

/// `redis-benchmark` against the bench server: (p50 µs, p99 µs, requests per second).
fn redis_benchmark(server: &RedisServer, unix: bool, clients: usize, n: usize) -> Option<(f64, f64, f64)> {
    let mut cmd = Command::new("redis-benchmark");
    if unix {
        cmd.arg("-s").arg(server.socket_path());
    } else {
        cmd.args(["-h", "127.0.0.1", "-p", &server.port.to_string()]);
    }
    let out = cmd
        .args(["-t", "get", "-P", "1", "--csv"])
        .args(["-c", &clients.to_string(), "-n", &n.to_string()])
        .output()
        .ok()?;
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("\"GET\""))?;
    let f: Vec<f64> = line
        .split(',')
        .skip(1)
        .filter_map(|v| v.trim_matches('"').parse().ok())
        .collect();
    Some((f.get(3)? * 1000.0, f.get(5)? * 1000.0, *f.first()?))
}

fn latency_report(rt: &Runtime, server: &RedisServer, tcp: &Target, unix: &Target, ping_on: &PriceCache, n: usize) {
    // redis-benchmark's GET reads `key:__rand_int__`: give it the same JSON our GET returns.
    let payload = tcp.prices[0].to_json();
    rt.block_on(async {
        let mut con = tcp.raw.clone();
        let _: () = redis::cmd("SET")
            .arg("key:__rand_int__")
            .arg(&payload)
            .query_async(&mut con)
            .await
            .unwrap();
    });
    let rb_n = (n * 2).max(1000);
    let raw_tcp = redis_benchmark(server, false, 1, rb_n);
    let raw_unix = redis_benchmark(server, true, 1, rb_n);

    let mut rows = Vec::new();
    rt.block_on(async {
        for t in [tcp, unix] {
            let tr = t.name;
            let con = t.raw.clone();
            let ns = timed(n, || {
                let mut con = con.clone();
                async move {
                    black_box(raw_get(&mut con).await);
                }
            })
            .await;
            rows.push(row(format!("{tr} redis-rs MultiplexedConnection GET"), tr, ns, None));
            let c = &t.cache;
            let ns = timed(n, || async {
                black_box(c.get("SOL", None).await.unwrap());
            })
            .await;
            rows.push(row(format!("{tr} PriceCache::get"), tr, ns, None));
            let ns = timed(n, || async {
                black_box(c.get_many(&MVP_TOKENS, None).await.unwrap());
            })
            .await;
            rows.push(row(format!("{tr} PriceCache::get_many (5 tokens)"), tr, ns, None));
            let ns = timed(n, || async { c.set(&t.prices[0]).await.unwrap() }).await;
            rows.push(row(format!("{tr} PriceCache::set"), tr, ns, None));
            let ns = timed(n, || async { c.set_many(&t.prices).await.unwrap() }).await;
            rows.push(row(format!("{tr} PriceCache::set_many (5)"), tr, ns, None));
        }
        let ns = timed(n, || async {
            black_box(ping_on.get("SOL", None).await.unwrap());
        })
        .await;
        rows.push(row("tcp PriceCache::get, checkout PING on", "tcp", ns, None));
        for tasks in CONCURRENCY {
            let (ns, rate) = timed_concurrent(&tcp.cache, tasks, (n * 4).max(tasks)).await;
            rows.push(row(format!("tcp get, {tasks} concurrent tasks"), "tcp", ns, Some(rate)));
        }
    });
    let concurrent_rb: Vec<_> = CONCURRENCY
        .iter()
        .map(|&c| (c, redis_benchmark(server, false, c, (n * 10).max(1000))))
        .collect();

    println!("\n== solcache Rust core: per-call latency, {n} sequential calls per case (µs) ==");
    for (name, raw) in [("tcp", raw_tcp), ("unix", raw_unix)] {
        match raw {
            Some((p50, p99, rps)) => println!(
                "raw round trip ({name}): redis-benchmark -t get -c 1 -P 1 -n {rb_n}: p50 {p50:.1}  p99 {p99:.1}  ({rps:.0} req/s)"
            ),
            None => println!("raw round trip ({name}): redis-benchmark not found or failed; no ratios"),
        }
    }
    println!(
        "{:<44} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "case", "calls", "mean", "p50", "p99", "p50/raw", "reads/s"
    );
    for r in &rows {
        let raw = if r.transport == "unix" { raw_unix } else { raw_tcp };
        let ratio = raw.map_or("-".to_owned(), |(p50, _, _)| format!("{:.2}x", r.p50_us / p50));
        let rate = r.per_sec.map_or(String::new(), |v| format!("{v:.0}"));
        println!(
            "{:<44} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>10}",
            r.case, r.calls, r.mean_us, r.p50_us, r.p99_us, ratio, rate
        );
    }
    for (clients, rb) in concurrent_rb {
        if let Some((p50, p99, rps)) = rb {
            println!("redis-benchmark -t get -c {clients}: {rps:.0} req/s, p50 {p50:.1} µs, p99 {p99:.1} µs");
        }
    }
    if let Some(get) = rows.iter().find(|r| r.case == "tcp PriceCache::get") {
        let ok = get.mean_us < 1000.0 && get.p99_us < 2000.0;
        println!(
            "sequential tcp get: average {:.1} µs, p99 {:.1} µs -> 'average < 1 ms and p99 < 2 ms' {}",
            get.mean_us,
            get.p99_us,
            if ok { "holds" } else { "does NOT hold" }
        );
    }
}
