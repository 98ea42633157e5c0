//! Test support: a real `redis-server` child on a free port, killed when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod tls_topologies;
pub mod topologies;

/// A private redis-server: `--save "" --appendonly no`, TCP on 127.0.0.1 plus a unix socket.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra_args: Vec<String>,
    tls: bool,
}

impl RedisServer {
    /// Start a server on a free port and wait until it answers PING.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start with extra `redis-server` arguments (e.g. `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Start on `port` with extra `redis-server` arguments.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("solcache-rs-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let extra_args = extra.iter().map(|s| s.to_string()).collect();
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra_args,
            tls: false,
        };
        server.spawn();
        server
    }

    /// Start a TLS-only server (`port` is the TLS port) with a self-signed certificate made by
    /// the `openssl` CLI for `localhost` / `127.0.0.1`.
    pub fn start_tls() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("solcache-rs-tls-{}-{port}", std::process::id()));
        let (cert, key) = make_test_certificate(&dir);
        Self::start_tls_on(port, &cert, &key, &[])
    }

    /// Start a TLS-only server on `port` with the certificate `cert` / `key` (also its CA, so
    /// servers sharing one certificate verify each other) and extra `redis-server` arguments.
    pub fn start_tls_on(port: u16, cert: &std::path::Path, key: &std::path::Path, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("solcache-rs-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
        let tls_port = port.to_string();
        let mut extra_args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &path(cert),
            "--tls-key-file",
            &path(key),
            "--tls-ca-cert-file",
            &path(cert),
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        extra_args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra_args,
            tls: true,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--unixsocket",
                self.socket_path().to_str().unwrap(),
                "--dir",
                self.dir.to_str().unwrap(),
            ])
            // Later arguments win: a TLS server overrides `--port` with 0 here.
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// True until [`RedisServer::stop`].
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill the server (SIGKILL) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.tls {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
            } else if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() {
                    if let Ok(n) = s.read(&mut buf) {
                        // +PONG, or -NOAUTH when a password is required: either way it is up.
                        if n > 0 {
                            return;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_ref() {
            // A paused server ignores SIGTERM but not SIGKILL; resume anyway so nothing lingers.
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port p <= 55535 whose cluster bus port p + 10000 is free too.
pub fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// A port nothing listens on right now.
/// A self-signed certificate for `localhost` / `127.0.0.1` made by the `openssl` CLI in `dir`:
/// (certificate, key).
pub fn make_test_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("the openssl CLI makes the test certificate");
    assert!(made.success());
    (cert, key)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain redis-rs connection for planting and inspecting raw data.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
