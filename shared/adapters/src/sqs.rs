//! The SQS edge shared by every queue consumer: each message of a batch processed on its own
//! (concurrently, in its own tracing span), and the failures reported as batch item failures so
//! only they are delivered again — and, after the queue's last attempt, moved to its dead-letter
//! queue — while the rest of the batch is done.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use oms_domain::events::{CloudEvent, OrderEventData};
use tracing::Instrument;

use crate::sns::event_json_from_sqs_body;

/// The ids of the messages a batch's answer reports as failed: what the queue delivers again.
pub fn failed_message_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// Runs `process` on every message and reports the ones that failed.
pub async fn for_each_message<'a, E, F, Fut>(event: &'a SqsEvent, process: F) -> SqsBatchResponse
where
    E: Display,
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let outcomes = futures::future::join_all(event.records.iter().map(|message| {
        let span = tracing::info_span!(
            "message",
            message_id = message.message_id.as_deref().unwrap_or_default()
        );
        process(message).instrument(span)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (message, outcome) in event.records.iter().zip(outcomes) {
        if let Err(error) = outcome {
            tracing::warn!(message_id = ?message.message_id, %error, "message failed; it will be delivered again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The order event a message carries (raw delivery, or inside an SNS envelope).
pub fn order_event(message: &SqsMessage) -> Result<CloudEvent<OrderEventData>, serde_json::Error> {
    serde_json::from_str(&event_json_from_sqs_body(
        message.body.as_deref().unwrap_or_default(),
    ))
}

/// How many times the queue has handed this message over, this time included (1 the first time).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Asks the queue to hand a failed message over again sooner (or later) than its visibility
/// timeout: the port of a consumer whose messages wait for each other.
pub trait Redelivery: Send + Sync {
    fn redeliver_after(
        &self,
        message: &SqsMessage,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Makes the message a receipt handle names visible at once.
    fn wake(&self, receipt_handle: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// [`Redelivery`] on an SQS queue: `ChangeMessageVisibility` on the message's receipt handle.
pub struct QueueRedelivery {
    client: crate::config::LazyClient<aws_sdk_sqs::Client>,
    queue_url: String,
}

impl QueueRedelivery {
    /// Redelivery on the queue at `queue_url`, whose client is built on first use.
    pub fn lazy(queue_url: impl Into<String>) -> Self {
        Self {
            client: crate::config::LazyClient::new(aws_sdk_sqs::Client::new),
            queue_url: queue_url.into(),
        }
    }
}

impl Redelivery for QueueRedelivery {
    async fn redeliver_after(
        &self,
        message: &SqsMessage,
        delay: std::time::Duration,
    ) -> Result<(), String> {
        let handle = message
            .receipt_handle
            .as_deref()
            .ok_or("the message has no receipt handle")?;
        self.change_visibility(handle, delay).await
    }

    async fn wake(&self, receipt_handle: &str) -> Result<(), String> {
        self.change_visibility(receipt_handle, std::time::Duration::ZERO)
            .await
    }
}

impl QueueRedelivery {
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), String> {
        let seconds = i32::try_from(delay.as_secs()).unwrap_or(i32::MAX);
        self.client
            .get()
            .await
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "ChangeMessageVisibility: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })
    }
}
