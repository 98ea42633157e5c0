//! Bad data in a real redis-server (issue 6, "Bad input"): bytes that are not a price planted
//! under `price:SOL` and `pool:<addr>`, and malformed stream entries written with raw XADD.
//! Reads give a typed error or dead-letter the entry as documented; nothing panics or hangs.
mod support;

use std::time::Duration;

use chrono::Utc;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rust_decimal::Decimal;
use solcache::events::{DEAD_LETTER, PRICE_UPDATES};
use solcache::{
    Error, EventStream, PoolConfig, PoolState, PoolStateCache, PriceCache, PriceData, PriceUpdate, RedisPool,
    Subscription, SubscriptionOptions, TradingEvent,
};
use support::{raw, RedisServer};

const POOL_ADDRESS: &str = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";
const OTHER_POOL: &str = "So11111111111111111111111111111111111111112";
/// The longest error message or dead-letter reason any input may cause.
const MAX_ERROR_LEN: usize = 1024;
/// Bound on every call here: a hang fails the test instead of stalling the run.
const LIMIT: Duration = Duration::from_secs(30);

async fn open(server: &RedisServer) -> RedisPool {
    // 10 MB replies decode in a debug build: give them more than the 500 ms default.
    let config = PoolConfig {
        response_timeout: Duration::from_secs(10),
        ..PoolConfig::new(server.url())
    };
    RedisPool::connect(config).await.unwrap()
}

async fn set_raw(con: &mut redis::aio::MultiplexedConnection, key: &str, value: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async::<()>(con)
        .await
        .unwrap();
}

fn price_json(token: &str, price: &str, timestamp: &str, source: &str) -> Vec<u8> {
    format!(r#"{{"token":"{token}","price":"{price}","timestamp":"{timestamp}","source":"{source}"}}"#).into_bytes()
}

fn pool_json(address: &str, reserve_a: &str, timestamp: &str) -> Vec<u8> {
    format!(
        r#"{{"pool_address":"{address}","liquidity":"1","reserve_a":"{reserve_a}","reserve_b":"2","volume_24h":"3","timestamp":"{timestamp}"}}"#
    )
    .into_bytes()
}

/// Values that are not a valid item, each with what it is.
fn bad_price_values() -> Vec<(&'static str, Vec<u8>)> {
    let ts = "2026-11-26T15:00:00Z";
    let huge_source = "s".repeat(10 << 20);
    vec![
        ("empty", b"".to_vec()),
        ("invalid UTF-8", vec![0xff, 0xfe, b'{', 0xc3, 0x28, 0x80]),
        (
            "invalid UTF-8 in a string",
            [&b"{\"token\":\"SO"[..], &[0xff, 0xfe], &br#"","price":"1"}"#[..]].concat(),
        ),
        ("truncated", price_json("SOL", "187.2345", ts, "pyth")[..40].to_vec()),
        (
            "NaN literal",
            format!(r#"{{"token":"SOL","price":NaN,"timestamp":"{ts}","source":"x"}}"#).into_bytes(),
        ),
        ("NaN string", price_json("SOL", "NaN", ts, "x")),
        ("Infinity string", price_json("SOL", "Infinity", ts, "x")),
        (
            "1e400 number",
            format!(r#"{{"token":"SOL","price":1e400,"timestamp":"{ts}","source":"x"}}"#).into_bytes(),
        ),
        ("too large", price_json("SOL", "79228162514264337593543950336", ts, "x")),
        (
            "too precise",
            price_json("SOL", "0.00000000000000000000000000001", ts, "x"),
        ),
        (
            "number, not string",
            format!(r#"{{"token":"SOL","price":187.2,"timestamp":"{ts}","source":"x"}}"#).into_bytes(),
        ),
        ("negative", price_json("SOL", "-1", ts, "x")),
        ("null", b"null".to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("string", b"\"SOL\"".to_vec()),
        (
            "nested too deep",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "missing field",
            format!(r#"{{"token":"SOL","price":"1","timestamp":"{ts}"}}"#).into_bytes(),
        ),
        (
            "unknown field",
            format!(r#"{{"token":"SOL","price":"1","timestamp":"{ts}","source":"x","y":1}}"#).into_bytes(),
        ),
        ("year 10000", price_json("SOL", "1", "+10000-01-01T00:00:00Z", "x")),
        (
            "year 10000 by offset",
            price_json("SOL", "1", "9999-12-31T23:59:59-01:00", "x"),
        ),
        ("bad timestamp", price_json("SOL", "1", "yesterday", "x")),
        ("another token's price", price_json("BONK", "1", ts, "x")),
        ("invalid token", price_json("price:SOL", "1", ts, "x")),
        ("10 MB value", price_json("SOL", "1", ts, &huge_source)),
        ("10 MB of garbage", vec![b'{'; 10 << 20]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_price_values_are_serialization_errors() {
    let server = RedisServer::start();
    let pool = open(&server).await;
    // Long enough a TTL that the good price outlives the loop.
    let cache = PriceCache::with_ttl(pool.clone(), Duration::from_secs(600)).unwrap();
    let mut con = raw(&server).await;
    let good = PriceData::new("USDC", Decimal::ONE, Utc::now(), "test").unwrap();
    cache.set(&good).await.unwrap();
    let cases = bad_price_values();
    for (what, value) in &cases {
        set_raw(&mut con, "price:SOL", value).await;
        for max_age in [None, Some(Duration::from_secs(1))] {
            let got = tokio::time::timeout(LIMIT, cache.get("SOL", max_age)).await.unwrap();
            match &got {
                Err(e @ Error::Serialization { key, .. }) => {
                    assert_eq!(key, "price:SOL", "{what}");
                    assert!(
                        e.to_string().len() <= MAX_ERROR_LEN,
                        "{what}: {} bytes",
                        e.to_string().len()
                    );
                }
                other => panic!("{what}: expected a Serialization error, got {other:?}"),
            }
        }
        // One bad entry fails the whole MGET, naming its key (cache.rs `decode_many`).
        let many = tokio::time::timeout(LIMIT, cache.get_many(&["USDC", "SOL", "BONK"], None))
            .await
            .unwrap();
        assert!(
            matches!(&many, Err(Error::Serialization { key, .. }) if key == "price:SOL"),
            "{what}: {many:?}"
        );
    }
    // Nothing is poisoned: a good value under the same key reads again, alone and in a batch.
    let sol = PriceData::new("SOL", Decimal::new(1872345, 4), Utc::now(), "test").unwrap();
    cache.set(&sol).await.unwrap();
    assert_eq!(cache.get("SOL", None).await.unwrap(), Some(sol.clone()));
    assert_eq!(
        cache.get_many(&["USDC", "SOL", "BONK"], None).await.unwrap(),
        vec![Some(good), Some(sol), None]
    );
    // Every one of them was counted as a serialization error (3 calls per case).
    let counted = pool.metrics().error_counts();
    let serialization = counted.iter().find(|(k, _)| *k == "serialization").unwrap().1;
    assert_eq!(serialization, 3 * cases.len() as u64, "{counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pool_values_are_serialization_errors() {
    let server = RedisServer::start();
    let cache = PoolStateCache::new(open(&server).await);
    let mut con = raw(&server).await;
    let key = format!("pool:{POOL_ADDRESS}");
    let ts = "2026-11-26T15:00:00Z";
    let mut cases: Vec<(&str, Vec<u8>)> = bad_price_values()
        .into_iter()
        .filter(|(what, _)| !what.contains("token"))
        .collect();
    cases.extend([
        ("another pool's state", pool_json(OTHER_POOL, "1", ts)),
        ("negative reserve", pool_json(POOL_ADDRESS, "-0.5", ts)),
        ("NaN reserve", pool_json(POOL_ADDRESS, "NaN", ts)),
        ("huge reserve", pool_json(POOL_ADDRESS, &"9".repeat(1 << 20), ts)),
        ("year 0", pool_json(POOL_ADDRESS, "1", "0000-01-01T00:00:00Z")),
        ("bad address", pool_json("0OIl", "1", ts)),
    ]);
    for (what, value) in &cases {
        set_raw(&mut con, &key, value).await;
        let got = tokio::time::timeout(LIMIT, cache.get(POOL_ADDRESS, None))
            .await
            .unwrap();
        assert!(
            matches!(&got, Err(Error::Serialization { key: k, .. }) if *k == key),
            "{what}: {got:?}"
        );
        let many = tokio::time::timeout(LIMIT, cache.get_many(&[OTHER_POOL, POOL_ADDRESS], None))
            .await
            .unwrap();
        assert!(
            matches!(&many, Err(Error::Serialization { key: k, .. }) if *k == key),
            "{what}: {many:?}"
        );
    }
    let state = PoolState::new(
        POOL_ADDRESS,
        Decimal::ONE,
        Decimal::TWO,
        Decimal::TEN,
        Decimal::ZERO,
        Utc::now(),
    )
    .unwrap();
    cache.set(&state).await.unwrap();
    assert_eq!(cache.get(POOL_ADDRESS, None).await.unwrap(), Some(state));
}

/// A key of the wrong Redis type is Redis' WRONGTYPE error, a `Response` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_is_a_response_error() {
    let server = RedisServer::start();
    let cache = PriceCache::new(open(&server).await);
    let mut con = raw(&server).await;
    redis::cmd("HSET")
        .arg("price:SOL")
        .arg("f")
        .arg("v")
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    let got = cache.get("SOL", None).await;
    assert!(
        matches!(&got, Err(e) if e.response_code() == Some("WRONGTYPE")),
        "{got:?}"
    );
    // MGET answers nil for a key of another type.
    assert_eq!(cache.get_many(&["SOL"], None).await.unwrap(), vec![None]);
}

/// Arbitrary bytes under a price key: `get` agrees with the pure decoder (plus the check that
/// the value is the key's own), and an error is always `Serialization`.
#[test]
fn arbitrary_bytes_under_a_price_key() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cache, con) = rt.block_on(async { (PriceCache::new(open(&server).await), raw(&server).await) });
    let template = String::from_utf8(price_json("SOL", "187.2345", "2026-11-26T15:00:00.123Z", "pyth")).unwrap();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (0..template.len(), any::<u8>()).prop_map(move |(i, b)| {
            let mut v = template.clone().into_bytes();
            v[i] = b;
            v
        }),
        ("[A-Za-z0-9._-]{1,33}", "[-0-9.eE]{0,32}", "[-+0-9:TZ. ]{0,36}")
            .prop_map(|(token, price, ts)| price_json(&token, &price, &ts, "x")),
    ];
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&bytes, |value| {
            let mut con = con.clone();
            rt.block_on(async {
                set_raw(&mut con, "price:SOL", &value).await;
                let got = tokio::time::timeout(LIMIT, cache.get("SOL", None)).await.unwrap();
                let expected = PriceData::from_json(&value, "price:SOL");
                match (&got, &expected) {
                    (Ok(Some(p)), Ok(q)) => prop_assert_eq!(p, q),
                    (Err(Error::Serialization { key, .. }), Err(_)) => prop_assert_eq!(key, "price:SOL"),
                    (Err(Error::Serialization { .. }), Ok(q)) => prop_assert_ne!(q.token.as_str(), "SOL"),
                    _ => prop_assert!(false, "get gave {:?}, the decoder {:?}", got, expected),
                }
                Ok(())
            })
        })
        .unwrap();
}

// --- streams -------------------------------------------------------------------------------

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn fields(pairs: &[(&[u8], &[u8])]) -> Fields {
    pairs.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

async fn xadd(con: &mut redis::aio::MultiplexedConnection, stream: &str, fields: &Fields) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    for (k, v) in fields {
        cmd.arg(k.as_slice()).arg(v.as_slice());
    }
    cmd.query_async(con).await.unwrap()
}

fn good_update(n: i64) -> TradingEvent {
    TradingEvent::PriceUpdate(PriceUpdate {
        token: "SOL".into(),
        price: Decimal::from(n),
        timestamp: Utc::now(),
    })
}

/// Malformed entries, each with what is wrong.
fn bad_entries() -> Vec<(&'static str, Fields)> {
    let ts = "2026-11-26T15:00:00Z";
    let update = |price: &str, timestamp: &str| {
        format!(r#"{{"token":"SOL","price":"{price}","timestamp":"{timestamp}"}}"#).into_bytes()
    };
    let huge = vec![b'x'; 10 << 20];
    vec![
        ("no type", fields(&[(b"data", &update("1", ts))])),
        ("no data", fields(&[(b"type", b"price_update")])),
        ("no fields that matter", fields(&[(b"x", b"y")])),
        ("unknown type", fields(&[(b"type", b"liquidation"), (b"data", b"{}")])),
        ("type not UTF-8", fields(&[(b"type", &[0xff, 0xfe]), (b"data", b"{}")])),
        (
            "data not UTF-8",
            fields(&[(b"type", b"price_update"), (b"data", &[0xff, 0xfe])]),
        ),
        (
            "garbage data",
            fields(&[(b"type", b"price_update"), (b"data", b"{not json")]),
        ),
        ("empty data", fields(&[(b"type", b"price_update"), (b"data", b"")])),
        (
            "NaN price",
            fields(&[(b"type", b"price_update"), (b"data", &update("NaN", ts))]),
        ),
        (
            "negative price",
            fields(&[(b"type", b"price_update"), (b"data", &update("-1", ts))]),
        ),
        (
            "far-future timestamp",
            fields(&[
                (b"type", b"price_update"),
                (b"data", &update("1", "+10000-01-01T00:00:00Z")),
            ]),
        ),
        (
            "rounded price",
            fields(&[(b"type", b"price_update"), (b"data", &update("1e-29", ts))]),
        ),
        (
            "wrong event's data",
            fields(&[(b"type", b"trade_executed"), (b"data", &update("1", ts))]),
        ),
        ("10 MB type", fields(&[(b"type", &huge), (b"data", b"{}")])),
        ("10 MB data", fields(&[(b"type", b"price_update"), (b"data", &huge)])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_returns_malformed_entries_with_their_reasons() {
    let server = RedisServer::start();
    let events = EventStream::new(open(&server).await);
    let mut con = raw(&server).await;
    let cases = bad_entries();
    let mut ids = Vec::new();
    for (_, f) in &cases {
        ids.push(xadd(&mut con, PRICE_UPDATES, f).await);
    }
    let good = events.publish(&good_update(7), None).await.unwrap();
    let entries = tokio::time::timeout(LIMIT, events.read(PRICE_UPDATES, "0", 100, Duration::ZERO))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entries.len(), cases.len() + 1);
    for ((what, _), (entry, id)) in cases.iter().zip(entries.iter().zip(&ids)) {
        assert_eq!(&entry.id, id);
        let reason = entry.event.as_ref().expect_err(what);
        assert!(
            !reason.is_empty() && reason.len() <= MAX_ERROR_LEN,
            "{what}: {} bytes",
            reason.len()
        );
    }
    let last = entries.last().unwrap();
    assert_eq!(last.id, good);
    match &last.event {
        Ok(TradingEvent::PriceUpdate(p)) => assert_eq!(p.price, Decimal::from(7)),
        other => panic!("the good entry after the bad ones: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_dead_letters_malformed_entries_and_goes_on() {
    let server = RedisServer::start();
    let events = EventStream::new(open(&server).await);
    events.ensure_group(PRICE_UPDATES, "g", "$").await.unwrap();
    let mut con = raw(&server).await;
    let cases = bad_entries();
    for (i, (_, f)) in cases.iter().enumerate() {
        xadd(&mut con, PRICE_UPDATES, f).await;
        if i % 5 == 0 {
            events.publish(&good_update(i as i64), None).await.unwrap();
        }
    }
    let good_count = cases.len().div_ceil(5);
    let options = SubscriptionOptions {
        block: Duration::from_millis(50),
        ..SubscriptionOptions::default()
    };
    let mut sub = Subscription::new(events.clone(), vec![PRICE_UPDATES.into()], "g", "c", options).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + LIMIT;
    while (got.len() < good_count || sub.stats().dead_lettered < cases.len() as u64)
        && std::time::Instant::now() < deadline
    {
        let batch = tokio::time::timeout(LIMIT, sub.next_batch()).await.unwrap().unwrap();
        for e in batch {
            assert!(e.event.is_ok(), "only decodable entries reach the caller: {e:?}");
            sub.ack_later(&e.stream, &e.id);
            got.push(e);
        }
    }
    sub.flush_acks().await.unwrap();
    assert_eq!(got.len(), good_count);
    let stats = sub.stats();
    assert_eq!(
        (stats.bad_entries, stats.dead_lettered),
        (cases.len() as u64, cases.len() as u64)
    );
    // Each one is in the dead-letter stream with a short reason, and nothing is left pending.
    let dead: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(DEAD_LETTER)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(dead.len(), cases.len());
    for (_, f) in &dead {
        let reason = &f.iter().find(|(k, _)| k == b"reason").unwrap().1;
        assert!(reason.starts_with(b"undecodable: ") && reason.len() <= MAX_ERROR_LEN + 16);
    }
    assert_eq!(events.info(PRICE_UPDATES).await.unwrap().groups[0].pending, 0);
}

/// Arbitrary field lists written with XADD: `read` returns one entry per XADD, each decoded or
/// with a short reason; a consumer group delivers or dead-letters every one.
#[test]
fn arbitrary_stream_entries() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (events, con) = rt.block_on(async { (EventStream::new(open(&server).await), raw(&server).await) });
    let golden = |t: &str| {
        let path = format!("{}/tests/golden/events/{t}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    };
    let types = ["price_update", "trade_executed", "position_update", "system_status"];
    let key = prop_oneof![
        Just(b"type".to_vec()),
        Just(b"data".to_vec()),
        prop::collection::vec(any::<u8>(), 1..6)
    ];
    let value = prop_oneof![
        prop::sample::select(types.map(|t| t.as_bytes().to_vec()).to_vec()),
        prop::sample::select(types.map(golden).to_vec()),
        prop::collection::vec(any::<u8>(), 0..48),
    ];
    let entry = prop::collection::vec((key, value), 1..5);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&prop::collection::vec(entry, 1..6), |batch| {
            let stream = format!("stream:fuzz-{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            let mut con = con.clone();
            rt.block_on(async {
                events.ensure_group(&stream, "g", "$").await.unwrap();
                for f in &batch {
                    xadd(&mut con, &stream, f).await;
                }
                let read = tokio::time::timeout(LIMIT, events.read(&stream, "0", 100, Duration::ZERO))
                    .await
                    .unwrap()
                    .unwrap();
                prop_assert_eq!(read.len(), batch.len());
                for e in &read {
                    if let Err(reason) = &e.event {
                        prop_assert!(!reason.is_empty() && reason.len() <= MAX_ERROR_LEN);
                    }
                }
                let good = read.iter().filter(|e| e.event.is_ok()).count();
                let options = SubscriptionOptions {
                    block: Duration::from_millis(10),
                    ..SubscriptionOptions::default()
                };
                let mut sub = Subscription::new(events.clone(), vec![stream.clone()], "g", "c", options).unwrap();
                let mut delivered = 0;
                for _ in 0..5 {
                    let got = tokio::time::timeout(LIMIT, sub.next_batch()).await.unwrap().unwrap();
                    for e in got {
                        sub.ack_later(&e.stream, &e.id);
                        delivered += 1;
                    }
                    if delivered + sub.stats().dead_lettered as usize == batch.len() {
                        break;
                    }
                }
                sub.flush_acks().await.unwrap();
                prop_assert_eq!(delivered, good);
                prop_assert_eq!(sub.stats().dead_lettered as usize, batch.len() - good);
                Ok(())
            })
        })
        .unwrap();
}

/// Ids that pass the syntax check but not Redis' range check, and a stream key of another type:
/// `Response` errors, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_keys_redis_refuses_are_response_errors() {
    let server = RedisServer::start();
    let events = EventStream::new(open(&server).await);
    events.publish(&good_update(1), None).await.unwrap();
    for id in [
        "99999999999999999999-0",
        "18446744073709551616",
        "0-18446744073709551616",
    ] {
        let got = events.read(PRICE_UPDATES, id, 10, Duration::ZERO).await;
        assert!(matches!(got, Err(Error::Response { .. })), "{id}: {got:?}");
        let got = events.ensure_group(PRICE_UPDATES, "g", id).await;
        assert!(matches!(got, Err(Error::Response { .. })), "{id}: {got:?}");
    }
    let mut con = raw(&server).await;
    set_raw(&mut con, "stream:not-a-stream", b"a string").await;
    let got = events.read("stream:not-a-stream", "0", 10, Duration::ZERO).await;
    assert!(
        matches!(&got, Err(e) if e.response_code() == Some("WRONGTYPE")),
        "{got:?}"
    );
    let got = events.publish(&good_update(1), Some("stream:not-a-stream")).await;
    assert!(
        matches!(&got, Err(e) if e.response_code() == Some("WRONGTYPE")),
        "{got:?}"
    );
    let got = events.ensure_group("stream:not-a-stream", "g", "0").await;
    assert!(matches!(&got, Err(Error::Response { .. })), "{got:?}");
    let got = tokio::time::timeout(
        LIMIT,
        events.read("stream:not-a-stream", "0", 10, Duration::from_millis(50)),
    )
    .await
    .unwrap();
    assert!(matches!(&got, Err(Error::Response { .. })), "{got:?}");
}

/// Stream names may contain `:`, but not the `price:` / `pool:` key spaces: a stream there
/// would make the cached price read as WRONGTYPE, and the next SET would delete the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_names_cannot_collide_with_cache_keys() {
    let server = RedisServer::start();
    let pool = open(&server).await;
    let events = EventStream::new(pool.clone());
    let prices = PriceCache::new(pool);
    for stream in ["price:SOL", &format!("pool:{POOL_ADDRESS}")] {
        let got = events.publish(&good_update(1), Some(stream)).await;
        assert!(matches!(got, Err(Error::InvalidInput(_))), "{stream}: {got:?}");
    }
    assert_eq!(prices.get("SOL", None).await.unwrap(), None);
}
