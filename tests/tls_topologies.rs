//! `rediss+cluster://` and `rediss+sentinel://` with an ACL user, against TLS-only nodes and
//! sentinels started here (cluster bus and replication over TLS too).
mod support;

use std::str::FromStr;

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::{Error, EventStream, PoolConfig, PriceCache, PriceData, RedisPool};
use support::tls_topologies::{tls_cli, TlsCluster, TlsSentinelGroup};

const TOKENS: [&str; 8] = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF"];

fn prices(value: &str) -> Vec<PriceData> {
    TOKENS
        .iter()
        .map(|t| PriceData::new(*t, Decimal::from_str(value).unwrap(), Utc::now(), "tls").unwrap())
        .collect()
}

/// Set and read back a batch spanning slots, and publish an event.
async fn round_trip(pool: &RedisPool, value: &str) {
    let cache = PriceCache::new(pool.clone());
    let batch = prices(value);
    cache.set_many(&batch).await.unwrap();
    assert_eq!(
        cache.get_many(&TOKENS, None).await.unwrap(),
        batch.iter().cloned().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(batch[0].clone()));
    let events = EventStream::new(pool.clone());
    let event = solcache::TradingEvent::PriceUpdate(solcache::PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(1),
        timestamp: Utc::now(),
    });
    events.publish(&event, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_cluster_reaches_tls_nodes_as_an_acl_user() {
    let cluster = TlsCluster::start();
    let pool = RedisPool::connect(PoolConfig::new(cluster.url())).await.unwrap();
    assert_eq!(pool.topology(), "cluster");
    assert!(pool.redacted_url().starts_with("rediss+cluster://trader:***@"));
    round_trip(&pool, "1.5").await;
    // Every primary holds some of the batch: the writes went to every node over TLS.
    let holding = cluster
        .nodes
        .iter()
        .filter(|n| tls_cli(n.port, &["ROLE"]).starts_with("master"))
        .filter(|n| tls_cli(n.port, &["DBSIZE"]).trim() != "0")
        .count();
    assert_eq!(holding, 3);
    pool.close().await;

    // Without `#insecure` the self-signed certificate is refused.
    let verified = cluster.url().replace("#insecure", "");
    let err = RedisPool::connect(PoolConfig::new(verified)).await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_sentinel_reaches_tls_sentinels_and_primary_as_an_acl_user() {
    let group = TlsSentinelGroup::start();
    let pool = RedisPool::connect(PoolConfig::new(group.url())).await.unwrap();
    assert_eq!(pool.topology(), "sentinel");
    assert_eq!(pool.primary(), Some(format!("127.0.0.1:{}", group.primary.port)));
    round_trip(&pool, "2.5").await;
    assert_eq!(tls_cli(group.primary.port, &["EXISTS", "price:SOL"]).trim(), "1");
    // The switch watcher subscribes to every sentinel over TLS too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pool.switch_watches_up() < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", pool.health().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pool.switch_watch_errors(), 0);
    pool.close().await;

    let verified = group.url().replace("#insecure", "");
    let err = RedisPool::connect(PoolConfig::new(verified)).await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}
