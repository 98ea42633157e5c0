//! Decoding of the stream commands' replies (XREAD, XREADGROUP, XAUTOCLAIM, XPENDING, XINFO)
//! from raw RESP values, RESP2 arrays and RESP3 maps alike.

use std::collections::HashMap;

use redis::Value;

use crate::error::{Error, Result};

/// One entry as Redis returned it: its stream, id and field/value pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub stream: String,
    pub id: String,
    /// Empty for an entry deleted while it was pending.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
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
    Error::Response(crate::keys::bounded_message(format!("unexpected {what} reply: {v:?}")))
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
        assert!(matches!(entry_id(&Value::Array(vec![])), Err(Error::Response(_))));
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
