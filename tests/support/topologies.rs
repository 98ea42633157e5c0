//! Test support: a Redis Cluster (3 primaries + 3 replicas) and a Sentinel group (primary,
//! replica, 3 sentinels), real processes on free loopback ports, killed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_cluster_port, free_port, RedisServer};

/// `cluster-node-timeout` of the test cluster by default, in ms: how long before a silent
/// primary fails ([`RedisCluster::start_with_node_timeout`] takes another).
pub const NODE_TIMEOUT_MS: u64 = 1000;
/// `down-after-milliseconds` of the test sentinels.
pub const DOWN_AFTER_MS: u64 = 1000;

/// Send one command on a plain socket; the reply as text (arrays flattened, one per line).
pub fn raw_command(port: u16, args: &[&str]) -> String {
    raw_command_as(port, None, args)
}

/// [`raw_command`] after `AUTH password` when one is given.
pub fn raw_command_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let encode = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        out
    };
    if let Some(password) = password {
        stream.write_all(encode(&["AUTH", password]).as_bytes()).unwrap();
    }
    stream.write_all(encode(args).as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    if password.is_some() {
        read_reply(&mut reader, &mut text);
        text.clear();
    }
    read_reply(&mut reader, &mut text);
    text
}

fn read_reply(reader: &mut impl BufRead, out: &mut String) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let (kind, rest) = line.trim_end().split_at(1);
    match kind {
        "$" => {
            let n: i64 = rest.parse().unwrap();
            if n >= 0 {
                let mut buf = vec![0u8; n as usize + 2];
                std::io::Read::read_exact(reader, &mut buf).unwrap();
                out.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
                out.push('\n');
            }
        }
        "*" => {
            let n: i64 = rest.parse().unwrap();
            for _ in 0..n.max(0) {
                read_reply(reader, out);
            }
        }
        _ => {
            out.push_str(rest);
            out.push('\n');
        }
    }
}

/// Six cluster-enabled servers joined by `redis-cli --cluster create … --cluster-replicas 1`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// The password of the `default` user on every node, when one is required.
    pub password: Option<String>,
    /// The nodes' `cluster-node-timeout`, in ms.
    pub node_timeout_ms: u64,
}

impl RedisCluster {
    /// Start the nodes, create the cluster and wait until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// [`RedisCluster::start`] with `requirepass` (and `masterauth`) on every node.
    pub fn start_with_password(password: Option<&str>) -> Self {
        Self::start_configured(password, NODE_TIMEOUT_MS)
    }

    /// [`RedisCluster::start`] with `cluster-node-timeout` `node_timeout_ms` on every node.
    pub fn start_with_node_timeout(node_timeout_ms: u64) -> Self {
        Self::start_configured(None, node_timeout_ms)
    }

    fn start_configured(password: Option<&str>, node_timeout_ms: u64) -> Self {
        let auth: Vec<&str> = match password {
            Some(p) => vec!["--requirepass", p, "--masterauth", p],
            None => vec![],
        };
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                let conf = format!(
                    "{}/solcache-cluster-{}-{i}-{}.conf",
                    std::env::temp_dir().display(),
                    std::process::id(),
                    free_port()
                );
                let timeout = node_timeout_ms.to_string();
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    &timeout,
                    // Replicas sync at once (the default waits 5 s), so one can take over early.
                    "--repl-diskless-sync-delay",
                    "0",
                ];
                args.extend(&auth);
                RedisServer::start_on(free_cluster_port(), &args)
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut cli = Command::new("redis-cli");
        if let Some(p) = password {
            cli.args(["--no-auth-warning", "-a", p]);
        }
        let created = cli
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            password: password.map(str::to_owned),
            node_timeout_ms,
        };
        cluster.wait_ok();
        cluster
    }

    /// Wait until every live node says `cluster_state:ok` and knows 3 primaries with slots.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let replication = self.raw(n.port, &["INFO", "replication"]);
                self.raw(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not become ok");
    }

    /// A command on node `port` (authenticated when the cluster has a password).
    pub fn raw(&self, port: u16, args: &[&str]) -> String {
        raw_command_as(port, self.password.as_deref(), args)
    }

    /// Move the slot of `key` (and `key` itself) from primary `src` to primary `dst` by the steps
    /// of `redis-cli --cluster reshard`, with `pauses_ms` between them (blocking the calling
    /// thread, so that traffic meets each state): IMPORTING / MIGRATING (ASK redirections), the
    /// key migrated, then the slot assigned to `dst` (MOVED).
    pub fn reshard_slot_of(&self, key: &str, src: usize, dst: usize, pauses_ms: [u64; 3]) {
        let (src_port, dst_port) = (self.nodes[src].port, self.nodes[dst].port);
        let id = |port: u16| self.raw(port, &["CLUSTER", "MYID"]).trim().to_owned();
        let (src_id, dst_id) = (id(src_port), id(dst_port));
        let slot = self.raw(src_port, &["CLUSTER", "KEYSLOT", key]).trim().to_owned();
        let pause = |i: usize| std::thread::sleep(Duration::from_millis(pauses_ms[i]));
        pause(0);
        self.raw(dst_port, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]);
        self.raw(src_port, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]);
        pause(1);
        let dst_port_text = dst_port.to_string();
        self.raw(
            src_port,
            &["MIGRATE", "127.0.0.1", &dst_port_text, "", "0", "5000", "KEYS", key],
        );
        pause(2);
        for node in [dst_port, src_port] {
            self.raw(node, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
        }
    }

    /// `redis+cluster://` URL listing every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The index of the primary serving `key`'s slot.
    pub fn primary_of(&self, key: &str) -> usize {
        let slot: u16 = self
            .raw(self.nodes[0].port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap();
        let slots = self.raw(self.nodes[0].port, &["CLUSTER", "NODES"]);
        for line in slots.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&slot),
                None => range.parse::<u16>().ok() == Some(slot),
            });
            if serves {
                return self.nodes.iter().position(|n| n.port == port).unwrap();
            }
        }
        panic!("no primary serves {key}");
    }
}

/// A primary, its replica and three sentinels watching it as `mymaster`.
pub struct SentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<Sentinel>,
}

/// One `redis-server --sentinel` child.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    conf: PathBuf,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.conf);
    }
}

pub const MASTER_NAME: &str = "mymaster";

impl SentinelGroup {
    /// Start everything and wait until every sentinel knows the primary and its replica.
    pub fn start() -> Self {
        let primary = RedisServer::start();
        let replica_of = primary.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &replica_of]);
        // The primary syncs its replica at once (the default waits 5 s).
        raw_command(primary.port, &["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| {
                let port = free_port();
                let conf = std::env::temp_dir().join(format!("solcache-sentinel-{}-{port}.conf", std::process::id()));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                         sentinel failover-timeout {MASTER_NAME} 10000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        primary.port
                    ),
                )
                .unwrap();
                let child = Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                Sentinel { child, port, conf }
            })
            .collect();
        let group = SentinelGroup {
            primary,
            replica,
            sentinels,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = raw_command(group.replica.port, &["INFO", "replication"]).contains("master_link_status:up")
                && group.sentinels.iter().all(|s| {
                    TcpStream::connect(("127.0.0.1", s.port)).is_ok()
                        && raw_command(s.port, &["SENTINEL", "REPLICAS", MASTER_NAME]).contains("slave")
                        && raw_command(s.port, &["SENTINEL", "SENTINELS", MASTER_NAME])
                            .matches("name")
                            .count()
                            >= 2
                });
            if ready {
                return group;
            }
            assert!(Instant::now() < deadline, "the sentinels did not discover each other");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis+sentinel://` URL of the three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The port the sentinels name as primary right now.
    pub fn named_primary_port(&self) -> u16 {
        let reply = raw_command(
            self.sentinels[0].port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        );
        reply.lines().nth(1).unwrap().parse().unwrap()
    }
}

/// A thread that asks the replicas on `ports` for their `ROLE` every 10 ms and returns when
/// the first of them answers `master` (the instant the promotion happened, within 10 ms), or
/// `None` after `limit`. Splits a failover gap into the servers' part and the client's.
pub fn watch_promotion(ports: Vec<u16>, limit: Duration) -> std::thread::JoinHandle<Option<Instant>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ports.iter().any(|&p| is_primary(p)) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    })
}

/// True when the server on `port` answers `ROLE` with `master`; false on any failure (a
/// promotion kills the replica's client connections, this one included).
fn is_primary(port: u16) -> bool {
    let asked = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"*1\r\n$4\r\nROLE\r\n")?;
        let mut reply = [0u8; 14];
        std::io::Read::read_exact(&mut stream, &mut reply)?;
        Ok(reply.starts_with(b"*3\r\n$6\r\nmaster"))
    };
    asked().unwrap_or(false)
}
