//! The event sources Lambda runs for queues and streams, emulated: they poll, batch, invoke the
//! function with the event shapes Lambda sends, and honour its answer.
//!
//! - SQS: receive up to the batch size, invoke, delete the messages that succeeded. With
//!   `ReportBatchItemFailures`, only the listed messages stay; without it, an error keeps the whole
//!   batch. Kept messages reappear after the queue's visibility timeout, and the queue's redrive
//!   policy moves them to the dead-letter queue after `maxReceiveCount` receipts.
//! - DynamoDB streams: read each shard in order from `TRIM_HORIZON`; on failure retry from the
//!   first failed record (or the whole batch) up to `MaximumRetryAttempts`, then send a record of
//!   the failed batch to the on-failure destination and move on, as Lambda does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{json, Value};

use crate::lambda::Invoker;

/// One SQS event source mapping.
pub struct SqsSource {
    pub binary: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: usize,
    pub report_failures: bool,
    pub region: String,
}

/// Polls one queue forever. Several pollers may share a queue, as Lambda scales out.
pub async fn poll_queue(sqs: aws_sdk_sqs::Client, invoker: Invoker, source: Arc<SqsSource>) {
    loop {
        if let Err(error) = poll_queue_once(&sqs, &invoker, &source).await {
            tracing::warn!(queue = %source.queue_arn, %error, "polling failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn poll_queue_once(
    sqs: &aws_sdk_sqs::Client,
    invoker: &Invoker,
    source: &SqsSource,
) -> Result<(), BoxError> {
    let output = sqs
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(source.batch_size.min(10) as i32)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await?;
    let messages = output.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(());
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> =
                m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect()).unwrap_or_default();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), json!({"stringValue": v.string_value(), "dataType": v.data_type(), "stringListValues": [], "binaryListValues": []})))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": source.region,
            })
        })
        .collect();
    let event = json!({"Records": records});
    let failed: Vec<String> = match invoker.invoke_batch(&source.binary, &event).await {
        Ok(response) if source.report_failures => response["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Ok(_) => Vec::new(),
        Err(error) => {
            tracing::warn!(function = %source.binary, %error, "the batch failed as a whole");
            messages
                .iter()
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect()
        }
    };
    let entries = deletions(messages.iter().enumerate().filter(|(_, m)| {
        !m.message_id()
            .is_some_and(|id| failed.iter().any(|f| f == id))
    }));
    tracing::debug!(function = %source.binary, received = messages.len(), failed = failed.len(), "batch done");
    if !entries.is_empty() {
        sqs.delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(())
}

/// The `DeleteMessageBatch` entries for `(index, message)` pairs.
fn deletions<'a>(
    messages: impl Iterator<Item = (usize, &'a aws_sdk_sqs::types::Message)>,
) -> Vec<DeleteMessageBatchRequestEntry> {
    messages
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle()?)
                .build()
                .ok()
        })
        .collect()
}

/// One DynamoDB stream event source mapping.
pub struct StreamSource {
    pub binary: String,
    pub stream_arn: String,
    pub batch_size: usize,
    pub max_retries: i64,
    pub report_failures: bool,
    /// Where a batch goes after its last retry: an SQS queue URL.
    pub on_failure_queue_url: Option<String>,
    pub region: String,
}

/// Reads every shard of the stream forever.
pub async fn poll_stream(
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    invoker: Invoker,
    source: Arc<StreamSource>,
) {
    let mut started: std::collections::HashSet<String> = Default::default();
    loop {
        match streams
            .describe_stream()
            .stream_arn(&source.stream_arn)
            .send()
            .await
        {
            Ok(output) => {
                for shard in output
                    .stream_description
                    .map(|d| d.shards.unwrap_or_default())
                    .unwrap_or_default()
                {
                    let Some(id) = shard.shard_id else { continue };
                    if started.insert(id.clone()) {
                        tokio::spawn(poll_shard(
                            streams.clone(),
                            sqs.clone(),
                            invoker.clone(),
                            source.clone(),
                            id,
                        ));
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "describing the stream failed"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn record_json(record: &aws_sdk_dynamodbstreams::types::Record, source: &StreamSource) -> Value {
    let change = record.dynamodb.as_ref();
    let item = |map: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        map.map(|m| {
            serde_json::to_value(serde_dynamo::Item::from(m.clone())).unwrap_or(Value::Null)
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.and_then(|c| c.approximate_creation_date_time()).map(|t| t.secs()),
        "Keys": item(change.and_then(|c| c.keys.as_ref())),
        "SequenceNumber": change.and_then(|c| c.sequence_number()),
        "SizeBytes": change.and_then(|c| c.size_bytes()),
        "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str().to_owned()),
    });
    if let Some(new) = item(change.and_then(|c| c.new_image.as_ref())) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = item(change.and_then(|c| c.old_image.as_ref())) {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str().to_owned()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": source.region,
        "dynamodb": dynamodb,
        "eventSourceARN": source.stream_arn,
    })
}

async fn poll_shard(
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    invoker: Invoker,
    source: Arc<StreamSource>,
    shard_id: String,
) {
    let mut iterator = loop {
        match streams
            .get_shard_iterator()
            .stream_arn(&source.stream_arn)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
        {
            Ok(output) => break output.shard_iterator,
            Err(error) => {
                tracing::warn!(%error, "no shard iterator yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut backlog: Vec<Value> = Vec::new();
    while let Some(current) = iterator.take() {
        match streams
            .get_records()
            .shard_iterator(&current)
            .limit(1000)
            .send()
            .await
        {
            Ok(output) => {
                backlog.extend(
                    output
                        .records
                        .unwrap_or_default()
                        .iter()
                        .map(|r| record_json(r, &source)),
                );
                iterator = output.next_shard_iterator;
            }
            Err(error) => {
                tracing::warn!(%error, "reading the stream failed");
                iterator = Some(current);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        while !backlog.is_empty() {
            let size = source.batch_size.min(backlog.len());
            let batch: Vec<Value> = backlog.drain(..size).collect();
            deliver(&sqs, &invoker, &source, batch).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delivers one batch, retrying from the first failed record, then gives up to the on-failure
/// destination.
async fn deliver(
    sqs: &aws_sdk_sqs::Client,
    invoker: &Invoker,
    source: &StreamSource,
    mut batch: Vec<Value>,
) {
    let mut attempt: i64 = 0;
    loop {
        let first_failed = match invoker
            .invoke_batch(&source.binary, &json!({"Records": batch}))
            .await
        {
            Ok(response) if source.report_failures => {
                let failed: Vec<&str> = response["batchItemFailures"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|i| i["itemIdentifier"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                batch.iter().position(|r| {
                    r["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .is_some_and(|s| failed.contains(&s))
                })
            }
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(function = %source.binary, %error, "the stream batch failed");
                Some(0)
            }
        };
        let Some(first_failed) = first_failed else {
            return;
        };
        batch.drain(..first_failed);
        attempt += 1;
        if source.max_retries >= 0 && attempt > source.max_retries {
            tracing::error!(function = %source.binary, records = batch.len(), "retries exhausted; sending to the on-failure destination");
            if let Some(url) = &source.on_failure_queue_url {
                let first = batch
                    .first()
                    .map(|r| r["dynamodb"]["SequenceNumber"].clone());
                let last = batch
                    .last()
                    .map(|r| r["dynamodb"]["SequenceNumber"].clone());
                let message = json!({
                    "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempt},
                    "DDBStreamBatchInfo": {"streamArn": source.stream_arn, "startSequenceNumber": first, "endSequenceNumber": last, "batchSize": batch.len()},
                });
                if let Err(error) = sqs
                    .send_message()
                    .queue_url(url)
                    .message_body(message.to_string())
                    .send()
                    .await
                {
                    tracing::error!(%error, "the on-failure destination refused the batch");
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt.min(10) as u64)).await;
    }
}

/// Shows a person running the stack every customer notification as it is sent: one log line
/// each, read from a local queue subscribed to the notifications topic.
pub async fn log_notifications(sqs: aws_sdk_sqs::Client, queue_url: String) {
    loop {
        let output = match sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                tracing::warn!(%error, "reading the notifications failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let messages = output.messages.unwrap_or_default();
        for message in &messages {
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
            let headline = body["subject"]
                .as_str()
                .or(body["text"].as_str())
                .unwrap_or("(structured data)");
            tracing::info!(
                channel = body["channel"].as_str().unwrap_or_default(),
                event = body["eventType"].as_str().unwrap_or_default(),
                order = body["orderId"].as_str().unwrap_or_default(),
                "notification: {headline}"
            );
        }
        let shown = deletions(messages.iter().enumerate());
        if !shown.is_empty() {
            if let Err(error) = sqs
                .delete_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(shown))
                .send()
                .await
            {
                tracing::warn!(%error, "shown notifications could not be deleted");
            }
        }
    }
}
