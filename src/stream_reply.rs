//! Decoding of the stream commands' replies (XREAD, XREADGROUP, XAUTOCLAIM, XPENDING, XINFO)
//! from raw RESP values, RESP2 arrays and RESP3 maps alike.

use std::collections::HashMap;

use redis::Value;

use crate::error::{Error, Result};

/// An entry's field/value pairs, as Redis sent them.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One entry as Redis returned it: its stream, id and field/value pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub stream: String,
    pub id: String,
    /// Empty for an entry deleted while it was pending.
    pub fields: Fields,
}

impl RawEntry {
    /// The value of `name`, if the entry has that field.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

fn unexpected(what: &str, v: &Value) -> Error {
    Error::unexpected_reply(crate::keys::bounded_message(format!("unexpected {what} reply: {v:?}")))
}

/// Text of a bulk or simple string.
pub fn text(v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| unexpected("non-UTF-8 string", v)),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Okay => Ok("OK".into()),
        _ => Err(unexpected("string", v)),
    }
}

fn bytes(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b.clone()),
        Value::SimpleString(s) => Ok(s.clone().into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        _ => Err(unexpected("bulk string", v)),
    }
}

/// An integer, also from a numeric string.
pub fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(_) | Value::SimpleString(_) => text(v)?.parse().map_err(|_| unexpected("integer", v)),
        _ => Err(unexpected("integer", v)),
    }
}

fn items(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        _ => Err(unexpected("array", v)),
    }
}

/// Key/value pairs of a RESP3 map or a flat RESP2 array.
pub fn pairs(v: &Value) -> Result<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(m) => Ok(m.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(a) if a.len() % 2 == 0 => Ok(a.chunks(2).map(|c| (&c[0], &c[1])).collect()),
        _ => Err(unexpected("map", v)),
    }
}

/// A map with text keys.
pub fn map(v: &Value) -> Result<HashMap<String, &Value>> {
    pairs(v)?.into_iter().map(|(k, v)| Ok((text(k)?, v))).collect()
}

/// `[id, [field, value, …]]` (fields nil for a deleted pending entry).
fn entry(stream: &str, v: &Value) -> Result<RawEntry> {
    let parts = items(v)?;
    let [id, fields] = parts else {
        return Err(unexpected("stream entry", v));
    };
    let fields = match fields {
        Value::Nil => Vec::new(),
        other => pairs(other)?
            .into_iter()
            .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
            .collect::<Result<_>>()?,
    };
    Ok(RawEntry {
        stream: stream.to_owned(),
        id: text(id)?,
        fields,
    })
}

/// `[id, [field, value, …]]` taken apart: the bytes Redis sent move into the entry, uncopied.
fn take_entry(stream: &str, v: Value) -> Result<RawEntry> {
    let mut parts = match v {
        Value::Array(a) if a.len() == 2 => a,
        other => return Err(unexpected("stream entry", &other)),
    };
    let (fields, id) = (parts.pop(), parts.pop());
    let (Some(id), Some(fields)) = (id, fields) else {
        unreachable!("two parts checked above")
    };
    let fields = match fields {
        Value::Nil => Vec::new(),
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Ok((take_bytes(k)?, take_bytes(v)?)))
            .collect::<Result<_>>()?,
        Value::Array(a) if a.len() % 2 == 0 => {
            let mut out = Vec::with_capacity(a.len() / 2);
            let mut flat = a.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                out.push((take_bytes(k)?, take_bytes(v)?));
            }
            out
        }
        other => return Err(unexpected("map", &other)),
    };
    Ok(RawEntry {
        stream: stream.to_owned(),
        id: take_text(id)?,
        fields,
    })
}

fn take_bytes(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        other => bytes(&other),
    }
}

fn take_text(v: Value) -> Result<String> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|e| unexpected("non-UTF-8 string", &Value::BulkString(e.into_bytes())))
        }
        other => text(&other),
    }
}

/// XREAD / XREADGROUP like [`read_reply`], consuming the reply: field names and values move
/// into the entries instead of being copied (the read path's hot loop).
pub fn read_reply_owned(v: Value) -> Result<Vec<RawEntry>> {
    let streams: Vec<(Value, Value)> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m,
        Value::Array(a) => a
            .into_iter()
            .map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    match (pair.next(), pair.next()) {
                        (Some(name), Some(entries)) => Ok((name, entries)),
                        _ => unreachable!("two parts checked above"),
                    }
                }
                other => Err(unexpected("stream", &other)),
            })
            .collect::<Result<_>>()?,
        other => return Err(unexpected("XREAD", &other)),
    };
    let mut out = Vec::new();
    for (name, entries) in streams {
        let name = take_text(name)?;
        let entries = match entries {
            Value::Array(a) | Value::Set(a) => a,
            other => return Err(unexpected("array", &other)),
        };
        out.reserve(entries.len());
        for e in entries {
            out.push(take_entry(&name, e)?);
        }
    }
    Ok(out)
}

/// XREAD / XREADGROUP: nil on timeout, else `[[stream, [entry…]]…]` or a RESP3 map.
pub fn read_reply(v: &Value) -> Result<Vec<RawEntry>> {
    let streams: Vec<(&Value, &Value)> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(a) => a
            .iter()
            .map(|s| match items(s)? {
                [name, entries] => Ok((name, entries)),
                _ => Err(unexpected("stream", s)),
            })
            .collect::<Result<_>>()?,
        _ => return Err(unexpected("XREAD", v)),
    };
    let mut out = Vec::new();
    for (name, entries) in streams {
        let name = text(name)?;
        for e in items(entries)? {
            out.push(entry(&name, e)?);
        }
    }
    Ok(out)
}

/// XAUTOCLAIM: `[next_cursor, [entry…], [deleted id…]]` (the third part since Redis 7).
pub struct ClaimReply {
    pub cursor: String,
    pub entries: Vec<RawEntry>,
    pub deleted: Vec<String>,
}

pub fn claim_reply(stream: &str, v: &Value) -> Result<ClaimReply> {
    let parts = items(v)?;
    let (cursor, entries, deleted) = match parts {
        [c, e] => (c, e, None),
        [c, e, d] => (c, e, Some(d)),
        _ => return Err(unexpected("XAUTOCLAIM", v)),
    };
    let mut claimed = Vec::new();
    let mut gone = Vec::new();
    for e in items(entries)? {
        match e {
            Value::Nil => {} // Redis 6.2 reports a deleted entry as nil here
            _ => {
                let raw = entry(stream, e)?;
                if raw.fields.is_empty() {
                    gone.push(raw.id);
                } else {
                    claimed.push(raw);
                }
            }
        }
    }
    if let Some(d) = deleted {
        for id in items(d)? {
            gone.push(text(id)?);
        }
    }
    Ok(ClaimReply {
        cursor: text(cursor)?,
        entries: claimed,
        deleted: gone,
    })
}

/// XPENDING extended form: id → times delivered.
pub fn pending_deliveries(v: &Value) -> Result<HashMap<String, u64>> {
    items(v)?
        .iter()
        .map(|row| match items(row)? {
            [id, _consumer, _idle, count] => Ok((text(id)?, int(count)?.max(0) as u64)),
            _ => Err(unexpected("XPENDING row", row)),
        })
        .collect()
}

/// `[id, fields]` of XINFO STREAM's first-entry / last-entry, or nil.
pub fn entry_id(v: &Value) -> Result<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        other => match items(other)?.first() {
            Some(id) => Ok(Some(text(id)?)),
            None => Err(unexpected("stream entry", other)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn decodes_resp2_xread() {
        let v = Value::Array(vec![Value::Array(vec![
            bulk("stream:a"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("type"), bulk("x"), bulk("data"), bulk("{}")]),
            ])]),
        ])]);
        let entries = read_reply(&v).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(entries[0].field("data"), Some(&b"{}"[..]));
        assert_eq!(read_reply(&Value::Nil).unwrap(), vec![]);
    }

    #[test]
    fn owned_decoding_matches_borrowed_decoding() {
        let entry = |id: &str, fields: Value| Value::Array(vec![bulk(id), fields]);
        let flat = Value::Array(vec![bulk("type"), bulk("x"), bulk("data"), bulk("{}")]);
        let map = Value::Map(vec![(bulk("type"), bulk("y")), (bulk("data"), Value::Int(7))]);
        let resp2 = Value::Array(vec![
            Value::Array(vec![
                bulk("stream:a"),
                Value::Array(vec![entry("1-0", flat.clone()), entry("2-0", Value::Nil)]),
            ]),
            Value::Array(vec![bulk("stream:b"), Value::Array(vec![entry("3-0", map.clone())])]),
        ]);
        let resp3 = Value::Map(vec![
            (bulk("stream:a"), Value::Array(vec![entry("1-0", flat)])),
            (bulk("stream:b"), Value::Array(vec![entry("3-0", map)])),
        ]);
        for reply in [resp2, resp3, Value::Nil] {
            let owned = read_reply_owned(reply.clone()).unwrap();
            assert_eq!(owned, read_reply(&reply).unwrap());
        }
        let owned = read_reply_owned(Value::Map(vec![(
            bulk("s"),
            Value::Array(vec![entry("3-0", Value::Array(vec![bulk("type"), bulk("t")]))]),
        )]))
        .unwrap();
        assert_eq!((owned[0].stream.as_str(), owned[0].id.as_str()), ("s", "3-0"));
        assert_eq!(owned[0].field("type"), Some(&b"t"[..]));
        // Every malformed shape is an error, as in the borrowing decoder.
        for bad in [
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![bulk("1-0")])])]),
            Value::Array(vec![Value::Array(vec![
                bulk("s"),
                Value::Array(vec![entry("1-0", Value::Array(vec![bulk("odd")]))]),
            ])]),
            Value::Array(vec![Value::Array(vec![
                Value::BulkString(vec![0xff]),
                Value::Array(vec![]),
            ])]),
        ] {
            assert!(read_reply(&bad).is_err(), "{bad:?}");
            assert!(read_reply_owned(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decodes_autoclaim_with_deleted_ids() {
        let v = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![
                bulk("2-0"),
                Value::Array(vec![bulk("type"), bulk("t")]),
            ])]),
            Value::Array(vec![bulk("1-0")]),
        ]);
        let c = claim_reply("s", &v).unwrap();
        assert_eq!(c.cursor, "0-0");
        assert_eq!(c.entries[0].id, "2-0");
        assert_eq!(c.deleted, vec!["1-0".to_owned()]);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(read_reply(&Value::Int(3)).is_err());
        assert!(claim_reply("s", &Value::Array(vec![])).is_err());
        assert!(pending_deliveries(&Value::Array(vec![Value::Int(1)])).is_err());
        // XINFO STREAM's first-entry as an empty array used to index out of bounds.
        assert!(matches!(entry_id(&Value::Array(vec![])), Err(Error::Response { .. })));
        assert_eq!(
            entry_id(&Value::Array(vec![bulk("7-1"), Value::Nil])).unwrap(),
            Some("7-1".into())
        );
        assert_eq!(entry_id(&Value::Nil).unwrap(), None);
    }

    #[test]
    fn messages_about_huge_replies_stay_short() {
        let huge = Value::BulkString(vec![0xff; 1 << 20]);
        let e = read_reply(&Value::Array(vec![Value::Array(vec![
            huge.clone(),
            Value::Array(vec![]),
        ])]))
        .unwrap_err();
        assert!(e.to_string().len() < 1024, "{}", e.to_string().len());
        assert!(int(&huge).unwrap_err().to_string().len() < 1024);
    }
}
