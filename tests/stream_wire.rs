//! The group read path's reply reader ([`solcache::stream_wire`]) against the general one as
//! the oracle: redis-rs' parser (`redis::parse_redis_value`) followed by
//! [`stream_reply::read_reply`]. The same entries or both an error, on well-formed XREAD
//! replies and on arbitrary RESP2 shapes; the end of a reply found whole, cut at every byte and
//! in random chunks; never a panic on arbitrary bytes.

use proptest::prelude::*;
use solcache::stream_reply::{self, RawEntry};
use solcache::stream_wire::{fills_batch, integer_reply, is_empty_read, read_entries, ReplyScan};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A RESP2 element, as a server sends it.
#[derive(Debug, Clone)]
enum Wire {
    Bulk(Vec<u8>),
    NilBulk,
    NilArray,
    /// Never `OK`: redis-rs reads `+OK` as a value of its own that its string readers refuse.
    Simple(String),
    Int(i64),
    Error(String),
    Array(Vec<Wire>),
}

fn encode(w: &Wire, out: &mut Vec<u8>) {
    match w {
        Wire::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Wire::NilBulk => out.extend_from_slice(b"$-1\r\n"),
        Wire::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Wire::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Wire::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Wire::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Wire::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}

fn bytes_of(w: &Wire) -> Vec<u8> {
    let mut out = Vec::new();
    encode(w, &mut out);
    out
}

fn bulk(s: &[u8]) -> Wire {
    Wire::Bulk(s.to_vec())
}

/// Well-formed XREAD replies: streams of entries of field/value pairs (some deleted: nil).
fn xread_reply() -> impl Strategy<Value = Wire> {
    let fields = prop::option::weighted(
        0.9,
        prop::collection::vec(
            (
                prop::sample::select(vec![&b"type"[..], b"data", b"x"]).prop_map(bulk),
                prop::collection::vec(any::<u8>(), 0..40).prop_map(Wire::Bulk),
            ),
            0..4,
        ),
    );
    let entry = ("[0-9]{1,13}-[0-9]{1,3}", fields).prop_map(|(id, fields)| {
        let fields = match fields {
            None => Wire::NilArray,
            Some(pairs) => Wire::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        };
        Wire::Array(vec![bulk(id.as_bytes()), fields])
    });
    let stream = ("stream:[a-z]{1,8}", prop::collection::vec(entry, 0..5))
        .prop_map(|(name, entries)| Wire::Array(vec![bulk(name.as_bytes()), Wire::Array(entries)]));
    prop_oneof![
        1 => Just(Wire::NilArray),
        8 => prop::collection::vec(stream, 0..4).prop_map(Wire::Array),
    ]
}

/// Any RESP2 shape, biased towards parts of stream replies.
fn any_reply() -> impl Strategy<Value = Wire> {
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Wire::Bulk),
        "[0-9]{1,5}-[0-9]".prop_map(|s| Wire::Bulk(s.into_bytes())),
        Just(bulk(b"type")),
        Just(bulk(b"data")),
        Just(Wire::NilBulk),
        Just(Wire::NilArray),
        "[a-z0-9]{0,6}".prop_map(Wire::Simple),
        any::<i64>().prop_map(Wire::Int),
        "(NOGROUP|ERR) [a-z ]{0,10}".prop_map(Wire::Error),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop::collection::vec(inner, 0..5).prop_map(Wire::Array)
    })
}

/// What the oracle reads from `bytes` (one complete reply).
fn oracle(bytes: &[u8]) -> Option<Vec<RawEntry>> {
    let value = redis::parse_redis_value(bytes).expect("the oracle reads valid RESP");
    stream_reply::read_reply(&value).ok()
}

/// What the wire reader reads from `bytes`.
fn ours(bytes: &[u8]) -> Option<Vec<RawEntry>> {
    let mut out = Vec::new();
    read_entries(bytes, |e| {
        out.push(RawEntry {
            stream: e.stream.to_owned(),
            id: e.id.to_owned(),
            fields: e.fields.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        })
    })
    .ok()?;
    Some(out)
}

/// The most entries any one stream of a well-formed reply holds, and whether it has none.
fn most_entries(reply: &Wire) -> (usize, bool) {
    let Wire::Array(streams) = reply else {
        return (0, true);
    };
    let most = streams
        .iter()
        .map(|s| match s {
            Wire::Array(parts) => match &parts[1] {
                Wire::Array(entries) => entries.len(),
                _ => 0,
            },
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    (most, streams.is_empty())
}

/// The end of the first reply in `chunks` fed one after the other, resuming each time.
fn scan_chunks(bytes: &[u8], cuts: &[usize]) -> Option<usize> {
    let mut scan = ReplyScan::new(0);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        if let Some(end) = scan.advance(&bytes[..cut]).expect("valid RESP") {
            return Some(end);
        }
    }
    None
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn well_formed_replies_read_as_the_oracle_reads_them(reply in xread_reply(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let bytes = bytes_of(&reply);
        let expected = oracle(&bytes).expect("a well-formed reply");
        prop_assert_eq!(ours(&bytes), Some(expected));
        prop_assert_eq!(scan_chunks(&bytes, &cuts), Some(bytes.len()));
    }

    #[test]
    fn a_full_batch_is_told_from_the_headers_alone(reply in xread_reply(), count in 1usize..6) {
        let bytes = bytes_of(&reply);
        let (most, no_streams) = most_entries(&reply);
        prop_assert_eq!(fills_batch(&bytes, count), most >= count);
        prop_assert_eq!(is_empty_read(&bytes), no_streams);
    }

    #[test]
    fn any_shape_gives_the_oracles_entries_or_an_error_like_it(reply in any_reply()) {
        let bytes = bytes_of(&reply);
        prop_assert_eq!(ours(&bytes), oracle(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(ReplyScan::new(0).advance(&bytes).unwrap(), Some(bytes.len()));
    }

    #[test]
    fn a_scan_waits_at_every_cut_and_finds_each_reply_of_a_pipeline(
        replies in prop::collection::vec(any_reply(), 1..4),
    ) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in &replies {
            encode(r, &mut bytes);
            ends.push(bytes.len());
        }
        for cut in 0..ends[0] {
            prop_assert_eq!(ReplyScan::new(0).advance(&bytes[..cut]).unwrap(), None);
        }
        let mut start = 0;
        for &end in &ends {
            prop_assert_eq!(ReplyScan::new(start).advance(&bytes).unwrap(), Some(end));
            start = end;
        }
    }

    #[test]
    fn integer_replies_read_as_the_oracle_reads_them(reply in any_reply()) {
        let bytes = bytes_of(&reply);
        let value = redis::parse_redis_value(&bytes).expect("valid RESP");
        prop_assert_eq!(integer_reply(&bytes).ok(), stream_reply::int(&value).ok());
    }

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_reply_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = ReplyScan::new(0).advance(&bytes);
        let _ = read_entries(&bytes, |_| {});
        let _ = integer_reply(&bytes);
        let _ = fills_batch(&bytes, 1);
        let _ = is_empty_read(&bytes);
    }
}

#[test]
fn an_error_reply_carries_its_code() {
    let err = read_entries(b"-NOGROUP No such key 's'\r\n", |_| {}).unwrap_err();
    assert_eq!(err.response_code(), Some("NOGROUP"));
    let err = integer_reply(b"-NOGROUP No such key\r\n").unwrap_err();
    assert_eq!(err.response_code(), Some("NOGROUP"));
    assert!(!fills_batch(b"-NOGROUP No such key\r\n", 1));
    assert!(!is_empty_read(b"-NOGROUP No such key\r\n"));
}
