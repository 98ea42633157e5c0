//! What a RESP3 tracking push says: `>2 invalidate [keys…]` drops those keys,
//! `>2 invalidate _` (null: FLUSHALL, FLUSHDB, or the server's tracking table overflowing)
//! drops everything. Other pushes are not invalidations.

use crate::transport::resp::Reply;

/// One invalidation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// These keys changed, expired or were evicted.
    Keys(Vec<String>),
    /// Everything may have changed.
    All,
}

/// The invalidation a push carries; `None` for any other push.
pub fn parse(push: Vec<Reply>) -> Option<Invalidation> {
    let mut items = push.into_iter();
    match items.next()? {
        Reply::Bulk(name) if name == b"invalidate" => {}
        Reply::Simple(name) if name == "invalidate" => {}
        _ => return None,
    }
    match items.next() {
        None | Some(Reply::Nil) => Some(Invalidation::All),
        Some(Reply::Array(keys)) => Some(Invalidation::Keys(
            keys.into_iter()
                .filter_map(|k| match k {
                    Reply::Bulk(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                    Reply::Simple(text) => Some(text),
                    _ => None,
                })
                .collect(),
        )),
        // Anything else would be a protocol we do not know: trust nothing.
        Some(_) => Some(Invalidation::All),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    #[test]
    fn keys_null_and_other_pushes() {
        let keys = vec![
            bulk("invalidate"),
            Reply::Array(vec![bulk("price:SOL"), bulk("price:BONK")]),
        ];
        assert_eq!(
            parse(keys),
            Some(Invalidation::Keys(vec!["price:SOL".into(), "price:BONK".into()]))
        );
        assert_eq!(parse(vec![bulk("invalidate"), Reply::Nil]), Some(Invalidation::All));
        assert_eq!(parse(vec![bulk("invalidate"), Reply::Int(3)]), Some(Invalidation::All));
        assert_eq!(parse(vec![bulk("message"), bulk("chan"), bulk("x")]), None);
        assert_eq!(parse(vec![]), None);
    }
}
