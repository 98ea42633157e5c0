//! Redis key names and the validation that keeps them unambiguous.
//!
//! A token is 1–32 characters of `A–Z a–z 0–9 . _ -`, starting with a letter or digit, so it
//! can never contain `:` (key collisions), `{}` (cluster hash tags), glob characters,
//! whitespace or control characters. An address is a Solana public key: base58 that decodes to
//! exactly 32 bytes (32–44 characters).

use crate::error::{Error, Result};

/// The tokens the platform launches with.
pub const MVP_TOKENS: [&str; 5] = ["SOL", "USDC", "BONK", "JitoSOL", "RAY"];

/// The documented token pattern, as a regular expression (informational; [`validate_token`]
/// implements it without a regex engine).
pub const TOKEN_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$";

/// Longest accepted token, in characters.
pub const MAX_TOKEN_LEN: usize = 32;

/// Prefix of price keys: `price:{token}`.
pub const PRICE_PREFIX: &str = "price:";
/// Prefix of pool-state keys: `pool:{address}`.
pub const POOL_PREFIX: &str = "pool:";

/// Hash tag of every price key under [`KeyLayout::Tagged`]: `price:{prices}:<token>`.
pub const PRICE_TAG: &str = "{prices}";
/// Hash tag of every pool-state key under [`KeyLayout::Tagged`]: `pool:{pools}:<address>`.
pub const POOL_TAG: &str = "{pools}";

/// How cache keys are named, which on a Redis Cluster decides their slots. Every pool and
/// every process sharing the data must use the same layout: the two name different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyLayout {
    /// `price:<token>`, `pool:<address>` (the default): keys spread over slots, and so over
    /// the primaries of a cluster; a `get_many` is one `MGET` per slot.
    #[default]
    Spread,
    /// `price:{prices}:<token>`, `pool:{pools}:<address>`: one hash tag per family, so each
    /// family lives in one slot (one primary) and a `get_many` is one `MGET` on one node;
    /// that primary takes all of the family's load.
    Tagged,
}

impl KeyLayout {
    /// The layout named `name`: `spread` or `tagged`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "spread" => Ok(KeyLayout::Spread),
            "tagged" => Ok(KeyLayout::Tagged),
            other => Err(Error::invalid(format!(
                "key layout {:?} is not one of \"spread\", \"tagged\"",
                truncate_for_message(other)
            ))),
        }
    }

    /// Its name, as [`KeyLayout::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            KeyLayout::Spread => "spread",
            KeyLayout::Tagged => "tagged",
        }
    }

    /// What every price key starts with in this layout (`price:`, `price:{prices}:`): a
    /// valid token's key is this and the token.
    pub fn price_prefix(self) -> &'static str {
        match self {
            KeyLayout::Spread => PRICE_PREFIX,
            KeyLayout::Tagged => concat!("price:", "{prices}", ":"),
        }
    }

    /// What every pool-state key starts with in this layout (`pool:`, `pool:{pools}:`).
    pub fn pool_prefix(self) -> &'static str {
        match self {
            KeyLayout::Spread => POOL_PREFIX,
            KeyLayout::Tagged => concat!("pool:", "{pools}", ":"),
        }
    }

    /// The key of `token`'s price in this layout, after validating the token.
    pub fn price_key(self, token: &str) -> Result<String> {
        validate_token(token)?;
        Ok(match self {
            KeyLayout::Spread => format!("{PRICE_PREFIX}{token}"),
            KeyLayout::Tagged => format!("{PRICE_PREFIX}{PRICE_TAG}:{token}"),
        })
    }

    /// The key of `address`'s pool state in this layout, after validating the address.
    pub fn pool_key(self, address: &str) -> Result<String> {
        validate_address(address)?;
        Ok(match self {
            KeyLayout::Spread => format!("{POOL_PREFIX}{address}"),
            KeyLayout::Tagged => format!("{POOL_PREFIX}{POOL_TAG}:{address}"),
        })
    }
}

/// Check a token against [`TOKEN_PATTERN`].
pub fn validate_token(token: &str) -> Result<()> {
    let bytes = token.as_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid("token is empty"));
    }
    if bytes.len() > MAX_TOKEN_LEN {
        return Err(Error::invalid(format!(
            "token is {} bytes long, the limit is {MAX_TOKEN_LEN}",
            bytes.len()
        )));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if !bytes[0].is_ascii_alphanumeric() || !bytes.iter().all(|&b| allowed(b)) {
        return Err(Error::invalid(format!(
            "token {token:?} does not match {TOKEN_PATTERN}"
        )));
    }
    Ok(())
}

/// Check that `address` is a base58 Solana public key (32 bytes).
pub fn validate_address(address: &str) -> Result<()> {
    if !(32..=44).contains(&address.len()) {
        return Err(Error::invalid(format!(
            "address {:?} is {} characters long, a Solana address has 32 to 44",
            truncate_for_message(address),
            address.len()
        )));
    }
    let mut decoded = [0u8; 32];
    match bs58::decode(address).onto(&mut decoded) {
        Ok(32) => Ok(()),
        Ok(n) => Err(Error::invalid(format!(
            "address {address:?} decodes to {n} bytes, a Solana address has 32"
        ))),
        Err(e) => Err(Error::invalid(format!(
            "address {:?} is not base58: {e}",
            truncate_for_message(address)
        ))),
    }
}

/// `price:{token}` (the default [`KeyLayout::Spread`]), after validating the token.
pub fn price_key(token: &str) -> Result<String> {
    KeyLayout::Spread.price_key(token)
}

/// `pool:{address}` (the default [`KeyLayout::Spread`]), after validating the address.
pub fn pool_key(address: &str) -> Result<String> {
    KeyLayout::Spread.pool_key(address)
}

/// Error messages quote user input; keep a hostile 1 MB string out of logs.
pub(crate) fn truncate_for_message(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Longest error message built from a decoder's report, in bytes (a little more with the
/// ellipsis).
pub(crate) const MAX_MESSAGE_BYTES: usize = 512;

/// `message` cut to about [`MAX_MESSAGE_BYTES`]: its head and tail around an ellipsis, so a
/// decoder's report that quotes a 10 MB value keeps its start and its "at line 1 column 9".
pub(crate) fn bounded_message(message: impl std::fmt::Display) -> String {
    let message = message.to_string();
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let floor = |mut i: usize| {
        while !message.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head = floor(MAX_MESSAGE_BYTES * 3 / 4);
    let tail = floor(message.len() - MAX_MESSAGE_BYTES / 4);
    format!("{} … {}", &message[..head], &message[tail..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_tokens() {
        for t in MVP_TOKENS
            .iter()
            .copied()
            .chain(["wBTC", "A", "mSOL-v2", "a.b_c", &"X".repeat(32)])
        {
            assert!(validate_token(t).is_ok(), "{t} should be valid");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for t in [
            "",
            " SOL",
            "SOL ",
            "SO L",
            "SOL\n",
            "\0",
            "price:SOL",
            "{SOL}",
            "*",
            "-SOL",
            "ŠOL",
            &"X".repeat(33),
        ] {
            assert!(
                matches!(validate_token(t), Err(Error::InvalidInput(_))),
                "{t:?} should be rejected"
            );
        }
    }

    #[test]
    fn keys_have_their_prefix() {
        assert_eq!(price_key("SOL").unwrap(), "price:SOL");
        let addr = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";
        assert_eq!(pool_key(addr).unwrap(), format!("pool:{addr}"));
    }

    #[test]
    fn each_layouts_prefix_is_what_its_keys_start_with() {
        let addr = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";
        for layout in [KeyLayout::Spread, KeyLayout::Tagged] {
            assert_eq!(
                layout.price_key("SOL").unwrap(),
                format!("{}SOL", layout.price_prefix())
            );
            assert_eq!(
                layout.pool_key(addr).unwrap(),
                format!("{}{addr}", layout.pool_prefix())
            );
        }
    }

    #[test]
    fn the_tagged_layout_puts_one_tag_per_family() {
        let addr = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2";
        assert_eq!(KeyLayout::default(), KeyLayout::Spread);
        assert_eq!(KeyLayout::Tagged.price_key("SOL").unwrap(), "price:{prices}:SOL");
        assert_eq!(
            KeyLayout::Tagged.pool_key(addr).unwrap(),
            format!("pool:{{pools}}:{addr}")
        );
        assert_eq!(KeyLayout::Spread.price_key("SOL").unwrap(), "price:SOL");
        for layout in [KeyLayout::Spread, KeyLayout::Tagged] {
            assert_eq!(KeyLayout::parse(layout.name()).unwrap(), layout);
            assert!(matches!(layout.price_key("{x}"), Err(Error::InvalidInput(_))));
            assert!(matches!(layout.pool_key("nope"), Err(Error::InvalidInput(_))));
        }
        for bad in ["", "Tagged", "hash", "spread "] {
            assert!(matches!(KeyLayout::parse(bad), Err(Error::InvalidInput(_))), "{bad:?}");
        }
    }

    #[test]
    fn long_messages_are_cut_at_char_boundaries() {
        assert_eq!(bounded_message("short"), "short");
        for filler in ["x", "é", "€", "𝄞"] {
            let long = format!("bad value \"{}\" at line 1 column 9", filler.repeat(100_000));
            let cut = bounded_message(&long);
            assert!(cut.len() <= MAX_MESSAGE_BYTES + 8, "{}", cut.len());
            assert!(
                cut.starts_with("bad value \"") && cut.ends_with("at line 1 column 9"),
                "{cut}"
            );
        }
    }

    #[test]
    fn addresses_are_32_byte_base58() {
        for a in [
            "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
            "So11111111111111111111111111111111111111112",
            "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
            "11111111111111111111111111111111",
        ] {
            assert!(validate_address(a).is_ok(), "{a}");
        }
        for a in [
            "",
            "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo0", // '0' is not base58
            "O8oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2", // 'O' is not base58
            "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2xx",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", // 44 chars, > 32 bytes
            "22222222222222222222222222222222",             // 32 chars but only 24 bytes
        ] {
            assert!(matches!(validate_address(a), Err(Error::InvalidInput(_))), "{a:?}");
        }
    }
}
