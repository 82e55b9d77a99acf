//! What every figure shares: the stack and the benchmark's own table and topic, the fixture
//! events, a function process on the loopback runtime API, the DynamoDB requests of intake and
//! reservation made directly, waiting for the stack to settle, and the statistics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use oms_adapters::dynamo::DynamoStore;
use oms_domain::app::inventory::put_product;
use oms_domain::app::Caller;
use oms_domain::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use oms_domain::order::Order;
use oms_domain::ports::{IdempotencyRecord, InventoryStore, OrderStore, OrderTransactions};
use oms_domain::request::OrderRequest;
use oms_domain::shipping::ShippingPolicy;
use oms_system_tests::{unique, Stack};
use serde_json::{json, Value};

use crate::runtime_api::RuntimeApi;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The local stack, the release binaries, and what the functions run against when the benchmark
/// runs them itself.
pub struct Bench {
    pub stack: Stack,
    /// The benchmark's own table.
    pub store: DynamoStore,
    /// `target/release`, where the functions' binaries and `bench-hello` are.
    pub release: PathBuf,
    /// The environment a function process gets.
    pub environment: Vec<(String, String)>,
}

impl Bench {
    /// Connects to the stack and makes the functions' table and topic.
    pub async fn connect() -> Result<Bench, BoxError> {
        let stack = Stack::connect().await;
        let sdk = stack.sdk().await;
        let release = root().join("target/release");

        // The functions run here against a table of their own (no stream, so nothing reacts) and
        // a topic nobody subscribes to, so the figures measure the function, not the pipeline.
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
        // The stack's own secrets, by name (GetSecretValue takes a name or an ARN).
        let (carrier_secret, psp_secret) = (
            stack.resource("CarrierWebhookSecret"),
            stack.resource("PspWebhookSecret"),
        );
        // Every variable the stack gives its functions (its env file, where its functions run),
        // then the benchmark's own table, topics and credentials over them.
        let stack_environment = std::env::var("OMS_LOCAL_LAMBDA_PORT")
            .ok()
            .and_then(|port| {
                std::fs::read_to_string(std::env::temp_dir().join(format!("oms-local-{port}.env")))
                    .ok()
            })
            .unwrap_or_default();
        let mut environment: Vec<(String, String)> = stack_environment
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let own: Vec<(String, String)> = [
            ("TABLE_NAME", table.as_str()),
            ("ORDER_EVENTS_TOPIC_ARN", topic.as_str()),
            ("CUSTOMER_NOTIFICATIONS_TOPIC_ARN", topic.as_str()),
            ("CARRIER_WEBHOOK_SECRET_ARN", carrier_secret.as_str()),
            ("PSP_WEBHOOK_SECRET_ARN", psp_secret.as_str()),
            ("AWS_ENDPOINT_URL", stack.emulator.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        environment.retain(|(k, _)| !own.iter().any(|(o, _)| o == k));
        environment.extend(own);
        Ok(Bench {
            stack,
            store,
            release,
            environment,
        })
    }
}

/// The fixture event a function is benchmarked with, made fresh for iteration `i`.
pub fn fixture(function: &str, i: usize) -> Value {
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
        "payments-webhook" => load("payments-webhook/authorization-succeeded.json"),
        "order-sweeper" => load("order-sweeper/scheduled.json"),
        "customer-pages" => load("customer-pages/find-page.json"),
        "staff-console" => load("staff-console/home.json"),
        "psp-stripe" => load("psp-stripe/capture-requested.json"),
        _ => json!({"hello": "world"}),
    }
}

/// A function process started against the loopback runtime API.
pub struct Process {
    pub child: tokio::process::Child,
    pub started: Instant,
}

impl Process {
    pub fn spawn(
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
    pub fn peak_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

fn admin() -> Caller {
    Caller {
        customer_id: CustomerId::parse("bench").expect("an id"),
        scopes: vec!["oms:admin".into()],
    }
}

pub async fn stock(store: &DynamoStore, sku: &str, on_hand: u32) -> Result<(), BoxError> {
    let body = json!({"name": sku, "unitPrice": {"amount": 2500, "currency": "EUR"}, "weightGrams": 300, "onHand": on_hand});
    put_product(
        store,
        &ShippingPolicy::default_policy(),
        &oms_domain::location::Locations::default_locations(),
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
pub async fn place_directly(
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
pub async fn reserve_directly(store: &DynamoStore, id: &OrderId) -> Result<(), BoxError> {
    let order = store.get(id).await?.ok_or("the order vanished")?;
    store
        .reserve(
            &order
                .reserve_all_at("BER-1", chrono::Utc::now())
                .map_err(|e| e.to_string())?,
        )
        .await?;
    Ok(())
}

/// Invocations per function so far, as the local stack counts them — leaving out the scheduled
/// functions, which run on the clock whatever the orders do (their cost is per hour, not per
/// order).
async fn invocations(stack: &Stack) -> Result<BTreeMap<String, u64>, reqwest::Error> {
    let scheduled = oms_system_tests::functions_triggered_by("Schedule");
    let mut counts: BTreeMap<String, u64> =
        reqwest::get(format!("{}/_local/invocations", stack.api))
            .await?
            .json()
            .await?;
    counts.retain(|function, _| !scheduled.contains(function));
    Ok(counts)
}

/// Waits until no function has been invoked for 3 s (at most 180 s): earlier work has run out
/// (an earlier phase's notifications, say), so what follows is measured alone. Returns the
/// invocation counts then.
pub async fn settled(stack: &Stack) -> Result<BTreeMap<String, u64>, reqwest::Error> {
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
