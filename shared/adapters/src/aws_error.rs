//! The one place an AWS SDK error becomes a domain [`StoreError`].
//!
//! A failed condition is [`StoreError::ConditionFailed`]: the caller lost a race or found the
//! item changed, which the domain decides what to do about.
//! Throttling, transaction conflicts, server errors, timeouts and connection failures are
//! retryable: a queue consumer leaves the message for another attempt and an HTTP handler answers
//! 503. Everything else (permissions, validation, a missing table) is a failure to investigate.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use oms_domain::ports::StoreError;

/// Error codes that mean "the same call may succeed later".
const RETRYABLE_CODES: [&str; 8] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "ServiceUnavailable",
    "Throttling",
];

/// Classifies any AWS SDK error; `what` names the call for the log.
pub fn classify<E, R>(what: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&error)
    );
    match &error {
        _ if error.code() == Some("ConditionalCheckFailedException") => StoreError::ConditionFailed,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Retryable(message)
        }
        _ if error.code().is_some_and(|c| RETRYABLE_CODES.contains(&c)) => {
            StoreError::Retryable(message)
        }
        _ => StoreError::Failed(message),
    }
}
