//! Connection pool behaviour against real redis-server processes that the tests kill and pause.
mod support;

use std::time::{Duration, Instant};

use solcache::{Error, PoolConfig, PriceCache, PriceData, RedisPool};
use support::{free_port, RedisServer};

fn sol() -> PriceData {
    PriceData::new("SOL", rust_decimal::Decimal::ONE, chrono::Utc::now(), "test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_tcp_and_unix_socket() {
    let server = RedisServer::start();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut support::raw(&server).await)
        .await
        .unwrap();
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_string();
    for url in [server.url(), format!("unix://{}", server.socket_path().display())] {
        let pool = RedisPool::connect(PoolConfig::new(url.clone())).await.unwrap();
        // Whatever version the server is (the setup accepts ≥ 6.2), as it reports it.
        assert_eq!(pool.redis_version(), version, "{url}");
        let health = pool.health().await;
        assert!(health.reachable && health.rtt.is_some(), "{health:?}");
        assert_eq!(health.counts.connections, health.counts.idle + health.counts.in_use);
        pool.close().await;
        assert!(matches!(
            PriceCache::new(pool).get("SOL", None).await,
            Err(Error::PoolClosed)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_connection_error() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let started = Instant::now();
    let err = RedisPool::connect(PoolConfig::new(url)).await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_authentication_error_without_the_password() {
    let server = RedisServer::start_with(&["--requirepass", "right-pw"]);
    let url = format!("redis://:wrong-pw@127.0.0.1:{}/0", server.port);
    let err = RedisPool::connect(PoolConfig::new(url)).await.unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
    assert_eq!(err.response_code(), Some("WRONGPASS"), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-pw"));
    let ok = RedisPool::connect(PoolConfig::new(format!(
        "redis://:right-pw@127.0.0.1:{}/0",
        server.port
    )))
    .await
    .unwrap();
    assert!(!format!("{ok:?} {}", ok.redacted_url()).contains("right-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_recovered_without_a_new_pool() {
    let mut server = RedisServer::start();
    let pool = RedisPool::connect(PoolConfig::new(server.url())).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    // Several idle connections, all of which the restart will kill.
    let gets: Vec<_> = (0..8).map(|_| cache.get("SOL", None)).collect();
    for r in futures::future::join_all(gets).await {
        r.unwrap();
    }
    server.stop();
    let started = Instant::now();
    let err = cache.set(&sol()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails fast, took {:?}",
        started.elapsed()
    );
    server.restart();
    // The first call after the restart already succeeds: stale connections are discarded and
    // the idempotent request is retried on a fresh one.
    cache.set(&sol()).await.unwrap();
    assert!(cache.get("SOL", None).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_and_exhausts_the_pool() {
    let server = RedisServer::start();
    let config = PoolConfig {
        max_size: 2,
        response_timeout: Duration::from_millis(1500),
        checkout_timeout: Duration::from_millis(200),
        ..PoolConfig::new(server.url())
    };
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&sol()).await.unwrap();
    // Open both connections while the server answers, so the pause finds them established.
    let (w1, w2) = tokio::join!(cache.get("SOL", None), cache.get("SOL", None));
    w1.unwrap();
    w2.unwrap();
    wait_until(|| pool.counts().connections == 2).await;
    server.pause();
    let (a, b, c) = tokio::join!(cache.get("SOL", None), cache.get("SOL", None), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cache.get("SOL", None).await
    });
    let errors = [a.unwrap_err(), b.unwrap_err(), c.unwrap_err()];
    assert_eq!(
        errors.iter().filter(|e| matches!(e, Error::Timeout { .. })).count(),
        2,
        "{errors:?}"
    );
    assert!(matches!(errors[2], Error::PoolExhausted { .. }), "{errors:?}");
    assert!(errors.iter().all(Error::is_timeout));
    server.resume();
    assert!(cache.get("SOL", None).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_task_replaces_killed_connections_before_any_caller_hits_them() {
    let server = RedisServer::start();
    let config = PoolConfig {
        min_idle: 4,
        health_check_interval: Duration::from_millis(100),
        ..PoolConfig::new(server.url())
    };
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&sol()).await.unwrap();
    let mut admin = support::raw(&server).await;
    wait_until(|| pool.counts().idle >= 4).await;

    // Kill every client connection of the server (ours included) behind the pool's back.
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 4, "killed {killed}");

    // The health task notices, drops the dead connections and reopens min_idle fresh ones:
    // the server sees live clients again and the pool holds no more than it does.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list: String = redis::cmd("CLIENT")
            .arg(&["LIST", "TYPE", "normal"])
            .query_async(&mut admin)
            .await
            .unwrap();
        let ours = list.lines().count() as u32 - 1; // minus the admin connection
        let counts = pool.counts();
        if ours >= 4 && counts.connections == ours {
            break;
        }
        assert!(Instant::now() < deadline, "server sees {ours} clients, pool {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No caller ever saw an error.
    cache.get("SOL", None).await.unwrap();
    assert_eq!(pool.metrics().stats(solcache::Operation::PriceGet).errors, 0);
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_tls() {
    let server = RedisServer::start_tls();
    // `#insecure` skips certificate verification (the test certificate is self-signed).
    let url = format!("rediss://127.0.0.1:{}/0#insecure", server.port);
    let pool = RedisPool::connect(PoolConfig::new(url)).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    cache.set(&sol()).await.unwrap();
    let read = cache.get("SOL", None).await.unwrap().expect("written over TLS");
    assert_eq!(read.token, "SOL");
    // Verification against the system roots refuses the self-signed certificate.
    let strict = RedisPool::connect(PoolConfig::new(format!("rediss://127.0.0.1:{}/0", server.port))).await;
    assert!(matches!(strict, Err(Error::Connection { .. })), "{strict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_releases_every_connection_for_good() {
    let server = RedisServer::start();
    let pool = RedisPool::connect(PoolConfig {
        min_idle: 3,
        ..PoolConfig::new(server.url())
    })
    .await
    .unwrap();
    wait_until(|| pool.counts().idle >= 3).await;
    pool.close().await;
    pool.close().await; // idempotent
    assert_eq!(pool.counts().connections, 0);
    // min_idle replenishment must not bring connections back after close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.counts().connections, 0);
    let mut admin = support::raw(&server).await;
    let list: String = redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "normal"])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(list.lines().count(), 1, "only the admin connection is left: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_checkout_leaves_no_phantom_waiter() {
    let server = RedisServer::start();
    let config = PoolConfig {
        max_size: 1,
        min_idle: 1,
        response_timeout: Duration::from_millis(1500),
        checkout_timeout: Duration::from_millis(1000),
        ..PoolConfig::new(server.url())
    };
    let pool = RedisPool::connect(config).await.unwrap();
    let cache = PriceCache::new(pool.clone());
    // The pool's one connection is open before the server stops answering (the min_idle
    // filler may still be opening it when `connect` returns; opened against a paused server
    // it would never be checked out).
    wait_until(|| pool.counts().idle == 1).await;
    server.pause();
    let holder = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("SOL", None).await }
    });
    wait_until(|| pool.counts().in_use == 1).await;
    // A second caller waits for the only connection, then is cancelled (as a Python task would be).
    let waiter = tokio::time::timeout(Duration::from_millis(100), cache.get("SOL", None)).await;
    assert!(waiter.is_err(), "the waiter was cancelled by the timeout");
    assert_eq!(pool.counts().waiting, 0, "{:?}", pool.counts());
    server.resume();
    let _ = holder.await.unwrap();
    assert!(cache.get("SOL", None).await.is_ok());
}
