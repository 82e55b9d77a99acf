//! Figure 5, **end-to-end** — orders per second from `POST /orders` to reserved through the local
//! stack with concurrent clients, p50/p99, against the emulator's ceiling for the same writes.

use std::time::{Duration, Instant};

use oms_adapters::dynamo::DynamoStore;
use oms_domain::ids::CustomerId;
use oms_domain::request::OrderRequest;
use oms_system_tests::{order_body, unique, Stack, StatusCode};
use serde_json::Value;

use crate::common::{percentile, place_directly, reserve_directly, settled, stock, BoxError};

#[derive(serde::Serialize)]
pub struct Throughput {
    clients: usize,
    orders: usize,
    orders_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    ceiling_orders_per_second: f64,
    /// The emulator's CPU time per order through the stack, everything the orders set off
    /// (fulfillment, notifications) included, and for the ceiling's requests.
    emulator_cpu_ms_per_order: Option<f64>,
    ceiling_emulator_cpu_ms_per_order: Option<f64>,
}

/// The CPU seconds the emulator's processes have used so far (Linux: `/proc`, at 100 ticks a
/// second), found by their command line and port.
fn emulator_cpu_seconds(stack: &Stack) -> Option<f64> {
    let port = stack
        .emulator
        .rsplit(':')
        .next()?
        .trim_end_matches('/')
        .to_owned();
    let mut ticks = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.iter().any(|a| a.ends_with("moto_server.py")) || !args.contains(&port) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses: utime and stime are 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        found = true;
    }
    found.then(|| ticks as f64 / 100.0)
}

/// Orders from `POST /orders` to reserved through the local stack, against the emulator's
/// ceiling for the same requests made directly.
pub async fn end_to_end(
    stack: &Stack,
    store: &DynamoStore,
    clients: usize,
    seconds: u64,
) -> Result<Throughput, BoxError> {
    let sku = stack.create_sku("E2E", 1_000_000).await;
    // The ceiling below runs on the benchmark's own table: the same SKU, stocked there too.
    stock(store, &sku, 1_000_000).await?;
    // Each client places orders back to back, as fast as intake answers, so the pipeline behind
    // it runs saturated. Nobody polls the orders meanwhile (the benchmark's own reads would load
    // the emulator it measures): one reader watches the SKU's reserved count, four times a second,
    // until every order is decided, and each order's timeline is read once afterwards. The
    // latency of an order runs from the start of its `POST` to the decision's timestamp in its
    // timeline (same machine, same clock), and so includes its wait behind the orders before it.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = emulator_cpu_seconds(stack);
    let started = chrono::Utc::now();
    let workers = (0..clients).map(|_| {
        let (stack, sku) = (stack.clone(), sku.clone());
        async move {
            let mut placed = Vec::new();
            let customer = unique("e2e");
            while Instant::now() < deadline {
                let began = chrono::Utc::now();
                let reply = stack
                    .place_order(&customer, &unique("key"), &[(&sku, 1)])
                    .await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
                let id = reply.body["orderId"].as_str().expect("an id").to_owned();
                placed.push((customer.clone(), id, began));
            }
            placed
        }
    });
    let placed: Vec<(String, String, chrono::DateTime<chrono::Utc>)> =
        futures::future::join_all(workers)
            .await
            .into_iter()
            .flatten()
            .collect();
    let drain_deadline = Instant::now() + Duration::from_secs(300);
    while stack.stock(&sku).await.1 < placed.len() as u64 {
        if Instant::now() > drain_deadline {
            return Err("orders still undecided 300 s after the last was placed".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Until what the orders set off has run too (and before the timelines are read).
    settled(stack).await?;
    let pipeline_cpu = emulator_cpu_seconds(stack)
        .zip(cpu_before)
        .map(|(after, before)| (after - before) * 1000.0 / placed.len() as f64);
    let mut latencies = Vec::with_capacity(placed.len());
    let mut last_decision = started;
    for (customer, id, began) in &placed {
        let order = stack
            .get(&format!("/orders/{id}"), &stack.token(customer, None))
            .await
            .body;
        let decided_at = order["timeline"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["status"] == "RESERVED"))
            .and_then(|e| e["at"].as_str())
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .ok_or_else(|| format!("order {id} has no reservation in its timeline"))?
            .with_timezone(&chrono::Utc);
        last_decision = last_decision.max(decided_at);
        latencies.push((decided_at - *began).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    let elapsed = (last_decision - started).num_microseconds().unwrap_or(1) as f64 / 1e6;

    // The ceiling: the DynamoDB requests of intake and reservation, back to back, as fast as the
    // emulator takes them from the same number of clients, once the stack has finished what the
    // orders above set off (fulfillment, notifications), so that it does not share the emulator.
    settled(stack).await?;
    let body: Value = serde_json::from_str(&order_body(&[(&sku, 1)]).to_string())?;
    let request = OrderRequest::parse(&body).map_err(|e| e.to_string())?;
    let ceiling_deadline = Instant::now() + Duration::from_secs(seconds);
    let ceiling_cpu_before = emulator_cpu_seconds(stack);
    let ceiling_started = Instant::now();
    let workers = (0..clients).map(|_| {
        let (store, request) = (store.clone(), request.clone());
        async move {
            let customer = CustomerId::parse(unique("ceiling")).expect("an id");
            let mut done = 0usize;
            while Instant::now() < ceiling_deadline {
                let order = place_directly(&store, &customer, &request)
                    .await
                    .expect("intake's requests");
                reserve_directly(&store, &order.id)
                    .await
                    .expect("reservation's requests");
                done += 1;
            }
            done
        }
    });
    let ceiling_orders: usize = futures::future::join_all(workers).await.into_iter().sum();
    let ceiling_cpu = emulator_cpu_seconds(stack)
        .zip(ceiling_cpu_before)
        .map(|(after, before)| (after - before) * 1000.0 / ceiling_orders.max(1) as f64);
    Ok(Throughput {
        clients,
        orders: latencies.len(),
        orders_per_second: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        ceiling_orders_per_second: ceiling_orders as f64 / ceiling_started.elapsed().as_secs_f64(),
        emulator_cpu_ms_per_order: pipeline_cpu,
        ceiling_emulator_cpu_ms_per_order: ceiling_cpu,
    })
}
