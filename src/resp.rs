//! An incremental RESP2 reply parser for [`crate::direct_connection`]: it parses what is in a
//! buffer and says "not yet" for a partial reply, so a caller-driven socket can feed it bytes
//! as they arrive.

use crate::error::{Error, Result};

/// Replies nested deeper than this are refused (a well-behaved server never sends them).
const MAX_DEPTH: usize = 8;
/// Bulk strings and arrays larger than this are refused rather than buffered.
const MAX_LEN: i64 = 512 * 1024 * 1024;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Bulk(Vec<u8>),
    Simple(String),
    Int(i64),
    Error(String),
    Array(Vec<Reply>),
}

/// Parse one complete reply from the start of `buf`: `Ok(Some((reply, bytes used)))`,
/// `Ok(None)` if `buf` holds only part of one, `Err` if it is not RESP2.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    parse_at(buf, 0, 0)
}

fn protocol(message: impl Into<String>) -> Error {
    Error::Response(format!("protocol error: {}", message.into()))
}

/// The line starting at `pos` (without CRLF) and the position after it.
fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], pos + end + 2))
}

fn integer(text: &[u8]) -> Result<i64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| protocol(format!("bad integer {:?}", String::from_utf8_lossy(text))))
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Reply, usize)>> {
    if depth > MAX_DEPTH {
        return Err(protocol("reply nested too deeply"));
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((text, next)) = line(buf, pos + 1) else {
        return Ok(None);
    };
    let reply = match kind {
        b'+' => Reply::Simple(String::from_utf8_lossy(text).into_owned()),
        b'-' => Reply::Error(String::from_utf8_lossy(text).into_owned()),
        b':' => Reply::Int(integer(text)?),
        b'$' => {
            let len = integer(text)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            if len > MAX_LEN {
                return Err(protocol(format!("bulk string of {len} bytes")));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(protocol("bulk string not terminated by CRLF"));
            }
            return Ok(Some((Reply::Bulk(buf[next..end].to_vec()), end + 2)));
        }
        b'*' => {
            let len = integer(text)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            if len > MAX_LEN {
                return Err(protocol(format!("array of {len} elements")));
            }
            let mut items = Vec::with_capacity((len as usize).min(1024));
            let mut at = next;
            for _ in 0..len {
                match parse_at(buf, at, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        at = after;
                    }
                    None => return Ok(None),
                }
            }
            return Ok(Some((Reply::Array(items), at)));
        }
        other => return Err(protocol(format!("unexpected reply type byte {other:#04x}"))),
    };
    Ok(Some((reply, next)))
}

impl Reply {
    /// A GET reply: the value, or `None` for nil.
    pub fn into_optional_bytes(self) -> Result<Option<Vec<u8>>> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(bytes) => Ok(Some(bytes)),
            Reply::Error(message) => Err(Error::Response(message)),
            other => Err(protocol(format!("expected a string or nil, got {other:?}"))),
        }
    }

    /// An MGET reply: one optional value per key.
    pub fn into_optional_bytes_list(self) -> Result<Vec<Option<Vec<u8>>>> {
        match self {
            Reply::Array(items) => items.into_iter().map(Reply::into_optional_bytes).collect(),
            Reply::Error(message) => Err(Error::Response(message)),
            other => Err(protocol(format!("expected an array, got {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_reports_partial_input() {
        let wire = b"$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\nx\r\n$-1\r\n+OK\r\n:42\r\n-ERR no\r\n";
        let mut at = 0;
        let mut replies = Vec::new();
        while let Some((reply, used)) = parse(&wire[at..]).unwrap() {
            replies.push(reply);
            at += used;
        }
        assert_eq!(at, wire.len());
        assert_eq!(
            replies,
            vec![
                Reply::Bulk(b"abc".to_vec()),
                Reply::Nil,
                Reply::Array(vec![Reply::Bulk(b"x".to_vec()), Reply::Nil]),
                Reply::Simple("OK".into()),
                Reply::Int(42),
                Reply::Error("ERR no".into()),
            ]
        );
        for cut in 0..wire.len() {
            // Every strict prefix of the first reply is "not yet", never an error.
            if cut < 9 {
                assert_eq!(parse(&wire[..cut]).unwrap(), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b"$abc\r\n").is_err());
        assert!(parse(b"$3\r\nabcXY").is_err());
        assert!(parse(b"$99999999999\r\n").is_err());
        let deep = "*1\r\n".repeat(20);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
