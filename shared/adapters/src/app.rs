//! What the functions share beyond the edges: the app of a function whose only need is the
//! store, and why a queue consumer did not process a message.

use oms_domain::app::fulfillment::FulfillmentAppError;
use oms_domain::app::notify::NotifyError;

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

/// Whether a queue message that failed with this error should be tried again.
pub trait Retryable: std::error::Error {
    fn is_retryable(&self) -> bool;
}

impl Retryable for FulfillmentAppError {
    fn is_retryable(&self) -> bool {
        FulfillmentAppError::is_retryable(self)
    }
}

impl Retryable for NotifyError {
    fn is_retryable(&self) -> bool {
        NotifyError::is_retryable(self)
    }
}

/// Why a queue consumer did not process one message of its batch; the queue will deliver it
/// again, and after its last attempt move it to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum MessageError<E: Retryable> {
    #[error("the message is not an order event: {0}")]
    Poison(serde_json::Error),
    #[error("{0} (retryable: {retryable})", retryable = .0.is_retryable())]
    Failed(#[from] E),
}
