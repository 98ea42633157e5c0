//! The pieces of a cached read that do not touch the network, each alone: key validation,
//! request packing, reply parsing, JSON decode, and metrics recording. Reply parsing is
//! measured for our incremental `Decoder` and for redis-rs' `redis::Parser` (the alternative
//! the `transport::resp` module docs weigh), whole and cut into three reads.
//!
//! Run with `cargo bench --no-default-features --bench hot_path`; docs/performance.md lists
//! the results next to the round trip they are part of.

use std::time::Duration;

use chrono::Utc;
use std::hint::black_box;

use criterion::Criterion;
use solcache::metrics::Metrics;
use solcache::transport::resp::Decoder;
use solcache::{keys, Operation, PriceData};

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
    let mget = format!("*5\r\n{}", String::from_utf8_lossy(&reply).repeat(5)).into_bytes();
    let thirds = |bytes: &[u8]| -> [Vec<u8>; 3] {
        let (a, b) = (bytes.len() / 3, 2 * bytes.len() / 3);
        [bytes[..a].to_vec(), bytes[a..b].to_vec(), bytes[b..].to_vec()]
    };
    let reply_parts = thirds(&reply);
    let mut decoder = Decoder::new();
    g.bench_function("parse_get_reply", |b| {
        b.iter(|| {
            decoder.push(black_box(&reply));
            decoder.next_reply().unwrap().unwrap()
        })
    });
    g.bench_function("parse_get_reply_in_3_reads", |b| {
        b.iter(|| {
            decoder.push(black_box(&reply_parts[0]));
            assert!(decoder.next_reply().unwrap().is_none());
            decoder.push(black_box(&reply_parts[1]));
            assert!(decoder.next_reply().unwrap().is_none());
            decoder.push(black_box(&reply_parts[2]));
            decoder.next_reply().unwrap().unwrap()
        })
    });
    g.bench_function("parse_mget_5_reply", |b| {
        b.iter(|| {
            decoder.push(black_box(&mget));
            decoder.next_reply().unwrap().unwrap()
        })
    });
    let mut parser = redis::Parser::new();
    g.bench_function("redis_parser_get_reply", |b| {
        b.iter(|| parser.parse_value(black_box(&reply[..])).unwrap())
    });
    g.bench_function("redis_parser_get_reply_in_3_reads", |b| {
        b.iter(|| {
            for part in &reply_parts[..2] {
                let err = parser.parse_value(WouldBlockAfter(black_box(part))).unwrap_err();
                assert!(err.is_io_error(), "{err:?}");
            }
            parser.parse_value(WouldBlockAfter(black_box(&reply_parts[2]))).unwrap()
        })
    });
    g.bench_function("redis_parser_mget_5_reply", |b| {
        b.iter(|| parser.parse_value(black_box(&mget[..])).unwrap())
    });
    g.bench_function("json_decode_price", |b| {
        b.iter(|| PriceData::from_json(black_box(json.as_bytes()), "price:SOL").unwrap())
    });
    g.bench_function("metrics_record", |b| {
        b.iter(|| metrics.record(Operation::PriceGet, black_box(Duration::from_micros(42)), true))
    });
    g.finish();
}

/// A non-blocking socket's view of the bytes that have arrived: `WouldBlock` once they are read.
struct WouldBlockAfter<'a>(&'a [u8]);

impl std::io::Read for WouldBlockAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_hot_path(&mut c);
    c.final_summary();
}
