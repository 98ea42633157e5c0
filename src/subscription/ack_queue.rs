//! The acknowledgements a subscription still has to send, and how far each stream was
//! acknowledged.

use std::collections::HashMap;

/// `queues` reached Redis: remember how far each stream was acknowledged, and empty them (each
/// keeps its buffers for the next batch).
pub(super) fn note_acked(acked_up_to: &mut HashMap<String, (u64, u64)>, queues: &mut [AckQueue]) {
    for queue in queues {
        if let Some(newest) = queue.ids().filter_map(parse_id).max() {
            match acked_up_to.get_mut(&queue.stream) {
                Some(highest) => *highest = (*highest).max(newest),
                None => {
                    acked_up_to.insert(queue.stream.clone(), newest);
                }
            }
        }
        queue.clear();
    }
}

/// One stream's entry ids waiting for their XACK, as text in one buffer (no allocation per
/// entry once the buffers have grown to a batch).
pub(super) struct AckQueue {
    pub(super) stream: String,
    text: String,
    /// Where each id ends in `text`.
    ends: Vec<usize>,
}

impl AckQueue {
    pub(super) fn new(stream: &str) -> Self {
        AckQueue {
            stream: stream.to_owned(),
            text: String::new(),
            ends: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    /// Bytes of all its ids together.
    pub(super) fn text_len(&self) -> usize {
        self.text.len()
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| &self.text[a..b])
    }

    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
}

/// An entry id (`ms-seq`, or `ms`, or `0`) as a comparable pair; None for `$` and `>`.
pub(super) fn parse_id(id: &str) -> Option<(u64, u64)> {
    // Digit by digit: this runs for every acknowledged entry.
    let number = |digits: &[u8]| {
        if digits.is_empty() {
            return None;
        }
        if digits.len() <= 19 {
            // Cannot overflow: no checked steps.
            let bad = digits.iter().fold(false, |bad, &b| bad | (b.wrapping_sub(b'0') > 9));
            let n = digits.iter().fold(0u64, |n, &b| {
                n.wrapping_mul(10).wrapping_add(u64::from(b.wrapping_sub(b'0')))
            });
            return (!bad).then_some(n);
        }
        digits.iter().try_fold(0u64, |n, &b| {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n.checked_mul(10)?.checked_add(u64::from(d))
        })
    };
    let bytes = id.as_bytes();
    match bytes.iter().position(|&b| b == b'-') {
        Some(dash) => Some((number(&bytes[..dash])?, number(&bytes[dash + 1..])?)),
        None => Some((number(bytes)?, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_id, AckQueue};

    #[test]
    fn an_ack_queue_gives_back_every_id_in_order_and_reuses_its_buffers() {
        let mut queue = AckQueue::new("stream:price-updates");
        for id in ["1-0", "1700000000000-12", "", "2-3"] {
            queue.push(id);
        }
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.ids().collect::<Vec<_>>(), ["1-0", "1700000000000-12", "", "2-3"]);
        let capacity = queue.text.capacity();
        queue.clear();
        assert_eq!((queue.len(), queue.ids().count()), (0, 0));
        queue.push("5-5");
        assert_eq!(queue.ids().collect::<Vec<_>>(), ["5-5"]);
        assert_eq!(queue.text.capacity(), capacity);
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert_eq!(parse_id("0"), Some((0, 0)));
        assert_eq!(parse_id("1700000000000-12"), Some((1_700_000_000_000, 12)));
        assert!(parse_id("10-2") > parse_id("9-99"));
        assert_eq!(parse_id("$"), None);
        assert_eq!(parse_id(">"), None);
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "1x",
            "18446744073709551616-0",
            "0-18446744073709551616",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
        assert_eq!(parse_id("18446744073709551615-7"), Some((u64::MAX, 7)));
    }
}
