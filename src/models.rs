//! The wire format: what one cached price or pool state looks like in Redis.
//!
//! Decimals travel as JSON strings in plain notation (`"0.000000665"`, never `"6.65E-7"` and
//! never floats), so no digit is lost and every JSON reader can parse them; timestamps as
//! RFC 3339 in UTC with a `Z` and always six fractional digits (microseconds, what Python's
//! `datetime` holds). Reads accept any number of fractional digits and keep microseconds.
//! Golden files under `tests/golden/` pin the format for the Rust and the Python tests alike.

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys;

/// One token's price at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceData {
    /// Token symbol, e.g. `SOL` (see [`keys::TOKEN_PATTERN`]).
    pub token: String,
    /// Exact price in USD.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub price: Decimal,
    /// Half-width of the source's confidence interval around `price`, in USD (Pyth's `conf`):
    /// the true price is within `price ± confidence` with high probability. `None` when the
    /// source gives none; the JSON field is then absent, so readers that predate it still work.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "exact_decimal::deserialize_option"
    )]
    pub confidence: Option<Decimal>,
    /// When the source observed the price (microsecond precision).
    #[serde(with = "rfc3339_utc")]
    pub timestamp: DateTime<Utc>,
    /// Where the price came from, e.g. `pyth`.
    pub source: String,
}

/// Reserves and volume of one constant-product pool at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolState {
    /// Base58 address of the pool account.
    pub pool_address: String,
    /// Total value locked, in USD.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub liquidity: Decimal,
    /// Reserve of token A, in token units.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub reserve_a: Decimal,
    /// Reserve of token B, in token units.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub reserve_b: Decimal,
    /// Traded volume over the last 24 h, in USD.
    #[serde(deserialize_with = "exact_decimal::deserialize")]
    pub volume_24h: Decimal,
    /// When the reserves were observed (microsecond precision).
    #[serde(with = "rfc3339_utc")]
    pub timestamp: DateTime<Utc>,
}

/// Longest accepted `source` name, in bytes.
pub const MAX_SOURCE_LEN: usize = 64;

/// Years a timestamp may fall in (UTC). RFC 3339 has four-digit years, and Python's `datetime`
/// starts at year 1: an instant outside would be written as `+10000-…`, which no reader parses.
pub const TIMESTAMP_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Fractional-second digits of every timestamp written: microseconds.
pub const TIMESTAMP_DIGITS: u16 = 6;

/// `ts` cut to the wire format's precision (microseconds; finer digits are dropped, not rounded,
/// so an instant never moves into the next second).
pub fn wire_timestamp(ts: DateTime<Utc>) -> DateTime<Utc> {
    if ts.nanosecond() >= 1_000_000_000 {
        return ts; // a leap second, left intact for `validate_timestamp` to refuse
    }
    ts.trunc_subsecs(TIMESTAMP_DIGITS)
}

/// The current time at the wire format's precision.
pub fn now() -> DateTime<Utc> {
    wire_timestamp(Utc::now())
}

/// Check that `ts` can be written in the wire format and read back, in Rust and in Python:
/// within [`TIMESTAMP_YEARS`], and not a leap second (`…23:59:60`, which Python's `datetime`
/// cannot hold: it would come back a second early, with a warning).
pub fn validate_timestamp(ts: &DateTime<Utc>) -> Result<()> {
    if !TIMESTAMP_YEARS.contains(&ts.year()) {
        return Err(Error::invalid(format!(
            "timestamp {} is outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z",
            format_timestamp(ts)
        )));
    }
    if ts.nanosecond() >= 1_000_000_000 {
        return Err(Error::invalid(format!(
            "timestamp {} is a leap second",
            format_timestamp(ts)
        )));
    }
    Ok(())
}

impl PriceData {
    /// Build a validated price without a confidence interval (see [`PriceData::with_confidence`]);
    /// `timestamp` is kept to the microsecond.
    pub fn new(
        token: impl Into<String>,
        price: Decimal,
        timestamp: DateTime<Utc>,
        source: impl Into<String>,
    ) -> Result<Self> {
        let data = PriceData {
            token: token.into(),
            price,
            confidence: None,
            timestamp: wire_timestamp(timestamp),
            source: source.into(),
        };
        data.validate()?;
        Ok(data)
    }

    /// The same price with the source's confidence interval (half-width, USD, ≥ 0).
    pub fn with_confidence(self, confidence: Decimal) -> Result<Self> {
        let data = PriceData {
            confidence: Some(confidence),
            ..self
        };
        data.validate()?;
        Ok(data)
    }

    /// `confidence / price`: how wide the interval is relative to the price (`None` without a
    /// confidence, or for a zero price).
    pub fn confidence_fraction(&self) -> Option<Decimal> {
        let confidence = self.confidence?;
        confidence.checked_div(self.price)
    }

    /// Check the invariants a decoded or constructed price must hold.
    pub fn validate(&self) -> Result<()> {
        keys::validate_token(&self.token)?;
        if self.price.is_sign_negative() {
            return Err(Error::invalid(format!(
                "price of {} is negative: {}",
                self.token, self.price
            )));
        }
        if let Some(confidence) = self.confidence {
            if confidence.is_sign_negative() && !confidence.is_zero() {
                return Err(Error::invalid(format!(
                    "confidence of {} is negative: {confidence}",
                    self.token
                )));
            }
        }
        validate_timestamp(&self.timestamp)?;
        validate_source(&self.source)
    }

    /// Encode to the canonical JSON stored in Redis.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("PriceData always serialises")
    }

    /// Decode and validate; `key` names the Redis key in the error.
    pub fn from_json(bytes: &[u8], key: &str) -> Result<Self> {
        let data: PriceData =
            serde_json::from_slice(bytes).map_err(|e| Error::serialization(key, keys::bounded_message(e)))?;
        data.validate().map_err(|e| Error::serialization(key, e))?;
        Ok(data)
    }

    /// Age relative to `now`; a timestamp in the future counts as age zero.
    pub fn age(&self, now: DateTime<Utc>) -> std::time::Duration {
        (now - self.timestamp).to_std().unwrap_or_default()
    }
}

impl PoolState {
    /// Build a validated pool state; `timestamp` is kept to the microsecond.
    pub fn new(
        pool_address: impl Into<String>,
        liquidity: Decimal,
        reserve_a: Decimal,
        reserve_b: Decimal,
        volume_24h: Decimal,
        timestamp: DateTime<Utc>,
    ) -> Result<Self> {
        let state = PoolState {
            pool_address: pool_address.into(),
            liquidity,
            reserve_a,
            reserve_b,
            volume_24h,
            timestamp: wire_timestamp(timestamp),
        };
        state.validate()?;
        Ok(state)
    }

    /// Check the invariants a decoded or constructed pool state must hold.
    pub fn validate(&self) -> Result<()> {
        keys::validate_address(&self.pool_address)?;
        for (name, value) in [
            ("liquidity", self.liquidity),
            ("reserve_a", self.reserve_a),
            ("reserve_b", self.reserve_b),
            ("volume_24h", self.volume_24h),
        ] {
            if value.is_sign_negative() {
                return Err(Error::invalid(format!(
                    "{name} of pool {} is negative: {value}",
                    self.pool_address
                )));
            }
        }
        validate_timestamp(&self.timestamp)
    }

    /// Encode to the canonical JSON stored in Redis.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("PoolState always serialises")
    }

    /// Decode and validate; `key` names the Redis key in the error.
    pub fn from_json(bytes: &[u8], key: &str) -> Result<Self> {
        let state: PoolState =
            serde_json::from_slice(bytes).map_err(|e| Error::serialization(key, keys::bounded_message(e)))?;
        state.validate().map_err(|e| Error::serialization(key, e))?;
        Ok(state)
    }

    /// Age relative to `now`; a timestamp in the future counts as age zero.
    pub fn age(&self, now: DateTime<Utc>) -> std::time::Duration {
        (now - self.timestamp).to_std().unwrap_or_default()
    }
}

pub(crate) fn validate_source(source: &str) -> Result<()> {
    if source.is_empty() || source.len() > MAX_SOURCE_LEN || source.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "source must be 1 to {MAX_SOURCE_LEN} bytes without control characters, got {:?}",
            source.chars().take(MAX_SOURCE_LEN).collect::<String>()
        )));
    }
    Ok(())
}

/// Read a JSON string with `parse`, borrowing it from the input (or from the parser's scratch
/// buffer when it has escapes) instead of allocating a `String` per field.
fn with_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Text<F>(&'static str, F);
    impl<T, F: FnOnce(&str) -> std::result::Result<T, String>> serde::de::Visitor<'_> for Text<F> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<T, E> {
            (self.1)(text).map_err(E::custom)
        }
    }
    d.deserialize_str(Text(expecting, parse))
}

/// RFC 3339 in UTC with a `Z` and exactly six fractional digits when written
/// (`2026-11-26T15:00:00.123000Z`); read with any number of digits and any offset, kept to the
/// microsecond (finer digits are dropped), so whatever is read is written back unchanged.
pub(crate) mod rfc3339_utc {
    use chrono::{DateTime, Utc};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; super::WIRE_TIMESTAMP_LEN];
        match super::wire_text(ts, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&super::format_timestamp(ts)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        super::with_str(d, "an RFC 3339 timestamp", |text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| super::wire_timestamp(t.with_timezone(&Utc)))
                .map_err(|e| {
                    let text = crate::keys::truncate_for_message(text);
                    format!("timestamp {text:?} is not RFC 3339: {e}")
                })
        })
    }
}

/// Decimals exactly as written, or an error: never rounded to 28 digits (`from_str` would turn
/// `"0.00000000000000000000000000001"` into 0), never NaN or infinite. Scientific notation
/// (`"1.5e3"`) is read as the binding reads it from Python.
pub(crate) mod exact_decimal {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer};

    /// Parse `text` without rounding.
    pub fn parse(text: &str) -> Option<Decimal> {
        match text.split_once(['e', 'E']) {
            Some((mantissa, _)) => {
                Decimal::from_str_exact(mantissa).ok()?;
                Decimal::from_scientific(text).ok()
            }
            None => Decimal::from_str_exact(text).ok(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        super::with_str(d, "a decimal string", |text| {
            parse(text).ok_or_else(|| {
                format!(
                    "{:?} is not a decimal that fits in 28 digits (no NaN, infinity or rounding)",
                    crate::keys::truncate_for_message(text)
                )
            })
        })
    }

    /// An optional decimal: `null` (or an absent field, with `#[serde(default)]`) is `None`.
    pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        #[derive(Deserialize)]
        struct Exact(#[serde(deserialize_with = "deserialize")] Decimal);
        Ok(Option::<Exact>::deserialize(d)?.map(|Exact(value)| value))
    }
}

/// Format a timestamp the way the wire format does: RFC 3339, UTC, `Z`, six fractional digits
/// (finer digits are dropped).
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    let mut buf = [0; WIRE_TIMESTAMP_LEN];
    match wire_text(ts, &mut buf) {
        Some(text) => text.to_owned(),
        None => ts.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
pub(crate) const WIRE_TIMESTAMP_LEN: usize = 27;

/// [`format_timestamp`]'s text written into `buf`, digit by digit (the hot path of every
/// encode; chrono's general formatter costs several times more), for years 0–9999 outside
/// leap seconds; `None` for the rest, which chrono formats.
pub(crate) fn wire_text<'a>(ts: &DateTime<Utc>, buf: &'a mut [u8; WIRE_TIMESTAMP_LEN]) -> Option<&'a str> {
    let year = u32::try_from(ts.year()).ok().filter(|y| *y <= 9999)?;
    if ts.nanosecond() >= 1_000_000_000 {
        return None;
    }
    let fields = [
        (year, 4, b'-'),
        (ts.month(), 2, b'-'),
        (ts.day(), 2, b'T'),
        (ts.hour(), 2, b':'),
        (ts.minute(), 2, b':'),
        (ts.second(), 2, b'.'),
        (ts.nanosecond() / 1000, 6, b'Z'),
    ];
    let mut at = 0;
    for (mut value, width, separator) in fields {
        for digit in buf[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
        buf[at + width] = separator;
        at += width + 1;
    }
    std::str::from_utf8(&buf[..at]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_timestamps_are_written_as_chrono_writes_them() {
        let chrono_text = |ts: &DateTime<Utc>| ts.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut seconds: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
        let mut nanos: u32 = 7;
        while seconds < 253_402_300_800 {
            // up to 9999-12-31T23:59:59Z, in uneven steps through every field's range
            let ts = DateTime::from_timestamp(seconds, nanos).unwrap();
            assert_eq!(format_timestamp(&ts), chrono_text(&ts));
            assert_eq!(
                serde_json::to_value(PriceData::new("SOL", Decimal::ONE, ts, "t").unwrap()).unwrap()["timestamp"],
                chrono_text(&wire_timestamp(ts))
            );
            seconds += 3_155_760_001 / 997 * 13 + 86_399;
            nanos = (nanos.wrapping_mul(7919) + 123_457) % 1_000_000_000;
        }
        for ts in [
            DateTime::from_timestamp(-62_135_596_800 - 1, 0).unwrap(), // year 0
            DateTime::from_timestamp(-62_135_596_800 * 2, 0).unwrap(), // before year 0
            DateTime::from_timestamp(253_402_300_800, 0).unwrap(),     // year 10000
            DateTime::from_timestamp(1_795_000_019, 1_500_000_000).unwrap(), // a leap second
            DateTime::from_timestamp(1_795_000_000, 999_999_999).unwrap(),
        ] {
            assert_eq!(format_timestamp(&ts), chrono_text(&ts));
        }
    }
    use std::str::FromStr;

    fn golden(name: &str) -> String {
        let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().trim_end().to_owned()
    }

    #[test]
    fn price_golden_round_trips_byte_for_byte() {
        let text = golden("price_data.json");
        let price = PriceData::from_json(text.as_bytes(), "price:SOL").unwrap();
        assert_eq!(price.token, "SOL");
        assert_eq!(price.price, Decimal::from_str("187.2345").unwrap());
        assert_eq!(price.confidence, Some(Decimal::from_str("0.0712").unwrap()));
        assert_eq!(format_timestamp(&price.timestamp), "2026-11-26T15:00:00.123000Z");
        assert_eq!(price.source, "pyth");
        assert_eq!(price.to_json(), text);
        let built = PriceData::new("SOL", price.price, price.timestamp, "pyth")
            .and_then(|p| p.with_confidence(Decimal::from_str("0.0712").unwrap()))
            .unwrap();
        assert_eq!(built.to_json(), text);
    }

    #[test]
    fn confidence_is_optional_and_absent_when_none() {
        let old = r#"{"token":"SOL","price":"187.2345","timestamp":"2026-11-26T15:00:00.123000Z","source":"pyth"}"#;
        let price = PriceData::from_json(old.as_bytes(), "k").unwrap();
        assert_eq!(price.confidence, None);
        assert_eq!(price.confidence_fraction(), None);
        assert_eq!(price.to_json(), old);
        let null = old.replace(r#""source""#, r#""confidence":null,"source""#);
        assert_eq!(PriceData::from_json(null.as_bytes(), "k").unwrap(), price);
        let with = price
            .clone()
            .with_confidence(Decimal::from_str("1.872345").unwrap())
            .unwrap();
        assert_eq!(with.confidence_fraction(), Some(Decimal::from_str("0.01").unwrap()));
        assert!(matches!(
            price.with_confidence(Decimal::NEGATIVE_ONE),
            Err(Error::InvalidInput(_))
        ));
        for bad in [r#""-0.5""#, r#""NaN""#, "0.5", r#""abc""#] {
            let json = old.replace(r#""source""#, &format!(r#""confidence":{bad},"source""#));
            assert!(
                matches!(
                    PriceData::from_json(json.as_bytes(), "k"),
                    Err(Error::Serialization { .. })
                ),
                "{json}"
            );
        }
    }

    #[test]
    fn timestamps_are_written_with_microseconds_and_read_at_any_precision() {
        let json = |ts: &str| format!(r#"{{"token":"SOL","price":"1","timestamp":"{ts}","source":"x"}}"#);
        for (read, written) in [
            ("2026-11-26T15:00:00Z", "2026-11-26T15:00:00.000000Z"),
            ("2026-11-26T15:00:00.5Z", "2026-11-26T15:00:00.500000Z"),
            ("2026-11-26T15:00:00.123Z", "2026-11-26T15:00:00.123000Z"),
            ("2026-11-26T15:00:00.123456Z", "2026-11-26T15:00:00.123456Z"),
            ("2026-11-26T15:00:00.123456789Z", "2026-11-26T15:00:00.123456Z"),
            ("2026-11-26T15:00:00.999999999Z", "2026-11-26T15:00:00.999999Z"),
            ("2026-11-26T16:00:00.1234567+01:00", "2026-11-26T15:00:00.123456Z"),
        ] {
            let p = PriceData::from_json(json(read).as_bytes(), "k").unwrap();
            assert_eq!(p.to_json(), json(written), "{read}");
            assert_eq!(PriceData::from_json(p.to_json().as_bytes(), "k").unwrap(), p);
        }
        let ns = DateTime::from_timestamp(1_795_000_000, 123_456_789).unwrap();
        let p = PriceData::new("SOL", Decimal::ONE, ns, "x").unwrap();
        assert_eq!(p.timestamp.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(PriceData::from_json(p.to_json().as_bytes(), "k").unwrap(), p);
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn decimals_are_written_in_plain_notation() {
        let p = PriceData::new("BONK", Decimal::from_scientific("6.65e-7").unwrap(), Utc::now(), "x").unwrap();
        assert!(p.to_json().contains(r#""price":"0.000000665""#), "{}", p.to_json());
        let big = PriceData::new("X", Decimal::from_scientific("1.5e20").unwrap(), Utc::now(), "x").unwrap();
        assert!(
            big.to_json().contains(r#""price":"150000000000000000000""#),
            "{}",
            big.to_json()
        );
    }

    #[test]
    fn pool_golden_round_trips_byte_for_byte() {
        let text = golden("pool_state.json");
        let state = PoolState::from_json(text.as_bytes(), "pool:x").unwrap();
        assert_eq!(state.liquidity.to_string(), "12500000.50");
        assert_eq!(state.reserve_a, Decimal::from_str("41250.123456789").unwrap());
        assert_eq!(state.to_json(), text);
    }

    #[test]
    fn offsets_become_utc() {
        let p = PriceData::from_json(
            br#"{"token":"SOL","price":"1","timestamp":"2026-11-26T16:00:00+01:00","source":"x"}"#,
            "k",
        )
        .unwrap();
        assert_eq!(format_timestamp(&p.timestamp), "2026-11-26T15:00:00.000000Z");
    }

    #[test]
    fn bad_json_names_the_key() {
        for bad in [
            &b"not json"[..],
            br#"{"token":"SOL","price":187.2,"timestamp":"2026-11-26T15:00:00Z","source":"x"}"#,
            br#"{"token":"SOL","price":"1","timestamp":"yesterday","source":"x"}"#,
            br#"{"token":"SOL","price":"NaN","timestamp":"2026-11-26T15:00:00Z","source":"x"}"#,
            br#"{"token":"bad token","price":"1","timestamp":"2026-11-26T15:00:00Z","source":"x"}"#,
            br#"{"token":"SOL","price":"-1","timestamp":"2026-11-26T15:00:00Z","source":"x"}"#,
            br#"{"token":"SOL","price":"1","timestamp":"2026-11-26T15:00:00Z"}"#,
        ] {
            match PriceData::from_json(bad, "price:SOL") {
                Err(Error::Serialization { key, .. }) => assert_eq!(key, "price:SOL"),
                other => panic!("{:?} decoded to {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        let json = |price: &str| {
            format!(r#"{{"token":"SOL","price":"{price}","timestamp":"2026-11-26T15:00:00Z","source":"x"}}"#)
        };
        for (text, value) in [
            ("0.0000000000000000000000000001", "0.0000000000000000000000000001"),
            ("1.5e3", "1500"),
            ("1.50", "1.50"),
        ] {
            let p = PriceData::from_json(json(text).as_bytes(), "k").unwrap();
            assert_eq!(p.price.to_string(), value);
        }
        // 29 fractional digits, 29 significant digits, too large, NaN, infinity: refused.
        for text in [
            "0.00000000000000000000000000001",
            "9.9999999999999999999999999999",
            "79228162514264337593543950336",
            "1.00000000000000000000000000001e0",
            "1e29",
            "NaN",
            "Infinity",
        ] {
            assert!(
                matches!(
                    PriceData::from_json(json(text).as_bytes(), "k"),
                    Err(Error::Serialization { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn timestamps_stay_within_what_rfc_3339_writes() {
        use chrono::TimeZone;
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999);
        assert!(PriceData::new("SOL", Decimal::ONE, last, "x").is_ok());
        let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert!(PriceData::new("SOL", Decimal::ONE, first, "x").is_ok());
        for ts in [
            last + chrono::Duration::nanoseconds(1),
            first - chrono::Duration::nanoseconds(1),
            DateTime::<Utc>::MAX_UTC,
        ] {
            assert!(matches!(
                PriceData::new("SOL", Decimal::ONE, ts, "x"),
                Err(Error::InvalidInput(_))
            ));
            let pool = PoolState::new(POOL, Decimal::ONE, Decimal::ONE, Decimal::ONE, Decimal::ONE, ts);
            assert!(matches!(pool, Err(Error::InvalidInput(_))));
        }
        // An offset that carries the last day of 9999 into year 10000 in UTC, and a leap second.
        let leap = br#"{"token":"SOL","price":"1","timestamp":"2016-12-31T23:59:60.5Z","source":"x"}"#;
        assert!(matches!(
            PriceData::from_json(leap, "k"),
            Err(Error::Serialization { .. })
        ));
        let json = br#"{"token":"SOL","price":"1","timestamp":"9999-12-31T23:59:59-01:00","source":"x"}"#;
        assert!(matches!(
            PriceData::from_json(json, "k"),
            Err(Error::Serialization { .. })
        ));
    }

    #[test]
    fn messages_about_huge_values_stay_short() {
        let huge = "x".repeat(1 << 20);
        for json in [
            format!(r#"{{"token":"SOL","price":"{huge}","timestamp":"2026-11-26T15:00:00Z","source":"x"}}"#),
            format!(r#"{{"token":"SOL","price":"1","timestamp":"{huge}","source":"x"}}"#),
            format!(r#""{huge}""#),
            format!(r#"{{"{huge}":1}}"#),
        ] {
            let e = PriceData::from_json(json.as_bytes(), "price:SOL").unwrap_err();
            assert!(e.to_string().len() < 1024, "{}", e.to_string().len());
        }
    }

    const POOL: &str = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";

    #[test]
    fn constructors_validate() {
        let now = Utc::now();
        assert!(PriceData::new("SOL", Decimal::ONE, now, "pyth").is_ok());
        assert!(PriceData::new("", Decimal::ONE, now, "pyth").is_err());
        assert!(PriceData::new("SOL", Decimal::NEGATIVE_ONE, now, "pyth").is_err());
        assert!(PriceData::new("SOL", Decimal::ONE, now, "").is_err());
        assert!(PoolState::new("bad", Decimal::ONE, Decimal::ONE, Decimal::ONE, Decimal::ONE, now).is_err());
    }
}
