//! Figure 7, **requests and cost per order** — moto's request recorder captures every call one
//! order makes from intake to delivered, paid for (authorized at checkout, captured on
//! shipment); with the stack's invocation counts, priced at list
//! prices.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oms_adapters::dynamo::DynamoStore;
use oms_domain::ids::OrderId;
use oms_domain::ports::NotificationStore;
use oms_system_tests::{unique, Stack};
use serde_json::{json, Value};

use crate::common::{settled, BoxError};

/// The app name of the benchmark's own reads while it waits for an order's notifications.
const WATCHER_APP: &str = "oms-bench-watcher";

#[derive(serde::Serialize, Default)]
pub struct CostPerOrder {
    dynamodb_requests: BTreeMap<String, u64>,
    dynamodb_items_written: u64,
    dynamodb_write_units: f64,
    dynamodb_read_units: f64,
    sns_publishes: u64,
    /// Per action: the receives that brought the order's messages (one per invocation of a
    /// queue-triggered function), the deletes that followed, and the functions' own sends.
    sqs_requests: BTreeMap<String, u64>,
    /// Long polls that came back empty while the order was recorded: a cost per queue and hour,
    /// not per order, left out of the bill.
    sqs_empty_polls: u64,
    lambda_invocations: BTreeMap<String, u64>,
    least_item_writes: u64,
    dollars_per_million_orders: BTreeMap<String, f64>,
}

/// Every call one order makes from intake to delivered, from moto's request recorder and the
/// stack's invocation counts.
pub async fn cost_per_order(stack: &Stack) -> Result<CostPerOrder, BoxError> {
    let sku = stack.create_sku("COST", 100).await;
    let before = settled(stack).await?;
    stack.start_recording().await;

    let customer = unique("cost");
    let reply = stack
        .place_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    let id = reply.body["orderId"].as_str().ok_or("no id")?.to_owned();
    stack.wait_status(&customer, &id, "FULFILLING").await;
    // No ETag to start from: picking needs none, and reading the shipment first would be
    // counted among the order's calls.
    let number = stack.pick_pack_ship(&id, None).await;
    // The PSP took the money the shipment asked it to capture (the authorization came with the
    // checkout, in place_order).
    stack.psp("capture.succeeded", &reply.body).await;
    for (n, status) in ["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]
        .iter()
        .enumerate()
    {
        let event = json!({"eventId": format!("cost-{id}-{n}"), "shipmentReference": id, "trackingNumber": number, "status": status, "occurredAt": "2026-11-30T10:00:00Z"});
        stack.carrier_event(&event, None).await;
    }
    let delivered = stack.wait_status(&customer, &id, "DELIVERED").await;
    // Notifications follow the last event, and one that arrived before its predecessor waits a
    // visibility timeout: wait until the notifier's cursor has passed the order's last event,
    // then until everything it set off has run.
    let version = delivered["version"].as_u64().ok_or("no version")?;
    // These reads carry an app name of their own, so the recording below leaves them out.
    let watcher = stack
        .sdk()
        .await
        .into_builder()
        .app_name(aws_config::AppName::new(WATCHER_APP)?)
        .build();
    let table = DynamoStore::from_config(&watcher, stack.resource("OrdersTable"));
    let order_id = OrderId::parse(id.as_str())?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while NotificationStore::cursor(&table, &order_id).await?.next <= version {
        if Instant::now() > deadline {
            return Err("the notifier did not finish the order's events in 180 s".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = settled(stack).await?;
    let recorded = stack.stop_recording().await;

    let mut cost = CostPerOrder::default();
    for (function, count) in &after {
        let delta = count - before.get(function).copied().unwrap_or(0);
        if delta > 0 {
            cost.lambda_invocations.insert(function.clone(), delta);
        }
    }
    // Lambda's queue pollers receive a batch for each invocation of a queue-triggered function;
    // the rest of their receives came back empty.
    let queue_triggered = oms_system_tests::functions_triggered_by("SQS");
    let receives_with_messages: u64 = cost
        .lambda_invocations
        .iter()
        .filter(|(function, _)| queue_triggered.contains(*function))
        .map(|(_, count)| count)
        .sum();
    let mut receives = 0;
    // The scheduled sweep runs on the clock, not per order: its requests are a cost per hour.
    let scheduled = oms_system_tests::functions_triggered_by("Schedule");
    for request in recorded
        .iter()
        .filter(|r| r.app.as_deref() != Some(WATCHER_APP))
        .filter(|r| !r.app.as_deref().is_some_and(|app| scheduled.contains(app)))
        // The local stack's notification log is no part of the system.
        .filter(|r| !r.body.contains("notifications-log"))
    {
        let request_body: Value = serde_json::from_str(&request.body).unwrap_or_default();
        let units = |item: &Value| (item.to_string().len() as f64 / 1024.0).ceil().max(1.0);
        match request.action.split_once(':').unwrap_or_default() {
            // Lambda's stream polling is not billed per request.
            ("dynamodb", "GetRecords" | "GetShardIterator" | "DescribeStream" | "ListStreams") => {}
            ("dynamodb", action) => {
                *cost.dynamodb_requests.entry(action.to_owned()).or_default() += 1;
                match action {
                    "PutItem" => {
                        cost.dynamodb_items_written += 1;
                        cost.dynamodb_write_units += units(&request_body["Item"]);
                    }
                    "UpdateItem" => {
                        cost.dynamodb_items_written += 1;
                        cost.dynamodb_write_units += 1.0;
                    }
                    "TransactWriteItems" => {
                        for item in request_body["TransactItems"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            cost.dynamodb_items_written += 1;
                            // Transactions cost two write units per KB.
                            cost.dynamodb_write_units +=
                                2.0 * item.get("Put").map(|p| units(&p["Item"])).unwrap_or(1.0);
                        }
                    }
                    "GetItem" | "Query" => cost.dynamodb_read_units += 1.0,
                    "BatchGetItem" => {
                        cost.dynamodb_read_units += request_body["RequestItems"]
                            .as_object()
                            .map(|t| {
                                t.values()
                                    .map(|v| v["Keys"].as_array().map_or(0, Vec::len))
                                    .sum::<usize>()
                            })
                            .unwrap_or(0)
                            as f64;
                    }
                    _ => {}
                }
            }
            ("sqs", "ReceiveMessage") if request.app.is_none() => receives += 1,
            ("sqs", action) => {
                *cost.sqs_requests.entry(action.to_owned()).or_default() += 1;
            }
            ("sns", "Publish") => cost.sns_publishes += 1,
            ("sns", "PublishBatch") => {
                cost.sns_publishes += request.body.matches(".Message=").count().max(1) as u64
            }
            _ => {}
        }
    }
    cost.sqs_requests.insert(
        "ReceiveMessage".into(),
        receives_with_messages.min(receives),
    );
    cost.sqs_empty_polls = receives.saturating_sub(receives_with_messages);
    // The least any design could write: every item that must change, once per change.
    // Order created 1; reserve 1 line + order 2; to the warehouse 1; pick 1; pack 1;
    // ship 1 line + order 2; three carrier events 3.
    cost.least_item_writes = 11;
    // List prices, us-east-1, as published by AWS in 2025: DynamoDB on-demand $0.625 per million
    // write request units and $0.125 per million read units; Lambda $0.20 per million requests
    // and $0.0000133334 per GB-second on arm64 (at 128 MB and ~10 ms per call); SNS $0.50 per
    // million publishes (deliveries to SQS free); SQS $0.40 per million requests.
    let lambda_calls: u64 = cost.lambda_invocations.values().sum();
    let sqs_calls: u64 = cost.sqs_requests.values().sum();
    let per_million = |units: f64, price: f64| units * price;
    let mut dollars = BTreeMap::new();
    dollars.insert(
        "dynamodb".to_owned(),
        per_million(cost.dynamodb_write_units, 0.625)
            + per_million(cost.dynamodb_read_units, 0.125),
    );
    dollars.insert(
        "lambda".to_owned(),
        per_million(lambda_calls as f64, 0.20)
            + lambda_calls as f64 * 0.125 * 0.010 * 0.000_013_333_4 * 1e6,
    );
    dollars.insert(
        "sns".to_owned(),
        per_million(cost.sns_publishes as f64, 0.50),
    );
    dollars.insert("sqs".to_owned(), per_million(sqs_calls as f64, 0.40));
    let total: f64 = dollars.values().sum();
    dollars.insert("total".to_owned(), total);
    cost.dollars_per_million_orders = dollars;
    Ok(cost)
}
