//! The near cache's hit latency in Rust, against a private `redis-server`.
//!
//! Run with `cargo bench --no-default-features --bench near_cache`. Criterion times a hit of
//! the blocking [`SyncCache`] and of the async [`PriceCache`] (awaited on a current-thread
//! runtime), then a per-call report gives p50 / p99 of individually timed hits, with hits
//! learning of invalidations from the io_uring ring and from a `recv` each (`io_uring: false`),
//! next to the same read with the near cache off (the round trip), measured in the same run
//! (rounds interleaved). Last, what the two ways of asking cost alone: a readiness look at an
//! armed ring against a non-blocking `recv` on the same quiet socket.
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use rust_decimal::Decimal;
use solcache::near_cache::watch::{self, Watch};
use solcache::{NearCache, NearCacheConfig, PoolConfig, PriceCache, PriceData, RedisPool, SyncCache, SyncPool};
use support::RedisServer;

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
}

fn timed(n: usize, mut call: impl FnMut()) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call();
        samples.push(started.elapsed());
    }
    samples
}

/// p50 and p99 of every sample of a row, over all rounds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// ns per look of `look`: the median over `n / 1000` batches of 1000 looks (a batch the
/// scheduler preempted does not move it).
fn per_look(n: usize, mut look: impl FnMut() -> bool) -> f64 {
    let mut batches: Vec<f64> = (0..(n / 1000).max(1))
        .map(|_| {
            let started = Instant::now();
            for _ in 0..1000 {
                black_box(look());
            }
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

/// A readiness look at an armed ring, then a non-blocking `recv`, on one quiet loopback TCP
/// socket, `rounds` times: (ring ns, recv ns) per round.
fn readiness_costs(rounds: usize, n: usize) -> Vec<(f64, f64)> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    let fd = ours.as_raw_fd();
    let mut ring = Watch::new(fd, true);
    assert!(ring.arm(), "io_uring is available: the ring arms");
    ring.signalled();
    let mut buffer = [0u8; 16 * 1024];
    (0..rounds)
        .map(|_| {
            let ring_ns = per_look(n, || ring.signalled());
            let recv_ns = per_look(n, || {
                // SAFETY: a valid descriptor and buffer for the call's duration.
                unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_DONTWAIT) > 0 }
            });
            (ring_ns, recv_ns)
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let server = RedisServer::start();
    let config = PoolConfig::new(server.url());
    let near = NearCache::connect(&server.url(), NearCacheConfig::for_pool(&config)).unwrap();
    let near_recv = NearCache::connect(
        &server.url(),
        NearCacheConfig {
            io_uring: false,
            ..NearCacheConfig::for_pool(&config)
        },
    )
    .unwrap();
    let pool = SyncPool::connect(config.clone()).unwrap();
    let writer = SyncCache::<PriceData>::with_ttl(pool.clone(), Duration::from_secs(3600)).unwrap();
    let sol = PriceData::new("SOL", Decimal::from_str("187.25").unwrap(), Utc::now(), "bench").unwrap();
    writer.set(&sol).unwrap();
    let sync_near = SyncCache::<PriceData>::new(pool.clone()).with_near(near.clone());
    let sync_recv = SyncCache::<PriceData>::new(pool.clone()).with_near(near_recv.clone());
    let sync_plain = SyncCache::<PriceData>::new(pool);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let async_pool = rt.block_on(RedisPool::connect(config)).unwrap();
    let async_near = PriceCache::new(async_pool.clone()).with_near(near.clone());
    let async_recv = PriceCache::new(async_pool.clone()).with_near(near_recv.clone());
    let async_plain = PriceCache::new(async_pool);
    assert!(sync_near.get("SOL", None).unwrap().is_some());
    assert!(sync_recv.get("SOL", None).unwrap().is_some());
    let ring = watch::available();
    let armed_by = Instant::now() + Duration::from_secs(5);
    while ring && !near.stats().io_uring && Instant::now() < armed_by {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "io_uring available: {ring}; hits read by the ring: {}",
        near.stats().io_uring
    );

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("near_cache/sync_get_hit", |b| {
        b.iter(|| black_box(sync_near.get("SOL", None).unwrap()))
    });
    c.bench_function("near_cache/async_get_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(async_near.get("SOL", None).await.unwrap()) })
    });
    c.bench_function("near_cache/sync_get_hit_recv", |b| {
        b.iter(|| black_box(sync_recv.get("SOL", None).unwrap()))
    });
    c.bench_function("near_cache/async_get_hit_recv", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(async_recv.get("SOL", None).await.unwrap()) })
    });
    c.final_summary();

    let rounds = if quick { 1 } else { 5 };
    let n = if quick { 100 } else { 40_000 };
    let rtt_n = if quick { 10 } else { 1_000 };
    let names = [
        "sync get, hit, io_uring readiness",
        "sync get, hit, recv per hit",
        "async get, hit, io_uring readiness",
        "async get, hit, recv per hit",
        "sync get, near cache off",
        "async get, near cache off",
    ];
    let mut rows: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        rows[0].extend(timed(n, || drop(black_box(sync_near.get("SOL", None).unwrap()))));
        rows[1].extend(timed(n, || drop(black_box(sync_recv.get("SOL", None).unwrap()))));
        rows[2].extend(timed(n, || {
            drop(black_box(rt.block_on(async_near.get("SOL", None)).unwrap()))
        }));
        rows[3].extend(timed(n, || {
            drop(black_box(rt.block_on(async_recv.get("SOL", None)).unwrap()))
        }));
        rows[4].extend(timed(rtt_n, || drop(black_box(sync_plain.get("SOL", None).unwrap()))));
        rows[5].extend(timed(rtt_n, || {
            drop(black_box(rt.block_on(async_plain.get("SOL", None)).unwrap()))
        }));
    }
    println!("\n| Rust call ({rounds} interleaved rounds) | p50 µs | p99 µs |\n|---|---:|---:|");
    for (name, samples) in names.iter().zip(rows) {
        let (p50, p99) = summary(samples);
        println!("| {name} | {p50:.2} | {p99:.2} |");
    }
    println!("\nnear cache (io_uring): {:?}", near.stats());
    println!("near cache (recv): {:?}", near_recv.stats());
    if ring {
        println!("\n| readiness look on a quiet socket, per round | ring ns | recv ns |\n|---|---:|---:|");
        for (round, (ring_ns, recv_ns)) in readiness_costs(rounds, n * 10).into_iter().enumerate() {
            println!("| round {} | {ring_ns:.1} | {recv_ns:.1} |", round + 1);
        }
    }
}
