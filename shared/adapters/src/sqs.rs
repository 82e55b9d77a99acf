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
