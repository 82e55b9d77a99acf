//! The dead-letter queues as operators see them: how many messages each holds, a redrive that
//! moves them back to the queue they came from, and the messages themselves, to read and, for a
//! poison message that will never succeed, to discard.
//!
//! The redrive is SQS's own message move task (`StartMessageMoveTask`): SQS moves the messages
//! back to their source queue at its pace, so a large queue does not hold the caller. Each
//! queue's consumer is idempotent, so a message that succeeds on its second try changes nothing
//! twice. The local stack's emulator answers the same call.

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use oms_domain::ports::StoreError;

use crate::aws_error::classify;
use crate::config::{ConfigError, LazyClient};

/// One dead-letter queue: its name, how many messages wait in it, and whether they are being
/// moved back now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterQueue {
    pub name: String,
    pub messages: u64,
    /// Messages received by a reader and not yet deleted or returned.
    pub in_flight: u64,
    /// A move task of this queue is running.
    pub moving: bool,
}

/// The dead-letter queues of the system, named by the template (`DEAD_LETTER_QUEUE_URLS`, comma
/// separated).
#[derive(Clone)]
pub struct DeadLetters {
    client: LazyClient<Client>,
    urls: Vec<String>,
}

/// A queue's name: the last part of its URL.
fn name_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

impl DeadLetters {
    pub fn from_env() -> Result<Self, ConfigError> {
        let urls = std::env::var("DEAD_LETTER_QUEUE_URLS")
            .map_err(|_| ConfigError::Missing("DEAD_LETTER_QUEUE_URLS"))?
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(DeadLetters {
            client: LazyClient::new(Client::new),
            urls,
        })
    }

    fn url_of(&self, name: &str) -> Option<&str> {
        self.urls
            .iter()
            .map(String::as_str)
            .find(|u| name_of(u) == name)
    }

    /// Every queue with its depth, in the template's order, read side by side.
    pub async fn list(&self) -> Result<Vec<DeadLetterQueue>, StoreError> {
        let client = self.client.get().await;
        futures::future::try_join_all(self.urls.iter().map(|url| self.depth(client, url))).await
    }

    async fn depth(&self, client: &Client, url: &str) -> Result<DeadLetterQueue, StoreError> {
        let attributes = client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify("read a dead-letter queue", e))?;
        let attributes = attributes.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let moving = match attributes.get(&QueueAttributeName::QueueArn) {
            Some(arn) => self.moving(client, arn).await?,
            None => false,
        };
        Ok(DeadLetterQueue {
            name: name_of(url).to_owned(),
            messages: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            moving,
        })
    }

    async fn moving(&self, client: &Client, arn: &str) -> Result<bool, StoreError> {
        let tasks = client
            .list_message_move_tasks()
            .source_arn(arn)
            .send()
            .await
            .map_err(|e| classify("list message move tasks", e))?;
        Ok(tasks
            .results
            .unwrap_or_default()
            .iter()
            .any(|t| t.status.as_deref() == Some("RUNNING")))
    }

    /// Starts moving every message of the queue `name` back to its source queue. `None` if no
    /// dead-letter queue has that name.
    pub async fn redrive(&self, name: &str) -> Result<Option<()>, StoreError> {
        let Some(url) = self.url_of(name) else {
            return Ok(None);
        };
        let client = self.client.get().await;
        let arn = client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify("read a dead-letter queue", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| StoreError::Failed("the queue has no ARN".into()))?;
        client
            .start_message_move_task()
            .source_arn(arn)
            .send()
            .await
            .map_err(|e| classify("start a message move task", e))?;
        tracing::info!(queue = name, "dead-letter queue redrive started");
        Ok(Some(()))
    }
}

/// One dead-lettered message as staff read it before deciding: its body (an event, or an
/// outbox's job — an e-mail or SMS with its recipient: shown to administrators only, never
/// logged), how often it was tried, and the handle that discards it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    /// The body, cut at [`BODY_SHOWN`] characters.
    pub body: String,
    pub receive_count: u64,
    /// When it was first sent.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Valid while the message is held for this reader ([`READ_HOLD_SECONDS`]).
    pub receipt_handle: String,
}

/// How many characters of a message's body are shown.
pub const BODY_SHOWN: usize = 4_000;

/// How long messages read for staff are held from other readers (and from a redrive): long
/// enough to read and discard one, short enough that the rest come back soon.
pub const READ_HOLD_SECONDS: i32 = 60;

impl DeadLetters {
    /// Up to ten of the queue `name`'s messages, held from other readers for
    /// [`READ_HOLD_SECONDS`]. `None` if no dead-letter queue has that name.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<DeadLetter>>, StoreError> {
        let Some(url) = self.url_of(name) else {
            return Ok(None);
        };
        let output = self
            .client
            .get()
            .await
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(READ_HOLD_SECONDS)
            // A short wait: without one SQS may answer nothing although messages are there.
            .wait_time_seconds(1)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
            )
            .send()
            .await
            .map_err(|e| classify("read a dead-letter queue's messages", e))?;
        let letters = output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attribute = |name| {
                    m.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse::<i64>().ok())
                };
                use aws_sdk_sqs::types::MessageSystemAttributeName as Attribute;
                DeadLetter {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    body: m
                        .body()
                        .unwrap_or_default()
                        .chars()
                        .take(BODY_SHOWN)
                        .collect(),
                    receive_count: attribute(Attribute::ApproximateReceiveCount)
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    sent_at: attribute(Attribute::SentTimestamp)
                        .and_then(chrono::DateTime::from_timestamp_millis),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                }
            })
            .collect();
        Ok(Some(letters))
    }

    /// Deletes the message `receipt_handle` names from the queue `name`: a poison message staff
    /// decided is not to be tried again. `None` if no dead-letter queue has that name.
    pub async fn discard(
        &self,
        name: &str,
        receipt_handle: &str,
    ) -> Result<Option<()>, StoreError> {
        let Some(url) = self.url_of(name) else {
            return Ok(None);
        };
        self.client
            .get()
            .await
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| classify("discard a dead-lettered message", e))?;
        tracing::info!(queue = name, "dead-lettered message discarded");
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_named_by_its_url() {
        assert_eq!(
            name_of("https://sqs.eu-central-1.amazonaws.com/123456789012/oms-notifier-dlq"),
            "oms-notifier-dlq"
        );
    }
}
