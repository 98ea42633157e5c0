//! RESP2 and RESP3 replies read incrementally: [`Decoder`] takes bytes as they arrive and hands
//! out each reply once it is complete, keeping its place inside a partial one.
//!
//! RESP3 (the near cache's tracking connection speaks it, after `HELLO 3`) maps onto the same
//! [`Reply`]: null `_` is [`Reply::Nil`], maps `%` and sets `~` are arrays (a map as its keys
//! and values in turn), booleans `#` are `Int(1)`/`Int(0)`, doubles `,` and big numbers `(`
//! are their text, verbatim strings `=` their body without the format prefix, blob errors `!`
//! errors; out-of-band pushes `>` (invalidations) are [`Reply::Push`]. Attributes `|` are
//! refused: nothing we send asks for them.
//!
//! Why our own parser and not redis-rs' `redis::Parser` (both measured on the replies of a
//! cached read with `cargo bench --no-default-features --bench hot_path -- parse`, criterion
//! means, on the shared 2-core VM of `docs/performance.md`):
//!
//! | reply | [`Decoder`] | `redis::Parser` |
//! |---|---:|---:|
//! | GET of a price, 180 bytes, whole | 0.047 µs | 0.35 µs |
//! | the same cut into 3 reads (`WouldBlock` between them) | 0.084 µs | 1.19 µs |
//! | MGET of 5 prices, whole | 0.20 µs | 1.03 µs |
//!
//! `redis::Parser` does keep its partial state across `WouldBlock` (so it would be correct
//! over a non-blocking socket; `tests/resp.rs` shows it), but its combine-based decoder costs
//! 5–14 times more per reply, and a GET's parse is on the direct-read hot path.
//!
//! [`Decoder`] never parses a byte twice: a header line is scanned once (the scan resumes
//! where the last read ended), a bulk string whose body has not fully arrived waits with its
//! length known, and the elements of an array that arrived are kept while the rest is
//! awaited. `tests/resp.rs` checks it against `redis::parse_redis_value` as the oracle, fed
//! whole, cut at every byte and in random chunks.

use crate::error::{Error, Result};

/// Replies nested deeper than this are refused (a well-behaved server never sends them).
const MAX_DEPTH: usize = 8;
/// Bulk strings and arrays larger than this are refused rather than buffered.
const MAX_LEN: i64 = 512 * 1024 * 1024;
/// Consumed bytes are dropped from the front of the buffer once this many pile up (between
/// complete replies the buffer is simply cleared).
const COMPACT_AFTER: usize = 64 * 1024;

/// One reply (RESP2, or RESP3 mapped as the module docs say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Bulk(Vec<u8>),
    Simple(String),
    Int(i64),
    Error(String),
    Array(Vec<Reply>),
    /// A RESP3 out-of-band push (`>`): never the answer to a request.
    Push(Vec<Reply>),
}

/// An aggregate whose elements are still arriving.
#[derive(Debug)]
struct Frame {
    items: Vec<Reply>,
    left: usize,
    push: bool,
}

/// What a length-prefixed string becomes once its body has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BulkKind {
    /// `$`: the bytes.
    Blob,
    /// `=`: the bytes after the `xxx:` format prefix.
    Verbatim,
    /// `!`: an error reply.
    Error,
}

/// Incremental RESP2 decoder; see the module docs.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// First byte not consumed yet.
    pos: usize,
    /// Where the search for the current header line's end resumes (absolute index in `buf`).
    scan: usize,
    /// A bulk string's header was read: its body (this many bytes and CRLF) starts at `pos`.
    bulk: Option<(usize, BulkKind)>,
    /// Arrays being filled, innermost last.
    stack: Vec<Frame>,
}

fn protocol(message: impl Into<String>) -> Error {
    Error::unexpected_reply(format!("protocol error: {}", message.into()))
}

fn integer(text: &[u8]) -> Result<i64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| protocol(format!("bad integer {:?}", String::from_utf8_lossy(text))))
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.scan = 0;
            self.pos = 0;
        } else if self.pos > COMPACT_AFTER {
            self.buf.drain(..self.pos);
            self.scan = self.scan.saturating_sub(self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// True when no part of a reply is buffered (every byte pushed formed complete replies).
    pub fn is_idle(&self) -> bool {
        self.pos == self.buf.len() && self.bulk.is_none() && self.stack.is_empty()
    }

    /// Bytes received that are not part of a decoded element yet: a header line or a bulk
    /// string body in progress. Elements of an unfinished array are decoded already.
    pub fn unparsed(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete reply: `Ok(None)` until all of it has arrived, `Err` if the bytes are
    /// not RESP (the stream cannot be trusted after that).
    pub fn next_reply(&mut self) -> Result<Option<Reply>> {
        loop {
            let Some(item) = self.next_item()? else {
                return Ok(None);
            };
            if let Some(reply) = self.fold(item) {
                return Ok(Some(reply));
            }
        }
    }

    /// Put a finished element into the arrays it completes; the top-level reply once done.
    fn fold(&mut self, mut item: Reply) -> Option<Reply> {
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Some(item);
            };
            frame.items.push(item);
            frame.left -= 1;
            if frame.left > 0 {
                return None;
            }
            let done = self.stack.pop().expect("a frame was just filled");
            item = if done.push {
                Reply::Push(done.items)
            } else {
                Reply::Array(done.items)
            };
        }
    }

    /// The next element at any depth: a scalar, or an empty array. A non-empty array header
    /// opens a frame and moves on to its first element.
    fn next_item(&mut self) -> Result<Option<Reply>> {
        loop {
            if let Some((len, kind)) = self.bulk {
                if self.buf.len() - self.pos < len + 2 {
                    return Ok(None);
                }
                let end = self.pos + len;
                if &self.buf[end..end + 2] != b"\r\n" {
                    return Err(protocol("bulk string not terminated by CRLF"));
                }
                let body = &self.buf[self.pos..end];
                let item = match kind {
                    BulkKind::Blob => Reply::Bulk(body.to_vec()),
                    BulkKind::Verbatim if body.len() >= 4 && body[3] == b':' => Reply::Bulk(body[4..].to_vec()),
                    BulkKind::Verbatim => return Err(protocol("verbatim string without a format prefix")),
                    BulkKind::Error => Reply::Error(String::from_utf8_lossy(body).into_owned()),
                };
                self.pos = end + 2;
                self.scan = self.pos;
                self.bulk = None;
                return Ok(Some(item));
            }
            if self.stack.len() > MAX_DEPTH {
                return Err(protocol("reply nested too deeply"));
            }
            let Some(line_end) = self.line_end() else {
                return Ok(None);
            };
            let kind = self.buf[self.pos];
            let text = &self.buf[self.pos + 1..line_end];
            let item = match kind {
                b'+' => Reply::Simple(String::from_utf8_lossy(text).into_owned()),
                b'-' => Reply::Error(String::from_utf8_lossy(text).into_owned()),
                b':' => Reply::Int(integer(text)?),
                b'_' if text.is_empty() => Reply::Nil,
                b'#' => match text {
                    b"t" => Reply::Int(1),
                    b"f" => Reply::Int(0),
                    _ => return Err(protocol("bad boolean")),
                },
                b',' | b'(' => Reply::Simple(String::from_utf8_lossy(text).into_owned()),
                b'$' | b'=' | b'!' => match integer(text)? {
                    len if len < 0 && kind == b'$' => Reply::Nil,
                    len if !(0..=MAX_LEN).contains(&len) => return Err(protocol(format!("string of {len} bytes"))),
                    len => {
                        let kind = match kind {
                            b'$' => BulkKind::Blob,
                            b'=' => BulkKind::Verbatim,
                            _ => BulkKind::Error,
                        };
                        self.consume_line(line_end);
                        self.bulk = Some((len as usize, kind));
                        continue;
                    }
                },
                b'*' | b'~' | b'%' | b'>' => match integer(text)? {
                    len if len < 0 && kind == b'*' => Reply::Nil,
                    len if !(0..=MAX_LEN).contains(&len) => {
                        return Err(protocol(format!("aggregate of {len} elements")))
                    }
                    0 if kind == b'>' => Reply::Push(Vec::new()),
                    0 => Reply::Array(Vec::new()),
                    len => {
                        let left = if kind == b'%' { 2 * len as usize } else { len as usize };
                        self.consume_line(line_end);
                        self.stack.push(Frame {
                            items: Vec::with_capacity(left.min(1024)),
                            left,
                            push: kind == b'>',
                        });
                        continue;
                    }
                },
                other => return Err(protocol(format!("unexpected reply type byte {other:#04x}"))),
            };
            self.consume_line(line_end);
            return Ok(Some(item));
        }
    }

    /// Index of the CR ending the header line at `pos`, searching only bytes not searched yet.
    fn line_end(&mut self) -> Option<usize> {
        loop {
            // The type byte is never part of the terminator; a lone LF inside the line is text.
            let from = self.scan.max(self.pos + 1);
            let Some(i) = self.buf.get(from..)?.iter().position(|&b| b == b'\n') else {
                self.scan = self.buf.len();
                return None;
            };
            let lf = from + i;
            if lf >= self.pos + 2 && self.buf[lf - 1] == b'\r' {
                return Some(lf - 1);
            }
            self.scan = lf + 1;
        }
    }

    fn consume_line(&mut self, line_end: usize) {
        self.pos = line_end + 2;
        self.scan = self.pos;
    }
}

impl Reply {
    /// A GET reply: the value, or `None` for nil.
    pub fn into_optional_bytes(self) -> Result<Option<Vec<u8>>> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(bytes) => Ok(Some(bytes)),
            Reply::Error(message) => Err(Error::error_reply(message)),
            other => Err(protocol(format!("expected a string or nil, got {other:?}"))),
        }
    }

    /// An MGET reply: one optional value per key.
    pub fn into_optional_bytes_list(self) -> Result<Vec<Option<Vec<u8>>>> {
        match self {
            Reply::Array(items) => items.into_iter().map(Reply::into_optional_bytes).collect(),
            Reply::Error(message) => Err(Error::error_reply(message)),
            other => Err(protocol(format!("expected an array, got {other:?}"))),
        }
    }
}

/// A redis-rs reply as a [`Reply`], so replies read by redis-rs connections and by the
/// [`Decoder`] are handled by the same code. RESP3-only types never occur on the redis-rs
/// connections (they speak RESP2); they are refused.
impl redis::FromRedisValue for Reply {
    fn from_redis_value(v: redis::Value) -> std::result::Result<Self, redis::ParsingError> {
        use redis::Value;
        Ok(match v {
            Value::Nil => Reply::Nil,
            Value::Int(n) => Reply::Int(n),
            Value::BulkString(bytes) => Reply::Bulk(bytes),
            Value::Array(items) => Reply::Array(
                items
                    .into_iter()
                    .map(Reply::from_redis_value)
                    .collect::<std::result::Result<_, _>>()?,
            ),
            Value::SimpleString(text) => Reply::Simple(text),
            Value::Okay => Reply::Simple("OK".to_owned()),
            Value::ServerError(err) => Reply::Error(match err.details() {
                Some(detail) => format!("{} {detail}", err.code()),
                None => err.code().to_owned(),
            }),
            other => return Err(format!("a RESP3 reply on a RESP2 connection: {other:?}").into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Result<Vec<Reply>> {
        let mut decoder = Decoder::new();
        decoder.push(bytes);
        let mut replies = Vec::new();
        while let Some(reply) = decoder.next_reply()? {
            replies.push(reply);
        }
        Ok(replies)
    }

    #[test]
    fn decodes_every_kind_and_waits_for_partial_input() {
        let wire = b"$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\nx\r\n$-1\r\n+OK\r\n:42\r\n-ERR no\r\n*0\r\n";
        let expected = vec![
            Reply::Bulk(b"abc".to_vec()),
            Reply::Nil,
            Reply::Array(vec![Reply::Bulk(b"x".to_vec()), Reply::Nil]),
            Reply::Simple("OK".into()),
            Reply::Int(42),
            Reply::Error("ERR no".into()),
            Reply::Array(vec![]),
        ];
        assert_eq!(all(wire).unwrap(), expected);
        // One byte at a time: the same replies, each exactly when its last byte arrives.
        let mut decoder = Decoder::new();
        let mut replies = Vec::new();
        for (i, byte) in wire.iter().enumerate() {
            decoder.push(&[*byte]);
            while let Some(reply) = decoder.next_reply().unwrap() {
                replies.push(reply);
                assert!(decoder.is_idle(), "a reply completes only at its last byte ({i})");
            }
        }
        assert_eq!(replies, expected);
    }

    #[test]
    fn nothing_is_parsed_twice() {
        let mut decoder = Decoder::new();
        decoder.push(b"*3\r\n$1\r\na\r\n:7\r\n$5\r\nhe");
        assert_eq!(decoder.next_reply().unwrap(), None);
        assert_eq!(
            decoder.unparsed(),
            2,
            "two elements and a header are decoded: only `he` waits"
        );
        decoder.push(b"llo\r");
        assert_eq!(decoder.next_reply().unwrap(), None);
        decoder.push(b"\n:12");
        let done = decoder.next_reply().unwrap().unwrap();
        assert_eq!(
            done,
            Reply::Array(vec![
                Reply::Bulk(b"a".to_vec()),
                Reply::Int(7),
                Reply::Bulk(b"hello".to_vec())
            ])
        );
        assert_eq!(decoder.unparsed(), 3, "a header line in progress");
        decoder.push(b"3");
        assert_eq!(decoder.next_reply().unwrap(), None);
        decoder.push(b"\r\n");
        assert_eq!(decoder.next_reply().unwrap(), Some(Reply::Int(123)));
        assert!(decoder.is_idle());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(all(b"?what\r\n").is_err());
        assert!(all(b"$abc\r\n").is_err());
        assert!(all(b"$3\r\nabcXY").is_err());
        assert!(all(b"$99999999999\r\n").is_err());
        assert!(all("*1\r\n".repeat(20).as_bytes()).is_err());
    }

    #[test]
    fn resp3_types_map_onto_replies() {
        let wire = b"_\r\n#t\r\n#f\r\n,1.5\r\n(12345678901234567890\r\n=7\r\ntxt:abc\r\n!5\r\nERR x\r\n\
%1\r\n+server\r\n+redis\r\n~2\r\n:1\r\n:2\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$9\r\nprice:SOL\r\n\
>2\r\n$10\r\ninvalidate\r\n_\r\n";
        let expected = vec![
            Reply::Nil,
            Reply::Int(1),
            Reply::Int(0),
            Reply::Simple("1.5".into()),
            Reply::Simple("12345678901234567890".into()),
            Reply::Bulk(b"abc".to_vec()),
            Reply::Error("ERR x".into()),
            Reply::Array(vec![Reply::Simple("server".into()), Reply::Simple("redis".into())]),
            Reply::Array(vec![Reply::Int(1), Reply::Int(2)]),
            Reply::Push(vec![
                Reply::Bulk(b"invalidate".to_vec()),
                Reply::Array(vec![Reply::Bulk(b"price:SOL".to_vec())]),
            ]),
            Reply::Push(vec![Reply::Bulk(b"invalidate".to_vec()), Reply::Nil]),
        ];
        assert_eq!(all(wire).unwrap(), expected);
        assert!(all(b"#x\r\n").is_err());
        assert!(all(b"=2\r\nab\r\n").is_err(), "verbatim without its format");
        assert!(all(b"|1\r\n").is_err(), "attributes are refused");
    }
}
