//! The direct connection's socket against real redis-server processes: the shared handshake
//! (credentials, database, name, refusals) and a link driven over it by hand, as an event
//! loop would.

mod support;

use std::time::{Duration, Instant};

use solcache::transport::direct::{DirectSocket, Link, Route};
use solcache::transport::resp::Reply;
use solcache::transport::Endpoint;
use solcache::Error;
use support::RedisServer;

const SECOND: Duration = Duration::from_secs(1);

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn open(url: &str) -> solcache::Result<DirectSocket> {
    DirectSocket::connect(&Endpoint::parse(url)?, SECOND)
}

fn up_link(spin: Duration) -> Link<usize> {
    let now = Instant::now();
    let mut link = Link::new(true, SECOND, spin, now);
    assert_eq!(link.route(now), Route::Pool { connect: true });
    link.connected();
    link
}

/// Read until `want` replies are answered (the socket is non-blocking: poll with a deadline).
fn read_all(socket: &mut DirectSocket, link: &mut Link<usize>, want: usize) -> Vec<(usize, Reply)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answered = Vec::new();
    while answered.len() < want {
        assert!(Instant::now() < deadline, "only {} of {want} replies", answered.len());
        socket.read(link, &mut answered).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    answered
}

#[test]
fn a_link_driven_over_a_real_socket_pairs_every_reply() {
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    for i in 0..200 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .exec(&mut admin)
            .unwrap();
    }
    let mut socket = open(&server.url()).unwrap();
    let mut link = up_link(Duration::ZERO);
    let now = Instant::now();
    for i in 0..200 {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("k{i}"));
        link.submit(&cmd, i, now, false);
    }
    while !socket.write(&mut link).unwrap() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let answered = read_all(&mut socket, &mut link, 200);
    for (i, (token, reply)) in answered.into_iter().enumerate() {
        assert_eq!((token, reply), (i, Reply::Bulk(format!("v{i}").into_bytes())));
    }
    assert_eq!(link.in_flight(), 0);
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(clients.contains("name=solcache-direct"), "{clients}");
}

#[test]
fn a_lone_request_is_answered_by_polling() {
    let server = RedisServer::start();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut raw(&server.url()))
        .unwrap();
    let mut socket = open(&server.url()).unwrap();
    // A generous budget: the reply of a local server comes well within it.
    let mut link = up_link(Duration::from_millis(500));
    let mut cmd = redis::cmd("GET");
    cmd.arg("k");
    let mut answered = Vec::new();
    let mut hits = 0;
    for _ in 0..40 {
        let spin = matches!(
            link.submit(&cmd, 7, Instant::now(), false),
            solcache::transport::direct::Submitted::WriteNow { spin: true }
        );
        assert!(socket.write(&mut link).unwrap());
        if spin && socket.spin(&mut link, &mut answered).unwrap() {
            hits += 1;
        } else {
            answered.extend(read_all(&mut socket, &mut link, 1));
        }
        assert_eq!(answered.pop(), Some((7, Reply::Bulk(b"v".to_vec()))));
    }
    assert!(hits >= 1, "after 32 quiet calls a lone request polls for its reply");
}

#[test]
fn the_handshake_authenticates_selects_and_refuses_what_it_must() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let base = format!("127.0.0.1:{}", server.port);
    let wrong = open(&format!("redis://:nope@{base}/0")).err().unwrap();
    assert!(matches!(wrong, Error::Authentication { .. }), "{wrong:?}");
    let missing = open(&format!("redis://{base}/0")).err().unwrap();
    assert!(matches!(missing, Error::Authentication { .. }), "{missing:?}");
    assert_eq!(
        (wrong.response_code(), missing.response_code()),
        (Some("WRONGPASS"), Some("NOAUTH"))
    );
    assert!(!format!("{wrong} {missing}").contains("s3cret"));
    let bad_db = open(&format!("redis://:s3cret@{base}/99")).err().unwrap();
    assert!(matches!(bad_db, Error::Response { .. }), "{bad_db:?}");

    let mut socket = open(&format!("redis://:s3cret@{base}/3")).unwrap();
    let mut admin = raw(&format!("redis://:s3cret@{base}/3"));
    redis::cmd("SET").arg("in-db-3").arg("yes").exec(&mut admin).unwrap();
    let mut link = up_link(Duration::ZERO);
    let mut cmd = redis::cmd("GET");
    cmd.arg("in-db-3");
    link.submit(&cmd, 0, Instant::now(), false);
    assert!(socket.write(&mut link).unwrap());
    assert_eq!(
        read_all(&mut socket, &mut link, 1),
        vec![(0, Reply::Bulk(b"yes".to_vec()))]
    );

    let tls = open(&format!("rediss://{base}/0")).err().unwrap();
    assert!(matches!(tls, Error::InvalidInput(_)), "{tls:?}");
    let refused = open(&format!("redis://127.0.0.1:{}/0", support::free_port()))
        .err()
        .unwrap();
    assert!(matches!(refused, Error::Connection { .. }), "{refused:?}");
}

#[test]
fn a_server_that_goes_away_breaks_the_link() {
    let mut server = RedisServer::start();
    let mut socket = open(&server.url()).unwrap();
    let mut link = up_link(Duration::ZERO);
    server.stop();
    let mut cmd = redis::cmd("GET");
    cmd.arg("k");
    link.submit(&cmd, 0, Instant::now(), false);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answered = Vec::new();
    loop {
        let broke = socket.write(&mut link).is_err() || socket.read(&mut link, &mut answered).is_err();
        if broke {
            break;
        }
        assert!(Instant::now() < deadline, "the dead socket was never noticed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(answered.is_empty());
    assert_eq!(link.close(Instant::now()), vec![0], "the request is handed back");
}
