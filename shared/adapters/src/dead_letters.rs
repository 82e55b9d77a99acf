//! The dead-letter queues as operators see them: how many messages each holds, and a redrive
//! that moves them back to the queue they came from.
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
