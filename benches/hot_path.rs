//! The pieces of a cached read that do not touch the network, each alone: key validation,
//! request packing, reply parsing, JSON decode, and metrics recording.
//!
//! Run with `cargo bench --no-default-features --bench hot_path`; docs/performance.md lists
//! the results next to the round trip they are part of.

use std::time::Duration;

use chrono::Utc;
use std::hint::black_box;

use criterion::Criterion;
use solcache::metrics::Metrics;
use solcache::{keys, resp, Operation, PriceData};

fn bench_hot_path(c: &mut Criterion) {
    let sol = PriceData::new("SOL", "187.2345".parse().unwrap(), Utc::now(), "pyth").unwrap();
    let json = sol.to_json();
    let reply = format!("${}\r\n{}\r\n", json.len(), json).into_bytes();
    let metrics = Metrics::new(Duration::from_millis(1));
    let mut g = c.benchmark_group("hot_path");
    g.bench_function("key_validation", |b| {
        b.iter(|| keys::price_key(black_box("SOL")).unwrap())
    });
    g.bench_function("pack_get_command", |b| {
        b.iter(|| {
            let mut cmd = redis::cmd("GET");
            cmd.arg(black_box("price:SOL"));
            cmd.get_packed_command()
        })
    });
    g.bench_function("parse_get_reply", |b| {
        b.iter(|| resp::parse(black_box(&reply)).unwrap())
    });
    g.bench_function("json_decode_price", |b| {
        b.iter(|| PriceData::from_json(black_box(json.as_bytes()), "price:SOL").unwrap())
    });
    g.bench_function("metrics_record", |b| {
        b.iter(|| metrics.record(Operation::PriceGet, black_box(Duration::from_micros(42)), true))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_hot_path(&mut c);
    c.final_summary();
}
