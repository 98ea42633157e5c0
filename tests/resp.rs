//! The incremental RESP2/RESP3 decoder against redis-rs' own parser (`redis::parse_redis_value`) as
//! the oracle: the same replies whole, cut at every byte, and in random chunks; never a panic
//! on arbitrary bytes.

use proptest::prelude::*;
use redis::Value;
use solcache::transport::resp::{Decoder, Reply};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Line text a server may send in a simple string or an error (no CR or LF).
fn line_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ._:'-]{0,24}"
}

fn reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        Just(Reply::Nil),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Reply::Bulk),
        line_text().prop_map(Reply::Simple),
        any::<i64>().prop_map(Reply::Int),
        "[A-Za-z0-9._:-][A-Za-z0-9 ._:-]{0,20}".prop_map(|t| Reply::Error(format!("ERR {t}"))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Reply::Array)
    })
}

fn encode(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(bytes) => {
            out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Simple(text) => out.extend_from_slice(format!("+{text}\r\n").as_bytes()),
        Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Error(text) => out.extend_from_slice(format!("-{text}\r\n").as_bytes()),
        Reply::Array(items) | Reply::Push(items) => {
            let kind = if matches!(reply, Reply::Push(_)) { '>' } else { '*' };
            out.extend_from_slice(format!("{kind}{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}

/// An invalidation push as a RESP3 server sends it: the keys, or null (flush everything).
fn invalidation() -> impl Strategy<Value = Reply> {
    let keys = prop::collection::vec("[a-z]{1,6}:[A-Za-z0-9]{1,12}", 1..5)
        .prop_map(|keys| Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.into_bytes())).collect()));
    prop_oneof![Just(Reply::Nil), keys].prop_map(|keys| Reply::Push(vec![Reply::Bulk(b"invalidate".to_vec()), keys]))
}

/// RESP3 wire of a reply (null as `_`), as a tracking connection receives it.
fn wire3(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    encode3(reply, &mut out);
    out
}

fn encode3(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Nil => out.extend_from_slice(b"_\r\n"),
        Reply::Array(items) | Reply::Push(items) => {
            let kind = if matches!(reply, Reply::Push(_)) { '>' } else { '*' };
            out.extend_from_slice(format!("{kind}{}\r\n", items.len()).as_bytes());
            for item in items {
                encode3(item, out);
            }
        }
        other => encode(other, out),
    }
}

fn wire(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    encode(reply, &mut out);
    out
}

/// Our reply and redis-rs' value say the same thing.
fn same(ours: &Reply, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Reply::Nil, Value::Nil) => true,
        (Reply::Bulk(a), Value::BulkString(b)) => a == b,
        (Reply::Simple(a), Value::SimpleString(b)) => a == b,
        (Reply::Simple(a), Value::Okay) => a == "OK",
        (Reply::Int(a), Value::Int(b)) => a == b,
        (Reply::Error(a), Value::ServerError(e)) => {
            let text = match e.details() {
                Some(detail) => format!("{} {detail}", e.code()),
                None => e.code().to_owned(),
            };
            *a == text
        }
        (Reply::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        (Reply::Push(a), Value::Push { kind, data }) => match a.split_first() {
            Some((Reply::Bulk(name), rest)) => {
                kind.to_string() == String::from_utf8_lossy(name)
                    && rest.len() == data.len()
                    && rest.iter().zip(data).all(|(x, y)| same(x, y))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Every reply the decoder finds in `chunks`, fed one after the other.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Reply>, solcache::Error> {
    let mut decoder = Decoder::new();
    let mut replies = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(reply) = decoder.next_reply()? {
            replies.push(reply);
        }
    }
    Ok(replies)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_replies_decode_as_the_oracle_says(reply in reply()) {
        let bytes = wire(&reply);
        let theirs = redis::parse_redis_value(&bytes).expect("the oracle reads valid RESP");
        let ours = decode_chunks([bytes.as_slice()]).unwrap();
        prop_assert_eq!(ours.len(), 1);
        prop_assert!(same(&ours[0], &theirs), "ours {:?}, oracle {:?}", ours[0], theirs);
        prop_assert_eq!(&ours[0], &reply);
    }

    #[test]
    fn a_reply_cut_at_any_byte_decodes_the_same(reply in reply()) {
        let bytes = wire(&reply);
        for cut in 0..bytes.len() {
            let mut decoder = Decoder::new();
            decoder.push(&bytes[..cut]);
            prop_assert_eq!(decoder.next_reply().unwrap(), None, "complete after {} of {} bytes", cut, bytes.len());
            decoder.push(&bytes[cut..]);
            prop_assert_eq!(decoder.next_reply().unwrap(), Some(reply.clone()), "cut at {}", cut);
            prop_assert!(decoder.is_idle());
        }
    }

    #[test]
    fn a_stream_of_replies_in_random_chunks_decodes_in_order(
        replies in prop::collection::vec(reply(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes: Vec<u8> = replies.iter().flat_map(wire).collect();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.extend([0, bytes.len()]);
        at.sort_unstable();
        let chunks = at.windows(2).map(|w| &bytes[w[0]..w[1]]);
        prop_assert_eq!(decode_chunks(chunks).unwrap(), replies);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree_with_the_oracle(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        if let Ok(Some(ours)) = decoder.next_reply() {
            // redis-rs reads the same first reply out of the same bytes, or refuses them
            // (it is stricter about text it turns into a Rust `String`).
            if let Ok(theirs) = redis::parse_redis_value(&bytes) {
                prop_assert!(same(&ours, &theirs), "ours {:?}, oracle {:?}", ours, theirs);
            }
        }
    }

    #[test]
    fn resp3_pushes_between_replies_decode_as_the_oracle_says(
        replies in prop::collection::vec(prop_oneof![reply(), invalidation()], 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        for reply in &replies {
            let bytes = wire3(reply);
            let theirs = redis::parse_redis_value(&bytes).expect("the oracle reads valid RESP3");
            prop_assert!(same(reply, &theirs), "ours {:?}, oracle {:?}", reply, theirs);
        }
        let bytes: Vec<u8> = replies.iter().flat_map(wire3).collect();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.extend([0, bytes.len()]);
        at.sort_unstable();
        let chunks = at.windows(2).map(|w| &bytes[w[0]..w[1]]);
        prop_assert_eq!(decode_chunks(chunks).unwrap(), replies);
    }

    #[test]
    fn typical_garbage_is_refused_by_both(kind in "[a-zA-Z0-9?@]", rest in "[a-z0-9]{0,8}") {
        let bytes = format!("{kind}{rest}\r\n").into_bytes();
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        prop_assert!(decoder.next_reply().is_err());
        prop_assert!(redis::parse_redis_value(&bytes).is_err());
    }
}

/// `redis::Parser` over a non-blocking socket (the alternative the `resp` module docs weigh):
/// it does keep its partial state across `WouldBlock`, so it would be correct there too.
#[test]
fn redis_parser_resumes_after_would_block() {
    struct WouldBlockAfter<'a>(&'a [u8]);
    impl std::io::Read for WouldBlockAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let reply = Reply::Array(vec![Reply::Bulk(b"{\"token\":\"SOL\"}".to_vec()), Reply::Nil]);
    let bytes = wire(&reply);
    let mut parser = redis::Parser::new();
    for part in bytes[..bytes.len() - 1].chunks(5) {
        let err = parser.parse_value(WouldBlockAfter(part)).unwrap_err();
        assert!(err.is_io_error(), "{err:?}");
    }
    let value = parser.parse_value(WouldBlockAfter(&bytes[bytes.len() - 1..])).unwrap();
    assert!(same(&reply, &value), "{value:?}");
}
