//! Price cache against a real redis-server.
mod support;

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{Error, PoolConfig, PriceCache, PriceData, RedisPool};
use support::{raw, RedisServer};

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

async fn open(server: &RedisServer) -> RedisPool {
    RedisPool::connect(PoolConfig::new(server.url())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_then_get_round_trips_exactly() {
    let server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    let sol = price("SOL", "187.234500001");
    cache.set(&sol).await.unwrap();
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(sol.clone()));
    assert_eq!(cache.get("BONK", None).await.unwrap(), None);
    let stored: String = redis::cmd("GET")
        .arg("price:SOL")
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();
    assert_eq!(stored, sol.to_json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_many_and_get_many_keep_request_order() {
    let server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    let batch = vec![price("SOL", "187.1"), price("USDC", "1.0001"), price("RAY", "2.5")];
    cache.set_many(&batch).await.unwrap();
    let got = cache.get_many(&["RAY", "BONK", "SOL", "USDC"], None).await.unwrap();
    assert_eq!(
        got,
        vec![
            Some(batch[2].clone()),
            None,
            Some(batch[0].clone()),
            Some(batch[1].clone())
        ]
    );
    assert!(cache.get_many::<&str>(&[], None).await.unwrap().is_empty());
    cache.set_many(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_sets_the_ttl_and_a_rewrite_refreshes_it() {
    let server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    let mut con = raw(&server).await;
    cache.set(&price("SOL", "1")).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("price:SOL").query_async(&mut con).await.unwrap();
    assert!(pttl > 0 && pttl <= 2000, "pttl {pttl}");
    redis::cmd("PEXPIRE")
        .arg("price:SOL")
        .arg(100)
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    cache.set_many(&[price("SOL", "2")]).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("price:SOL").query_async(&mut con).await.unwrap();
    assert!(pttl > 1000, "rewrite must refresh the TTL, got {pttl}");

    let short = PriceCache::with_ttl(open(&server).await, Duration::from_millis(150)).unwrap();
    short.set(&price("RAY", "1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(short.get("RAY", None).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_hides_old_prices() {
    let server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    let old = PriceData::new(
        "SOL",
        Decimal::ONE,
        Utc::now() - chrono::Duration::milliseconds(1500),
        "t",
    )
    .unwrap();
    cache.set(&old).await.unwrap();
    assert_eq!(cache.get("SOL", Some(Duration::from_millis(500))).await.unwrap(), None);
    assert_eq!(
        cache.get("SOL", Some(Duration::from_secs(5))).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(
        cache
            .get_many(&["SOL"], Some(Duration::from_millis(500)))
            .await
            .unwrap(),
        vec![None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_mistyped_values_are_typed_errors() {
    let server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    let mut con = raw(&server).await;
    redis::cmd("SET")
        .arg("price:SOL")
        .arg("{not json")
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    match cache.get("SOL", None).await {
        Err(Error::Serialization { key, .. }) => assert_eq!(key, "price:SOL"),
        other => panic!("expected a serialization error, got {other:?}"),
    }
    match cache.get_many(&["USDC", "SOL"], None).await {
        Err(Error::Serialization { key, .. }) => assert_eq!(key, "price:SOL"),
        other => panic!("expected a serialization error, got {other:?}"),
    }
    // A price stored under another token's key is not silently returned.
    redis::cmd("SET")
        .arg("price:BONK")
        .arg(price("SOL", "1").to_json())
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    assert!(matches!(
        cache.get("BONK", None).await,
        Err(Error::Serialization { .. })
    ));
    redis::cmd("RPUSH")
        .arg("price:RAY")
        .arg("x")
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    assert!(matches!(cache.get("RAY", None).await, Err(Error::Response { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_fail_before_redis_is_touched() {
    let mut server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    server.stop();
    for bad in ["", "SO L", "price:SOL", "{SOL}", &"X".repeat(33)] {
        assert!(
            matches!(cache.get(bad, None).await, Err(Error::InvalidInput(_))),
            "{bad:?}"
        );
        assert!(
            matches!(cache.get_many(&["SOL", bad], None).await, Err(Error::InvalidInput(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_record_every_operation() {
    let server = RedisServer::start();
    let pool = open(&server).await;
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "1")).await.unwrap();
    for _ in 0..50 {
        cache.get("SOL", None).await.unwrap();
    }
    let stats = pool.metrics().stats(solcache::Operation::PriceGet);
    assert_eq!(stats.count, 50);
    assert!(stats.p50_us > 0.0 && stats.p50_us <= stats.p99_us && stats.p99_us <= stats.max_us);
    assert_eq!(pool.metrics().stats(solcache::Operation::PriceSet).count, 1);
}

/// The next `MGET` the server executes, as MONITOR prints it (`… "MGET" "price:SOL" …`).
struct Monitor(std::io::BufReader<std::net::TcpStream>);

impl Monitor {
    fn start(server: &RedisServer) -> Self {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
        Monitor(reader)
    }

    /// The arguments of the next MGET, keys only.
    fn next_mget_keys(&mut self) -> Vec<String> {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).unwrap() > 0, "MONITOR closed");
            if let Some((_, args)) = line.split_once(r#""MGET" "#) {
                return args
                    .trim_end()
                    .split(' ')
                    .map(|a| a.trim_matches('"').to_owned())
                    .collect();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_sends_each_key_once_and_fans_the_result_out() {
    let server = RedisServer::start();
    let pool = open(&server).await;
    let cache = PriceCache::new(pool);
    let (sol, usdc) = (price("SOL", "187.1"), price("USDC", "1.0001"));
    cache.set_many(&[sol.clone(), usdc.clone()]).await.unwrap();
    let mut monitor = Monitor::start(&server);
    let got = cache
        .get_many(&["SOL", "SOL", "USDC", "BONK", "SOL", "BONK"], None)
        .await
        .unwrap();
    assert_eq!(monitor.next_mget_keys(), ["price:SOL", "price:USDC", "price:BONK"]);
    assert_eq!(
        got,
        vec![
            Some(sol.clone()),
            Some(sol.clone()),
            Some(usdc.clone()),
            None,
            Some(sol.clone()),
            None
        ]
    );
    // Past the linear scan: 40 ids, 20 distinct, in first-asked order.
    let tokens: Vec<String> = (0..40).map(|i| format!("T{}", i % 20)).collect();
    let got = cache.get_many(&tokens, None).await.unwrap();
    let expected: Vec<String> = (0..20).map(|i| format!("price:T{i}")).collect();
    assert_eq!(monitor.next_mget_keys(), expected);
    assert_eq!(got.len(), 40);

    // The blocking cache folds duplicates the same way.
    let sync_pool = solcache::SyncPool::connect(PoolConfig::new(server.url())).unwrap();
    let sync_cache: solcache::SyncCache<PriceData> = solcache::SyncCache::new(sync_pool);
    let got = sync_cache.get_many(&["USDC", "SOL", "USDC"], None).unwrap();
    assert_eq!(monitor.next_mget_keys(), ["price:USDC", "price:SOL"]);
    assert_eq!(got, vec![Some(usdc.clone()), Some(sol), Some(usdc)]);
}
