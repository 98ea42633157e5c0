//! A fill: the values of some keys and their server TTLs in one round trip,
//! `MULTI`, `PTTL k…`, `MGET k…`, `EXEC`, sent on the tracking connection. The transaction
//! makes value and TTL one snapshot; being on the tracking connection makes every later
//! change of these keys arrive as an invalidation after this reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::transport::resp::Reply;

/// One key's value as a fill read it.
#[derive(Debug, Clone)]
pub struct Filled {
    /// The value, `None` when the key does not exist.
    pub value: Option<Arc<[u8]>>,
    /// How long the server keeps the key from when the fill was sent; `None` for no TTL.
    pub ttl: Option<Duration>,
}

/// The packed commands of a fill of `keys`, and how many replies they get (every reply but
/// the last, `EXEC`'s, is an acknowledgement).
pub fn packed(keys: &[String]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(64 + keys.iter().map(|k| 2 * k.len() + 32).sum::<usize>());
    redis::cmd("MULTI").write_packed_command(&mut out);
    for key in keys {
        redis::cmd("PTTL").arg(key).write_packed_command(&mut out);
    }
    redis::cmd("MGET").arg(keys).write_packed_command(&mut out);
    redis::cmd("EXEC").write_packed_command(&mut out);
    (out, keys.len() + 3)
}

/// The `EXEC` reply of a fill of `keys` count keys: one [`Filled`] per key.
pub fn decode(exec: Reply, keys: usize) -> Result<Vec<Filled>> {
    let items = match exec {
        Reply::Array(items) if items.len() == keys + 1 => items,
        Reply::Error(message) => return Err(Error::error_reply(message)),
        other => return Err(Error::unexpected_reply(format!("near cache fill: {other:?}"))),
    };
    let mut items = items.into_iter();
    let ttls: Vec<Reply> = items.by_ref().take(keys).collect();
    let values = items.next().expect("length checked").into_optional_bytes_list()?;
    if values.len() != keys {
        return Err(Error::unexpected_reply("near cache fill: MGET length"));
    }
    ttls.into_iter()
        .zip(values)
        .map(|(ttl, value)| match ttl {
            Reply::Int(ms) if ms > 0 => Ok(Filled {
                value: value.map(Arc::from),
                ttl: Some(Duration::from_millis(ms as u64)),
            }),
            Reply::Int(-1) => Ok(Filled {
                value: value.map(Arc::from),
                ttl: None,
            }),
            // Gone, or expiring this millisecond: nothing worth keeping.
            Reply::Int(_) => Ok(Filled { value: None, ttl: None }),
            other => Err(Error::unexpected_reply(format!("near cache fill PTTL: {other:?}"))),
        })
        .collect()
}

/// When an entry filled by a request sent at `sent_at` stops being served: the server TTL,
/// capped by `max_ttl` (which also bounds keys without a TTL).
///
/// `PTTL` counts from the server's clock truncated to the millisecond, so the key may have up
/// to 1 ms less left than it says: one millisecond comes off, and the entry never outlives the
/// key's expiry time.
pub fn expires_at(sent_at: Instant, ttl: Option<Duration>, max_ttl: Duration) -> Instant {
    let ttl = ttl.map(|t| t.saturating_sub(PTTL_RESOLUTION));
    sent_at + ttl.map_or(max_ttl, |t| t.min(max_ttl))
}

/// The resolution of the server's `PTTL`.
const PTTL_RESOLUTION: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_trip_and_its_reply() {
        let keys = vec!["price:SOL".to_owned(), "price:X".to_owned()];
        let (bytes, replies) = packed(&keys);
        assert_eq!(replies, 5, "MULTI, 2 × QUEUED, QUEUED, EXEC");
        assert!(bytes.starts_with(b"*1\r\n$5\r\nMULTI\r\n"));
        let exec = Reply::Array(vec![
            Reply::Int(1500),
            Reply::Int(-2),
            Reply::Array(vec![Reply::Bulk(b"v".to_vec()), Reply::Nil]),
        ]);
        let filled = decode(exec, 2).unwrap();
        assert_eq!(filled[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(filled[0].ttl, Some(Duration::from_millis(1500)));
        assert!(filled[1].value.is_none());
        assert!(decode(Reply::Error("EXECABORT".into()), 2).is_err());
        assert!(decode(Reply::Array(vec![]), 2).is_err());
        let now = Instant::now();
        assert_eq!(
            expires_at(now, Some(Duration::from_secs(5)), Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        // PTTL 300 may mean 299.x ms left: the entry ends a millisecond early, never late.
        assert_eq!(
            expires_at(now, Some(Duration::from_millis(300)), Duration::from_secs(10)),
            now + Duration::from_millis(299)
        );
    }
}
