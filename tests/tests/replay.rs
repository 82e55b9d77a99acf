//! Every order change the test suite made, replayed: the table's stream, read from its start
//! (the emulator keeps every record since the table was created), and for each order record the
//! events its recorded change publishes compared, byte for byte, with what the comparison of
//! the record's old and new images published before changes were recorded. The test command
//! runs it after the system tests, on their stack.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use oms_adapters::dynamo::{decode_item, TableItem};
use oms_domain::events::recorded_agrees_with_legacy;
use oms_domain::order::Order;
use oms_system_tests::Stack;

fn order(image: Option<&HashMap<String, AttributeValue>>) -> Option<Order> {
    let image = image.filter(|m| !m.is_empty())?;
    match decode_item(serde_dynamo::Item::from(image.clone()), "BER-1")
        .expect("a stored item decodes")
    {
        TableItem::Order(order) => Some(*order),
        _ => None,
    }
}

#[tokio::test]
async fn every_recorded_change_of_the_suite_publishes_what_the_image_comparison_did() {
    let stack = Stack::connect().await;
    let sdk = stack.sdk().await;
    let table = aws_sdk_dynamodb::Client::new(&sdk)
        .describe_table()
        .table_name(stack.resource("OrdersTable"))
        .send()
        .await
        .expect("the orders table")
        .table
        .expect("a table description");
    let arn = table.latest_stream_arn.expect("the table has a stream");
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("the stream")
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let (mut compared, mut unrecorded, mut mismatches) = (0, 0, Vec::new());
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id.expect("a shard id"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("a shard iterator")
            .shard_iterator;
        while let Some(current) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(current)
                .limit(1000)
                .send()
                .await
                .expect("the stream's records");
            let records = page.records.unwrap_or_default();
            for record in &records {
                let Some(change) = record.dynamodb.as_ref() else {
                    continue;
                };
                let Some(new) = order(change.new_image.as_ref()) else {
                    continue;
                };
                let old = order(change.old_image.as_ref());
                match recorded_agrees_with_legacy(old.as_ref(), &new) {
                    Ok(true) => compared += 1,
                    Ok(false) => unrecorded += 1,
                    Err(mismatch) => mismatches.push(mismatch),
                }
            }
            // The emulator's open shard answers an iterator for ever: stop when it is read out.
            iterator = if records.is_empty() {
                None
            } else {
                page.next_shard_iterator
            };
        }
    }
    println!("{compared} recorded changes compared, {unrecorded} without a recorded change");
    assert!(
        mismatches.is_empty(),
        "{} differ: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    assert!(compared > 100, "the suite's changes were read: {compared}");
}
