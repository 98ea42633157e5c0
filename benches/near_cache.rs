//! The near cache's hit latency in Rust, against a private `redis-server`.
//!
//! Run with `cargo bench --no-default-features --bench near_cache`. Criterion times a hit of
//! the blocking [`SyncCache`] and of the async [`PriceCache`] (awaited on a current-thread
//! runtime), then a per-call report gives p50 / p99 of individually timed hits next to the
//! same read with the near cache off (the round trip), measured in the same run.
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use rust_decimal::Decimal;
use solcache::{NearCache, NearCacheConfig, PoolConfig, PriceCache, PriceData, RedisPool, SyncCache, SyncPool};
use support::RedisServer;

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
}

fn timed(n: usize, mut call: impl FnMut()) -> (f64, f64) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call();
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let server = RedisServer::start();
    let config = PoolConfig::new(server.url());
    let near = NearCache::connect(&server.url(), NearCacheConfig::for_pool(&config)).unwrap();
    let pool = SyncPool::connect(config.clone()).unwrap();
    let writer = SyncCache::<PriceData>::with_ttl(pool.clone(), Duration::from_secs(3600)).unwrap();
    let sol = PriceData::new("SOL", Decimal::from_str("187.25").unwrap(), Utc::now(), "bench").unwrap();
    writer.set(&sol).unwrap();
    let sync_near = SyncCache::<PriceData>::new(pool.clone()).with_near(near.clone());
    let sync_plain = SyncCache::<PriceData>::new(pool);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let async_pool = rt.block_on(RedisPool::connect(config)).unwrap();
    let async_near = PriceCache::new(async_pool.clone()).with_near(near.clone());
    let async_plain = PriceCache::new(async_pool);
    assert!(sync_near.get("SOL", None).unwrap().is_some());

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("near_cache/sync_get_hit", |b| {
        b.iter(|| black_box(sync_near.get("SOL", None).unwrap()))
    });
    c.bench_function("near_cache/async_get_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(async_near.get("SOL", None).await.unwrap()) })
    });
    c.final_summary();

    let n = if quick { 100 } else { 200_000 };
    let rtt_n = if quick { 10 } else { 5_000 };
    let rows = [
        (
            "sync get, near cache hit",
            timed(n, || drop(black_box(sync_near.get("SOL", None).unwrap()))),
        ),
        (
            "async get, near cache hit",
            timed(n, || drop(black_box(rt.block_on(async_near.get("SOL", None)).unwrap()))),
        ),
        (
            "sync get, near cache off",
            timed(rtt_n, || drop(black_box(sync_plain.get("SOL", None).unwrap()))),
        ),
        (
            "async get, near cache off",
            timed(rtt_n, || {
                drop(black_box(rt.block_on(async_plain.get("SOL", None)).unwrap()))
            }),
        ),
    ];
    println!("\n| Rust call | p50 µs | p99 µs |\n|---|---:|---:|");
    for (name, (p50, p99)) in rows {
        println!("| {name} | {p50:.2} | {p99:.2} |");
    }
    println!("\nnear cache: {:?}", near.stats());
}
