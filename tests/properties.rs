//! Property tests of every pure decoder and validator in the core (issue 6, "Bad input").
//!
//! Arbitrary input gives a value or a typed [`solcache::Error`] of the documented kind, never a
//! panic; keys built from user input cannot be injected or made to collide; the wire format
//! round-trips; NaN, infinite and oversized numbers and out-of-range timestamps are refused.
//! 256 cases per property (`PROPTEST_CASES=… cargo nextest run --test properties` for more).

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use redis::Value;
use rust_decimal::Decimal;
use solcache::event_stream::{validate_id, validate_name, validate_stream_name, MAX_NAME_LEN};
use solcache::events::{validate_token_pair, EVENT_TYPES};
use solcache::keys::{self, pool_key, price_key, validate_address, validate_token, MAX_TOKEN_LEN};
use solcache::price_impact::quote_constant_product;
use solcache::stream_reply::{self, RawEntry};
use solcache::{
    Cached, Direction, Error, PoolState, PositionUpdate, PriceData, PriceUpdate, StreamEntry, SystemStatus,
    TradeAction, TradeExecuted, TradingEvent,
};

/// An error message never carries more than this many bytes, however large the input.
const MAX_ERROR_LEN: usize = 1024;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config
}

// --- strategies ----------------------------------------------------------------------------

/// Bytes that print as text when a case fails.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

fn valid_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,31}"
}

fn valid_address() -> impl Strategy<Value = String> {
    any::<[u8; 32]>().prop_map(|b| bs58::encode(b).into_string())
}

/// Text aimed at key and name validators: arbitrary Unicode, printable ASCII, separators,
/// hash tags, globs, CR/LF, near-miss tokens and addresses.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "SOL", "price:", "pool:", "stream:", ":", "{", "}", "*", "?", "[", "]", " ", "\t", "\r\n", "\n", "\0",
        "\u{7f}", "é", "Ｓ", "\u{202e}", "\u{feff}", "/", "-", ".", "_", "$", "\"", "\\", "0", "1", "O", "l",
    ]);
    prop_oneof![
        any::<String>(),
        "[ -~]{0,48}",
        "[A-Za-z0-9:{}*?\\[\\] \t\r\n._-]{0,48}",
        prop::collection::vec(pieces, 0..10).prop_map(|p| p.concat()),
        valid_token(),
        valid_token().prop_map(|t| format!("{t}\n")),
        valid_address(),
        "[1-9A-HJ-NP-Za-km-z]{28,48}",
        "[0-9a-zA-Z]{30,50}",
    ]
}

/// Every `Decimal` the type can hold (28-digit scale, 96-bit mantissa, either sign).
fn any_decimal() -> impl Strategy<Value = Decimal> {
    let raw = (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), 0u32..=28)
        .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale));
    let small = (any::<i64>(), 0u32..=28).prop_map(|(n, scale)| Decimal::new(n, scale));
    prop_oneof![
        raw,
        small,
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::ZERO),
        Just(Decimal::ONE),
        Just(Decimal::new(1, 28)),
        Just(Decimal::from_parts(0, 0, 0, true, 5)),
    ]
}

fn non_negative_decimal() -> impl Strategy<Value = Decimal> {
    any_decimal().prop_map(|d| d.abs())
}

const YEAR_1: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const YEAR_9999_END: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Timestamps RFC 3339 (and Python's `datetime`) can hold: years 1 to 9999, with 0, 3, 6 or 9
/// fractional digits.
fn valid_timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    let nanos = prop_oneof![
        Just(0u32),
        (0u32..1000).prop_map(|ms| ms * 1_000_000),
        (0u32..1_000_000).prop_map(|us| us * 1000),
        0u32..1_000_000_000,
    ];
    let secs = prop_oneof![
        YEAR_1..=YEAR_9999_END,
        1_700_000_000i64..1_900_000_000, // around now
        Just(YEAR_1),
        Just(YEAR_9999_END),
    ];
    (secs, nanos).prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
}

/// Anything chrono can hold, from year −262143 to +262142.
fn any_timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    prop_oneof![
        (min..=max, 0u32..1_000_000_000).prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap()),
        valid_timestamp(),
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        Just(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()),
        Just(Utc.with_ymd_and_hms(0, 12, 31, 23, 59, 59).unwrap()),
    ]
}

/// Years 1 to 9999, no leap second: what the wire format and Python's `datetime` hold.
fn in_wire_range(ts: &DateTime<Utc>) -> bool {
    (YEAR_1..=YEAR_9999_END).contains(&ts.timestamp()) && ts.timestamp_subsec_nanos() < 1_000_000_000
}

/// Timestamp texts: well-formed RFC 3339 at and beyond the year limits, offsets that cross
/// them, leap seconds, and garbage.
fn timestamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|z|[+-][0-9]{2}:[0-9]{2})",
        "(0000|0001|9999)-(01|12)-(01|31)T(00|23):(00|59):(00|59|60)(\\.[0-9]{1,9})?(Z|[+-](00|23):(00|59))",
        any::<String>(),
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("0000-01-01T00:00:00+23:59".to_owned()),
        Just("9999-12-31T23:59:60.999999999Z".to_owned()),
        Just("2016-12-31T23:59:60.5Z".to_owned()),
    ]
}

/// Decimal texts: plain decimals of every length, exponents, NaN and infinities, garbage.
fn decimal_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,35}(\\.[0-9]{1,35})?",
        "[+-]?[0-9_]{0,12}(\\.[0-9_]{0,12})?([eE][+-]?[0-9]{1,5})?",
        prop::sample::select(vec![
            "NaN",
            "nan",
            "-NaN",
            "sNaN",
            "Infinity",
            "-Infinity",
            "inf",
            "-inf",
            "1e400",
            "1e29",
            "1e-29",
            "79228162514264337593543950335",
            "79228162514264337593543950336",
            "-79228162514264337593543950336",
            "0.0000000000000000000000000001",
            "0.00000000000000000000000000001",
            "1.0000000000000000000000000001",
            "",
            "-",
            ".",
            " 1",
            "1 ",
            "0x10",
        ])
        .prop_map(str::to_owned),
        "[0-9]{100,2000}",
        any::<String>(),
    ]
}

/// JSON values of every kind, nested a little.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        any::<f64>().prop_map(J::from), // NaN and infinities become null
        any::<String>().prop_map(J::String),
        decimal_text().prop_map(J::String),
        timestamp_text().prop_map(J::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4).prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of `template` replaced, dropped, or joined by an unknown one.
fn mutated_json(template: serde_json::Value) -> impl Strategy<Value = Bytes> {
    let fields: Vec<String> = template.as_object().unwrap().keys().cloned().collect();
    let field = prop::sample::select(fields);
    (field, json_value(), 0u8..4, "[a-z_]{1,12}").prop_map(move |(field, value, how, extra)| {
        let mut obj = template.as_object().unwrap().clone();
        match how {
            0 => {
                obj.insert(field, value);
            }
            1 => {
                obj.remove(&field);
            }
            2 => {
                obj.insert(extra, value);
            }
            _ => {
                obj.insert(field, serde_json::Value::String(value.to_string()));
            }
        }
        Bytes(serde_json::to_vec(&obj).unwrap())
    })
}

/// Raw JSON text with a literal that is not JSON at all in one field (NaN, Infinity, huge
/// numbers, bare words), as a careless writer might produce.
fn raw_literal_json(fields: &'static [&'static str], template: &'static str) -> impl Strategy<Value = Bytes> {
    let literal = prop::sample::select(vec![
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "1e-400",
        "187.2345",
        "79228162514264337593543950336",
        "123456789012345678901234567890123456789",
        "true",
        "null",
        "[]",
        "{}",
        "undefined",
    ]);
    (prop::sample::select(fields.to_vec()), literal).prop_map(move |(field, literal)| {
        let mut v: serde_json::Value = serde_json::from_str(template).unwrap();
        v[field] = serde_json::Value::String("\u{1}PLACEHOLDER\u{1}".into());
        let text = serde_json::to_string(&v)
            .unwrap()
            .replace("\"\\u0001PLACEHOLDER\\u0001\"", literal)
            .into_bytes();
        Bytes(text)
    })
}

const PRICE_JSON: &str = r#"{"token":"SOL","price":"187.2345","timestamp":"2026-11-26T15:00:00.123Z","source":"pyth"}"#;
const POOL_ADDRESS: &str = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";
const POOL_JSON: &str = r#"{"pool_address":"58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2","liquidity":"12500000.50","reserve_a":"41250.123456789","reserve_b":"7723456.123456","volume_24h":"98765432.10","timestamp":"2026-11-26T15:00:00.123456Z"}"#;

fn event_template(type_name: &str) -> String {
    let path = format!("{}/tests/golden/events/{type_name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap().trim_end().to_owned()
}

/// Events as a writer builds them: timestamps to the microsecond, the wire format's precision
/// (finer ones are cut when written; `timestamps_are_written_to_the_microsecond` in `events.rs`).
fn any_event() -> impl Strategy<Value = TradingEvent> {
    let valid_timestamp = || valid_timestamp().prop_map(solcache::models::wire_timestamp);
    let id = "[!-~][ -~]{0,127}";
    let pair = (valid_token(), valid_token()).prop_map(|(a, b)| format!("{a}/{b}"));
    let action = prop_oneof![Just(TradeAction::Buy), Just(TradeAction::Sell)];
    prop_oneof![
        (valid_token(), non_negative_decimal(), valid_timestamp()).prop_map(|(token, price, timestamp)| {
            TradingEvent::PriceUpdate(PriceUpdate {
                token,
                price,
                timestamp,
            })
        }),
        (
            id,
            action,
            pair,
            non_negative_decimal(),
            non_negative_decimal(),
            valid_timestamp()
        )
            .prop_map(|(id, action, token_pair, amount, price, timestamp)| {
                TradingEvent::TradeExecuted(TradeExecuted {
                    id,
                    action,
                    token_pair,
                    amount,
                    price,
                    timestamp,
                })
            }),
        (valid_token(), any_decimal(), any_decimal(), valid_timestamp()).prop_map(|(token, amount, pnl, timestamp)| {
            TradingEvent::PositionUpdate(PositionUpdate {
                token,
                amount,
                pnl,
                timestamp,
            })
        }),
        ("[ -~]{1,64}", "[a-z_-]{1,32}", "\\PC{0,300}", valid_timestamp()).prop_map(
            |(component, status, message, timestamp)| {
                TradingEvent::SystemStatus(SystemStatus {
                    component,
                    status,
                    message,
                    timestamp,
                })
            }
        ),
    ]
}

// --- helpers -------------------------------------------------------------------------------

/// A result in a comparable form (`Error` has no `PartialEq`).
fn same<T: Clone>(result: &solcache::Result<T>) -> std::result::Result<T, String> {
    result.clone().map_err(|e| e.to_string())
}

/// A decode error must be `Serialization` naming the key, with a bounded message.
fn assert_serialization<T: std::fmt::Debug>(result: &solcache::Result<T>, key: &str) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert_eq!(e.kind_name(), "serialization", "{:?}", e);
        match e {
            Error::Serialization { key: k, .. } => prop_assert_eq!(k, key),
            other => prop_assert!(false, "not a Serialization error: {:?}", other),
        }
        prop_assert!(!e.is_retryable() && !e.is_timeout());
        prop_assert!(
            e.to_string().len() <= MAX_ERROR_LEN,
            "{} byte message",
            e.to_string().len()
        );
    }
    Ok(())
}

/// A validation error must be `InvalidInput`, with a bounded message.
fn assert_invalid<T: std::fmt::Debug>(result: &solcache::Result<T>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(matches!(e, Error::InvalidInput(_)), "not InvalidInput: {:?}", e);
        prop_assert_eq!(e.kind_name(), "invalid_input");
        prop_assert!(!e.is_retryable() && !e.is_timeout());
        prop_assert!(
            e.to_string().len() <= MAX_ERROR_LEN,
            "{} byte message",
            e.to_string().len()
        );
    }
    Ok(())
}

/// `PriceData` and `PoolState` decoded from anything re-encode to JSON that decodes to the same
/// value and encodes to the same bytes: whatever a reader accepts, it can write and read back.
fn check_price_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = PriceData::from_json(bytes, "price:SOL");
    assert_serialization(&decoded, "price:SOL")?;
    prop_assert_eq!(same(&<PriceData as Cached>::decode(bytes, "price:SOL")), same(&decoded));
    if let Ok(p) = decoded {
        let json = p.to_json();
        let again = PriceData::from_json(json.as_bytes(), "price:SOL");
        prop_assert_eq!(
            again.as_ref().ok(),
            Some(&p),
            "{} does not decode again: {:?}",
            json,
            again
        );
        prop_assert_eq!(again.unwrap().to_json(), json);
    }
    Ok(())
}

fn check_pool_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let key = format!("pool:{POOL_ADDRESS}");
    let decoded = PoolState::from_json(bytes, &key);
    assert_serialization(&decoded, &key)?;
    prop_assert_eq!(same(&<PoolState as Cached>::decode(bytes, &key)), same(&decoded));
    if let Ok(p) = decoded {
        let json = p.to_json();
        let again = PoolState::from_json(json.as_bytes(), &key);
        prop_assert_eq!(
            again.as_ref().ok(),
            Some(&p),
            "{} does not decode again: {:?}",
            json,
            again
        );
        prop_assert_eq!(again.unwrap().to_json(), json);
    }
    Ok(())
}

fn check_event_bytes(type_name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = TradingEvent::decode(type_name, bytes);
    assert_invalid(&decoded)?;
    if let Ok(e) = decoded {
        prop_assert_eq!(e.type_name(), type_name);
        let json = e.data_json();
        let again = TradingEvent::decode(type_name, json.as_bytes());
        prop_assert_eq!(
            again.as_ref().ok(),
            Some(&e),
            "{} does not decode again: {:?}",
            json,
            again
        );
    }
    Ok(())
}

/// The exact value of a plain decimal text, normalised like `Decimal::normalize().to_string()`.
fn exact_normal_form(text: &str) -> String {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

// --- keys and names ------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Every token the documented pattern describes is accepted, and its key is `price:` + it.
    #[test]
    fn valid_tokens_are_accepted_and_keys_round_trip(token in valid_token()) {
        prop_assert!(validate_token(&token).is_ok());
        let key = price_key(&token).unwrap();
        prop_assert_eq!(key.strip_prefix(keys::PRICE_PREFIX), Some(token.as_str()));
        prop_assert_eq!(key.matches(':').count(), 1);
    }

    /// Anything else is an `InvalidInput` error, and nothing accepted can break out of its key:
    /// no whitespace, control characters, separators, hash tags, globs, quotes or non-ASCII.
    #[test]
    fn tokens_are_validated_as_designed(token in hostile_text()) {
        let result = validate_token(&token);
        assert_invalid(&result)?;
        let bytes = token.as_bytes();
        let by_design = (1..=MAX_TOKEN_LEN).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
        prop_assert_eq!(result.is_ok(), by_design, "{:?}", token);
        prop_assert_eq!(price_key(&token).is_ok(), by_design);
        if let Ok(key) = price_key(&token) {
            prop_assert!(!key.chars().any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii()));
            let forbidden = ['{', '}', '*', '?', '[', ']', '"', '\\', '/', '$'];
            prop_assert!(!key.contains(forbidden), "{:?}", key);
            prop_assert_eq!(key.matches(':').count(), 1);
        }
    }

    /// Two different strings never share a price key; price, pool and stream keys never meet.
    #[test]
    fn distinct_tokens_never_share_a_key(a in hostile_text(), b in hostile_text(), t in valid_token()) {
        if let (Ok(ka), Ok(kb)) = (price_key(&a), price_key(&b)) {
            prop_assert_eq!(ka == kb, a == b);
        }
        // Tokens are case-sensitive: `sol` is not `SOL`, and gets its own key.
        let upper = t.to_ascii_uppercase();
        prop_assert_eq!(price_key(&t).unwrap() == price_key(&upper).unwrap(), t == upper);
        let key = price_key(&t).unwrap();
        prop_assert!(validate_address(&key).is_err());
        prop_assert!(!key.starts_with(keys::POOL_PREFIX) && !key.starts_with("stream:"));
    }

    /// Every 32-byte public key in base58 is a valid address; its key round-trips; and the
    /// encoding is canonical, so two different accepted strings are two different accounts.
    #[test]
    fn addresses_are_canonical_32_byte_base58(bytes in any::<[u8; 32]>(), other in any::<[u8; 32]>()) {
        let address = bs58::encode(bytes).into_string();
        prop_assert!(validate_address(&address).is_ok());
        let key = pool_key(&address).unwrap();
        prop_assert_eq!(key.strip_prefix(keys::POOL_PREFIX), Some(address.as_str()));
        let other_key = pool_key(&bs58::encode(other).into_string()).unwrap();
        prop_assert_eq!(key == other_key, bytes == other);
    }

    #[test]
    fn arbitrary_addresses_are_rejected_or_canonical(address in hostile_text()) {
        let result = validate_address(&address);
        assert_invalid(&result)?;
        prop_assert_eq!(pool_key(&address).is_ok(), result.is_ok());
        if result.is_ok() {
            let decoded = bs58::decode(&address).into_vec().unwrap();
            prop_assert_eq!(decoded.len(), 32);
            prop_assert_eq!(bs58::encode(&decoded).into_string(), address.clone());
            let key = pool_key(&address).unwrap();
            prop_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':'));
            prop_assert!(!address.contains(['0', 'O', 'I', 'l']));
        }
    }

    /// Stream, group and consumer names: the documented alphabet and length, nothing else.
    #[test]
    fn stream_names_are_validated_as_designed(name in hostile_text(), long in "[a-z]{120,200}") {
        for candidate in [&name, &long] {
            let result = validate_stream_name(candidate);
            assert_invalid(&result)?;
            let by_design = (1..=MAX_NAME_LEN).contains(&candidate.len())
                && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b));
            // Streams also stay out of the caches' key spaces.
            let stream_by_design =
                by_design && !candidate.starts_with("price:") && !candidate.starts_with("pool:");
            prop_assert_eq!(result.is_ok(), stream_by_design, "{:?}", candidate);
            for what in ["group", "consumer"] {
                prop_assert_eq!(validate_name(what, candidate).is_ok(), by_design);
            }
        }
    }

    /// Stream ids: `$`, `ms` or `ms-seq` of at most 20 digits each; never a panic.
    #[test]
    fn stream_ids_are_validated(id in prop_oneof![
        hostile_text(),
        "[0-9]{1,22}(-[0-9]{0,22})?",
        Just("18446744073709551615-18446744073709551615".to_owned()),
        Just("99999999999999999999-0".to_owned()),
    ]) {
        let result = validate_id(&id);
        assert_invalid(&result)?;
        let numeric = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        let by_design = id == "$" || match id.split_once('-') {
            Some((ms, seq)) => numeric(ms) && numeric(seq),
            None => numeric(&id),
        };
        prop_assert_eq!(result.is_ok(), by_design, "{:?}", id);
    }

    #[test]
    fn token_pairs_and_actions_never_panic(pair in hostile_text(), a in valid_token(), b in valid_token(), action in hostile_text()) {
        assert_invalid(&validate_token_pair(&pair))?;
        let (good, bad) = (format!("{a}/{b}"), format!("{a}/{b}/{a}"));
        prop_assert!(validate_token_pair(&good).is_ok());
        prop_assert!(validate_token_pair(&bad).is_err());
        let parsed = TradeAction::parse(&action);
        assert_invalid(&parsed)?;
        prop_assert_eq!(parsed.is_ok(), action == "buy" || action == "sell");
        if let Ok(p) = parsed {
            prop_assert_eq!(p.as_str(), action.as_str());
        }
    }
}

/// The long error messages a hostile input could cause are cut, in validators too.
#[test]
fn huge_identifiers_give_short_errors() {
    let huge = "x".repeat(10 << 20);
    for result in [
        validate_token(&huge),
        validate_address(&huge),
        validate_stream_name(&huge),
        validate_token_pair(&huge),
        TradeAction::parse(&huge).map(|_| ()),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.kind_name(), "invalid_input");
        assert!(e.to_string().len() <= MAX_ERROR_LEN, "{} bytes", e.to_string().len());
    }
}

// --- cached JSON ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes as a cached value: a price or a `Serialization` error naming the key.
    #[test]
    fn arbitrary_bytes_never_panic_the_cache_decoders(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_price_bytes(&bytes)?;
        check_pool_bytes(&bytes)?;
        for (type_name, _) in EVENT_TYPES {
            check_event_bytes(type_name, &bytes)?;
        }
    }

    /// Every prefix of a valid value (a truncated write) and every byte flipped.
    #[test]
    fn truncated_and_corrupted_json_is_refused(cut in 0usize..200, flip in 0usize..200, byte in any::<u8>()) {
        for template in [PRICE_JSON, POOL_JSON] {
            let text = template.as_bytes();
            let truncated = &text[..cut.min(text.len() - 1)];
            let mut corrupted = text.to_vec();
            let i = flip % corrupted.len();
            corrupted[i] = byte;
            for bytes in [truncated, &corrupted[..]] {
                check_price_bytes(bytes)?;
                check_pool_bytes(bytes)?;
            }
            prop_assert!(PriceData::from_json(truncated, "price:SOL").is_err());
            prop_assert!(PoolState::from_json(truncated, "pool:x").is_err());
        }
    }

    /// A field replaced by any JSON value (strings, numbers, NaN-as-null, nested objects), a
    /// field dropped, or an unknown field added.
    #[test]
    fn mutated_price_json_is_a_price_or_a_serialization_error(
        bytes in mutated_json(serde_json::from_str(PRICE_JSON).unwrap())
    ) {
        check_price_bytes(&bytes)?;
    }

    #[test]
    fn mutated_pool_json_is_a_pool_or_a_serialization_error(
        bytes in mutated_json(serde_json::from_str(POOL_JSON).unwrap())
    ) {
        check_pool_bytes(&bytes)?;
    }

    /// NaN, Infinity, 1e400 and other literals JSON does not have, or that do not fit.
    #[test]
    fn non_json_numbers_are_refused(
        price in raw_literal_json(&["price", "token", "timestamp", "source"], PRICE_JSON),
        pool in raw_literal_json(&["liquidity", "reserve_a", "reserve_b", "volume_24h", "timestamp"], POOL_JSON),
    ) {
        prop_assert!(PriceData::from_json(&price, "price:SOL").is_err(), "{}", String::from_utf8_lossy(&price));
        check_price_bytes(&price)?;
        prop_assert!(PoolState::from_json(&pool, "pool:x").is_err(), "{}", String::from_utf8_lossy(&pool));
        check_pool_bytes(&pool)?;
    }

    /// A decimal string decodes to exactly the value it spells, or is refused: never rounded,
    /// never NaN or infinite. Plain decimals of at most 28 digits always fit.
    #[test]
    fn decimal_strings_are_exact_or_refused(text in decimal_text()) {
        let json = format!(
            r#"{{"token":"SOL","price":{},"timestamp":"2026-11-26T15:00:00Z","source":"x"}}"#,
            serde_json::to_string(&text).unwrap()
        );
        let decoded = PriceData::from_json(json.as_bytes(), "price:SOL");
        check_price_bytes(json.as_bytes())?;
        let plain = text.strip_prefix('-').unwrap_or(&text);
        let is_plain = !plain.is_empty()
            && plain.split('.').count() <= 2
            && plain.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if let (Ok(p), true) = (&decoded, is_plain) {
            prop_assert_eq!(p.price.normalize().to_string(), exact_normal_form(&text), "{:?} was rounded", text);
        }
        let digits = plain.bytes().filter(u8::is_ascii_digit).count();
        if is_plain && !text.starts_with('-') && digits <= 28 {
            prop_assert!(decoded.is_ok(), "{:?}: {:?}", text, decoded);
        }
    }

    /// Timestamps: anything that decodes re-encodes to RFC 3339 that decodes again (no year
    /// 10000 written as `+10000-…`); far-future and far-past instants outside years 1–9999, and
    /// leap seconds, are refused with a typed error.
    #[test]
    fn timestamp_strings_decode_to_what_can_be_written(text in timestamp_text()) {
        let ts = serde_json::to_string(&text).unwrap();
        let price = format!(r#"{{"token":"SOL","price":"1","timestamp":{ts},"source":"x"}}"#);
        check_price_bytes(price.as_bytes())?;
        let pool = POOL_JSON.replace(r#""2026-11-26T15:00:00.123456Z""#, &ts);
        check_pool_bytes(pool.as_bytes())?;
        let update = format!(r#"{{"token":"SOL","price":"1","timestamp":{ts}}}"#);
        check_event_bytes("price_update", update.as_bytes())?;
        if let Ok(p) = PriceData::from_json(price.as_bytes(), "k") {
            prop_assert!(in_wire_range(&p.timestamp), "{}", p.timestamp);
        }
    }

    /// Valid prices and pool states round-trip through their JSON byte for byte.
    #[test]
    fn valid_models_round_trip(
        token in valid_token(),
        address in valid_address(),
        price in non_negative_decimal(),
        reserves in prop::array::uniform4(non_negative_decimal()),
        timestamp in valid_timestamp(),
        source in "[^\\p{Cc}]{1,16}".prop_filter("64 bytes at most", |s| s.len() <= 64),
    ) {
        let p = PriceData::new(token.clone(), price, timestamp, source).unwrap();
        let json = p.to_json();
        let key = price_key(&token).unwrap();
        prop_assert_eq!(PriceData::from_json(json.as_bytes(), &key).unwrap(), p.clone());
        prop_assert_eq!(<PriceData as Cached>::decode(json.as_bytes(), &key).unwrap().to_json(), json);
        prop_assert_eq!(p.id(), token.as_str());

        let [liquidity, reserve_a, reserve_b, volume] = reserves;
        let s = PoolState::new(address.clone(), liquidity, reserve_a, reserve_b, volume, timestamp).unwrap();
        let json = s.to_json();
        prop_assert_eq!(PoolState::from_json(json.as_bytes(), &pool_key(&address).unwrap()).unwrap(), s.clone());
        prop_assert_eq!(s.id(), address.as_str());
    }

    /// Constructors: negative amounts and out-of-range timestamps are `InvalidInput`; whatever
    /// they accept can be written and read back.
    #[test]
    fn constructors_accept_only_what_round_trips(
        token in hostile_text(),
        price in any_decimal(),
        timestamp in any_timestamp(),
        address in prop_oneof![valid_address(), hostile_text()],
    ) {
        let p = PriceData::new(token.clone(), price, timestamp, "pyth");
        assert_invalid(&p)?;
        let expected = validate_token(&token).is_ok() && price >= Decimal::ZERO && in_wire_range(&timestamp);
        prop_assert_eq!(p.is_ok(), expected, "{:?} {} {}", token, price, timestamp);
        if let Ok(p) = p {
            prop_assert_eq!(PriceData::from_json(p.to_json().as_bytes(), "k").unwrap(), p.clone());
            // A future timestamp counts as age zero; no instant makes `age` overflow.
            let _ = p.age(DateTime::<Utc>::MIN_UTC);
            let _ = p.age(DateTime::<Utc>::MAX_UTC);
        }
        let s = PoolState::new(address.clone(), price, price, price, price, timestamp);
        assert_invalid(&s)?;
        let expected = validate_address(&address).is_ok() && price >= Decimal::ZERO && in_wire_range(&timestamp);
        prop_assert_eq!(s.is_ok(), expected);
        if let Ok(s) = s {
            prop_assert_eq!(PoolState::from_json(s.to_json().as_bytes(), "k").unwrap(), s.clone());
            let _ = s.age(DateTime::<Utc>::MIN_UTC);
        }
    }
}

proptest! {
    // Each case parses up to a few hundred KB several times: fewer cases.
    #![proptest_config(ProptestConfig { cases: config().cases.min(32), ..config() })]

    /// Huge values in any field: a typed error with a bounded message, in time linear in the
    /// input (a debug build parses JSON at a few MB/s, so the bound is generous).
    #[test]
    fn huge_fields_give_short_typed_errors(
        field in prop::sample::select(vec!["token", "price", "timestamp", "source", "pool_address", "reserve_a", "unknown"]),
        len in 1_000usize..20_000,
        filler in prop::sample::select(vec!["x", "9", "é", "\\u0000", " "]),
    ) {
        let huge = filler.repeat(len);
        let mut price: serde_json::Value = serde_json::from_str(PRICE_JSON).unwrap();
        let mut pool: serde_json::Value = serde_json::from_str(POOL_JSON).unwrap();
        price[field] = serde_json::Value::String(huge.clone());
        pool[field] = serde_json::Value::String(huge.clone());
        let started = std::time::Instant::now();
        for bytes in [serde_json::to_vec(&price).unwrap(), format!("\"{huge}\"").into_bytes(), format!("{{\"{huge}\":1}}").into_bytes()] {
            prop_assert!(PriceData::from_json(&bytes, "price:SOL").is_err());
            check_price_bytes(&bytes)?;
        }
        prop_assert!(PoolState::from_json(&serde_json::to_vec(&pool).unwrap(), "pool:x").is_err());
        check_pool_bytes(&serde_json::to_vec(&pool).unwrap())?;
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}

/// Far-future instants at the edge of what the wire format holds.
#[test]
fn far_future_timestamps() {
    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999);
    let p = PriceData::new("SOL", Decimal::ONE, last, "x").unwrap();
    assert!(p.to_json().contains(r#""9999-12-31T23:59:59.999999Z""#));
    assert_eq!(PriceData::from_json(p.to_json().as_bytes(), "k").unwrap(), p);
    assert_eq!(p.age(Utc::now()), std::time::Duration::ZERO);

    let beyond = last + chrono::Duration::nanoseconds(1);
    for ts in [beyond, DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
        let e = PriceData::new("SOL", Decimal::ONE, ts, "x").unwrap_err();
        assert_eq!(e.kind_name(), "invalid_input", "{ts}");
        let e = PoolState::new(POOL_ADDRESS, Decimal::ONE, Decimal::ONE, Decimal::ONE, Decimal::ONE, ts).unwrap_err();
        assert_eq!(e.kind_name(), "invalid_input", "{ts}");
        let event = TradingEvent::PriceUpdate(PriceUpdate {
            token: "SOL".into(),
            price: Decimal::ONE,
            timestamp: ts,
        });
        assert_eq!(event.validate().unwrap_err().kind_name(), "invalid_input");
    }
    // An offset that carries 9999-12-31 into year 10000 in UTC.
    let json = br#"{"token":"SOL","price":"1","timestamp":"9999-12-31T23:59:59-01:00","source":"x"}"#;
    assert!(matches!(
        PriceData::from_json(json, "price:SOL"),
        Err(Error::Serialization { .. })
    ));
}

/// A megabyte value decodes to an error, and the error does not carry the megabyte (10 MB
/// values go through Redis in `tests/bad_input.rs`).
#[test]
fn megabyte_values() {
    let huge = "9".repeat(1 << 20);
    for bytes in [
        huge.clone().into_bytes(),
        format!(r#"{{"token":"SOL","price":"{huge}","timestamp":"2026-11-26T15:00:00Z","source":"x"}}"#).into_bytes(),
        format!(r#"{{"token":"SOL","price":"1","timestamp":"2026-11-26T15:00:00Z","source":"{huge}"}}"#).into_bytes(),
        format!("[{}]", "[".repeat(1 << 20)).into_bytes(), // nested past serde_json's recursion limit
    ] {
        let started = std::time::Instant::now();
        let e = PriceData::from_json(&bytes, "price:SOL").unwrap_err();
        assert_eq!(e.kind_name(), "serialization");
        assert!(e.to_string().len() <= MAX_ERROR_LEN, "{} bytes", e.to_string().len());
        let e = TradingEvent::decode("price_update", &bytes).unwrap_err();
        assert_eq!(e.kind_name(), "invalid_input");
        assert!(e.to_string().len() <= MAX_ERROR_LEN, "{} bytes", e.to_string().len());
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}

// --- events and stream entries -------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Every valid event round-trips through its `type` and `data` fields byte for byte.
    #[test]
    fn valid_events_round_trip(event in any_event()) {
        prop_assert!(event.validate().is_ok(), "{:?}", event);
        let json = event.data_json();
        let decoded = TradingEvent::decode(event.type_name(), json.as_bytes()).unwrap();
        prop_assert_eq!(&decoded, &event);
        prop_assert_eq!(decoded.data_json(), json);
        prop_assert!(EVENT_TYPES.contains(&(event.type_name(), event.default_stream())));
    }

    /// Any type name and any data: an event or an `InvalidInput` error.
    #[test]
    fn arbitrary_type_and_data_never_panic(
        type_name in prop_oneof![prop::sample::select(EVENT_TYPES.map(|(t, _)| t).to_vec()).prop_map(str::to_owned), hostile_text()],
        data in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), json_value().prop_map(|v| serde_json::to_vec(&v).unwrap())],
    ) {
        check_event_bytes(&type_name, &data)?;
        if !EVENT_TYPES.iter().any(|(t, _)| *t == type_name) {
            prop_assert!(TradingEvent::decode(&type_name, &data).is_err());
        }
    }

    /// A field of a golden event replaced, dropped or added.
    #[test]
    fn mutated_events_are_events_or_invalid_input(
        (type_name, bytes) in prop::sample::select(EVENT_TYPES.map(|(t, _)| t).to_vec()).prop_flat_map(|t| {
            (Just(t), mutated_json(serde_json::from_str(&event_template(t)).unwrap()))
        })
    ) {
        check_event_bytes(type_name, &bytes)?;
    }

    /// A stream entry with any fields decodes to an event or to the reason it cannot, never a
    /// panic; it decodes only when it has a `type` and a `data` field.
    #[test]
    fn arbitrary_stream_entries_decode_to_events_or_reasons(
        fields in prop::collection::vec(
            (
                prop_oneof![
                    Just(b"type".to_vec()),
                    Just(b"data".to_vec()),
                    prop::collection::vec(any::<u8>(), 0..8),
                ],
                prop_oneof![
                    prop::sample::select(EVENT_TYPES.map(|(t, _)| t.as_bytes().to_vec()).to_vec()),
                    prop::sample::select(EVENT_TYPES.map(|(t, _)| event_template(t).into_bytes()).to_vec()),
                    prop::collection::vec(any::<u8>(), 0..64),
                ],
            ),
            0..6,
        ),
        id in hostile_text(),
        deliveries in any::<u64>(),
    ) {
        let raw = RawEntry { stream: "stream:x".into(), id: id.clone(), fields: fields.clone() };
        let entry = StreamEntry::decode(raw.clone(), deliveries);
        prop_assert_eq!(&entry.id, &id);
        prop_assert_eq!(entry.deliveries, deliveries);
        match &entry.event {
            Ok(event) => {
                let type_field = raw.field("type").unwrap();
                prop_assert_eq!(event.type_name().as_bytes(), type_field);
                prop_assert!(raw.field("data").is_some());
            }
            Err(reason) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(reason.len() <= MAX_ERROR_LEN, "{} byte reason", reason.len());
            }
        }
    }

    /// Status, component and message limits of `SystemStatus`.
    #[test]
    fn system_status_limits(component in hostile_text(), status in hostile_text(), message in "\\PC{0,1100}") {
        let event = TradingEvent::SystemStatus(SystemStatus {
            component: component.clone(),
            status: status.clone(),
            message: message.clone(),
            timestamp: Utc::now(),
        });
        let result = event.validate();
        assert_invalid(&result)?;
        let expected = (1..=64).contains(&component.len())
            && !component.chars().any(char::is_control)
            && (1..=32).contains(&status.len())
            && status.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
            && message.len() <= 1024;
        prop_assert_eq!(result.is_ok(), expected);
    }
}

/// A huge type name or a huge bad value in a stream entry: the reason stays short.
#[test]
fn huge_stream_fields_give_short_reasons() {
    let huge = vec![b'x'; 10 << 20];
    for fields in [
        vec![(b"type".to_vec(), huge.clone()), (b"data".to_vec(), b"{}".to_vec())],
        vec![
            (b"type".to_vec(), b"price_update".to_vec()),
            (b"data".to_vec(), huge.clone()),
        ],
        vec![
            (b"type".to_vec(), b"trade_executed".to_vec()),
            (
                b"data".to_vec(),
                event_template("trade_executed")
                    .replace("\"buy\"", &format!("\"{}\"", "b".repeat(1 << 20)))
                    .into_bytes(),
            ),
        ],
        vec![
            (b"type".to_vec(), b"system_status".to_vec()),
            (
                b"data".to_vec(),
                format!(
                    r#"{{"component":"x","status":"{}","message":"","timestamp":"2026-11-26T15:00:00Z"}}"#,
                    "A".repeat(1 << 20)
                )
                .into_bytes(),
            ),
        ],
    ] {
        let entry = StreamEntry::decode(
            RawEntry {
                stream: "s".into(),
                id: "1-0".into(),
                fields,
            },
            1,
        );
        let reason = entry.event.unwrap_err();
        assert!(reason.len() <= MAX_ERROR_LEN, "{} byte reason", reason.len());
    }
}

// --- stream replies ------------------------------------------------------------------------

/// RESP values of every kind, nested, biased towards the shapes stream replies have.
fn resp_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::BulkString),
        "[0-9]{1,14}-[0-9]{1,3}".prop_map(|s| Value::BulkString(s.into_bytes())),
        prop::sample::select(vec![
            "name",
            "consumers",
            "pending",
            "last-delivered-id",
            "lag",
            "length",
            "type",
            "data",
            "0-0"
        ])
        .prop_map(|s| Value::BulkString(s.as_bytes().to_vec())),
        any::<String>().prop_map(Value::SimpleString),
        any::<f64>().prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Set),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

fn assert_response<T>(result: &solcache::Result<T>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(matches!(e, Error::Response { .. }), "not a Response error: {:?}", e);
        prop_assert_eq!(e.kind_name(), "response");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Whatever a server (or a proxy in between) sends back, the reply decoders return entries
    /// or a `Response` error.
    #[test]
    fn stream_reply_decoders_never_panic(v in resp_value()) {
        assert_response(&stream_reply::read_reply(&v))?;
        assert_response(&stream_reply::claim_reply("stream:x", &v).map(|c| (c.cursor, c.entries, c.deleted)))?;
        assert_response(&stream_reply::pending_deliveries(&v))?;
        assert_response(&stream_reply::entry_id(&v))?;
        assert_response(&stream_reply::text(&v))?;
        assert_response(&stream_reply::int(&v))?;
        assert_response(&stream_reply::map(&v).map(|m| m.len()))?;
        assert_response(&stream_reply::pairs(&v).map(|p| p.len()))?;
        if let Ok(entries) = stream_reply::read_reply(&v) {
            for raw in entries {
                let _ = StreamEntry::decode(raw, 1);
            }
        }
    }

    /// Well-formed XREAD replies (RESP2 and RESP3 shapes) decode to exactly their entries.
    #[test]
    fn well_formed_xread_replies_decode(
        streams in prop::collection::vec(
            ("stream:[a-z]{1,8}", prop::collection::vec(("[0-9]{1,13}-[0-9]{1,3}", prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..8)), 0..4)), 0..4)),
            0..3,
        ),
        resp3 in any::<bool>(),
    ) {
        let bulk = |b: &[u8]| Value::BulkString(b.to_vec());
        let per_stream: Vec<(Value, Value)> = streams
            .iter()
            .map(|(name, entries)| {
                let entries = entries
                    .iter()
                    .map(|(id, fields)| {
                        let flat = fields.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect();
                        Value::Array(vec![bulk(id.as_bytes()), Value::Array(flat)])
                    })
                    .collect();
                (bulk(name.as_bytes()), Value::Array(entries))
            })
            .collect();
        let reply = if resp3 {
            Value::Map(per_stream)
        } else {
            Value::Array(per_stream.into_iter().map(|(n, e)| Value::Array(vec![n, e])).collect())
        };
        let decoded = stream_reply::read_reply(&reply).unwrap();
        let expected: Vec<RawEntry> = streams
            .iter()
            .flat_map(|(name, entries)| {
                entries.iter().map(move |(id, fields)| RawEntry { stream: name.clone(), id: id.clone(), fields: fields.clone() })
            })
            .collect();
        prop_assert_eq!(decoded, expected);
    }
}

/// XINFO STREAM's first-entry / last-entry as an empty array (a misbehaving proxy or server):
/// a `Response` error, not an index-out-of-bounds panic.
#[test]
fn entry_id_of_an_empty_array_is_an_error() {
    let result = std::panic::catch_unwind(|| stream_reply::entry_id(&Value::Array(vec![])));
    let result = result.expect("entry_id must not panic on an empty array");
    assert!(matches!(result, Err(Error::Response { .. })), "{result:?}");
    assert_eq!(
        stream_reply::entry_id(&Value::Array(vec![Value::BulkString(b"5-1".to_vec()), Value::Nil])).unwrap(),
        Some("5-1".to_owned())
    );
    assert_eq!(stream_reply::entry_id(&Value::Nil).unwrap(), None);
}

// --- swap math ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Any reserves, amount, fee and slippage, up to `Decimal::MAX` and down to 1e-28: a quote
    /// whose numbers make sense, or `InvalidInput` (bad arguments, or too large to compute
    /// exactly). Never a panic, never an overflow.
    #[test]
    fn swap_quotes_are_sane_or_invalid_input(
        reserve_in in any_decimal(),
        reserve_out in any_decimal(),
        amount_in in any_decimal(),
        fee_bps in prop_oneof![0u32..=10_000, any::<u32>()],
        slippage_bps in prop_oneof![0u32..=10_000, any::<u32>()],
    ) {
        let quote = quote_constant_product(reserve_in, reserve_out, amount_in, fee_bps, slippage_bps);
        assert_invalid(&quote)?;
        let args_ok = reserve_in > Decimal::ZERO
            && reserve_out > Decimal::ZERO
            && amount_in > Decimal::ZERO
            && fee_bps < 10_000
            && slippage_bps <= 10_000;
        if !args_ok {
            prop_assert!(quote.is_err());
        }
        if let Ok(q) = quote {
            prop_assert_eq!(q.amount_in, amount_in);
            prop_assert!(q.amount_in_after_fee >= Decimal::ZERO && q.amount_in_after_fee <= amount_in);
            prop_assert!(q.price_impact >= Decimal::ZERO && q.price_impact <= Decimal::ONE, "{}", q.price_impact);
            prop_assert!(q.amount_out >= Decimal::ZERO && q.amount_out <= reserve_out, "{} > {}", q.amount_out, reserve_out);
            prop_assert!(q.min_amount_out >= Decimal::ZERO && q.min_amount_out <= q.amount_out);
            prop_assert!(q.max_sandwich_loss >= Decimal::ZERO && q.max_sandwich_loss <= q.amount_out);
            prop_assert!(q.spot_price > Decimal::ZERO || reserve_out < reserve_in);
            prop_assert!(q.execution_price >= Decimal::ZERO);
        }
    }

    /// The pool-state entry point: same rules, and the direction only swaps the reserves.
    #[test]
    fn pool_quotes_follow_the_direction(
        reserves in prop::array::uniform2(non_negative_decimal()),
        amount_in in any_decimal(),
        fee_bps in 0u32..=10_001,
        slippage_bps in 0u32..=10_001,
    ) {
        let [a, b] = reserves;
        let pool = PoolState::new(POOL_ADDRESS, Decimal::ONE, a, b, Decimal::ZERO, Utc::now()).unwrap();
        let ab = pool.quote_swap(amount_in, Direction::AToB, fee_bps, slippage_bps);
        let ba = pool.quote_swap(amount_in, Direction::BToA, fee_bps, slippage_bps);
        assert_invalid(&ab)?;
        assert_invalid(&ba)?;
        prop_assert_eq!(same(&ab), same(&quote_constant_product(a, b, amount_in, fee_bps, slippage_bps)));
        prop_assert_eq!(same(&ba), same(&quote_constant_product(b, a, amount_in, fee_bps, slippage_bps)));
    }
}

/// The documented extremes, spelled out.
#[test]
fn extreme_swaps() {
    let tiny = Decimal::new(1, 28);
    let max = Decimal::MAX;
    for (x, y, dx) in [
        (max, max, max),
        (tiny, tiny, tiny),
        (tiny, max, max),
        (max, tiny, tiny),
        (max, max, tiny),
        (tiny, tiny, max),
        (Decimal::ONE, max, max),
    ] {
        for fee in [0, 25, 9_999] {
            for slip in [0, 50, 10_000] {
                match quote_constant_product(x, y, dx, fee, slip) {
                    Ok(q) => assert!(q.amount_out <= y && q.price_impact <= Decimal::ONE),
                    Err(e) => assert_eq!(e.kind_name(), "invalid_input"),
                }
            }
        }
    }
}

/// A sanity check of the helpers above, so a wrong reference cannot hide a real failure.
#[test]
fn helpers_are_right() {
    assert_eq!(exact_normal_form("-000.500"), "-0.5");
    assert_eq!(exact_normal_form("-0.000"), "0");
    assert_eq!(exact_normal_form("12"), "12");
    assert_eq!(Decimal::from_str("0.50").unwrap().normalize().to_string(), "0.5");
    assert!(in_wire_range(&Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()));
    assert!(!in_wire_range(&Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()));
    assert!(in_wire_range(&Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap()));
    assert!(!in_wire_range(&Utc.with_ymd_and_hms(0, 12, 31, 23, 59, 59).unwrap()));
    let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_500_000_000);
    assert!(!in_wire_range(&leap.unwrap().and_utc()));
    let mut seen = HashSet::new();
    for t in ["SOL", "sol", "S.L", "S-L", "S_L"] {
        assert!(seen.insert(price_key(t).unwrap()));
    }
}
