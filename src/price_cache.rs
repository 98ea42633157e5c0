//! Prices under `price:{token}`: see [`crate::cache::Cache`] for the operations.

use chrono::{DateTime, Utc};

use crate::cache::{Cache, CacheOperations, Cached};
use crate::error::Result;
use crate::keys;
use crate::metrics::Operation;
use crate::models::PriceData;

/// Cache of [`PriceData`] keyed by token.
pub type PriceCache = Cache<PriceData>;

impl Cached for PriceData {
    const WHAT: &'static str = "price";
    const OPERATIONS: CacheOperations = CacheOperations {
        get: Operation::PriceGet,
        get_many: Operation::PriceGetMany,
        set: Operation::PriceSet,
        set_many: Operation::PriceSetMany,
    };

    const KEY_PREFIX: &'static str = keys::PRICE_PREFIX;
    fn key_for(token: &str) -> Result<String> {
        keys::price_key(token)
    }
    fn id(&self) -> &str {
        &self.token
    }
    fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
    fn encode(&self) -> String {
        self.to_json()
    }
    fn decode(bytes: &[u8], key: &str) -> Result<Self> {
        PriceData::from_json(bytes, key)
    }
}
