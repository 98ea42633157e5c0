//! The canonical JSON of events (the exact text [`TradingEvent::data_json`] writes), written
//! and read field by field without a general JSON library.
//!
//! Writing: [`encode_canonical`] writes what serde_json writes, byte for byte, for every event
//! whose strings need no escaping (`None` for the others, which serde_json writes); it costs
//! about half of serde_json's 2.0k instructions per `PriceUpdate`.
//!
//! Why (client instructions per event of a consumer-group read, counted by callgrind with
//! `scripts/count_stream_instructions.py`): serde_json with the in-place decimal and timestamp
//! readers costs about 3.1k per `PriceUpdate` (every string checked as UTF-8 on its own, a
//! visitor per field, chrono's general RFC 3339 reader); this reader costs a fraction of that.
//!
//! [`decode_canonical`] accepts only the canonical form: the fields in the order they are
//! written, no whitespace, strings without escapes, timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
//! Anything else (another writer's JSON, a bad value) is `None`, and [`TradingEvent::decode`]
//! reads it with serde_json, which gives the same event or the error message. What the fast
//! path accepts, serde_json reads as the same event (`tests` below check both on arbitrary
//! events and on texts that differ from the canonical one by a byte).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::events::{PositionUpdate, PriceUpdate, SystemStatus, TradeAction, TradeExecuted, TradingEvent};
use crate::models::{exact_decimal, format_timestamp, wire_text, WIRE_TIMESTAMP_LEN};

/// `event`'s JSON as serde_json writes it, or `None` when one of its strings needs escaping.
pub(crate) fn encode_canonical(event: &TradingEvent) -> Option<String> {
    let mut w = Writer(String::with_capacity(160));
    match event {
        TradingEvent::PriceUpdate(e) => {
            w.text('{', "token", &e.token)?;
            w.decimal("price", &e.price);
            w.timestamp(&e.timestamp);
        }
        TradingEvent::TradeExecuted(e) => {
            w.text('{', "id", &e.id)?;
            w.text(',', "action", e.action.as_str())?;
            w.text(',', "token_pair", &e.token_pair)?;
            w.decimal("amount", &e.amount);
            w.decimal("price", &e.price);
            w.timestamp(&e.timestamp);
        }
        TradingEvent::PositionUpdate(e) => {
            w.text('{', "token", &e.token)?;
            w.decimal("amount", &e.amount);
            w.decimal("pnl", &e.pnl);
            w.timestamp(&e.timestamp);
        }
        TradingEvent::SystemStatus(e) => {
            w.text('{', "component", &e.component)?;
            w.text(',', "status", &e.status)?;
            w.text(',', "message", &e.message)?;
            w.timestamp(&e.timestamp);
        }
    }
    w.0.push('}');
    Some(w.0)
}

/// The JSON written so far.
struct Writer(String);

impl Writer {
    /// `lead"name":"` (lead `{` or `,`).
    fn key(&mut self, lead: char, name: &str) {
        self.0.push(lead);
        self.0.push('"');
        self.0.push_str(name);
        self.0.push_str("\":\"");
    }

    /// A string field; `None` when `value` needs escaping (a quote, a backslash or a control
    /// character: the only bytes serde_json escapes).
    fn text(&mut self, lead: char, name: &str, value: &str) -> Option<()> {
        if value
            .bytes()
            .fold(false, |odd, b| odd | (b == b'"') | (b == b'\\') | (b < 0x20))
        {
            return None;
        }
        self.key(lead, name);
        self.0.push_str(value);
        self.0.push('"');
        Some(())
    }

    /// A decimal as rust_decimal's serde writes it (its `Display` text, sign included).
    fn decimal(&mut self, name: &str, value: &Decimal) {
        self.key(',', name);
        write!(self.0, "{value}").expect("writing to a String cannot fail");
        self.0.push('"');
    }

    fn timestamp(&mut self, ts: &DateTime<Utc>) {
        self.key(',', "timestamp");
        let mut buf = [0; WIRE_TIMESTAMP_LEN];
        match wire_text(ts, &mut buf) {
            Some(text) => self.0.push_str(text),
            None => self.0.push_str(&format_timestamp(ts)),
        }
        self.0.push('"');
    }
}

/// The event of `data` when it is in the canonical form of `type_name`'s event and every value
/// reads; `None` otherwise (not validated: [`TradingEvent::decode`] does that on both paths).
pub(crate) fn decode_canonical(type_name: &str, data: &[u8]) -> Option<TradingEvent> {
    let mut r = Reader { rest: data };
    let event = match type_name {
        "price_update" => TradingEvent::PriceUpdate(PriceUpdate {
            token: r.first("token")?.to_owned(),
            price: r.decimal("price")?,
            timestamp: r.timestamp()?,
        }),
        "trade_executed" => TradingEvent::TradeExecuted(TradeExecuted {
            id: r.first("id")?.to_owned(),
            action: match r.next("action")? {
                "buy" => TradeAction::Buy,
                "sell" => TradeAction::Sell,
                _ => return None,
            },
            token_pair: r.next("token_pair")?.to_owned(),
            amount: r.decimal("amount")?,
            price: r.decimal("price")?,
            timestamp: r.timestamp()?,
        }),
        "position_update" => TradingEvent::PositionUpdate(PositionUpdate {
            token: r.first("token")?.to_owned(),
            amount: r.decimal("amount")?,
            pnl: r.decimal("pnl")?,
            timestamp: r.timestamp()?,
        }),
        "system_status" => TradingEvent::SystemStatus(SystemStatus {
            component: r.first("component")?.to_owned(),
            status: r.next("status")?.to_owned(),
            message: r.next("message")?.to_owned(),
            timestamp: r.timestamp()?,
        }),
        _ => return None,
    };
    (r.rest == b"}").then_some(event)
}

/// What is left of the text to read.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The first field: `{"name":"value"`.
    fn first(&mut self, name: &str) -> Option<&'a str> {
        self.field(b'{', name)
    }

    /// A field after another: `,"name":"value"`.
    fn next(&mut self, name: &str) -> Option<&'a str> {
        self.field(b',', name)
    }

    fn field(&mut self, lead: u8, name: &str) -> Option<&'a str> {
        std::str::from_utf8(self.field_bytes(lead, name)?).ok()
    }

    /// The value's bytes: a string without escapes or control characters (serde_json refuses
    /// the latter; escapes are the general reader's).
    fn field_bytes(&mut self, lead: u8, name: &str) -> Option<&'a [u8]> {
        let name = name.as_bytes();
        // lead, quote, name, quote, colon, quote
        let (head, body) = self.rest.split_at_checked(name.len() + 5)?;
        if head[0] != lead || head[1] != b'"' || &head[2..2 + name.len()] != name || &head[2 + name.len()..] != b"\":\""
        {
            return None;
        }
        let end = body.iter().position(|&b| b == b'"')?;
        let value = &body[..end];
        // No early exit: a loop the compiler can run over several bytes at once.
        if value.iter().fold(false, |odd, &b| odd | (b == b'\\') | (b < 0x20)) {
            return None;
        }
        self.rest = &body[end + 1..];
        Some(value)
    }

    fn decimal(&mut self, name: &str) -> Option<Decimal> {
        exact_decimal::parse(self.next(name)?)
    }

    /// The last field, `,"timestamp":"YYYY-MM-DDTHH:MM:SS.ffffffZ"`: exactly the form written
    /// (a leap second or any other form goes to the general reader).
    fn timestamp(&mut self) -> Option<DateTime<Utc>> {
        let t: &[u8; 27] = self.field_bytes(b',', "timestamp")?.try_into().ok()?;
        if [t[4], t[7], t[10], t[13], t[16], t[19], t[26]] != *b"--T::.Z" {
            return None;
        }
        const DIGITS: [usize; 20] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25];
        if DIGITS.iter().fold(false, |bad, &i| bad | (t[i].wrapping_sub(b'0') > 9)) {
            return None;
        }
        let d = |i: usize| u32::from(t[i] - b'0');
        let two = |i: usize| d(i) * 10 + d(i + 1);
        let year = two(0) * 100 + two(2);
        let micros = two(20) * 10_000 + two(22) * 100 + two(24);
        let date = NaiveDate::from_ymd_opt(year as i32, two(5), two(8))?;
        let time = date.and_hms_micro_opt(two(11), two(14), two(17), micros)?;
        Some(time.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// serde_json's reading of the same text (not validated), which the fast path must agree with.
    fn general(type_name: &str, data: &[u8]) -> Option<TradingEvent> {
        TradingEvent::parse_json(type_name, data).ok()
    }

    fn golden(name: &str) -> String {
        let path = format!("{}/tests/golden/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().trim_end().to_owned()
    }

    const TYPES: [&str; 4] = ["price_update", "trade_executed", "position_update", "system_status"];

    #[test]
    fn golden_events_take_the_fast_path() {
        for name in TYPES {
            let text = golden(name);
            let fast = decode_canonical(name, text.as_bytes()).expect(name);
            assert_eq!(Some(&fast), general(name, text.as_bytes()).as_ref(), "{name}");
        }
    }

    #[test]
    fn other_forms_leave_the_fast_path() {
        let price = golden("price_update");
        for text in [
            price.replace("\":\"", "\": \""),
            price.replace(
                r#""token":"SOL","price":"187.2345""#,
                r#""price":"187.2345","token":"SOL""#,
            ),
            price.replace("SOL", r"S\u004fL"),
            price.replace(".123000Z", ".123Z"),
            price.replace(".123000Z", ".123000+00:00"),
            price.replace("15:00:00.", "23:59:60."),
            price.replace("Z\"}", "Z\",\"x\":\"1\"}"),
            format!("{price} "),
            price.replace("\"187.2345\"", "187.2345"),
        ] {
            assert_eq!(decode_canonical("price_update", text.as_bytes()), None, "{text}");
        }
        assert_eq!(decode_canonical("unknown", price.as_bytes()), None);
        let trade = golden("trade_executed").replace("\"buy\"", "\"hold\"");
        assert_eq!(decode_canonical("trade_executed", trade.as_bytes()), None);
    }

    fn decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..12).prop_map(|(n, scale)| Decimal::new(n, scale))
    }

    fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
        (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000)
            .prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1000).unwrap())
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Za-z0-9._-]{1,12}", "\\PC{0,12}", ".{0,6}"]
    }

    fn event() -> impl Strategy<Value = TradingEvent> {
        prop_oneof![
            (text(), decimal(), timestamp()).prop_map(|(token, price, timestamp)| {
                TradingEvent::PriceUpdate(PriceUpdate {
                    token,
                    price,
                    timestamp,
                })
            }),
            (text(), any::<bool>(), text(), decimal(), decimal(), timestamp()).prop_map(
                |(id, buy, token_pair, amount, price, timestamp)| {
                    let action = if buy { TradeAction::Buy } else { TradeAction::Sell };
                    TradingEvent::TradeExecuted(TradeExecuted {
                        id,
                        action,
                        token_pair,
                        amount,
                        price,
                        timestamp,
                    })
                }
            ),
            (text(), decimal(), decimal(), timestamp()).prop_map(|(token, amount, pnl, timestamp)| {
                TradingEvent::PositionUpdate(PositionUpdate {
                    token,
                    amount,
                    pnl,
                    timestamp,
                })
            }),
            (text(), text(), text(), timestamp()).prop_map(|(component, status, message, timestamp)| {
                TradingEvent::SystemStatus(SystemStatus {
                    component,
                    status,
                    message,
                    timestamp,
                })
            }),
        ]
    }

    #[test]
    fn golden_events_are_written_byte_for_byte() {
        for name in TYPES {
            let text = golden(name);
            let event = general(name, text.as_bytes()).unwrap();
            assert_eq!(encode_canonical(&event).as_deref(), Some(text.as_str()), "{name}");
        }
        let mut negative_zero = Decimal::new(0, 3);
        negative_zero.set_sign_negative(true);
        let zero = TradingEvent::PriceUpdate(PriceUpdate {
            token: "SOL".into(),
            price: negative_zero,
            timestamp: DateTime::from_timestamp(0, 0).unwrap(),
        });
        assert_eq!(encode_canonical(&zero), Some(zero.data_json_general()));
    }

    proptest! {
        #[test]
        fn what_is_written_directly_serde_json_writes_the_same(event in event(), negative in any::<bool>()) {
            let event = match event {
                TradingEvent::PriceUpdate(mut e) if negative => {
                    e.price.set_sign_negative(true); // negative zero included
                    TradingEvent::PriceUpdate(e)
                }
                other => other,
            };
            let general = event.data_json_general();
            match encode_canonical(&event) {
                Some(direct) => prop_assert_eq!(direct, general),
                None => prop_assert!(general.contains('\\'), "{}", general),
            }
        }

        #[test]
        fn what_the_fast_path_reads_serde_json_reads_the_same(
            event in event(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let name = event.type_name();
            let json = event.data_json();
            // Written by this crate: the fast path reads it back, unless a string has escapes.
            let fast = decode_canonical(name, json.as_bytes());
            if json.contains('\\') {
                prop_assert_eq!(fast, None);
            } else {
                prop_assert_eq!(fast.as_ref(), Some(&event));
                prop_assert_eq!(fast, general(name, json.as_bytes()));
            }
            // One byte changed or removed: whatever the fast path still reads, serde reads alike.
            let mut bytes = json.into_bytes();
            let i = at.index(bytes.len());
            if cut { bytes.remove(i); } else { bytes[i] = byte; }
            if let Some(fast) = decode_canonical(name, &bytes) {
                prop_assert_eq!(Some(fast), general(name, &bytes));
            }
        }
    }
}
