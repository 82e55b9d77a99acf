//! Figure 4, **warm latency** of order intake and stock reservation, p50/p99, inside the function
//! (a warm release process on [`crate::runtime_api`]) against the same DynamoDB requests made
//! directly by this program.

use std::path::Path;
use std::time::Instant;

use oms_adapters::dynamo::DynamoStore;
use oms_domain::ids::CustomerId;
use oms_domain::order::Order;
use oms_domain::request::OrderRequest;
use serde_json::{json, Value};

use crate::common::{fixture, ms, percentile, place_directly, reserve_directly, BoxError, Process};
use crate::runtime_api::RuntimeApi;

const WARM_SAMPLES: usize = 300;

#[derive(serde::Serialize)]
pub struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    direct_p50_ms: f64,
    direct_p99_ms: f64,
}

impl Latency {
    fn of(in_function: &[f64], direct: &[f64]) -> Latency {
        Latency {
            p50_ms: percentile(in_function, 0.5),
            p99_ms: percentile(in_function, 0.99),
            direct_p50_ms: percentile(direct, 0.5),
            direct_p99_ms: percentile(direct, 0.99),
        }
    }
}

/// Warm latency of intake and reservation inside the function, and of the same DynamoDB
/// requests made directly.
pub async fn warm_latency(
    store: &DynamoStore,
    release: &Path,
    environment: &[(String, String)],
) -> Result<(Latency, Latency), BoxError> {
    let api = &RuntimeApi::start().await?;
    // Intake, through the function: real orders, each with its own key.
    let mut intake = Process::spawn(&release.join("order-intake"), api, environment)?;
    let mut orders: Vec<Order> = Vec::new();
    let mut in_function = Vec::new();
    for i in 0..WARM_SAMPLES + 20 {
        let (response, took, _) = api.invoke(fixture("order-intake", i)).await?;
        if i >= 20 {
            in_function.push(ms(took));
        }
        let order: Order = serde_json::from_str(response["body"].as_str().ok_or("no body")?)?;
        orders.push(order);
    }
    intake.child.kill().await?;

    // The same requests, directly.
    let body: Value = serde_json::from_str(
        fixture("order-intake", 0)["body"]
            .as_str()
            .ok_or("no body")?,
    )?;
    let request = OrderRequest::parse(&body).map_err(|e| e.to_string())?;
    let customer = CustomerId::parse("customer-ada")?;
    let mut direct = Vec::new();
    for _ in 0..WARM_SAMPLES {
        let started = Instant::now();
        place_directly(store, &customer, &request).await?;
        direct.push(ms(started.elapsed()));
    }
    let intake_latency = Latency::of(&in_function, &direct);

    // Reservation, through the function: the placed events of the orders just taken.
    let api = &RuntimeApi::start().await?;
    let mut reservation = Process::spawn(&release.join("stock-reservation"), api, environment)?;
    let mut in_function = Vec::new();
    let (warmup, measured) = orders.split_at(20);
    for (i, order) in warmup.iter().chain(measured).enumerate() {
        let event = oms_domain::events::order_event(None, Some(order)).ok_or("no event")?;
        let message = json!({"Records": [{"messageId": format!("m{i}"), "receiptHandle": "r", "body": serde_json::to_string(&event)?,
            "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench", "awsRegion": "us-east-1"}]});
        let (response, took, _) = api.invoke(message).await?;
        if response["batchItemFailures"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            return Err(format!("reservation failed: {response}").into());
        }
        if i >= 20 {
            in_function.push(ms(took));
        }
    }
    reservation.child.kill().await?;

    // The same requests, directly.
    let mut direct = Vec::new();
    for _ in 0..WARM_SAMPLES {
        let order = place_directly(store, &customer, &request).await?;
        let started = Instant::now();
        reserve_directly(store, &order.id).await?;
        direct.push(ms(started.elapsed()));
    }
    let reservation_latency = Latency::of(&in_function, &direct);
    Ok((intake_latency, reservation_latency))
}
