//! The near cache against a real redis-server: hits need no Redis, every change another
//! client makes is seen by the next read, and every way of losing the tracking connection
//! (FLUSHALL, CLIENT KILL, a paused or restarted server) empties the store before the next
//! hit; the store refills afterwards and stays within its byte bound.
mod support;

use std::str::FromStr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use solcache::near_cache::tracker::{Local, Tracker};
use solcache::near_cache::tracking::TrackingConnection;
use solcache::near_cache::watch;
use solcache::transport::Endpoint;
use solcache::{NearCache, NearCacheConfig, PoolConfig, PriceCache, PriceData, RedisPool, SyncCache, SyncPool};
use support::RedisServer;

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

fn config(server: &RedisServer) -> PoolConfig {
    PoolConfig {
        response_timeout: Duration::from_millis(200),
        ..PoolConfig::new(server.url())
    }
}

/// Another client's writes: a plain cache (no near cache, so nothing is dropped locally) and a
/// PING after each write. Redis writes a write's reply before the invalidations it caused (same
/// event-loop iteration); a command answered after that reply is answered once they have gone
/// out, so when a write here returns the near cache's socket holds its invalidation.
struct Writer {
    cache: SyncCache<PriceData>,
    url: String,
}

impl Writer {
    fn set(&self, item: &PriceData) -> solcache::Result<()> {
        self.cache.set(item)?;
        self.barrier();
        Ok(())
    }

    fn set_many(&self, items: &[PriceData]) -> solcache::Result<()> {
        self.cache.set_many(items)?;
        self.barrier();
        Ok(())
    }

    /// A PING on a new connection (the server may have restarted since the last one).
    fn barrier(&self) {
        let mut ping = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("PING").query::<()>(&mut ping).unwrap();
    }
}

/// A blocking cache with a near cache, and another client's writer.
fn open(server: &RedisServer) -> (SyncCache<PriceData>, Writer, NearCache) {
    let config = config(server);
    let near = NearCache::connect(&server.url(), NearCacheConfig::for_pool(&config)).unwrap();
    let reader = SyncCache::new(SyncPool::connect(config.clone()).unwrap()).with_near(near.clone());
    let writer = Writer {
        cache: SyncCache::new(SyncPool::connect(config).unwrap()),
        url: server.url(),
    };
    (reader, writer, near)
}

fn value(cache: &SyncCache<PriceData>, token: &str) -> Option<String> {
    cache.get(token, None).unwrap().map(|p| p.price.to_string())
}

/// Wait (bounded) until `what` holds; the bound is a liveness limit, not a speed target.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Read `token` until it is a hit again (the store refilled), checking every read sees `expected`.
fn refills(reader: &SyncCache<PriceData>, near: &NearCache, token: &str, expected: &str) {
    eventually("the near cache serves hits again", || {
        let hits = near.stats().hits;
        assert_eq!(value(reader, token).as_deref(), Some(expected));
        near.stats().hits > hits
    });
}

#[test]
fn hits_need_no_round_trip_and_writes_invalidate() {
    let server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer.set(&price("SOL", "1")).unwrap();
    assert_eq!(value(&reader, "SOL").as_deref(), Some("1"));
    let before = near.stats();
    assert_eq!(value(&reader, "SOL").as_deref(), Some("1"));
    let after = near.stats();
    assert_eq!(
        (after.hits, after.fills),
        (before.hits + 1, before.fills),
        "a hit, no fill"
    );
    assert!(after.bytes > 0 && after.entries == 1 && after.connected);
    for n in 2..50 {
        writer.set(&price("SOL", &n.to_string())).unwrap();
        assert_eq!(value(&reader, "SOL"), Some(n.to_string()), "the write is seen at once");
    }
    assert!(near.stats().invalidations >= 48);
    assert_eq!(
        reader.get("BONK", None).unwrap(),
        None,
        "a missing key is read, not cached"
    );
}

#[test]
fn get_many_serves_hits_and_fetches_only_misses_in_one_round_trip() {
    let server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer
        .set_many(&[price("SOL", "1"), price("USDC", "2"), price("RAY", "3")])
        .unwrap();
    assert_eq!(value(&reader, "SOL").as_deref(), Some("1"));
    let before = near.stats();
    let many = reader.get_many(&["RAY", "SOL", "BONK", "SOL", "USDC"], None).unwrap();
    let got: Vec<Option<String>> = many.iter().map(|p| p.as_ref().map(|p| p.price.to_string())).collect();
    let want = [Some("3"), Some("1"), None, Some("1"), Some("2")].map(|v| v.map(str::to_owned));
    assert_eq!(got, want);
    let after = near.stats();
    assert_eq!(after.fills, before.fills + 1, "one fill for every miss");
    assert_eq!(after.misses, before.misses + 3, "RAY, BONK, USDC");
    assert_eq!(after.hits, before.hits + 1, "SOL once (asked twice, read once)");
    let before = near.stats();
    reader.get_many(&["RAY", "SOL", "USDC"], None).unwrap();
    assert_eq!(near.stats().fills, before.fills, "all hits: no round trip");
}

#[test]
fn a_hit_never_outlives_the_server_ttl() {
    let server = RedisServer::start();
    let (reader, _, near) = open(&server);
    let short =
        SyncCache::<PriceData>::with_ttl(SyncPool::connect(config(&server)).unwrap(), Duration::from_millis(300))
            .unwrap();
    short.set(&price("SOL", "1")).unwrap();
    let set_at = Instant::now();
    assert_eq!(value(&reader, "SOL").as_deref(), Some("1"));
    // Nothing writes the key: only its TTL ends it. No read that began after the key expired
    // is answered from memory (Redis itself may answer within its own clock's error).
    while set_at.elapsed() < Duration::from_millis(600) {
        let began = set_at.elapsed();
        let hits = near.stats().hits;
        let seen = value(&reader, "SOL");
        let hit = near.stats().hits > hits;
        if began > Duration::from_millis(300) {
            assert!(!hit, "a hit after the key expired ({began:?}): {seen:?}");
        }
    }
    assert_eq!(value(&reader, "SOL"), None);
    assert!(near.stats().hits > 0);
}

#[test]
fn max_age_bounds_the_entry_age() {
    let server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer.set(&price("SOL", "1")).unwrap();
    assert_eq!(value(&reader, "SOL").as_deref(), Some("1"));
    std::thread::sleep(Duration::from_millis(30));
    let before = near.stats();
    // The item's own timestamp is older than 20 ms: None, as a read from Redis says.
    assert_eq!(reader.get("SOL", Some(Duration::from_millis(20))).unwrap(), None);
    assert_eq!(
        near.stats().fills,
        before.fills + 1,
        "an entry older than max_age is read again"
    );
}

#[test]
fn flushall_empties_the_store_before_the_next_hit() {
    let server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer.set(&price("SOL", "1")).unwrap();
    refills(&reader, &near, "SOL", "1");
    let flushes = near.stats().flushes;
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    redis::cmd("FLUSHALL").query::<()>(&mut raw).unwrap();
    // Redis writes FLUSHALL's reply before the null invalidation (same event-loop iteration,
    // the latest client queued first); a command answered after that reply is answered in a
    // later iteration, once the invalidation has gone out. A plain client gets Redis' order.
    redis::cmd("PING").query::<()>(&mut raw).unwrap();
    assert_eq!(value(&reader, "SOL"), None, "no stale hit after FLUSHALL");
    assert!(near.stats().flushes > flushes);
    writer.set(&price("SOL", "2")).unwrap();
    refills(&reader, &near, "SOL", "2");
}

#[test]
fn client_kill_of_the_tracking_connection_flushes_then_refills() {
    let server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer.set(&price("SOL", "1")).unwrap();
    refills(&reader, &near, "SOL", "1");
    let before = near.stats();
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut raw).unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("name=solcache-near"))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the tracking connection is listed")
        .to_owned();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query::<()>(&mut raw)
        .unwrap();
    // Tracking ends with the connection: this write sends no invalidation anywhere.
    writer.set(&price("SOL", "2")).unwrap();
    assert_eq!(
        value(&reader, "SOL").as_deref(),
        Some("2"),
        "no stale hit after CLIENT KILL"
    );
    assert!(near.stats().flushes > before.flushes);
    refills(&reader, &near, "SOL", "2");
    assert!(near.stats().reconnects > before.reconnects);
    let ring = watch::available();
    eventually("the new connection's ring is armed", || near.stats().io_uring == ring);
    writer.set(&price("SOL", "3")).unwrap();
    assert_eq!(
        value(&reader, "SOL").as_deref(),
        Some("3"),
        "the new ring reports invalidations"
    );
}

/// Every write another client makes is seen by the very next read after a hit, whichever way
/// hits learn of invalidations: from the io_uring readiness ring (where this process can set
/// one up; the ring is armed by the near cache's thread, the hits come from this one) or by a
/// `recv` on every hit (`io_uring: false`, the path taken where io_uring is unavailable). The
/// writer is a plain connection (a solcache pool in this process would drop the key locally
/// first) that sends a PING after its SET, so the invalidation has left Redis when it returns.
#[test]
fn the_next_hit_sees_every_invalidation_with_and_without_io_uring() {
    let server = RedisServer::start();
    for io_uring in [true, false] {
        // A generous response timeout: a flush on a slow PING would turn the hits checked
        // below into misses on a loaded machine.
        let config = PoolConfig {
            response_timeout: Duration::from_secs(5),
            ..PoolConfig::new(server.url())
        };
        let near_config = NearCacheConfig {
            io_uring,
            ..NearCacheConfig::for_pool(&config)
        };
        let near = NearCache::connect(&server.url(), near_config).unwrap();
        let reader = SyncCache::new(SyncPool::connect(config.clone()).unwrap()).with_near(near.clone());
        let mut writer = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
        let mut write = |value: &str| {
            redis::cmd("SET")
                .arg("price:SOL")
                .arg(price("SOL", value).to_json())
                .arg("PX")
                .arg(60_000)
                .query::<()>(&mut writer)
                .unwrap();
            redis::cmd("PING").query::<()>(&mut writer).unwrap();
        };
        let ring = io_uring && watch::available();
        write("0");
        eventually("the ring is armed, or not used", || near.stats().io_uring == ring);
        for n in 1..=300 {
            let held = (n - 1).to_string();
            assert_eq!(value(&reader, "SOL").as_deref(), Some(held.as_str()));
            let hits = near.stats().hits;
            assert_eq!(value(&reader, "SOL").as_deref(), Some(held.as_str()));
            assert_eq!(near.stats().hits, hits + 1, "io_uring {io_uring}: the value is held");
            write(&n.to_string());
            assert_eq!(
                value(&reader, "SOL"),
                Some(n.to_string()),
                "io_uring {io_uring}: the read right after the write sees it"
            );
        }
        assert_eq!(near.stats().io_uring, ring, "still served by the ring: {io_uring}");
        assert!(near.stats().invalidations >= 300);
    }
}

#[test]
fn a_paused_server_fails_the_ping_and_flushes() {
    let server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer.set(&price("SOL", "1")).unwrap();
    refills(&reader, &near, "SOL", "1");
    let before = near.stats();
    server.pause();
    // Past the PING interval plus its response timeout: the PING has failed.
    let timeouts = near.config().ping_interval + 2 * near.config().response_timeout;
    std::thread::sleep(timeouts);
    server.resume();
    eventually("the failed PING flushed the store", || {
        near.stats().flushes > before.flushes
    });
    writer.set(&price("SOL", "2")).unwrap();
    assert_eq!(
        value(&reader, "SOL").as_deref(),
        Some("2"),
        "no stale hit after SIGSTOP/SIGCONT"
    );
    refills(&reader, &near, "SOL", "2");
}

#[test]
fn a_restarted_server_flushes_then_refills() {
    let mut server = RedisServer::start();
    let (reader, writer, near) = open(&server);
    writer.set(&price("SOL", "1")).unwrap();
    refills(&reader, &near, "SOL", "1");
    let before = near.stats();
    server.restart();
    writer.set(&price("SOL", "2")).unwrap();
    assert_eq!(
        value(&reader, "SOL").as_deref(),
        Some("2"),
        "no stale hit after a restart"
    );
    assert!(near.stats().flushes > before.flushes);
    refills(&reader, &near, "SOL", "2");
}

#[test]
fn the_memory_bound_holds_with_100_000_keys() {
    let server = RedisServer::start();
    let config = config(&server);
    let max_bytes = 1 << 20;
    let near = NearCache::connect(
        &server.url(),
        NearCacheConfig {
            max_bytes,
            ..NearCacheConfig::for_pool(&config)
        },
    )
    .unwrap();
    let pool = SyncPool::connect(config).unwrap();
    let writer = SyncCache::<PriceData>::with_ttl(pool.clone(), Duration::from_secs(600)).unwrap();
    let reader = SyncCache::<PriceData>::new(pool).with_near(near.clone());
    let tokens: Vec<String> = (0..100_000).map(|i| format!("T{i}")).collect();
    for chunk in tokens.chunks(1000) {
        let items: Vec<PriceData> = chunk.iter().map(|t| price(t, "1.5")).collect();
        writer.set_many(&items).unwrap();
        let read = reader.get_many(chunk, None).unwrap();
        assert!(read.iter().all(Option::is_some));
        let stats = near.stats();
        assert!(stats.bytes <= max_bytes as u64, "{} bytes held", stats.bytes);
    }
    let stats = near.stats();
    assert!(stats.entries > 1000 && stats.entries < 100_000, "{stats:?}");
    // The most recent keys are the ones kept.
    let before = near.stats().hits;
    reader.get("T99999", None).unwrap();
    assert_eq!(near.stats().hits, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_cache_serves_hits_and_sees_writes() {
    let server = RedisServer::start();
    let config = config(&server);
    let near = NearCache::connect(&server.url(), NearCacheConfig::for_pool(&config)).unwrap();
    let pool = RedisPool::connect(config).await.unwrap();
    let reader = PriceCache::new(pool.clone()).with_near(near.clone());
    let writer = PriceCache::new(pool);
    writer.set(&price("SOL", "1")).await.unwrap();
    assert_eq!(reader.get("SOL", None).await.unwrap().unwrap().price.to_string(), "1");
    let hits = near.stats().hits;
    assert_eq!(reader.get("SOL", None).await.unwrap().unwrap().price.to_string(), "1");
    assert_eq!(near.stats().hits, hits + 1);
    writer.set(&price("SOL", "2")).await.unwrap();
    // Redis sends the invalidation after the write's reply; a PING answered after that reply
    // is answered once it has gone out (see `Writer`).
    let mut ping = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("PING").query_async::<()>(&mut ping).await.unwrap();
    assert_eq!(reader.get("SOL", None).await.unwrap().unwrap().price.to_string(), "2");
    let many = reader.get_many(&["SOL", "RAY"], None).await.unwrap();
    assert!(many[0].is_some() && many[1].is_none());
}

/// A plain client's write of `price:SOL`, then a PING on the same connection: once it returns,
/// Redis has sent the write's invalidations.
fn write_then_ping(writer: &mut redis::Connection, value: &str) {
    redis::cmd("SET")
        .arg("price:SOL")
        .arg(price("SOL", value).to_json())
        .arg("PX")
        .arg(60_000)
        .query::<()>(writer)
        .unwrap();
    redis::cmd("PING").query::<()>(writer).unwrap();
}

/// With no near-cache thread to read the socket, the hit alone applies an invalidation that
/// arrived before it, as the ring reported it: armed by a thread that then sleeps (its
/// completion is never posted: the flag the kernel sets at the socket's wake-up says so) and
/// armed by the reading thread itself (the completion is posted before it reads).
#[test]
fn a_hit_alone_applies_the_invalidation_its_ring_reported() {
    if !watch::available() {
        return; // no io_uring here: the recv path is checked by the test above
    }
    let server = RedisServer::start();
    let config = NearCacheConfig::for_pool(&PoolConfig::new(server.url()));
    let endpoint = Endpoint::parse(&server.url()).unwrap();
    let mut writer = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    for armed_by_a_sleeper in [true, false] {
        let conn = TrackingConnection::open(&endpoint, config.connect_timeout, true).unwrap();
        let tracker = Arc::new(Tracker::new(
            Endpoint::parse(&server.url()).unwrap(),
            config.clone(),
            conn,
        ));
        let (wake, sleep) = mpsc::channel::<()>();
        let sleeper = armed_by_a_sleeper.then(|| {
            let (armed, arming) = mpsc::channel();
            let tracker = tracker.clone();
            let sleeper = std::thread::spawn(move || {
                armed.send(tracker.arm_watch()).unwrap();
                let _ = sleep.recv();
            });
            assert!(arming.recv().unwrap(), "armed by the sleeper");
            sleeper
        });
        if !armed_by_a_sleeper {
            assert!(tracker.arm_watch(), "armed by this thread");
        }
        for n in 0..100 {
            write_then_ping(&mut writer, &n.to_string());
            assert!(tracker.fill(vec!["price:SOL".into()]).is_some(), "filled");
            let held = tracker.lookup("price:SOL", Instant::now());
            assert!(matches!(held, Local::Hit(_)), "held after the fill");
            write_then_ping(&mut writer, &(n + 1).to_string());
            let after = tracker.lookup("price:SOL", Instant::now());
            assert!(
                matches!(after, Local::Miss),
                "write {n}, armed by a sleeper {armed_by_a_sleeper}: the hit applied the invalidation"
            );
        }
        drop(wake);
        if let Some(sleeper) = sleeper {
            sleeper.join().unwrap();
        }
        tracker.close();
    }
}
