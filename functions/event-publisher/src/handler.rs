//! The stream handler: derive one event per meaningful change, publish, report what failed.

use std::collections::BTreeSet;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config::TopicConfig;
use oms_adapters::dynamo::{decode_item, TableItem};
use oms_adapters::sns::{EventPublisher, EventSink, OutgoingEvent};
use oms_domain::events::{
    order_event, psp_request_events, refund_events, reorder_event, stock_event,
};
use oms_domain::ports::StoreError;

/// What the function needs, built once per cold start.
pub struct App<P> {
    pub publisher: P,
    /// The location whose counters a product item keeps at its top level (the shipping
    /// policy's warehouse).
    pub default_location: String,
}

impl App<EventPublisher> {
    pub async fn from_env() -> Result<Self, Error> {
        let topic = TopicConfig::from_env()?;
        Ok(App {
            publisher: EventPublisher::lazy(topic.topic_arn),
            default_location: oms_adapters::config::shipping_policy_from_env()?
                .warehouse()
                .to_owned(),
        })
    }
}

/// Publishes the batch's events and reports the records whose events were not published.
///
/// The stream delivers a batch again from its first record reported as failed, so a change of
/// an item after one of the same item that failed (to publish, or to be read) is held back
/// rather than published ahead of it: subscribers see an item's changes in their order. The
/// other items' changes go out (again, on a retry: at least once), so a record that never reads
/// holds back only its own item. Changes of different items go out side by side, the first
/// change of each item together, then the second, and so on.
pub async fn handle<P: EventSink>(
    app: &App<P>,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = &event.payload.records;
    let mut failed_records = BTreeSet::new();
    // The records of each item, in order: wave n publishes every item's n-th change. A record
    // that cannot be read holds back its item's later changes, not the other items'.
    let mut per_item: Vec<(String, Vec<(usize, Vec<OutgoingEvent>)>)> = Vec::new();
    let mut held_back: BTreeSet<String> = BTreeSet::new();
    for (index, record) in records.iter().enumerate() {
        let item = item_key(record);
        let events = match derive(record, &app.default_location) {
            Ok(events) => events,
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "a stream record could not be read");
                failed_records.insert(index);
                held_back.insert(item);
                continue;
            }
        };
        if held_back.contains(&item) {
            failed_records.insert(index);
            continue;
        }
        match per_item.iter_mut().find(|(key, _)| *key == item) {
            Some((_, changes)) => changes.push((index, events)),
            None => per_item.push((item, vec![(index, events)])),
        }
    }
    let mut published: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut sent = 0;
    let waves = per_item.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    for wave in 0..waves {
        let mut outgoing = Vec::new();
        let mut source = Vec::new();
        for (item, changes) in &per_item {
            let Some((index, events)) = changes.get(wave) else {
                continue;
            };
            if held_back.contains(item) {
                failed_records.insert(*index);
                continue;
            }
            for event in events {
                outgoing.push(event.clone());
                source.push((*index, item.clone()));
            }
        }
        let failed: BTreeSet<usize> = app
            .publisher
            .publish_all(&outgoing)
            .await
            .into_iter()
            .collect();
        for (position, event) in outgoing.iter().enumerate() {
            if failed.contains(&position) {
                let (index, item) = &source[position];
                failed_records.insert(*index);
                held_back.insert(item.clone());
            } else {
                *published.entry(event.event_type).or_default() += 1;
            }
        }
        sent += outgoing.len();
    }
    // The business's figures: what was published, by type (a record retried after a partial
    // failure counts again what it had published).
    oms_adapters::metrics::emit_counts("Events", "EventType", published);
    tracing::info!(
        records = records.len(),
        published = sent,
        failed = failed_records.len(),
        "batch done"
    );

    let mut response = DynamoDbEventResponse::default();
    for index in failed_records {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = records[index].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// The item a stream record changed (its partition key): an order, a product.
fn item_key(record: &EventRecord) -> String {
    record
        .change
        .keys
        .get("pk")
        .and_then(|value| serde_json::to_value(value).ok())
        .map(|value| value.to_string())
        .unwrap_or_else(|| record.event_id.clone())
}

fn image(
    item: &serde_dynamo::Item,
    default_location: &str,
) -> Result<Option<TableItem>, StoreError> {
    if item.is_empty() {
        return Ok(None);
    }
    decode_item(item.clone(), default_location).map(Some)
}

fn outgoing<T: serde::Serialize>(
    event: &oms_domain::events::CloudEvent<T>,
) -> Result<OutgoingEvent, StoreError> {
    Ok(OutgoingEvent {
        event_type: event.event_type.as_str(),
        body: serde_json::to_string(event).map_err(|e| StoreError::Failed(e.to_string()))?,
    })
}

/// The events one change yields: an order's change and what it asked of the payment service
/// provider (refunds, captures, voids), or a stock alert. A record whose events are not all published is retried whole; consumers deduplicate.
fn derive(record: &EventRecord, default_location: &str) -> Result<Vec<OutgoingEvent>, StoreError> {
    let old = image(&record.change.old_image, default_location)?;
    let new = image(&record.change.new_image, default_location)?;
    let mut events = Vec::new();
    match (old, new) {
        (old, Some(TableItem::Order(new))) => {
            let old = match old {
                Some(TableItem::Order(old)) => Some(old),
                _ => None,
            };
            if let Some(event) = order_event(old.as_deref(), Some(&new)) {
                events.push(outgoing(&event)?);
            }
            for event in refund_events(old.as_deref(), Some(&new)) {
                events.push(outgoing(&event)?);
            }
            for event in psp_request_events(old.as_deref(), Some(&new)) {
                events.push(outgoing(&event)?);
            }
        }
        (old, Some(TableItem::Product(new))) => {
            let old = match old {
                Some(TableItem::Product(old)) => Some(old),
                _ => None,
            };
            if let Some(event) = stock_event(old.as_deref(), Some(&new)) {
                events.push(outgoing(&event)?);
            }
            if let Some(event) = reorder_event(old.as_deref(), Some(&new)) {
                events.push(outgoing(&event)?);
            }
        }
        _ => {}
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what it was asked to publish, and fails the events of the types it is told to.
    #[derive(Default)]
    struct RecordingSink {
        published: Mutex<Vec<OutgoingEvent>>,
        failing_type: Option<&'static str>,
    }

    impl EventSink for RecordingSink {
        async fn publish_all(&self, events: &[OutgoingEvent]) -> Vec<usize> {
            let mut failed = Vec::new();
            for (index, event) in events.iter().enumerate() {
                if Some(event.event_type) == self.failing_type {
                    failed.push(index);
                } else {
                    self.published.lock().unwrap().push(event.clone());
                }
            }
            failed
        }
    }

    fn fixture() -> Event {
        oms_domain::fixtures::event("event-publisher/stream-batch.json")
    }

    async fn run(sink: RecordingSink) -> (Vec<OutgoingEvent>, Vec<String>) {
        let app = App {
            publisher: sink,
            default_location: "BER-1".into(),
        };
        let response = handle(
            &app,
            LambdaEvent::new(fixture(), lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        let failed = response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect();
        (app.publisher.published.into_inner().unwrap(), failed)
    }

    #[tokio::test]
    async fn one_event_per_meaningful_change() {
        let (published, failed) = run(RecordingSink::default()).await;
        let types: Vec<_> = published.iter().map(|e| e.event_type).collect();
        // Each item's changes in their order (an order's three, side by side with the SKU's).
        assert_eq!(
            types,
            [
                "oms.order.placed",
                "oms.inventory.low-stock",
                "oms.order.reserved",
                "oms.order.cancelled",
                "oms.refund.requested",
            ]
        );
        let refund: serde_json::Value = serde_json::from_str(&published[4].body).unwrap();
        assert_eq!(
            refund["data"]["amount"]["amount"], 5540,
            "the whole order is refunded"
        );
        assert_eq!(refund["data"]["reason"], "CANCELLATION");
        assert_eq!(refund["id"], refund["data"]["refundId"]);
        let reserved: serde_json::Value = serde_json::from_str(&published[2].body).unwrap();
        assert_eq!(reserved["specversion"], "1.0");
        assert_eq!(reserved["sequence"], 2);
        assert_eq!(reserved["data"]["previousStatus"], "PENDING");
        assert!(
            !published[0].body.contains("ada@example.com"),
            "no personal data in events"
        );
        // The corrupt record is reported, not skipped.
        assert_eq!(failed, ["500"]);
    }

    /// The order's second change is not published: its later changes are held back (the stream
    /// delivers them again after it, in their order), the SKU's change goes out, and nothing
    /// follows the record that cannot be read.
    #[tokio::test]
    async fn unpublished_events_are_reported_by_sequence_number() {
        let (published, failed) = run(RecordingSink {
            failing_type: Some("oms.order.reserved"),
            ..Default::default()
        })
        .await;
        let types: Vec<_> = published.iter().map(|e| e.event_type).collect();
        assert_eq!(types, ["oms.order.placed", "oms.inventory.low-stock"]);
        assert_eq!(failed, ["200", "250", "300", "500"]);
    }

    /// A record that cannot be read holds back only its own item's later changes: the other
    /// items' changes after it are published (a record that never reads cannot keep them from
    /// subscribers once the stream's retries are spent).
    #[tokio::test]
    async fn a_record_that_cannot_be_read_holds_back_only_its_own_item() {
        let mut batch = fixture();
        let broken = batch.records.pop().unwrap();
        let last = batch.records.pop().unwrap();
        batch.records.push(broken);
        batch.records.push(last);
        let app = App {
            publisher: RecordingSink::default(),
            default_location: "BER-1".into(),
        };
        let response = handle(
            &app,
            LambdaEvent::new(batch, lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect();
        assert_eq!(failed, ["500"]);
        let published = app.publisher.published.into_inner().unwrap();
        assert!(published
            .iter()
            .any(|e| e.event_type == "oms.inventory.low-stock"));
    }
}
