//! Pool states under `pool:{address}` (`pool:{pools}:{address}` with
//! [`crate::keys::KeyLayout::Tagged`]): see [`crate::cache::Cache`] for the operations and
//! [`crate::price_impact`] for the swap math that reads them.

use chrono::{DateTime, Utc};

use crate::cache::{Cache, CacheOperations, Cached};
use crate::error::Result;
use crate::keys::KeyLayout;
use crate::metrics::Operation;
use crate::models::PoolState;

/// Cache of [`PoolState`] keyed by pool address.
pub type PoolStateCache = Cache<PoolState>;

impl Cached for PoolState {
    const WHAT: &'static str = "pool state";
    const OPERATIONS: CacheOperations = CacheOperations {
        get: Operation::PoolGet,
        get_many: Operation::PoolGetMany,
        set: Operation::PoolSet,
        set_many: Operation::PoolSetMany,
    };

    fn key_prefix(layout: KeyLayout) -> &'static str {
        layout.pool_prefix()
    }
    fn key_for(layout: KeyLayout, address: &str) -> Result<String> {
        layout.pool_key(address)
    }
    fn id(&self) -> &str {
        &self.pool_address
    }
    fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
    fn encode(&self) -> String {
        self.to_json()
    }
    fn decode(bytes: &[u8], key: &str) -> Result<Self> {
        PoolState::from_json(bytes, key)
    }
}
