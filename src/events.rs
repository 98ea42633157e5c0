//! Trading events carried by Redis Streams.
//!
//! A stream entry has two fields: `type` (the snake_case event name) and `data` (the event's
//! JSON, same conventions as the caches: decimals as plain-notation strings, RFC 3339 UTC
//! timestamps with six fractional digits; a timestamp finer than a microsecond is written cut
//! to the microsecond, see [`crate::models::now`]). The golden files in `tests/golden/events/`
//! pin the format for Rust and Python.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys;
use crate::models::{exact_decimal, rfc3339_utc, validate_timestamp};

/// A token's new price.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceUpdate {
    pub token: String,
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub price: Decimal,
    #[serde(with = "rfc3339_utc")]
    pub timestamp: DateTime<Utc>,
}

/// Side of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeAction {
    Buy,
    Sell,
}

impl TradeAction {
    /// `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeAction::Buy => "buy",
            TradeAction::Sell => "sell",
        }
    }

    /// Parse `buy` / `sell`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "buy" => Ok(TradeAction::Buy),
            "sell" => Ok(TradeAction::Sell),
            other => Err(Error::invalid(format!(
                "action must be \"buy\" or \"sell\", got {:?}",
                keys::truncate_for_message(other)
            ))),
        }
    }
}

/// A filled trade.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeExecuted {
    /// The trade's id (e.g. a transaction signature), 1–128 printable characters.
    pub id: String,
    pub action: TradeAction,
    /// `BASE/QUOTE`, e.g. `SOL/USDC`.
    pub token_pair: String,
    /// Size in base-token units.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub amount: Decimal,
    /// Fill price in quote-token units.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub price: Decimal,
    #[serde(with = "rfc3339_utc")]
    pub timestamp: DateTime<Utc>,
}

/// A position's new size and profit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionUpdate {
    pub token: String,
    /// Size in token units; negative for a short position.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub amount: Decimal,
    /// Profit and loss in USD; negative for a loss.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub pnl: Decimal,
    #[serde(with = "rfc3339_utc")]
    pub timestamp: DateTime<Utc>,
}

/// A component's health, for operators and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemStatus {
    /// Which part of the system, e.g. `price-service`.
    pub component: String,
    /// A short lowercase word: `starting`, `healthy`, `degraded`, `stopped`, …
    pub status: String,
    /// Free text for humans (at most 1024 bytes).
    pub message: String,
    #[serde(with = "rfc3339_utc")]
    pub timestamp: DateTime<Utc>,
}

/// Every event the platform publishes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TradingEvent {
    PriceUpdate(PriceUpdate),
    TradeExecuted(TradeExecuted),
    PositionUpdate(PositionUpdate),
    SystemStatus(SystemStatus),
}

/// Stream of price updates.
pub const PRICE_UPDATES: &str = "stream:price-updates";
/// Stream of trades and positions.
pub const TRADE_EVENTS: &str = "stream:trade-events";
/// Stream of events for the UI (system status).
pub const UI_EVENTS: &str = "stream:ui-events";
/// Where entries that cannot be processed end up, with the reason.
pub const DEAD_LETTER: &str = "stream:dead-letter";

/// Every event type name with its default stream, in declaration order.
pub const EVENT_TYPES: [(&str, &str); 4] = [
    ("price_update", PRICE_UPDATES),
    ("trade_executed", TRADE_EVENTS),
    ("position_update", TRADE_EVENTS),
    ("system_status", UI_EVENTS),
];

/// Longest accepted free-text message, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

impl TradingEvent {
    /// The snake_case name stored in the entry's `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            TradingEvent::PriceUpdate(_) => "price_update",
            TradingEvent::TradeExecuted(_) => "trade_executed",
            TradingEvent::PositionUpdate(_) => "position_update",
            TradingEvent::SystemStatus(_) => "system_status",
        }
    }

    /// The stream an event goes to unless the caller names another: price updates to
    /// `stream:price-updates`, trades and positions to `stream:trade-events`, system status to
    /// `stream:ui-events`.
    pub fn default_stream(&self) -> &'static str {
        match self {
            TradingEvent::PriceUpdate(_) => PRICE_UPDATES,
            TradingEvent::TradeExecuted(_) | TradingEvent::PositionUpdate(_) => TRADE_EVENTS,
            TradingEvent::SystemStatus(_) => UI_EVENTS,
        }
    }

    /// When the event happened.
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            TradingEvent::PriceUpdate(e) => e.timestamp,
            TradingEvent::TradeExecuted(e) => e.timestamp,
            TradingEvent::PositionUpdate(e) => e.timestamp,
            TradingEvent::SystemStatus(e) => e.timestamp,
        }
    }

    /// The JSON stored in the entry's `data` field.
    pub fn data_json(&self) -> String {
        // Written directly unless a string needs escaping (see `crate::event_json`).
        if let Some(json) = crate::event_json::encode_canonical(self) {
            return json;
        }
        self.data_json_general()
    }

    /// [`TradingEvent::data_json`] written by serde_json.
    pub(crate) fn data_json_general(&self) -> String {
        let json = match self {
            TradingEvent::PriceUpdate(e) => serde_json::to_string(e),
            TradingEvent::TradeExecuted(e) => serde_json::to_string(e),
            TradingEvent::PositionUpdate(e) => serde_json::to_string(e),
            TradingEvent::SystemStatus(e) => serde_json::to_string(e),
        };
        json.expect("events always serialise")
    }

    /// Decode an entry's `type` and `data`; the error says what is wrong with the entry.
    pub fn decode(type_name: &str, data: &[u8]) -> Result<Self> {
        // The form this crate writes is read without a general JSON parser; any other goes
        // through serde_json (see `crate::event_json`).
        let event = match crate::event_json::decode_canonical(type_name, data) {
            Some(event) => event,
            None => Self::parse_json(type_name, data)?,
        };
        event.validate()?;
        Ok(event)
    }

    /// Read an entry's `type` and `data` with serde_json, without validating the values.
    pub(crate) fn parse_json(type_name: &str, data: &[u8]) -> Result<Self> {
        fn parse<T: for<'de> Deserialize<'de>>(data: &[u8], type_name: &str) -> Result<T> {
            serde_json::from_slice(data)
                .map_err(|e| Error::invalid(format!("bad {type_name} data: {}", keys::bounded_message(e))))
        }
        let event = match type_name {
            "price_update" => TradingEvent::PriceUpdate(parse(data, type_name)?),
            "trade_executed" => TradingEvent::TradeExecuted(parse(data, type_name)?),
            "position_update" => TradingEvent::PositionUpdate(parse(data, type_name)?),
            "system_status" => TradingEvent::SystemStatus(parse(data, type_name)?),
            other => {
                return Err(Error::invalid(format!(
                    "unknown event type {:?}",
                    keys::truncate_for_message(other)
                )))
            }
        };
        Ok(event)
    }

    /// Check the invariants of every field.
    pub fn validate(&self) -> Result<()> {
        validate_timestamp(&self.timestamp())?;
        match self {
            TradingEvent::PriceUpdate(e) => {
                keys::validate_token(&e.token)?;
                non_negative("price", e.price)
            }
            TradingEvent::TradeExecuted(e) => {
                printable("id", &e.id, 128)?;
                validate_token_pair(&e.token_pair)?;
                non_negative("amount", e.amount)?;
                non_negative("price", e.price)
            }
            TradingEvent::PositionUpdate(e) => keys::validate_token(&e.token),
            TradingEvent::SystemStatus(e) => {
                printable("component", &e.component, 64)?;
                if e.status.is_empty()
                    || e.status.len() > 32
                    || !e
                        .status
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
                {
                    return Err(Error::invalid(format!(
                        "status must be 1 to 32 of a-z _ -, got {:?}",
                        keys::truncate_for_message(&e.status)
                    )));
                }
                if e.message.len() > MAX_MESSAGE_LEN {
                    return Err(Error::invalid(format!("message is over {MAX_MESSAGE_LEN} bytes")));
                }
                Ok(())
            }
        }
    }
}

/// `BASE/QUOTE` of two valid tokens.
pub fn validate_token_pair(pair: &str) -> Result<()> {
    match pair.split_once('/') {
        Some((base, quote)) if keys::validate_token(base).is_ok() && keys::validate_token(quote).is_ok() => Ok(()),
        _ => Err(Error::invalid(format!(
            "token_pair must be BASE/QUOTE of two tokens, got {:?}",
            keys::truncate_for_message(pair)
        ))),
    }
}

fn non_negative(name: &str, value: Decimal) -> Result<()> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(Error::invalid(format!("{name} is negative: {value}")));
    }
    Ok(())
}

fn printable(name: &str, value: &str, max_len: usize) -> Result<()> {
    if value.is_empty() || value.len() > max_len || value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{name} must be 1 to {max_len} bytes without control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> String {
        let path = format!("{}/tests/golden/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().trim_end().to_owned()
    }

    #[test]
    fn golden_events_round_trip_byte_for_byte() {
        for name in ["price_update", "trade_executed", "position_update", "system_status"] {
            let text = golden(name);
            let event = TradingEvent::decode(name, text.as_bytes()).unwrap();
            assert_eq!(event.type_name(), name);
            assert_eq!(event.data_json(), text, "{name}");
        }
    }

    #[test]
    fn timestamps_are_written_to_the_microsecond() {
        let at = DateTime::from_timestamp(1_795_000_000, 123_456_789).unwrap();
        let status = TradingEvent::SystemStatus(SystemStatus {
            component: "price-service".into(),
            status: "healthy".into(),
            message: String::new(),
            timestamp: at,
        });
        let json = status.data_json();
        assert!(json.contains(r#""timestamp":"2026-11-18T11:06:40.123456Z""#), "{json}");
        let decoded = TradingEvent::decode("system_status", json.as_bytes()).unwrap();
        assert_eq!(decoded.timestamp(), crate::models::wire_timestamp(at));
        assert_eq!(decoded.data_json(), json);
        // Whole seconds, milliseconds and nanoseconds written by other clients all read.
        for (ts, micros) in [("…00Z", 0), ("…00.5Z", 500_000), ("…00.000001999Z", 1)] {
            let ts = ts.replace('…', "2026-11-26T15:00:");
            let data = format!(r#"{{"token":"SOL","price":"1","timestamp":"{ts}"}}"#);
            let event = TradingEvent::decode("price_update", data.as_bytes()).unwrap();
            assert_eq!(event.timestamp().timestamp_subsec_micros(), micros, "{ts}");
            assert_eq!(event.timestamp().timestamp_subsec_nanos() % 1000, 0, "{ts}");
        }
    }

    #[test]
    fn decimals_and_timestamps_read_with_escapes_and_reject_other_types() {
        // Escaped strings are read from the parser's scratch buffer, plain ones borrowed.
        let escaped = r#"{"token":"SOL","price":"18\u0037.5","timestamp":"2026-11-26T15:00:00\u002e5Z"}"#;
        let plain = r#"{"token":"SOL","price":"187.5","timestamp":"2026-11-26T15:00:00.5Z"}"#;
        let a = TradingEvent::decode("price_update", escaped.as_bytes()).unwrap();
        assert_eq!(a, TradingEvent::decode("price_update", plain.as_bytes()).unwrap());
        assert_eq!(
            a.data_json(),
            r#"{"token":"SOL","price":"187.5","timestamp":"2026-11-26T15:00:00.500000Z"}"#
        );
        for data in [
            r#"{"token":"SOL","price":187.5,"timestamp":"2026-11-26T15:00:00Z"}"#,
            r#"{"token":"SOL","price":"1","timestamp":1795000000}"#,
            r#"{"token":"SOL","price":null,"timestamp":"2026-11-26T15:00:00Z"}"#,
        ] {
            let e = TradingEvent::decode("price_update", data.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::InvalidInput(_)), "{data}");
            assert!(e.to_string().contains("expected"), "{e}");
        }
    }

    #[test]
    fn the_type_table_matches_the_events() {
        for (name, stream) in EVENT_TYPES {
            let event = TradingEvent::decode(name, golden(name).as_bytes()).unwrap();
            assert_eq!((event.type_name(), event.default_stream()), (name, stream));
        }
    }

    #[test]
    fn routing_follows_the_event_type() {
        let p = TradingEvent::decode("price_update", golden("price_update").as_bytes()).unwrap();
        let t = TradingEvent::decode("trade_executed", golden("trade_executed").as_bytes()).unwrap();
        let q = TradingEvent::decode("position_update", golden("position_update").as_bytes()).unwrap();
        let s = TradingEvent::decode("system_status", golden("system_status").as_bytes()).unwrap();
        assert_eq!(
            [
                p.default_stream(),
                t.default_stream(),
                q.default_stream(),
                s.default_stream()
            ],
            [PRICE_UPDATES, TRADE_EVENTS, TRADE_EVENTS, UI_EVENTS]
        );
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        let ts = "2026-11-26T15:00:00Z";
        for (t, data) in [
            ("price_update", "not json".to_owned()),
            ("price_update", format!(r#"{{"token":"SOL","timestamp":"{ts}"}}"#)),
            (
                "price_update",
                format!(r#"{{"token":"SOL","price":"1","timestamp":"{ts}","x":1}}"#),
            ),
            (
                "trade_executed",
                format!(
                    r#"{{"id":"t","action":"hold","token_pair":"SOL/USDC","amount":"1","price":"1","timestamp":"{ts}"}}"#
                ),
            ),
            (
                "trade_executed",
                format!(
                    r#"{{"id":"t","action":"buy","token_pair":"SOLUSDC","amount":"1","price":"1","timestamp":"{ts}"}}"#
                ),
            ),
            (
                "system_status",
                format!(r#"{{"component":"x","status":"BAD STATUS","message":"","timestamp":"{ts}"}}"#),
            ),
            ("liquidation", "{}".to_owned()),
            // Rounded, out-of-range and far-future values.
            (
                "price_update",
                format!(r#"{{"token":"SOL","price":"0.00000000000000000000000000001","timestamp":"{ts}"}}"#),
            ),
            (
                "position_update",
                format!(r#"{{"token":"SOL","amount":"1e29","pnl":"0","timestamp":"{ts}"}}"#),
            ),
            (
                "price_update",
                r#"{"token":"SOL","price":"1","timestamp":"9999-12-31T23:59:59-01:00"}"#.to_owned(),
            ),
        ] {
            assert!(
                matches!(TradingEvent::decode(t, data.as_bytes()), Err(Error::InvalidInput(_))),
                "{t} {data}"
            );
        }
    }

    #[test]
    fn messages_about_huge_values_stay_short() {
        let huge = "x".repeat(1 << 20);
        let ts = "2026-11-26T15:00:00Z";
        for (t, data) in [
            (huge.as_str(), "{}".to_owned()),
            ("price_update", huge.clone()),
            (
                "price_update",
                format!(r#"{{"token":"SOL","price":"{huge}","timestamp":"{ts}"}}"#),
            ),
            (
                "trade_executed",
                format!(
                    r#"{{"id":"t","action":"{huge}","token_pair":"SOL/USDC","amount":"1","price":"1","timestamp":"{ts}"}}"#
                ),
            ),
            (
                "trade_executed",
                format!(
                    r#"{{"id":"t","action":"buy","token_pair":"{huge}","amount":"1","price":"1","timestamp":"{ts}"}}"#
                ),
            ),
            (
                "system_status",
                format!(r#"{{"component":"x","status":"{huge}","message":"","timestamp":"{ts}"}}"#),
            ),
        ] {
            let e = TradingEvent::decode(t, data.as_bytes()).unwrap_err();
            assert!(e.to_string().len() < 1024, "{}", e.to_string().len());
        }
        assert!(TradeAction::parse(&huge).unwrap_err().to_string().len() < 1024);
    }
}
