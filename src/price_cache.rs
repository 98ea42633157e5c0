//! Prices under `price:{token}` (`price:{prices}:{token}` with
//! [`crate::keys::KeyLayout::Tagged`]): see [`crate::cache::Cache`] for the operations.

use chrono::{DateTime, Utc};

use crate::cache::{Cache, CacheOperations, Cached};
use crate::error::Result;
use crate::keys::KeyLayout;
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

    fn key_prefix(layout: KeyLayout) -> &'static str {
        layout.price_prefix()
    }
    fn key_for(layout: KeyLayout, token: &str) -> Result<String> {
        layout.price_key(token)
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
