//! Figure 8, **step → message latency** — how long after an order's step its customer's message
//! goes out. Orders are driven through their whole life with the steps taken back to back (placed
//! and paid for at once, picked, packed and shipped as soon as the warehouse has them, out for
//! delivery and delivered by the carrier right after), so each order's events reach the notifier
//! close together and out of order, the case its waits are made for. A step's time is its entry
//! in the order's timeline; a message's, when it reached a probe queue subscribed to the
//! notifications topic (SQS's `SentTimestamp`, so the probe's polling is not in it).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oms_system_tests::{unique, Probe, Stack};
use serde_json::{json, Value};

use crate::common::{percentile, BoxError};

#[derive(serde::Serialize, Default)]
pub struct StepLatency {
    orders: usize,
    messages: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// p50 per event type.
    p50_ms_by_event: HashMap<String, f64>,
}

/// When the step that makes `event_type` happened, from the order's timeline.
fn step_time(order: &Value, event_type: &str) -> Option<DateTime<Utc>> {
    let timeline = order["timeline"].as_array()?;
    let entry = timeline.iter().find(|t| {
        let status = t["status"].as_str().unwrap_or_default();
        let note = t["note"].as_str().unwrap_or_default();
        match event_type {
            "oms.order.placed" => status == "PENDING",
            "oms.order.reserved" => status == "RESERVED",
            "oms.payment.authorized" => note.starts_with("payment: authorization.succeeded"),
            "oms.order.shipped" => status == "SHIPPED",
            "oms.fulfillment.out-for-delivery" => note.starts_with("out for delivery"),
            "oms.order.delivered" => status == "DELIVERED",
            _ => false,
        }
    })?;
    entry["at"].as_str()?.parse().ok()
}

/// Drives `orders` orders through their life at once, steps back to back, and times every
/// customer-facing message against its step.
pub async fn step_to_message(stack: &Stack, orders: usize) -> Result<StepLatency, BoxError> {
    let sku = stack.create_sku("LATENCY", 10 * orders as u32).await;
    let customers: Vec<String> = (0..orders).map(|_| unique("latency")).collect();
    let probe = Probe::subscribe(
        stack,
        "CustomerNotificationsTopic",
        Some(json!({"customerId": customers, "channel": ["email"]})),
    )
    .await;
    let lives = futures::future::join_all(customers.iter().map(|customer| {
        let (stack, sku) = (stack.clone(), sku.clone());
        async move {
            let placed = stack
                .place_order(customer, &unique("key"), &[(&sku, 1)])
                .await;
            let id = placed.body["orderId"].as_str().unwrap_or_default().to_owned();
            stack.wait_status(customer, &id, "FULFILLING").await;
            let number = stack.pick_pack_ship(&id, None).await;
            for (n, status) in ["OUT_FOR_DELIVERY", "DELIVERED"].iter().enumerate() {
                let event = json!({"eventId": format!("{number}-{n}"), "shipmentReference": id, "trackingNumber": number, "status": status, "occurredAt": Utc::now().to_rfc3339()});
                stack.carrier_event(&event, None).await;
            }
            stack.wait_status(customer, &id, "DELIVERED").await;
            id
        }
    }))
    .await;
    // Six customer-facing messages per order: placed, reserved, payment received, shipped, out
    // for delivery, delivered.
    let expected = 6 * orders;
    let messages = probe
        .collect(Duration::from_secs(300), |seen| seen.len() >= expected)
        .await;
    let mut by_order: HashMap<String, Value> = HashMap::new();
    for id in &lives {
        by_order.insert(id.clone(), stack.order_as_staff(id).await);
    }
    let mut all = Vec::new();
    let mut by_event: HashMap<String, Vec<f64>> = HashMap::new();
    for (body, attributes) in &messages {
        let event_type = body["eventType"].as_str().unwrap_or_default();
        let Some(order) = body["orderId"].as_str().and_then(|id| by_order.get(id)) else {
            continue;
        };
        let (Some(step), Some(sent)) = (
            step_time(order, event_type),
            attributes
                .get("SentTimestamp")
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis),
        ) else {
            continue;
        };
        let ms = (sent - step).num_milliseconds().max(0) as f64;
        all.push(ms);
        by_event.entry(event_type.to_owned()).or_default().push(ms);
    }
    if all.is_empty() {
        return Err("no message could be timed".into());
    }
    Ok(StepLatency {
        orders,
        messages: all.len(),
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        max_ms: all.iter().cloned().fold(0.0, f64::max),
        p50_ms_by_event: by_event
            .into_iter()
            .map(|(event, samples)| (event, percentile(&samples, 0.5)))
            .collect(),
    })
}
