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
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
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

    let (rounds, per_round) = if bench_mode { (5, 2000) } else { (1, 50) };
    latency_report(&rt, &server, [&tcp, &unix], &ping_on, rounds, per_round);
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

#[derive(Clone, Copy)]
enum Op {
    RawGet,
    Get,
    GetMany,
    Set,
    SetMany,
}

#[derive(Clone, Copy)]
enum Case {
    /// One call at a time on `targets[transport]`.
    Sequential { transport: usize, op: Op },
    /// `get` over TCP on the pool with bb8's checkout PING.
    PingOn,
    /// `get` over TCP from this many concurrent tasks.
    Concurrent(usize),
}

impl Case {
    fn label(self, targets: &[&Target; 2]) -> String {
        match self {
            Case::Sequential { transport, op } => {
                let what = match op {
                    Op::RawGet => "redis-rs MultiplexedConnection GET (floor)",
                    Op::Get => "PriceCache::get",
                    Op::GetMany => "PriceCache::get_many (5 tokens)",
                    Op::Set => "PriceCache::set",
                    Op::SetMany => "PriceCache::set_many (5)",
                };
                format!("{} {what}", targets[transport].name)
            }
            Case::PingOn => "tcp PriceCache::get, checkout PING on".into(),
            Case::Concurrent(tasks) => format!("tcp PriceCache::get, {tasks} concurrent tasks"),
        }
    }

    fn transport(self) -> usize {
        match self {
            Case::Sequential { transport, .. } => transport,
            _ => 0,
        }
    }
}

/// One round of one case: percentiles of individually timed calls.
#[derive(Clone, Copy, Default)]
struct Stats {
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    /// Reads per second (concurrent cases).
    rate: f64,
    errors: usize,
}

fn stats(mut ns: Vec<u64>) -> Stats {
    if ns.is_empty() {
        return Stats::default();
    }
    ns.sort_unstable();
    let pct = |p: usize| ns[((ns.len() * p) / 100).min(ns.len() - 1)] as f64 / 1000.0;
    Stats {
        mean_us: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
        p50_us: pct(50),
        p99_us: pct(99),
        ..Stats::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

async fn call(t: &Target, op: Op) -> solcache::Result<()> {
    match op {
        Op::RawGet => {
            black_box(raw_get(&mut t.raw.clone()).await);
        }
        Op::Get => {
            black_box(t.cache.get("SOL", None).await?);
        }
        Op::GetMany => {
            black_box(t.cache.get_many(&MVP_TOKENS, None).await?);
        }
        Op::Set => t.cache.set(&t.prices[0]).await?,
        Op::SetMany => t.cache.set_many(&t.prices).await?,
    }
    Ok(())
}

/// `n` sequential calls, each timed on its own, after `n / 10` untimed warm-up calls.
async fn timed_sequential(n: usize, t: &Target, op: Op, ping_on: Option<&PriceCache>) -> Stats {
    let once = || async {
        match ping_on {
            Some(cache) => cache.get("SOL", None).await.map(|v| {
                black_box(v);
            }),
            None => call(t, op).await,
        }
    };
    for _ in 0..n / 10 {
        once().await.expect("warm-up call");
    }
    let mut ns = Vec::with_capacity(n);
    let mut errors = 0;
    for _ in 0..n {
        let started = Instant::now();
        match once().await {
            Ok(()) => ns.push(started.elapsed().as_nanos() as u64),
            Err(_) => errors += 1,
        }
    }
    Stats { errors, ..stats(ns) }
}

/// `tasks` tasks reading in a loop, `total` reads in all. A failed read (e.g. a checkout that
/// waited past `checkout_timeout`) is counted, not timed.
async fn timed_concurrent(cache: &PriceCache, tasks: usize, total: usize) -> Stats {
    let per_task = total.div_ceil(tasks);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut ns = Vec::with_capacity(per_task);
                let mut errors = 0;
                for _ in 0..per_task {
                    let t = Instant::now();
                    match cache.get("SOL", None).await {
                        Ok(v) => {
                            black_box(v);
                            ns.push(t.elapsed().as_nanos() as u64);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (ns, errors)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(per_task * tasks);
    let mut errors = 0;
    for h in handles {
        let (ns, e) = h.await.expect("reader task");
        all.extend(ns);
        errors += e;
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    Stats {
        rate,
        errors,
        ..stats(all)
    }
}

/// `redis-benchmark -t get -P 1` against the bench server, as [`Stats`].
fn redis_benchmark(server: &RedisServer, unix: bool, clients: usize, n: usize) -> Option<Stats> {
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
    Some(Stats {
        rate: *f.first()?,
        mean_us: f.get(1)? * 1000.0,
        p50_us: f.get(3)? * 1000.0,
        p99_us: f.get(5)? * 1000.0,
        errors: 0,
    })
}

/// Every case `rounds` times, interleaved (so a noisy moment hits all cases alike), each round
/// `per_round` calls; the table shows the median of the per-round p50 / p99 / mean.
fn latency_report(
    rt: &Runtime,
    server: &RedisServer,
    targets: [&Target; 2],
    ping_on: &PriceCache,
    rounds: usize,
    per_round: usize,
) {
    // redis-benchmark's GET reads the literal key `key:__rand_int__`: give it our JSON.
    rt.block_on(async {
        let _: () = redis::cmd("SET")
            .arg("key:__rand_int__")
            .arg(targets[0].prices[0].to_json())
            .query_async(&mut targets[0].raw.clone())
            .await
            .expect("plant the redis-benchmark key");
    });
    let mut cases = Vec::new();
    for transport in 0..2 {
        for op in [Op::RawGet, Op::Get, Op::GetMany, Op::Set, Op::SetMany] {
            cases.push(Case::Sequential { transport, op });
        }
    }
    cases.push(Case::PingOn);
    cases.extend(CONCURRENCY.map(Case::Concurrent));

    let rb_n = (per_round * 2).max(1000);
    let raw_labels = ["tcp", "unix", "tcp -c 20", "tcp -c 200"];
    let mut raw: Vec<Vec<Stats>> = vec![Vec::new(); raw_labels.len()];
    let mut results: Vec<Vec<Stats>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (unix, clients, n)) in [
            (false, 1, rb_n),
            (true, 1, rb_n),
            (false, 20, rb_n * 5),
            (false, 200, rb_n * 5),
        ]
        .into_iter()
        .enumerate()
        {
            raw[i].extend(redis_benchmark(server, unix, clients, n));
        }
        for (i, case) in cases.iter().enumerate() {
            let s = rt.block_on(async {
                match *case {
                    Case::Sequential { transport, op } => {
                        timed_sequential(per_round, targets[transport], op, None).await
                    }
                    Case::PingOn => timed_sequential(per_round, targets[0], Op::Get, Some(ping_on)).await,
                    Case::Concurrent(tasks) => {
                        timed_concurrent(&targets[0].cache, tasks, (per_round * 4).max(tasks)).await
                    }
                }
            });
            results[i].push(s);
        }
    }

    let med = |v: &[Stats], f: fn(&Stats) -> f64| median(v.iter().map(f).collect());
    println!(
        "\n== solcache Rust core: per-call latency in µs, median over {rounds} interleaved rounds of {per_round} calls =="
    );
    let raw_p50: Vec<f64> = raw.iter().map(|v| med(v, |s| s.p50_us)).collect();
    for (label, v) in raw_labels.iter().zip(&raw) {
        if v.is_empty() {
            println!("redis-benchmark -t get ({label}): not run (redis-benchmark missing?); no ratios");
            continue;
        }
        println!(
            "redis-benchmark -t get -P 1 ({label}, -n {}): p50 {:.1}  p99 {:.1}  {:.0} req/s",
            if label.contains("-c") { rb_n * 5 } else { rb_n },
            med(v, |s| s.p50_us),
            med(v, |s| s.p99_us),
            med(v, |s| s.rate)
        );
    }
    println!("| case | p50 µs | p99 µs | mean µs | p50 ÷ raw p50 | reads/s | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (case, v) in cases.iter().zip(&results) {
        let (p50, p99, mean) = (med(v, |s| s.p50_us), med(v, |s| s.p99_us), med(v, |s| s.mean_us));
        let ratio = raw_p50[case.transport()];
        let ratio = if ratio.is_nan() {
            "-".into()
        } else {
            format!("{:.2}×", p50 / ratio)
        };
        let rate = match case {
            Case::Concurrent(_) => format!("{:.0}", med(v, |s| s.rate)),
            _ => format!("{:.0}", 1e6 / mean),
        };
        let errors: usize = v.iter().map(|s| s.errors).sum();
        println!(
            "| {} | {p50:.1} | {p99:.1} | {mean:.1} | {ratio} | {rate} | {errors} |",
            case.label(&targets)
        );
    }
    let get = &results[1]; // tcp PriceCache::get
    let (mean, p99) = (med(get, |s| s.mean_us), med(get, |s| s.p99_us));
    let holds = mean < 1000.0 && p99 < 2000.0;
    println!(
        "sequential tcp PriceCache::get: average {mean:.1} µs, p99 {p99:.1} µs: 'average < 1 ms and p99 < 2 ms' {}",
        if holds { "holds" } else { "does NOT hold" }
    );
}
