//! What a function builds once per cold start, for the functions whose only need is the store.

use crate::config::ConfigError;
use crate::dynamo::DynamoStore;

/// What a function needs when the store is all it needs, built once per cold start; its tests
/// build it on the in-memory store.
#[derive(Default)]
pub struct StoreApp<S> {
    pub store: S,
}

impl StoreApp<DynamoStore> {
    /// The store on the table `TABLE_NAME` names.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(StoreApp {
            store: DynamoStore::from_env()?,
        })
    }
}
