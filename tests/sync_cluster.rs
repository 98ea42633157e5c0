//! The blocking API (`SyncPool`, `SyncCache`) on a Redis Cluster (3 primaries + 3 replicas
//! started here): reads split per slot and put back in key order, batched writes grouped per
//! primary, stream commands routed and split per slot, a slot moved under load, and a SIGKILLed
//! primary followed without a manual step. One cluster per test (a few seconds).
mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use redis::Value;
use rust_decimal::Decimal;
use solcache::{Error, Operation, PoolConfig, PoolState, PriceData, Request, SyncCache, SyncPool};
use support::topologies::{raw_command, watch_promotion, RedisCluster, NODE_TIMEOUT_MS};

const TOKENS: [&str; 8] = ["SOL", "BTC", "ETH", "USDC", "BONK", "JUP", "RAY", "WIF"];
const POOLS: [&str; 2] = [
    "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
];

fn price(token: &str, value: &str) -> PriceData {
    PriceData::new(token, Decimal::from_str(value).unwrap(), Utc::now(), "test").unwrap()
}

fn state(address: &str) -> PoolState {
    let d = |s: &str| Decimal::from_str(s).unwrap();
    PoolState::new(
        address,
        d("12500000.5"),
        d("41250.123"),
        d("7723456.5"),
        d("98765432.1"),
        Utc::now(),
    )
    .unwrap()
}

fn xadd(stream: &str, n: u32) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*").arg("n").arg(n);
    cmd
}

/// The ids of a stream-read reply, per stream name.
fn read_ids(reply: Value) -> Vec<(String, Vec<String>)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("{other:?}"),
    };
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    streams
        .iter()
        .map(|s| {
            let Value::Array(pair) = s else { panic!("{s:?}") };
            let Value::Array(entries) = &pair[1] else {
                panic!("{pair:?}")
            };
            let ids = entries
                .iter()
                .map(|e| match e {
                    Value::Array(entry) => text(&entry[0]),
                    other => panic!("{other:?}"),
                })
                .collect();
            (text(&pair[0]), ids)
        })
        .collect()
}

#[test]
fn caches_and_stream_commands_work_unchanged_on_a_cluster() {
    let cluster = RedisCluster::start();
    let pool = SyncPool::connect(PoolConfig::new(cluster.url())).unwrap();
    assert_eq!(pool.topology(), "cluster");
    assert!(
        pool.redis_version().starts_with(char::is_numeric),
        "{}",
        pool.redis_version()
    );
    let owners: std::collections::HashSet<usize> = TOKENS
        .iter()
        .map(|t| cluster.primary_of(&format!("price:{t}")))
        .collect();
    assert_eq!(owners.len(), 3, "the test tokens cover every primary");

    // Prices: set_many over every primary, get_many across slots in request order.
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "1.5")).collect();
    cache.set_many(&batch).unwrap();
    let mut asked: Vec<&str> = TOKENS.iter().rev().copied().collect();
    asked.push("NOPE");
    asked.push("SOL");
    let got = cache.get_many(&asked, None).unwrap();
    let mut want: Vec<Option<PriceData>> = batch.iter().rev().cloned().map(Some).collect();
    want.push(None);
    want.push(Some(batch[0].clone()));
    assert_eq!(got, want, "MGET split per slot and put back in request order");
    for t in TOKENS {
        let owner = cluster.nodes[cluster.primary_of(&format!("price:{t}"))].port;
        let ttl: i64 = raw_command(owner, &["PTTL", &format!("price:{t}")])
            .trim()
            .parse()
            .unwrap();
        assert!(ttl > 0 && ttl <= 2000, "{t}: {ttl}");
        assert_eq!(cache.get(t, None).unwrap().map(|p| p.token), Some(t.to_owned()));
    }
    cache.set(&price("SOL", "2")).unwrap();
    assert_eq!(cache.get("SOL", None).unwrap().unwrap().price, Decimal::from(2));
    assert_eq!(pool.metrics().stats(Operation::PriceGetMany).count, 1);

    // Pool states, the same way.
    let states: SyncCache<PoolState> = SyncCache::new(pool.clone());
    let written = POOLS.map(state);
    states.set_many(&written).unwrap();
    let both = states
        .get_many(
            &[POOLS[1], POOLS[0], "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R"],
            None,
        )
        .unwrap();
    assert_eq!(both, vec![Some(written[1].clone()), Some(written[0].clone()), None]);
    assert_eq!(states.get(POOLS[0], None).unwrap(), Some(written[0].clone()));

    // Streams in different slots: XADD pipelines split per slot, ids in order per stream.
    let (a, b) = ("stream:price-updates", "stream:trade-events");
    assert_ne!(
        cluster.primary_of(a),
        cluster.primary_of(b),
        "the streams live on two primaries"
    );
    let mut pipe = redis::pipe();
    for n in 0..20 {
        pipe.add_command(xadd(if n % 2 == 0 { a } else { b }, n));
    }
    let ids: Vec<String> = pool
        .execute(Operation::StreamPublishMany, Request::Pipeline(&pipe))
        .unwrap();
    assert_eq!(ids.len(), 20);
    let mut groups = redis::pipe();
    for s in [a, b] {
        groups.cmd("XGROUP").arg("CREATE").arg(s).arg("g").arg("0");
    }
    let () = pool
        .execute(Operation::StreamAdmin, Request::Pipeline(&groups))
        .unwrap();
    // One group read over both streams: split per slot, merged into one reply.
    let mut read = redis::cmd("XREADGROUP");
    read.arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(a)
        .arg(b)
        .arg(">")
        .arg(">");
    let reply: Value = pool.execute(Operation::StreamReadGroup, Request::Cmd(&read)).unwrap();
    let mut seen = read_ids(reply);
    seen.sort();
    let evens: Vec<String> = ids.iter().step_by(2).cloned().collect();
    let odds: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(seen, vec![(a.to_owned(), evens.clone()), (b.to_owned(), odds.clone())]);
    let mut acks = redis::pipe();
    acks.cmd("XACK").arg(a).arg("g").arg(&evens);
    acks.cmd("XACK").arg(b).arg("g").arg(&odds);
    let acked: Vec<u64> = pool.execute(Operation::StreamAck, Request::Pipeline(&acks)).unwrap();
    assert_eq!(acked, vec![10, 10]);
    // Nothing new: the split read blocks on its first stream, and an entry added there
    // meanwhile wakes it.
    let mut blocking = redis::cmd("XREADGROUP");
    blocking
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("BLOCK")
        .arg(20_000)
        .arg("STREAMS")
        .arg(a)
        .arg(b)
        .arg(">")
        .arg(">");
    let mut long = PoolConfig::new(cluster.url());
    long.response_timeout = Duration::from_secs(30);
    let reader = SyncPool::connect(long).unwrap();
    let writer = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let id: String = pool
                .execute(Operation::StreamPublish, Request::Cmd(&xadd(a, 99)))
                .unwrap();
            id
        })
    };
    let reply: Value = reader
        .execute(Operation::StreamReadGroup, Request::Cmd(&blocking))
        .unwrap();
    let late = writer.join().unwrap();
    assert_eq!(read_ids(reply), vec![(a.to_owned(), vec![late])]);

    // Errors keep their meaning: a wrong type is an error reply, not a redirection.
    let mut wrong = redis::cmd("GET");
    wrong.arg(a);
    let err = pool
        .execute::<Value>(Operation::PriceGet, Request::Cmd(&wrong))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Response { code: Some(c), .. } if c == "WRONGTYPE"),
        "{err:?}"
    );

    assert!(pool.counts().connections >= 3, "{:?}", pool.counts());
    assert_eq!(pool.counts().in_use, 0);
    assert_eq!(pool.cluster_map_changes(), 0);
    pool.close();
    assert!(matches!(cache.get("SOL", None), Err(Error::PoolClosed)));
}

#[test]
fn moving_a_slot_under_load_is_followed_with_no_error_reaching_the_caller() {
    let cluster = RedisCluster::start();
    let pool = SyncPool::connect(PoolConfig::new(cluster.url())).unwrap();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    let batch: Vec<PriceData> = TOKENS.iter().map(|t| price(t, "2")).collect();
    cache.set_many(&batch).unwrap();

    let key = "price:SOL";
    let src = cluster.primary_of(key);
    let dst = TOKENS
        .iter()
        .map(|t| cluster.primary_of(&format!("price:{t}")))
        .find(|&p| p != src)
        .unwrap();

    let load = {
        let (cache, batch) = (cache.clone(), batch.clone());
        std::thread::spawn(move || {
            let (mut rounds, mut errors) = (0u32, Vec::new());
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                rounds += 1;
                if let Err(e) = cache.set_many(&batch) {
                    errors.push(e.to_string());
                }
                match cache.get_many(&TOKENS, None) {
                    Ok(got) if got.iter().all(Option::is_some) => {}
                    other => errors.push(format!("{other:?}")),
                }
                match cache.get("SOL", None) {
                    Ok(Some(_)) => {}
                    other => errors.push(format!("get: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (rounds, errors)
        })
    };
    // Resharded while the load runs: ASK redirections, then MOVED.
    cluster.reshard_slot_of(key, src, dst, [300, 300, 300]);
    let (rounds, errors) = load.join().unwrap();
    assert!(
        errors.is_empty(),
        "{} of {rounds} rounds failed: {errors:?}",
        errors.len()
    );
    cluster.wait_ok();
    assert_eq!(cluster.primary_of(key), dst, "the slot moved");
    assert_eq!(cache.get("SOL", None).unwrap(), Some(batch[0].clone()));
    assert!(pool.cluster_map_changes() >= 1, "the MOVED slot was learnt");
}

#[test]
fn a_killed_primary_is_followed_after_its_replica_is_promoted() {
    let mut cluster = RedisCluster::start();
    let mut config = PoolConfig::new(cluster.url());
    config.response_timeout = Duration::from_millis(300);
    let pool = SyncPool::connect(config).unwrap();
    let cache: SyncCache<PriceData> = SyncCache::new(pool.clone());
    cache.set(&price("SOL", "1")).unwrap();

    let victim = cluster.primary_of("price:SOL");
    let writer = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            // 10 Hz writes and reads until 30 s passed or 2 s of successes followed the kill.
            let mut first_error: Option<Instant> = None;
            let mut recovered: Option<Instant> = None;
            let (mut ok_after, mut failed) = (0u32, 0u32);
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(30) && ok_after < 20 {
                n += 1;
                let round = Instant::now();
                let wrote = cache.set(&price("SOL", &n.to_string()));
                let read = cache.get("SOL", None);
                let many = cache.get_many(&TOKENS, None);
                match (wrote, read, many) {
                    (Ok(()), Ok(Some(p)), Ok(_)) if p.price == Decimal::from(n) => {
                        if first_error.is_some() {
                            recovered.get_or_insert_with(Instant::now);
                            ok_after += 1;
                        }
                    }
                    _ => {
                        failed += 1;
                        first_error.get_or_insert(round);
                        recovered = None;
                        ok_after = 0;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (first_error, recovered, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let replicas: Vec<u16> = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .filter(|&p| cluster.raw(p, &["ROLE"]).starts_with("slave"))
        .collect();
    let killed = Instant::now();
    cluster.nodes[victim].stop(); // SIGKILL
    let promotion = watch_promotion(replicas, Duration::from_secs(30));
    let (first_error, recovered, failed) = writer.join().unwrap();
    let promoted = promotion.join().unwrap().expect("a replica was promoted");
    let first_error = first_error.expect("the kill was noticed");
    let recovered = recovered.expect("reads and writes came back with no manual step");
    println!(
        "blocking cluster failover: gap {} ms (start of the first failed round to the first \
         success), kill to first success {} ms, kill to promotion {} ms, {failed} failed rounds, \
         {} slot-map changes, cluster-node-timeout {NODE_TIMEOUT_MS} ms",
        (recovered - first_error).as_millis(),
        (recovered - killed).as_millis(),
        (promoted - killed).as_millis(),
        pool.cluster_map_changes()
    );
    assert!(
        pool.cluster_map_changes() >= 1,
        "a fresh slot map named the new primary"
    );
    cluster.wait_ok();
    assert_ne!(cluster.primary_of("price:SOL"), victim, "a replica took over the slot");
    pool.close();
}
