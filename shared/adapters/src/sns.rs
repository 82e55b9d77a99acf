//! Publishing CloudEvents to an SNS topic.
//!
//! Events go out in batches of ten (`PublishBatch`); entries SNS reports as failed are sent again
//! with backoff, and whatever still fails is handed back to the caller, who reports it as a batch
//! item failure so the stream delivers it again. Nothing is dropped silently.

use std::time::Duration;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;

use crate::config::LazyClient;

/// The message attribute that subscribers' filter policies match on.
pub const EVENT_TYPE_ATTRIBUTE: &str = "eventType";

/// One event ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// The CloudEvent's JSON.
    pub body: String,
    /// The CloudEvent's `type`, also sent as the [`EVENT_TYPE_ATTRIBUTE`] message attribute.
    pub event_type: &'static str,
}

/// Where the event publisher sends events: SNS in Lambda, a recording fake in tests.
pub trait EventSink: Send + Sync {
    /// Publishes every event and returns the indexes of those that could not be published.
    fn publish_all(
        &self,
        events: &[OutgoingEvent],
    ) -> impl std::future::Future<Output = Vec<usize>> + Send;
}

impl EventSink for EventPublisher {
    async fn publish_all(&self, events: &[OutgoingEvent]) -> Vec<usize> {
        EventPublisher::publish_all(self, events).await
    }
}

/// Publishes to one topic.
#[derive(Clone)]
pub struct EventPublisher {
    client: LazyClient<Client>,
    topic_arn: String,
}

const SNS_BATCH_LIMIT: usize = 10;
const ATTEMPTS: u32 = 3;

/// The pause before attempt `n` (from 1) of the entries that failed.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt)
}

/// The longest [`EventPublisher::publish_all`] can take: every batch is sent at once, and each
/// is tried [`ATTEMPTS`] times, every attempt bounded by the SDK's operation timeout. The
/// publisher's function timeout must cover it (a test reads both).
pub fn worst_case_publish() -> Duration {
    (1..ATTEMPTS).map(backoff).sum::<Duration>() + crate::config::OPERATION_TIMEOUT * ATTEMPTS
}

impl EventPublisher {
    /// A publisher to `topic_arn` whose client is built from the shared SDK configuration on its
    /// first publish.
    pub fn lazy(topic_arn: impl Into<String>) -> Self {
        Self {
            client: LazyClient::new(Client::new),
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes every event and returns the indexes of those that could not be published. The
    /// batches go out side by side, so a stream batch's worst case is one batch's
    /// ([`worst_case_publish`]), not the sum of all of them.
    pub async fn publish_all(&self, events: &[OutgoingEvent]) -> Vec<usize> {
        let batches =
            events
                .chunks(SNS_BATCH_LIMIT)
                .enumerate()
                .map(|(chunk_index, chunk)| async move {
                    let offset = chunk_index * SNS_BATCH_LIMIT;
                    let mut pending: Vec<usize> = (0..chunk.len()).collect();
                    for attempt in 0..ATTEMPTS {
                        if attempt > 0 {
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                        pending = self.publish_batch(chunk, &pending).await;
                        if pending.is_empty() {
                            break;
                        }
                    }
                    pending.into_iter().map(move |i| offset + i)
                });
        futures::future::join_all(batches)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Sends the `pending` entries of `chunk` once; returns those that failed.
    async fn publish_batch(&self, chunk: &[OutgoingEvent], pending: &[usize]) -> Vec<usize> {
        let mut entries = Vec::with_capacity(pending.len());
        let mut unbuildable = Vec::new();
        for &index in pending {
            let event = &chunk[index];
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(event.event_type)
                .build();
            let entry = attribute.and_then(|attribute| {
                PublishBatchRequestEntry::builder()
                    .id(format!("e{index}"))
                    .message(&event.body)
                    .message_attributes(EVENT_TYPE_ATTRIBUTE, attribute)
                    .build()
            });
            match entry {
                Ok(entry) => entries.push(entry),
                Err(error) => {
                    tracing::error!(%error, "cannot build a publish entry");
                    unbuildable.push(index);
                }
            }
        }
        if entries.is_empty() {
            return unbuildable;
        }
        match self
            .client
            .get()
            .await
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                let mut failed = unbuildable;
                failed.extend(output.failed().iter().filter_map(|f| {
                    tracing::warn!(
                        code = f.code(),
                        sender_fault = f.sender_fault(),
                        "an event was not published"
                    );
                    f.id()
                        .strip_prefix('e')
                        .and_then(|i| i.parse::<usize>().ok())
                }));
                failed
            }
            Err(error) => {
                tracing::warn!(error = %aws_sdk_sns::error::DisplayErrorContext(&error), "publishing a batch failed");
                pending.to_vec()
            }
        }
    }
}

/// Publishes customer notifications, with the attributes subscribers filter on: `eventType`,
/// `channel` (`email`, `sms`, `webhook`) and `customerId`.
#[derive(Clone)]
pub struct NotificationPublisher {
    client: LazyClient<Client>,
    topic_arn: String,
}

impl NotificationPublisher {
    /// A publisher to `topic_arn` whose client is built from the shared SDK configuration on its
    /// first publish.
    pub fn lazy(topic_arn: impl Into<String>) -> Self {
        Self {
            client: LazyClient::new(Client::new),
            topic_arn: topic_arn.into(),
        }
    }
}

impl oms_domain::ports::NotificationSink for NotificationPublisher {
    async fn send(
        &self,
        notification: &oms_domain::notifications::Notification,
    ) -> Result<(), oms_domain::ports::StoreError> {
        let string = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
        };
        let failed = |e: aws_sdk_sns::error::BuildError| {
            oms_domain::ports::StoreError::Failed(e.to_string())
        };
        let body = serde_json::to_string(notification)
            .map_err(|e| oms_domain::ports::StoreError::Failed(e.to_string()))?;
        let mut request = self
            .client
            .get()
            .await
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .message_attributes(
                EVENT_TYPE_ATTRIBUTE,
                string(notification.event_type.as_str()).map_err(failed)?,
            )
            .message_attributes(
                "channel",
                string(notification.channel.as_str()).map_err(failed)?,
            )
            .message_attributes(
                "customerId",
                string(notification.customer_id.as_str()).map_err(failed)?,
            );
        if let Some(subject) = &notification.subject {
            // SNS subjects are ASCII-free of line breaks and at most 100 characters.
            request = request.subject(
                subject
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect::<String>(),
            );
        }
        request
            .send()
            .await
            .map_err(|e| crate::aws_error::classify("publish notification", e))?;
        crate::metrics::emit_counts(
            "NotificationsSent",
            "Channel",
            [(notification.channel.as_str(), 1)],
        );
        Ok(())
    }
}

/// The event JSON in an SQS message body from an SNS subscription: the body itself with raw
/// message delivery (as the template subscribes queues), or the `Message` of the SNS envelope
/// without it, so a queue subscribed either way works.
pub fn event_json_from_sqs_body(body: &str) -> std::borrow::Cow<'_, str> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "Message")]
        message: String,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(envelope) if envelope.kind == "Notification" => {
            std::borrow::Cow::Owned(envelope.message)
        }
        _ => std::borrow::Cow::Borrowed(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_an_sns_envelope_and_passes_raw_bodies_through() {
        let raw = r#"{"specversion":"1.0","id":"x"}"#;
        assert_eq!(event_json_from_sqs_body(raw), raw);
        let wrapped = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": raw})
            .to_string();
        assert_eq!(event_json_from_sqs_body(&wrapped), raw);
    }
}
