//! Test support: the Redis Cluster and the Sentinel group of [`super::topologies`] with TLS on
//! every port (clients, cluster bus, replication, sentinels), one self-signed certificate
//! shared by all (each server's CA, so they verify each other), and an ACL user `trader` on
//! every data node. Real processes on free loopback ports, killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::topologies::{MASTER_NAME, NODE_TIMEOUT_MS};
use super::{free_cluster_port, free_port, make_test_certificate, RedisServer};

/// The ACL user made on every data node, and its password.
pub const TLS_USER: (&str, &str) = ("trader", "trader-pw");

/// `redis-cli --tls` on `port` (certificate not verified), its standard output.
pub fn tls_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--insecure", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The certificate of one topology, in its own directory.
fn certificate(kind: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("solcache-{kind}-tls-{}-{}", std::process::id(), free_port()));
    let (cert, key) = make_test_certificate(&dir);
    (dir, cert, key)
}

/// ACL user arguments of every data node.
fn acl_user() -> String {
    format!("{} on >{} ~* &* +@all", TLS_USER.0, TLS_USER.1)
}

/// Six TLS-only cluster nodes (3 primaries + 3 replicas), the bus and replication over TLS.
pub struct TlsCluster {
    pub nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl TlsCluster {
    pub fn start() -> Self {
        let (dir, cert, key) = certificate("cluster");
        let user = acl_user();
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                let conf = dir.join(format!("nodes-{i}.conf"));
                let timeout = NODE_TIMEOUT_MS.to_string();
                let args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                    "--cluster-node-timeout",
                    &timeout,
                    "--tls-cluster",
                    "yes",
                    "--tls-replication",
                    "yes",
                    "--repl-diskless-sync-delay",
                    "0",
                    "--user",
                ];
                let mut args: Vec<&str> = args.to_vec();
                args.extend(user.split(' '));
                // The bus listens on the TLS port + 10000: free_cluster_port checks both.
                RedisServer::start_tls_on(free_cluster_port(), &cert, &key, &args)
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(["--tls", "--insecure", "--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        wait_until("cluster_state:ok on every TLS node", || {
            nodes.iter().all(|n| {
                let replication = tls_cli(n.port, &["INFO", "replication"]);
                tls_cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            })
        });
        TlsCluster { nodes, dir }
    }

    /// `rediss+cluster://trader:…@…#insecure` listing every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!(
            "rediss+cluster://{}:{}@{}#insecure",
            TLS_USER.0,
            TLS_USER.1,
            hosts.join(",")
        )
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS-only primary, its replica (replicating over TLS) and three TLS-only sentinels.
pub struct TlsSentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinel_ports: Vec<u16>,
    sentinels: Vec<Child>,
    dir: PathBuf,
}

impl TlsSentinelGroup {
    pub fn start() -> Self {
        let (dir, cert, key) = certificate("sentinel");
        let user = acl_user();
        let mut args = vec!["--tls-replication", "yes", "--repl-diskless-sync-delay", "0", "--user"];
        args.extend(user.split(' '));
        let primary = RedisServer::start_tls_on(free_port(), &cert, &key, &args);
        let primary_port = primary.port.to_string();
        args.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let replica = RedisServer::start_tls_on(free_port(), &cert, &key, &args);
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let sentinels = sentinel_ports
            .iter()
            .map(|port| {
                let conf = dir.join(format!("sentinel-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port 0\ntls-port {port}\nbind 127.0.0.1\ndir {dir}\n\
                         tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {cert}\n\
                         tls-auth-clients no\ntls-replication yes\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 10000\n",
                        dir = dir.display(),
                        cert = cert.display(),
                        key = key.display(),
                    ),
                )
                .unwrap();
                Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let group = TlsSentinelGroup {
            primary,
            replica,
            sentinel_ports,
            sentinels,
            dir,
        };
        wait_until("the TLS sentinels meeting each other and the replica", || {
            tls_cli(group.replica.port, &["INFO", "replication"]).contains("master_link_status:up")
                && group.sentinel_ports.iter().all(|&p| {
                    tls_cli(p, &["SENTINEL", "REPLICAS", MASTER_NAME]).contains("slave")
                        && tls_cli(p, &["SENTINEL", "SENTINELS", MASTER_NAME])
                            .matches("name")
                            .count()
                            >= 2
                })
        });
        group
    }

    /// `rediss+sentinel://trader:…@…/mymaster#insecure`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!(
            "rediss+sentinel://{}:{}@{}/{MASTER_NAME}#insecure",
            TLS_USER.0,
            TLS_USER.1,
            hosts.join(",")
        )
    }
}

impl Drop for TlsSentinelGroup {
    fn drop(&mut self) {
        for s in &mut self.sentinels {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
