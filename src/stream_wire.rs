//! XREAD / XREADGROUP replies read straight from the bytes Redis sent (RESP2), with no reply
//! tree in between: each entry is handed to the caller as borrowed slices of the read buffer.
//!
//! Why (client instructions per entry read and acknowledged, counted by callgrind with
//! `scripts/count_stream_instructions.py`: 5,000 entries, batches of 100): redis-rs' parser on
//! a redis-rs connection costs about 8.8k and builds a `redis::Value` per element (seven
//! allocations per entry: the entry, its id, its field array and four field strings) that are
//! then taken apart again; finding a reply's end and walking it here costs about 2.4k and
//! allocates nothing per entry. The whole read + ack path went from 21.9k to 13.8k with this
//! reader and [`WireConnection`](crate::transport::WireConnection) in place of redis-rs.
//!
//! Two steps: [`ReplyScan`] finds where a reply ends while its bytes arrive, resuming where
//! the last read stopped (headers are read once, bulk bodies are skipped by their length);
//! [`read_entries`] then walks the complete reply and hands out each entry. The shapes and
//! values accepted are those of [`crate::stream_reply::read_reply`] on RESP2
//! (`tests/stream_wire.rs` checks the two agree on arbitrary replies, whole and cut anywhere).

use crate::error::{Error, Result};

/// Bulk strings and arrays larger than this are refused rather than buffered.
const MAX_LEN: i64 = 512 * 1024 * 1024;

fn protocol(message: impl Into<String>) -> Error {
    Error::unexpected_reply(format!("protocol error: {}", message.into()))
}

fn unexpected(what: &str) -> Error {
    Error::unexpected_reply(format!("unexpected {what} in an XREAD reply"))
}

/// A header's integer, read digit by digit (every bulk string and array header has one:
/// `str::parse` with its UTF-8 check cost about as much as the rest of the walk).
fn integer(text: &[u8]) -> Result<i64> {
    // Most headers of an entry hold one digit (`*2`, `*4`, `$4`).
    if let [d @ b'0'..=b'9'] = text {
        return Ok(i64::from(d - b'0'));
    }
    let bad = || protocol(format!("bad integer {:?}", String::from_utf8_lossy(text)));
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    if digits.len() <= 18 {
        // Cannot overflow: the common case (every length and count) without checked steps.
        let mut n: i64 = 0;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return Err(bad());
            }
            n = n * 10 + i64::from(d);
        }
        return Ok(if negative { -n } else { n });
    }
    let mut n: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(bad());
        }
        // Accumulated as a negative number so that i64::MIN fits.
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_sub(i64::from(d)))
            .ok_or_else(bad)?;
    }
    if negative {
        Ok(n)
    } else {
        n.checked_neg().ok_or_else(bad)
    }
}

/// The header line at `pos`: its type byte, its text and where the next element starts; None
/// until the line's CRLF arrived.
fn header(buf: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let rest = buf.get(pos + 1..)?;
    let mut from = 0;
    loop {
        let lf = from + rest[from..].iter().position(|&b| b == b'\n')?;
        if lf >= 1 && rest[lf - 1] == b'\r' {
            return Some((buf[pos], &rest[..lf - 1], pos + 1 + lf + 1));
        }
        from = lf + 1; // a lone LF inside the line is text
    }
}

/// Where one RESP2 reply ends, found while its bytes arrive; see the module docs.
#[derive(Debug, Clone)]
pub struct ReplyScan {
    /// Where the reply starts in the buffer.
    start: usize,
    /// First element not read yet.
    pos: usize,
    /// Elements still to read (an array header adds its length).
    pending: u64,
}

impl ReplyScan {
    /// A scan of the reply that starts at `start`.
    pub fn new(start: usize) -> Self {
        ReplyScan {
            start,
            pos: start,
            pending: 1,
        }
    }

    /// Where the reply started.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The end of the reply once `buf` holds all of it (None: more bytes are needed; `buf`
    /// must keep the bytes it had). `Err` when the bytes are not RESP2.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>> {
        while self.pending > 0 {
            let Some((kind, text, next)) = header(buf, self.pos) else {
                return Ok(None);
            };
            let next = match kind {
                b'+' | b'-' => next,
                b':' => {
                    integer(text)?;
                    next
                }
                b'$' => match integer(text)? {
                    n if n < 0 => next,
                    n if n > MAX_LEN => return Err(protocol(format!("bulk string of {n} bytes"))),
                    n => {
                        let end = next + n as usize;
                        if buf.len() < end + 2 {
                            return Ok(None);
                        }
                        if &buf[end..end + 2] != b"\r\n" {
                            return Err(protocol("bulk string not terminated by CRLF"));
                        }
                        end + 2
                    }
                },
                b'*' => match integer(text)? {
                    n if n > MAX_LEN => return Err(protocol(format!("array of {n} elements"))),
                    n => {
                        self.pending += n.max(0) as u64;
                        next
                    }
                },
                other => return Err(protocol(format!("unexpected reply type byte {other:#04x}"))),
            };
            self.pending -= 1;
            self.pos = next;
        }
        Ok(Some(self.pos))
    }
}

/// Append the header of a command of `args` arguments (RESP2) to `out`; each argument
/// follows with [`push_arg`]. Used to send the group read's pipeline without building a
/// redis-rs command per acknowledgement.
pub fn push_command(out: &mut Vec<u8>, args: usize) {
    out.push(b'*');
    push_decimal(out, args);
    out.extend_from_slice(b"\r\n");
}

/// Append one bulk-string argument to `out`.
pub fn push_arg(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    push_decimal(out, arg.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// One entry of a read reply, borrowed from the reply's bytes.
#[derive(Debug)]
pub struct EntryView<'a> {
    pub stream: &'a str,
    pub id: &'a str,
    /// Field/value pairs in the order Redis sent them; empty for an entry deleted while it
    /// was pending.
    pub fields: &'a [(&'a [u8], &'a [u8])],
}

impl EntryView<'_> {
    /// The value of `name`, if the entry has that field.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(k, _)| *k == name.as_bytes()).map(|(_, v)| *v)
    }
}

/// Reads the elements of one complete reply.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// What a header was, for the walk over a complete reply.
enum Element<'a> {
    Array(usize),
    Nil,
    Text(&'a [u8]),
    /// An integer reply's digits: bytes for a field, but not a name or an id.
    Int(&'a [u8]),
    Error(&'a [u8]),
}

impl<'a> Cursor<'a> {
    fn element(&mut self) -> Result<Element<'a>> {
        let (kind, text, next) = header(self.buf, self.pos).ok_or_else(|| protocol("reply cut short"))?;
        self.pos = next;
        Ok(match kind {
            b'+' => Element::Text(text),
            b':' => {
                integer(text)?;
                Element::Int(text)
            }
            b'-' => Element::Error(text),
            b'$' => match integer(text)? {
                n if n < 0 => Element::Nil,
                n => {
                    let end = next + n as usize;
                    let body = self.buf.get(next..end).ok_or_else(|| protocol("reply cut short"))?;
                    self.pos = end + 2;
                    Element::Text(body)
                }
            },
            b'*' => match integer(text)? {
                n if n < 0 => Element::Nil,
                n => Element::Array(n as usize),
            },
            other => return Err(protocol(format!("unexpected reply type byte {other:#04x}"))),
        })
    }

    fn array(&mut self, what: &str) -> Result<usize> {
        match self.element()? {
            Element::Array(n) => Ok(n),
            _ => Err(unexpected(what)),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        match self.element()? {
            Element::Text(t) | Element::Int(t) => Ok(t),
            _ => Err(unexpected("non-string")),
        }
    }

    fn text(&mut self) -> Result<&'a str> {
        match self.element()? {
            Element::Text(t) => std::str::from_utf8(t).map_err(|_| unexpected("non-UTF-8 string")),
            _ => Err(unexpected("non-string")),
        }
    }
}

/// Hand each entry of a complete XREAD / XREADGROUP reply (`reply` holds exactly one, as found
/// by [`ReplyScan`]) to `each`, in order. Nil (nothing arrived within the block) has none; an
/// error reply is `Err` with its code ([`Error::error_reply`]); a shape other than
/// `[[stream, [[id, [field, value, …] or nil]…]]…]` is `Err` (`each` may have seen the entries
/// before the bad part).
pub fn read_entries<'a>(reply: &'a [u8], mut each: impl FnMut(&EntryView<'_>)) -> Result<()> {
    let mut c = Cursor { buf: reply, pos: 0 };
    let streams = match c.element()? {
        Element::Nil => return Ok(()),
        Element::Error(message) => return Err(Error::error_reply(String::from_utf8_lossy(message))),
        Element::Array(n) => n,
        Element::Text(_) | Element::Int(_) => return Err(unexpected("string")),
    };
    let mut fields: Vec<(&'a [u8], &'a [u8])> = Vec::new();
    for _ in 0..streams {
        if c.array("stream")? != 2 {
            return Err(unexpected("stream"));
        }
        let stream = c.text()?;
        let entries = c.array("entry list")?;
        for _ in 0..entries {
            if c.array("stream entry")? != 2 {
                return Err(unexpected("stream entry"));
            }
            let id = c.text()?;
            fields.clear();
            match c.element()? {
                Element::Nil => {}
                Element::Array(n) if n % 2 == 0 => {
                    for _ in 0..n / 2 {
                        fields.push((c.bytes()?, c.bytes()?));
                    }
                }
                _ => return Err(unexpected("field list")),
            }
            each(&EntryView {
                stream,
                id,
                fields: &fields,
            });
        }
    }
    if c.pos != reply.len() {
        return Err(protocol("bytes after the reply"));
    }
    Ok(())
}

/// True when a complete XREAD / XREADGROUP reply holds no entries (nil, or no streams).
pub fn is_empty_read(reply: &[u8]) -> bool {
    let mut c = Cursor { buf: reply, pos: 0 };
    matches!(c.element(), Ok(Element::Nil | Element::Array(0)))
}

/// True when some stream of a complete XREAD / XREADGROUP reply brought `count` entries or
/// more (a full batch: more are likely waiting). Reads only headers: the entries of a stream
/// are skipped by [`ReplyScan`]. A reply that is not a batch (nil, an error, bad bytes) is
/// false; [`read_entries`] says what is wrong with it.
pub fn fills_batch(reply: &[u8], count: usize) -> bool {
    let mut c = Cursor { buf: reply, pos: 0 };
    let Ok(Element::Array(streams)) = c.element() else {
        return false;
    };
    for _ in 0..streams {
        if !matches!(c.array("stream"), Ok(2)) || c.text().is_err() {
            return false;
        }
        let list_at = c.pos;
        match c.array("entry list") {
            Ok(n) if n >= count => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        match ReplyScan::new(list_at).advance(reply) {
            Ok(Some(end)) => c.pos = end,
            _ => return false,
        }
    }
    false
}

/// The integer of a complete reply (an XACK's count); an error reply is `Err` with its code.
pub fn integer_reply(reply: &[u8]) -> Result<i64> {
    let mut c = Cursor { buf: reply, pos: 0 };
    match c.element()? {
        Element::Int(t) => integer(t),
        Element::Text(t) => integer(t).map_err(|_| unexpected("non-integer")),
        Element::Error(message) => Err(Error::error_reply(String::from_utf8_lossy(message))),
        _ => Err(unexpected("non-integer")),
    }
}

/// The text of a complete bulk or simple string reply (an XADD's entry id); an error reply is
/// `Err` with its code ([`Error::error_reply`]).
pub fn text_reply(reply: &[u8]) -> Result<&str> {
    let mut c = Cursor { buf: reply, pos: 0 };
    match c.element()? {
        Element::Text(t) => std::str::from_utf8(t).map_err(|_| unexpected("non-UTF-8 string")),
        Element::Error(message) => Err(Error::error_reply(String::from_utf8_lossy(message))),
        _ => Err(unexpected("non-string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stream, id and fields of each entry.
    type Owned = (String, String, crate::stream_reply::Fields);

    fn entries(reply: &[u8]) -> Result<Vec<Owned>> {
        let mut out = Vec::new();
        read_entries(reply, |e| {
            let fields = e.fields.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            out.push((e.stream.to_owned(), e.id.to_owned(), fields));
        })?;
        Ok(out)
    }

    const REPLY: &[u8] = b"*1\r\n*2\r\n$8\r\nstream:a\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$4\r\ntype\r\n$1\r\nx\r\n$4\r\ndata\r\n$2\r\n{}\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";

    #[test]
    fn reads_entries_and_deleted_ones() {
        let got = entries(REPLY).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("stream:a", "1-0"));
        assert_eq!(got[0].2[1], (b"data".to_vec(), b"{}".to_vec()));
        assert_eq!((got[1].1.as_str(), got[1].2.len()), ("2-0", 0));
        assert!(entries(b"*-1\r\n").unwrap().is_empty());
        let err = entries(b"-NOGROUP No such key\r\n").unwrap_err();
        assert_eq!(err.response_code(), Some("NOGROUP"));
    }

    #[test]
    fn a_scan_resumes_at_every_cut_and_ends_where_the_reply_ends() {
        let mut wire = REPLY.to_vec();
        wire.extend_from_slice(b":3\r\n");
        for cut in 0..REPLY.len() {
            let mut scan = ReplyScan::new(0);
            assert_eq!(scan.advance(&wire[..cut]).unwrap(), None, "cut at {cut}");
            assert_eq!(scan.advance(&wire).unwrap(), Some(REPLY.len()), "cut at {cut}");
        }
        let mut next = ReplyScan::new(REPLY.len());
        assert_eq!(next.advance(&wire).unwrap(), Some(wire.len()));
        assert_eq!(integer_reply(&wire[REPLY.len()..]).unwrap(), 3);
    }

    #[test]
    fn commands_are_written_as_redis_rs_writes_them() {
        let mut out = Vec::new();
        push_command(&mut out, 3);
        for arg in [&b"XACK"[..], b"", &[b'x'; 1234]] {
            push_arg(&mut out, arg);
        }
        let expected = redis::cmd("XACK").arg("").arg(&[b'x'; 1234][..]).get_packed_command();
        assert_eq!(out, expected);
    }

    #[test]
    fn text_replies_are_ids_or_error_codes() {
        assert_eq!(text_reply(b"$15\r\n1735689600000-0\r\n").unwrap(), "1735689600000-0");
        assert_eq!(text_reply(b"+OK\r\n").unwrap(), "OK");
        let err = text_reply(b"-OOM command not allowed\r\n").unwrap_err();
        assert_eq!(err.response_code(), Some("OOM"));
        assert!(text_reply(b":1\r\n").is_err());
        assert!(text_reply(b"$-1\r\n").is_err());
    }

    #[test]
    fn integers_of_every_length_read_exactly() {
        for n in [
            0i64,
            7,
            -1,
            999_999_999_999_999_999,
            -999_999_999_999_999_999,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(integer(n.to_string().as_bytes()).unwrap(), n);
        }
        assert_eq!(integer(b"+12").unwrap(), 12);
        for bad in [
            &b""[..],
            b"-",
            b"1x",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"12345678901234567x",
        ] {
            assert!(integer(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for bad in [&b"?x\r\n"[..], b"$abc\r\n", b"$3\r\nabcXY", b"$99999999999\r\n"] {
            assert!(ReplyScan::new(0).advance(bad).is_err(), "{bad:?}");
        }
        for bad in [
            &b":3\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n:1\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*1\r\n$3\r\n1-0\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\nk\r\n",
            b"*1\r\n*2\r\n$1\r\n\xff\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*3\r\n",
        ] {
            assert!(entries(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
