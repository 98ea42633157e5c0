//! The direct connection's sans-IO state machine (`transport::direct::Link`), driven by
//! random schedules against a model server: random request sequences, request and reply
//! bytes cut at any point, breaks mid-reply, and time moving past deadlines.
//!
//! Each request asks for its own key and the model server answers with a reply derived from
//! that key, so a reply paired with the wrong request is seen at once. Every request must end
//! exactly once: answered with its own reply, failed by its deadline (only once that has
//! passed), or handed back when the connection closed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use solcache::transport::direct::{Expiry, Link, Phase, Route, Submitted};
use solcache::transport::resp::{Decoder, Reply};

const TIMEOUT: Duration = Duration::from_millis(100);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The reply the model server gives to the request for token `n`: sizes and types vary.
fn reply_for(n: u32) -> Reply {
    let key = format!("k{n}");
    match n % 5 {
        0 => Reply::Nil,
        1 => Reply::Bulk(key.repeat(1 + (n as usize * 7) % 40).into_bytes()),
        2 => Reply::Array(vec![
            Reply::Bulk(key.into_bytes()),
            Reply::Int(i64::from(n)),
            Reply::Nil,
        ]),
        3 => Reply::Error(format!("ERR for {key}")),
        _ => Reply::Bulk(key.into_bytes()),
    }
}

fn encode(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Simple(t) => out.extend_from_slice(format!("+{t}\r\n").as_bytes()),
        Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Error(t) => out.extend_from_slice(format!("-{t}\r\n").as_bytes()),
        Reply::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            items.iter().for_each(|i| encode(i, out));
        }
        Reply::Push(items) => {
            out.extend_from_slice(format!(">{}\r\n", items.len()).as_bytes());
            items.iter().for_each(|i| encode(i, out));
        }
    }
}

/// One server connection: it reads request bytes and queues the reply bytes of each complete
/// request; a new connection starts empty.
#[derive(Default)]
struct ModelServer {
    requests: Decoder,
    replies: Vec<u8>,
}

impl ModelServer {
    fn receive(&mut self, bytes: &[u8]) {
        self.requests.push(bytes);
        while let Some(request) = self.requests.next_reply().expect("requests are RESP") {
            let Reply::Array(words) = request else {
                panic!("a request is an array")
            };
            let [Reply::Bulk(name), Reply::Bulk(key)] = &words[..] else {
                panic!("GET key")
            };
            assert_eq!(name, b"GET");
            let n: u32 = std::str::from_utf8(&key[1..]).unwrap().parse().unwrap();
            encode(&reply_for(n), &mut self.replies);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A call; `busy` as the driver reports it.
    Call { busy: bool },
    /// The driver writes up to this many bytes of the link's output.
    Write(usize),
    /// The server's replies arrive, up to this many bytes.
    Deliver(usize),
    /// Time passes (ms), then the driver's timer fires.
    Wait(u64),
    /// The end of a loop iteration (a scheduled flush).
    FlushDue,
    /// The socket breaks (possibly mid-reply).
    Break,
    /// A connect the link asked for completes.
    Connected,
    /// A connect the link asked for fails.
    ConnectFailed,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|busy| Op::Call { busy }),
        3 => (0usize..120).prop_map(Op::Write),
        3 => (0usize..160).prop_map(Op::Deliver),
        2 => (0u64..70).prop_map(Op::Wait),
        1 => Just(Op::FlushDue),
        1 => Just(Op::Break),
        2 => Just(Op::Connected),
        1 => Just(Op::ConnectFailed),
    ]
}

#[derive(Debug, PartialEq)]
enum End {
    Answered,
    Expired,
    HandedBack,
}

struct Harness {
    link: Link<u32>,
    start: Instant,
    now: Instant,
    next: u32,
    deadlines: BTreeMap<u32, Instant>,
    in_flight: Vec<u32>,
    ends: BTreeMap<u32, End>,
    server: ModelServer,
    flush_scheduled: bool,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        Harness {
            link: Link::new(true, TIMEOUT, Duration::from_micros(50), now),
            start: now,
            now,
            next: 0,
            deadlines: BTreeMap::new(),
            in_flight: Vec::new(),
            ends: BTreeMap::new(),
            server: ModelServer::default(),
            flush_scheduled: false,
        }
    }

    fn end(&mut self, token: u32, how: End) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.in_flight.first(), Some(&token), "requests end in order");
        self.in_flight.remove(0);
        prop_assert!(self.ends.insert(token, how).is_none(), "token {} ended twice", token);
        Ok(())
    }

    fn answered(&mut self, answered: Vec<(u32, Reply)>) -> Result<(), TestCaseError> {
        for (token, reply) in answered {
            prop_assert_eq!(&reply, &reply_for(token), "reply paired with the wrong request");
            self.end(token, End::Answered)?;
        }
        Ok(())
    }

    fn closed(&mut self, orphans: Vec<u32>) -> Result<(), TestCaseError> {
        for token in orphans {
            self.end(token, End::HandedBack)?;
        }
        prop_assert!(self.in_flight.is_empty());
        prop_assert_eq!(self.link.in_flight(), 0);
        prop_assert!(
            matches!(self.link.phase(), Phase::Down { .. }),
            "closed: {:?}",
            self.link.phase()
        );
        self.server = ModelServer::default();
        self.flush_scheduled = false;
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Call { busy } => match self.link.route(self.now) {
                Route::Direct => {
                    let token = self.next;
                    self.next += 1;
                    let lone = self.in_flight.is_empty() && !self.flush_scheduled;
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(format!("k{token}"));
                    let submitted = self.link.submit(&cmd, token, self.now, busy);
                    match submitted {
                        Submitted::WriteNow { .. } => prop_assert!(lone, "only a lone request goes at once"),
                        Submitted::Buffered { schedule_flush } => {
                            prop_assert!(!lone);
                            prop_assert_eq!(schedule_flush, !self.flush_scheduled, "one flush per iteration");
                            self.flush_scheduled = true;
                        }
                    }
                    self.deadlines.insert(token, self.now + TIMEOUT);
                    self.in_flight.push(token);
                }
                Route::Pool { .. } => prop_assert_ne!(self.link.phase(), Phase::Up),
            },
            Op::Write(max) => {
                let n = max.min(self.link.output().len());
                let bytes = self.link.output()[..n].to_vec();
                self.link.wrote(n);
                self.server.receive(&bytes);
            }
            Op::Deliver(max) => {
                let n = max.min(self.server.replies.len());
                let bytes: Vec<u8> = self.server.replies.drain(..n).collect();
                let mut answered = Vec::new();
                let received = self.link.receive(&bytes, &mut answered);
                prop_assert!(received.is_ok(), "{:?}", received);
                self.answered(answered)?;
            }
            Op::Wait(ms) => {
                self.now += Duration::from_millis(ms);
                let oldest = self.in_flight.first().map(|t| self.deadlines[t]);
                prop_assert_eq!(self.link.next_deadline(), oldest, "the link tracks the oldest deadline");
                match self.link.expire(self.now) {
                    Expiry::Idle => prop_assert!(self.in_flight.is_empty()),
                    Expiry::Later(due) => {
                        prop_assert!(due > self.now, "a passed deadline was not acted on");
                        prop_assert_eq!(Some(due), oldest);
                    }
                    Expiry::Closed { expired, orphans } => {
                        prop_assert!(!expired.is_empty());
                        for token in expired {
                            prop_assert!(self.deadlines[&token] <= self.now, "expired before its deadline");
                            self.end(token, End::Expired)?;
                        }
                        for token in &orphans {
                            prop_assert!(self.deadlines[token] > self.now, "a passed deadline was handed back");
                        }
                        self.closed(orphans)?;
                    }
                }
            }
            Op::FlushDue => {
                self.link.flush_due();
                self.flush_scheduled = false;
            }
            Op::Break => {
                if self.link.phase() == Phase::Up {
                    let orphans = self.link.close(self.now);
                    self.closed(orphans)?;
                }
            }
            Op::Connected => self.link.connected(),
            Op::ConnectFailed => {
                if self.link.phase() == Phase::Connecting {
                    self.link.connect_failed(false, self.now);
                }
            }
        }
        Ok(())
    }

    /// Write and deliver everything: whatever is still in flight is answered.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        self.apply(Op::Write(usize::MAX))?;
        self.apply(Op::Deliver(usize::MAX))?;
        prop_assert!(self.in_flight.is_empty(), "unanswered: {:?}", self.in_flight);
        prop_assert_eq!(self.link.in_flight(), 0);
        prop_assert_eq!(self.ends.len() as u32, self.next, "every request ended exactly once");
        prop_assert!(self.now >= self.start);
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_request_ends_once_with_its_own_reply(ops in prop::collection::vec(op(), 1..120)) {
        let mut h = Harness::new();
        for op in ops {
            h.apply(op)?;
        }
        h.settle()?;
    }

    #[test]
    fn replies_cut_at_any_byte_pair_the_same(
        count in 1u32..12,
        cut in any::<prop::sample::Index>(),
        chunk in 1usize..40,
    ) {
        let mut h = Harness::new();
        h.apply(Op::Call { busy: false })?;
        h.apply(Op::Connected)?;
        for _ in 0..count {
            h.apply(Op::Call { busy: false })?;
        }
        h.apply(Op::Write(usize::MAX))?;
        let all = h.server.replies.len();
        let first = cut.index(all + 1);
        h.apply(Op::Deliver(first))?;
        while !h.server.replies.is_empty() {
            h.apply(Op::Deliver(chunk))?;
        }
        prop_assert!(h.ends.values().all(|e| *e == End::Answered));
        h.settle()?;
    }

    #[test]
    fn a_break_mid_reply_hands_back_the_rest_and_the_next_connection_starts_clean(
        count in 2u32..10,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut h = Harness::new();
        h.apply(Op::Call { busy: false })?;
        h.apply(Op::Connected)?;
        for _ in 0..count {
            h.apply(Op::Call { busy: false })?;
        }
        h.apply(Op::Write(usize::MAX))?;
        let all = h.server.replies.len();
        h.apply(Op::Deliver(cut.index(all)))?;
        h.apply(Op::Break)?;
        prop_assert_eq!(h.ends.len() as u32, count, "answered or handed back, all of them");
        // A new connection: stale bytes of the old one must not pair with new requests.
        h.apply(Op::Call { busy: false })?;
        h.apply(Op::Connected)?;
        for _ in 0..3 {
            h.apply(Op::Call { busy: false })?;
        }
        h.settle()?;
    }

    #[test]
    fn deadlines_fail_only_the_late_and_never_get_lost(
        gaps in prop::collection::vec(0u64..60, 1..10),
        wait in 0u64..200,
    ) {
        let mut h = Harness::new();
        h.apply(Op::Call { busy: false })?;
        h.apply(Op::Connected)?;
        for gap in gaps {
            h.now += Duration::from_millis(gap);
            h.apply(Op::Call { busy: true })?;
        }
        h.apply(Op::Write(usize::MAX))?;
        h.apply(Op::Wait(wait))?;
        let expired = h.ends.values().filter(|e| **e == End::Expired).count();
        let late = h.deadlines.values().filter(|d| **d <= h.now).count();
        prop_assert_eq!(expired, late, "exactly the requests past their deadline fail");
        h.settle()?;
    }
}
