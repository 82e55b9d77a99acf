//! # oms-bench: the system's figures, each next to its floor, measured the same way every time
//!
//! `bench/run.sh` builds the release functions and the hello-world floor, starts the local stack
//! with the release functions, and runs this program, which prints a table and writes
//! `bench/results.json` and `bench/RESULTS.md`:
//!
//! 1. **Cold start** — each release `bootstrap` started against [`runtime_api`], a Lambda Runtime
//!    API on loopback: time to its first `next` (ready) and to its first response (with the real
//!    emulator calls the event causes), median and p90 of many runs, against `bench-hello`.
//! 2. **Peak memory** — VmHWM of each process across a cold start and 1,000 invocations.
//! 3. **Package size** — the zip Lambda would receive (`bootstrap`, deflated).
//! 4. **Warm latency** of order intake and stock reservation, p50/p99, against the same DynamoDB
//!    requests made directly by this program.
//! 5. **End-to-end** — orders per second from `POST /orders` to reserved through the local stack
//!    with concurrent clients, p50/p99, against the emulator's ceiling for the same writes.
//! 6. **Contention** — many buyers for one SKU: reservations per second, rejections, exactness.
//! 7. **Requests and cost per order** — moto's request recorder captures every call one order
//!    makes from intake to delivered; with the stack's invocation counts, priced at list prices.

mod runtime_api;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use oms_adapters::dynamo::DynamoStore;
use oms_domain::app::inventory::put_product;
use oms_domain::app::Caller;
use oms_domain::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use oms_domain::order::Order;
use oms_domain::ports::{
    IdempotencyRecord, InventoryStore, NotificationStore, OrderStore, OrderTransactions,
};
use oms_domain::request::OrderRequest;
use oms_domain::shipping::ShippingPolicy;
use oms_system_tests::{order_body, unique, Stack, StatusCode};
use serde_json::{json, Value};

use crate::runtime_api::RuntimeApi;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FUNCTIONS: [&str; 10] = [
    "order-intake",
    "order-api",
    "inventory-api",
    "event-publisher",
    "stock-reservation",
    "fulfillment",
    "fulfillment-api",
    "notifier",
    "customer-api",
    "returns-api",
];
const COLD_RUNS: usize = 41;
/// The app name of the benchmark's own reads while it waits for an order's notifications.
const WATCHER_APP: &str = "oms-bench-watcher";
const MEMORY_INVOCATIONS: usize = 1000;
const WARM_SAMPLES: usize = 300;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The fixture event a function is benchmarked with, made fresh for iteration `i`.
fn fixture(function: &str, i: usize) -> Value {
    let load = |path: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(root().join("events").join(path)).expect("fixture"),
        )
        .expect("json")
    };
    match function {
        "order-intake" => {
            let mut event = load("order-intake/place-order.json");
            event["headers"]["idempotency-key"] = json!(format!("bench-{}-{i}", ulid::Ulid::new()));
            event
        }
        "order-api" => load("order-api/get-order.json"),
        "inventory-api" => load("inventory-api/get-inventory.json"),
        "event-publisher" => load("event-publisher/stream-batch.json"),
        "stock-reservation" => load("stock-reservation/order-placed.json"),
        "fulfillment" => load("fulfillment/order-reserved.json"),
        "fulfillment-api" => load("fulfillment-api/pick-list.json"),
        "notifier" => load("notifier/reserved-before-placed.json"),
        "customer-api" => load("customer-api/get-preferences.json"),
        "returns-api" => load("returns-api/get-return.json"),
        _ => json!({"hello": "world"}),
    }
}

/// A function process started against the loopback runtime API.
struct Process {
    child: tokio::process::Child,
    started: Instant,
}

impl Process {
    fn spawn(
        binary: &Path,
        api: &RuntimeApi,
        environment: &[(String, String)],
    ) -> Result<Process, BoxError> {
        api.reset();
        let started = Instant::now();
        let child = tokio::process::Command::new(binary)
            .envs(environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Process { child, started })
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    fn peak_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

#[derive(Default, serde::Serialize)]
struct FunctionFigures {
    ready_ms_median: f64,
    ready_ms_p90: f64,
    first_response_ms_median: f64,
    first_response_ms_p90: f64,
    peak_memory_mib: f64,
    package_kib: f64,
    binary_kib: f64,
    /// The floor's median over the starts paired with this function's.
    #[serde(skip_serializing_if = "Option::is_none")]
    paired_floor_ready_ms_median: Option<f64>,
}

/// The time from spawning `binary` to its first `GET …/invocation/next`, and to its answer to
/// the fixture event of iteration `run`.
async fn cold_start(
    name: &str,
    binary: &Path,
    environment: &[(String, String)],
    run: usize,
) -> Result<(f64, f64), BoxError> {
    // A runtime API of its own per process: a killed process's last long-poll must not take the
    // next process's event.
    let api = &RuntimeApi::start().await?;
    let process = Process::spawn(binary, api, environment)?;
    let (_, _, answered) = api.invoke(fixture(name, run)).await?;
    let next = api
        .first_next()
        .ok_or("the function never asked for work")?;
    Ok((
        ms(next.duration_since(process.started)),
        ms(answered.duration_since(process.started)),
    ))
}

/// Measures one function. With `floor`, every cold start of the function is paired with one of
/// the floor's, alternately, so both see the same machine (the stack runs beside them on the
/// same cores) and the ratio compares like with like.
async fn measure_function(
    name: &str,
    binary: &Path,
    environment: &[(String, String)],
    floor: Option<&Path>,
) -> Result<FunctionFigures, BoxError> {
    let mut ready = Vec::new();
    let mut first = Vec::new();
    let mut floor_ready = Vec::new();
    for run in 0..COLD_RUNS {
        if let Some(floor) = floor {
            floor_ready.push(cold_start("bench-hello", floor, environment, run).await?.0);
        }
        let (r, f) = cold_start(name, binary, environment, run).await?;
        ready.push(r);
        first.push(f);
    }

    let api = &RuntimeApi::start().await?;
    let mut process = Process::spawn(binary, api, environment)?;
    for i in 0..MEMORY_INVOCATIONS {
        api.invoke(fixture(name, COLD_RUNS + i)).await?;
    }
    let peak = process.peak_mib().ok_or("no VmHWM")?;
    process.child.kill().await?;

    let zip = root().join("target/bench").join(format!("{name}.zip"));
    std::fs::create_dir_all(zip.parent().expect("a parent"))?;
    let zipped = tokio::process::Command::new(root().join(".tools/venv/bin/python3"))
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z: z.write(sys.argv[2], 'bootstrap')",
        ])
        .arg(&zip)
        .arg(binary)
        .status()
        .await?;
    if !zipped.success() {
        return Err("zipping failed".into());
    }
    Ok(FunctionFigures {
        ready_ms_median: percentile(&ready, 0.5),
        ready_ms_p90: percentile(&ready, 0.9),
        first_response_ms_median: percentile(&first, 0.5),
        first_response_ms_p90: percentile(&first, 0.9),
        peak_memory_mib: peak,
        package_kib: std::fs::metadata(&zip)?.len() as f64 / 1024.0,
        binary_kib: std::fs::metadata(binary)?.len() as f64 / 1024.0,
        paired_floor_ready_ms_median: floor.map(|_| percentile(&floor_ready, 0.5)),
    })
}

#[derive(serde::Serialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    direct_p50_ms: f64,
    direct_p99_ms: f64,
}

fn admin() -> Caller {
    Caller {
        customer_id: CustomerId::parse("bench").expect("an id"),
        scopes: vec!["oms:admin".into()],
    }
}

async fn stock(store: &DynamoStore, sku: &str, on_hand: u32) -> Result<(), BoxError> {
    let body = json!({"name": sku, "unitPrice": {"amount": 2500, "currency": "EUR"}, "weightGrams": 300, "onHand": on_hand});
    put_product(
        store,
        &ShippingPolicy::default_policy(),
        &admin(),
        &Sku::parse(sku)?,
        &body,
        chrono::Utc::now(),
    )
    .await?;
    Ok(())
}

/// Order intake's DynamoDB requests made directly: the idempotency read, the catalog read and the
/// transaction that writes the order and its idempotency record.
async fn place_directly(
    store: &DynamoStore,
    customer: &CustomerId,
    request: &OrderRequest,
) -> Result<Order, BoxError> {
    let key = IdempotencyKey::parse(unique("direct"))?;
    store.idempotency_record(customer, &key).await?;
    let skus: Vec<Sku> = request.lines.iter().map(|l| l.sku.clone()).collect();
    let catalog = store.products(&skus).await?;
    let now = chrono::Utc::now();
    let order = Order::place(
        OrderId::generate(now),
        customer.clone(),
        request,
        &catalog,
        &ShippingPolicy::default_policy(),
        now,
    )
    .map_err(|e| e.to_string())?;
    let record = IdempotencyRecord {
        customer_id: customer.clone(),
        key,
        fingerprint: String::new(),
        order_id: order.id.clone(),
        response: String::new(),
        created_at: now,
    };
    store.create(&order, &record).await?;
    Ok(order)
}

/// Stock reservation's DynamoDB requests made directly: the order read and the transaction.
async fn reserve_directly(store: &DynamoStore, id: &OrderId) -> Result<(), BoxError> {
    let order = store.get(id).await?.ok_or("the order vanished")?;
    store
        .reserve(
            &order
                .reserve(chrono::Utc::now())
                .map_err(|e| e.to_string())?,
        )
        .await?;
    Ok(())
}

/// Warm latency of intake and reservation inside the function, and of the same DynamoDB
/// requests made directly.
async fn warm_latency(
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
    let intake_latency = Latency {
        p50_ms: percentile(&in_function, 0.5),
        p99_ms: percentile(&in_function, 0.99),
        direct_p50_ms: percentile(&direct, 0.5),
        direct_p99_ms: percentile(&direct, 0.99),
    };

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
    let reservation_latency = Latency {
        p50_ms: percentile(&in_function, 0.5),
        p99_ms: percentile(&in_function, 0.99),
        direct_p50_ms: percentile(&direct, 0.5),
        direct_p99_ms: percentile(&direct, 0.99),
    };
    Ok((intake_latency, reservation_latency))
}

#[derive(serde::Serialize)]
struct Throughput {
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
async fn end_to_end(
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

#[derive(serde::Serialize)]
struct Contention {
    buyers: usize,
    stock: u64,
    reserved: usize,
    rejected: usize,
    seconds_to_decide_all: f64,
    reservations_per_second: f64,
    sold_exactly_the_stock: bool,
}

async fn contention(
    stack: &Stack,
    buyers: usize,
    stock_units: u32,
) -> Result<Contention, BoxError> {
    let sku = stack.create_sku("HOTSKU", stock_units).await;
    let started = Instant::now();
    let names: Vec<String> = (0..buyers).map(|_| unique("buyer")).collect();
    let replies = futures::future::join_all(names.iter().map(|buyer| {
        let (stack, sku) = (stack.clone(), sku.clone());
        async move { stack.place_order(buyer, &unique("key"), &[(&sku, 1)]).await }
    }))
    .await;
    let mut reserved = 0;
    let mut rejected = 0;
    for (buyer, reply) in names.iter().zip(replies) {
        let order = stack
            .wait_decided(buyer, reply.body["orderId"].as_str().ok_or("no id")?)
            .await;
        match oms_system_tests::reservation(&order) {
            "RESERVED" => reserved += 1,
            _ => rejected += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (available, held, on_hand) = stack.stock(&sku).await;
    Ok(Contention {
        buyers,
        stock: u64::from(stock_units),
        reserved,
        rejected,
        seconds_to_decide_all: seconds,
        reservations_per_second: reserved as f64 / seconds,
        sold_exactly_the_stock: reserved as u64 == u64::from(stock_units)
            && available == 0
            && held == on_hand,
    })
}

#[derive(serde::Serialize, Default)]
struct CostPerOrder {
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

/// Invocations per function so far, as the local stack counts them.
async fn invocations(stack: &Stack) -> Result<BTreeMap<String, u64>, reqwest::Error> {
    reqwest::get(format!("{}/_local/invocations", stack.api))
        .await?
        .json()
        .await
}

/// Waits until no function has been invoked for 3 s (at most 180 s): earlier work has run out
/// (an earlier phase's notifications, say), so what follows is measured alone. Returns the
/// invocation counts then.
async fn settled(stack: &Stack) -> Result<BTreeMap<String, u64>, reqwest::Error> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = invocations(stack).await?;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = invocations(stack).await?;
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    Ok(last)
}

/// Every call one order makes from intake to delivered, from moto's request recorder and the
/// stack's invocation counts.
async fn cost_per_order(stack: &Stack) -> Result<CostPerOrder, BoxError> {
    let sku = stack.create_sku("COST", 100).await;
    let before = settled(stack).await?;
    stack.start_recording().await;

    let customer = unique("cost");
    let reply = stack
        .place_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    let id = reply.body["orderId"].as_str().ok_or("no id")?.to_owned();
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let warehouse = stack.token("bench-packer", Some("oms:warehouse"));
    let mut etag: Option<String> = None;
    for (step, body) in [
        ("pick", None),
        (
            "pack",
            Some(json!({"weightGrams": 400, "lengthCm": 20, "widthCm": 10, "heightCm": 5})),
        ),
        (
            "ship",
            Some(
                json!({"carrier": "DHL", "trackingNumber": "JJDBENCH", "trackingUrl": "https://www.dhl.com/track?id=JJDBENCH"}),
            ),
        ),
    ] {
        let headers: Vec<(&str, &str)> = etag
            .as_deref()
            .map(|e| vec![("if-match", e)])
            .unwrap_or_default();
        let reply = stack
            .call(
                reqwest::Method::POST,
                &format!("/fulfillments/{id}/{step}"),
                Some(&warehouse),
                &headers,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
        etag = Some(reply.headers["etag"].to_str()?.to_owned());
    }
    for (n, status) in ["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]
        .iter()
        .enumerate()
    {
        let event = json!({"eventId": format!("cost-{id}-{n}"), "shipmentReference": id, "trackingNumber": "JJDBENCH", "status": status, "occurredAt": "2026-11-30T10:00:00Z"});
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
    for request in recorded
        .iter()
        .filter(|r| r.app.as_deref() != Some(WATCHER_APP))
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

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let stack = Stack::connect().await;
    let sdk = stack.sdk().await;
    let release = root().join("target/release");

    // The functions run here against a table of their own (no stream, so nothing reacts) and a
    // topic nobody subscribes to, so the figures measure the function, not the pipeline.
    let table = stack.scratch_table().await;
    let store = DynamoStore::from_config(&sdk, table.clone());
    for (sku, units) in [
        ("TSHIRT-RED-M", 10_000_000),
        ("MUG-WHITE", 10_000_000),
        ("CUP-WHITE", 100),
    ] {
        stock(&store, sku, units).await?;
    }
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(format!("{}-bench-sink", stack.stack))
        .send()
        .await?
        .topic_arn
        .ok_or("no topic ARN")?;
    let environment: Vec<(String, String)> = [
        ("TABLE_NAME", table.as_str()),
        ("ORDER_EVENTS_TOPIC_ARN", topic.as_str()),
        ("CUSTOMER_NOTIFICATIONS_TOPIC_ARN", topic.as_str()),
        ("CARRIER_WEBHOOK_SECRET", "bench-carrier-secret-0123"),
        ("AWS_ENDPOINT_URL", stack.emulator.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    println!("measuring the floor and {} functions ({COLD_RUNS} cold starts, {MEMORY_INVOCATIONS} invocations each)…", FUNCTIONS.len());
    let hello = release.join("bench-hello");
    let floor = measure_function("bench-hello", &hello, &environment, None).await?;
    let mut functions = BTreeMap::new();
    for name in FUNCTIONS {
        let figures =
            measure_function(name, &release.join(name), &environment, Some(&hello)).await?;
        println!(
            "  {name}: ready {:.1} ms, first response {:.1} ms, {:.1} MiB, {:.0} KiB zipped",
            figures.ready_ms_median,
            figures.first_response_ms_median,
            figures.peak_memory_mib,
            figures.package_kib
        );
        functions.insert(name.to_owned(), figures);
    }
    println!("warm latency…");
    let (intake, reservation) = warm_latency(&store, &release, &environment).await?;
    println!("end to end through the local stack…");
    settled(&stack).await?;
    let e2e = end_to_end(&stack, &store, 4, 15).await?;
    println!("contention on one SKU…");
    settled(&stack).await?;
    let hot = contention(&stack, 200, 50).await?;
    println!("requests and cost of one order, intake to delivered…");
    let cost = cost_per_order(&stack).await?;

    let results = json!({
        "measuredAt": chrono::Utc::now().to_rfc3339(),
        "machine": format!("{} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        "floor": floor,
        "functions": functions,
        "warmLatency": {"orderIntake": intake, "stockReservation": reservation},
        "endToEnd": e2e,
        "contention": hot,
        "costPerOrder": cost,
    });
    std::fs::write(
        root().join("bench/results.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    let markdown = report(&results);
    std::fs::write(root().join("bench/RESULTS.md"), &markdown)?;
    println!("\n{markdown}");
    Ok(())
}

fn verdict(ok: bool, detail: String) -> String {
    if ok {
        format!("meets ({detail})")
    } else {
        format!("**misses** ({detail})")
    }
}

/// The Markdown table the README shows.
fn report(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let floor = &r["floor"];
    let mut out = String::new();
    out.push_str(&format!(
        "Measured {} on a {} machine by `bench/run.sh`.\n\n",
        r["measuredAt"].as_str().unwrap_or_default(),
        r["machine"].as_str().unwrap_or_default()
    ));
    out.push_str("### Cold start, memory and package, per function (release profile)\n\n");
    out.push_str("| function | ready, median (p90) | × floor (paired starts) | first response, median (p90) | peak memory | package (zip) | targets |\n|---|---|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| *floor: hello world* | {:.2} ms ({:.2}) | 1.00 | {:.2} ms ({:.2}) | {:.1} MiB | {:.0} KiB | |\n",
        f(&floor["ready_ms_median"]), f(&floor["ready_ms_p90"]), f(&floor["first_response_ms_median"]), f(&floor["first_response_ms_p90"]), f(&floor["peak_memory_mib"]), f(&floor["package_kib"])
    ));
    for (name, v) in r["functions"].as_object().into_iter().flatten() {
        // Against the floor's starts paired with this function's, where measured.
        let paired = v["paired_floor_ready_ms_median"]
            .as_f64()
            .unwrap_or_else(|| f(&floor["ready_ms_median"]));
        let ratio = f(&v["ready_ms_median"]) / paired;
        let memory = f(&v["peak_memory_mib"]);
        let package = f(&v["package_kib"]) / 1024.0;
        let checks = [
            verdict(ratio <= 1.3, format!("cold ≤ 1.3× floor: {ratio:.2}×")),
            verdict(memory <= 20.0, format!("≤ 20 MB: {memory:.1}")),
            verdict(package <= 4.0, format!("≤ 4 MB: {package:.2}")),
        ];
        out.push_str(&format!(
            "| {name} | {:.2} ms ({:.2}) | {ratio:.2} | {:.2} ms ({:.2}) | {memory:.1} MiB ({:.2}× floor) | {:.0} KiB ({:.2}× floor) | {} |\n",
            f(&v["ready_ms_median"]), f(&v["ready_ms_p90"]), f(&v["first_response_ms_median"]), f(&v["first_response_ms_p90"]),
            memory / f(&floor["peak_memory_mib"]), f(&v["package_kib"]), f(&v["package_kib"]) / f(&floor["package_kib"]), checks.join("; ")
        ));
    }
    let intake_first = f(&r["functions"]["order-intake"]["first_response_ms_median"]);
    out.push_str(&format!(
        "\nOrder intake's first response, emulator calls included: {intake_first:.1} ms — {}.\n",
        verdict(intake_first < 40.0, "target well under 40 ms".into())
    ));
    out.push_str("\n### Warm latency against the same DynamoDB requests made directly\n\n| operation | in the function p50 / p99 | direct p50 / p99 | overhead (p50) |\n|---|---|---|---|\n");
    for (label, key) in [
        ("order intake", "orderIntake"),
        ("stock reservation", "stockReservation"),
    ] {
        let v = &r["warmLatency"][key];
        let ratio = f(&v["p50_ms"]) / f(&v["direct_p50_ms"]);
        out.push_str(&format!(
            "| {label} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {ratio:.2}× — {} |\n",
            f(&v["p50_ms"]),
            f(&v["p99_ms"]),
            f(&v["direct_p50_ms"]),
            f(&v["direct_p99_ms"]),
            verdict(ratio <= 1.2, "target ≤ 1.2×".into())
        ));
    }
    let e = &r["endToEnd"];
    let share = f(&e["orders_per_second"]) / f(&e["ceiling_orders_per_second"]);
    out.push_str(&format!(
        "\n### End to end: `POST /orders` to reserved through the local stack\n\n{} clients placing orders back to back for 15 s, {} orders: **{:.1} orders/s** from the first `POST` to the last reservation, latency p50 {:.0} ms, p99 {:.0} ms (`POST` to the reservation's timestamp, waiting behind the orders before included). The emulator's ceiling for the same requests made directly by as many clients: {:.1} orders/s; the stack reaches {:.0}% of it — {}.\n",
        e["clients"], e["orders"], f(&e["orders_per_second"]), f(&e["p50_ms"]), f(&e["p99_ms"]), f(&e["ceiling_orders_per_second"]), share * 100.0,
        verdict(share >= 0.5, "target ≥ 50%".into())
    ));
    if let (Some(pipeline), Some(ceiling)) = (
        e["emulator_cpu_ms_per_order"].as_f64(),
        e["ceiling_emulator_cpu_ms_per_order"].as_f64(),
    ) {
        out.push_str(&format!(
            "\nThe emulator's CPU time per order: {pipeline:.0} ms through the stack (everything an order sets off until the stack is idle: the stream read, the event publisher's publishes, the queue hops, fulfillment and notifications included) against {ceiling:.0} ms for the ceiling's requests ({:.1}×). The emulator is one process on a shared core, so the stack's throughput can reach at most about the ceiling divided by that factor.\n",
            pipeline / ceiling
        ));
    }
    let c = &r["contention"];
    out.push_str(&format!(
        "\n### Contention: {} buyers for {} units of one SKU\n\n{} reserved, {} rejected, all decided in {:.1} s ({:.1} reservations/s); sold exactly the stock: {}.\n",
        c["buyers"], c["stock"], c["reserved"], c["rejected"], f(&c["seconds_to_decide_all"]), f(&c["reservations_per_second"]), c["sold_exactly_the_stock"]
    ));
    let k = &r["costPerOrder"];
    out.push_str(&format!(
        "\n### One order, intake to delivered (one line), counted from the calls it made\n\n- DynamoDB requests: {}\n- items written: {} (the least any design could write: {}); write units {:.0}, read units {:.0}\n- SNS publishes: {} · SQS requests (receives that brought its messages, deletes, sends): {}; empty long polls meanwhile, a cost per queue and hour rather than per order: {}\n- Lambda invocations: {}\n- modelled bill per million orders at list prices: {}\n",
        k["dynamodb_requests"], k["dynamodb_items_written"], k["least_item_writes"], f(&k["dynamodb_write_units"]), f(&k["dynamodb_read_units"]),
        k["sns_publishes"], k["sqs_requests"], k["sqs_empty_polls"], k["lambda_invocations"], k["dollars_per_million_orders"]
    ));
    out
}
