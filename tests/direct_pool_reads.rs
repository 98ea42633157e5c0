//! Cache reads over the pools' own direct sockets (`RedisPool::read`, `SyncPool::read`):
//! written and read by the caller's task or thread, beside each pooled connection, against
//! real redis-server processes.

mod support;

use std::time::Duration;

use chrono::Utc;
use solcache::{Error, PoolConfig, PriceCache, PriceData, RedisPool, SyncCache, SyncPool};
use support::RedisServer;

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, value.parse().unwrap(), Utc::now(), "test").unwrap()
}

/// `CLIENT LIST` lines of clients named `name`.
async fn clients(admin: &mut redis::aio::MultiplexedConnection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "normal"])
        .query_async(admin)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.contains(&format!(" name={name} ")))
        .map(str::to_owned)
        .collect()
}

/// The id of the client named `name` whose last command was `cmd`.
fn id_of(lines: &[String], cmd: &str) -> Option<String> {
    lines
        .iter()
        .find(|l| l.contains(&format!(" cmd={cmd} ")))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_reads_take_a_direct_socket_that_is_replaced_when_killed() {
    let server = RedisServer::start();
    let pool = RedisPool::connect(PoolConfig {
        min_idle: 1,
        max_size: 1,
        ..PoolConfig::new(server.url())
    })
    .await
    .unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&price("SOL", "150.25")).await.unwrap();
    let mut admin = support::raw(&server).await;
    assert_eq!(clients(&mut admin, "solcache-pool").await.len(), 1, "no read yet");
    assert_eq!(
        cache.get("SOL", None).await.unwrap().unwrap().price.to_string(),
        "150.25"
    );
    let pooled = clients(&mut admin, "solcache-pool").await;
    assert_eq!(
        pooled.len(),
        2,
        "the pooled connection and its direct socket: {pooled:?}"
    );
    let direct = id_of(&pooled, "get").expect("the read went over a socket of its own");
    assert_eq!(
        pool.counts().connections,
        1,
        "counted as the pooled connection it belongs to"
    );

    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "ID", &direct])
        .query_async(&mut admin)
        .await
        .unwrap();
    // The read on the dead socket is sent again through the pooled connection.
    assert!(cache.get("SOL", None).await.unwrap().is_some());
    assert!(cache.get_many(&["SOL", "USDC"], None).await.unwrap()[0].is_some());
    assert_eq!(pool.metrics().stats(solcache::Operation::PriceGet).errors, 0);
    let pooled = clients(&mut admin, "solcache-pool").await;
    assert_eq!(
        pooled.len(),
        2,
        "a fresh direct socket replaced the killed one: {pooled:?}"
    );
    assert!(id_of(&pooled, "mget").is_some_and(|id| id != direct), "{pooled:?}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_async_read_never_pairs_its_reply_with_the_next_read() {
    let server = RedisServer::start();
    let pool = RedisPool::connect(PoolConfig {
        max_size: 1,
        ..PoolConfig::new(server.url())
    })
    .await
    .unwrap();
    let cache = PriceCache::new(pool.clone());
    cache
        .set_many(&[price("SOL", "150.25"), price("USDC", "1.0001")])
        .await
        .unwrap();
    assert!(cache.get("SOL", None).await.unwrap().is_some()); // the direct socket is open
    server.pause();
    let cancelled = tokio::time::timeout(Duration::from_millis(100), cache.get("SOL", None)).await;
    assert!(cancelled.is_err(), "cancelled while its reply was due");
    server.resume();
    // The same pooled connection (max_size 1) serves the next read: SOL's late reply must not
    // be taken for USDC's.
    for _ in 0..3 {
        let usdc = cache.get("USDC", None).await.unwrap().unwrap();
        assert_eq!(
            (usdc.token.as_str(), usdc.price.to_string().as_str()),
            ("USDC", "1.0001")
        );
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_direct_reads_can_be_turned_off() {
    let server = RedisServer::start();
    let pool = RedisPool::connect(PoolConfig {
        direct_reads: false,
        ..PoolConfig::new(server.url())
    })
    .await
    .unwrap();
    let cache = PriceCache::new(pool.clone());
    for _ in 0..5 {
        cache.get("SOL", None).await.unwrap();
    }
    let mut admin = support::raw(&server).await;
    let pooled = clients(&mut admin, "solcache-pool").await;
    assert_eq!(pooled.len() as u32, pool.counts().connections, "{pooled:?}");
    pool.close().await;
}

#[test]
fn sync_reads_take_a_direct_socket_that_is_replaced_when_killed() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut admin = rt.block_on(support::raw(&server));
    let pool = SyncPool::connect(PoolConfig::new(server.url())).unwrap();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    cache.set(&price("SOL", "150.25")).unwrap();
    assert_eq!(rt.block_on(clients(&mut admin, "solcache-sync")).len(), 1);
    assert!(cache.get("SOL", None).unwrap().is_some());
    let synced = rt.block_on(clients(&mut admin, "solcache-sync"));
    let direct = id_of(&synced, "get").expect("the read went over a socket of its own");
    assert_eq!((synced.len(), pool.counts().connections), (2, 1), "{synced:?}");
    let _: i64 = rt
        .block_on(
            redis::cmd("CLIENT")
                .arg(&["KILL", "ID", &direct])
                .query_async(&mut admin),
        )
        .unwrap();
    assert!(cache.get("SOL", None).unwrap().is_some());
    assert!(cache.get_many(&["SOL"], None).unwrap()[0].is_some());
    assert_eq!(pool.metrics().stats(solcache::Operation::PriceGet).errors, 0);
    let synced = rt.block_on(clients(&mut admin, "solcache-sync"));
    assert!(id_of(&synced, "mget").is_some_and(|id| id != direct), "{synced:?}");

    let off = SyncPool::connect(PoolConfig {
        direct_reads: false,
        ..PoolConfig::new(server.url())
    })
    .unwrap();
    let before = rt.block_on(clients(&mut admin, "solcache-sync")).len();
    SyncCache::<PriceData>::new(off.clone()).get("SOL", None).unwrap();
    assert_eq!(
        rt.block_on(clients(&mut admin, "solcache-sync")).len(),
        before,
        "no direct socket"
    );
}

#[test]
fn a_poll_budget_above_one_millisecond_is_refused() {
    let config = PoolConfig {
        read_spin: Duration::from_micros(1001),
        ..PoolConfig::new("redis://127.0.0.1:1/0")
    };
    assert!(matches!(SyncPool::connect(config), Err(Error::InvalidInput(_))));
}
