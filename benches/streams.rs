//! Criterion benches of event streams against a private `redis-server` (never the one on 6379).
//!
//! Run with `cargo bench --no-default-features --bench streams`: `publish_many` of 100 events
//! and consumer-group read + ack in batches of 100 and 1000, reported as events per second.
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput};
use rust_decimal::Decimal;
use solcache::events::PRICE_UPDATES;
use solcache::{EventStream, PoolConfig, PriceUpdate, RedisPool, Subscription, SubscriptionOptions, TradingEvent};
use support::RedisServer;

fn events(n: usize) -> Vec<TradingEvent> {
    (0..n)
        .map(|i| {
            TradingEvent::PriceUpdate(PriceUpdate {
                token: "SOL".into(),
                price: Decimal::new(1_872_345 + i as i64, 4),
                timestamp: Utc::now(),
            })
        })
        .collect()
}

fn bench_streams(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let pool = RedisPool::connect(PoolConfig::new(server.url())).await.unwrap();
        // A long stream: the consume benches read what the publish loop wrote.
        EventStream::with_maxlen(pool, 2_000_000, Default::default()).unwrap()
    });
    let mut group = c.benchmark_group("streams");
    group.measurement_time(Duration::from_secs(5)).sample_size(20);

    let batch = events(100);
    group.throughput(Throughput::Elements(100));
    group.bench_function("publish_many/100", |b| {
        b.to_async(&rt)
            .iter(|| async { stream.publish_many(&batch, None).await.unwrap() })
    });

    for count in [100usize, 1000] {
        group.throughput(Throughput::Elements(count as u64));
        let name = format!("consume_ack/batch_{count}");
        group.bench_function(&name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let stream = stream.clone();
                async move {
                    let group_name = format!("bench-{count}-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
                    stream.ensure_group(PRICE_UPDATES, &group_name, "$").await.unwrap();
                    let mut left = iters as usize * count;
                    let chunk = events(1000);
                    while left > 0 {
                        let n = left.min(1000);
                        stream.publish_many(&chunk[..n], None).await.unwrap();
                        left -= n;
                    }
                    let options = SubscriptionOptions {
                        count,
                        ..SubscriptionOptions::default()
                    };
                    let mut sub =
                        Subscription::new(stream.clone(), vec![PRICE_UPDATES.into()], &group_name, "c", options)
                            .unwrap();
                    let started = Instant::now();
                    let mut seen = 0;
                    while seen < iters as usize * count {
                        for e in sub.next_batch().await.unwrap() {
                            sub.ack_later(&e.stream, &e.id);
                            seen += 1;
                        }
                    }
                    sub.flush_acks().await.unwrap();
                    started.elapsed()
                }
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_streams(&mut c);
    c.final_summary();
}
