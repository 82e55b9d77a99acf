//! The fault-injection run: a few hundred orders through their whole life — placed, decided,
//! paid, picked, packed, shipped, delivered — on a stack whose faults are switched on
//! (`infra/local/test.sh` starts one for this test alone):
//!
//! - the emulator throttles a share of the functions' DynamoDB calls, cancels a share of their
//!   transactions with a conflict, and fails a share of the entries of their SNS batches
//!   (`OMS_FAULT_*`, see `infra/local/moto_server.py`);
//! - the local stack crashes a share of the queues' and the stream's invocations, before or after
//!   the function's work (`OMS_LOCAL_FAULT_CRASH`, see `infra/local-stack/src/lambda.rs`).
//!
//! Checked from the outside, as a business would: every order decided and at the end of its
//! life, every stock counter exact, every customer-facing step told exactly once per channel,
//! no dead-letter queue holding anything, and the faults really injected. The clients retry a
//! `503` with the same request (the same `Idempotency-Key`, the same PSP event id), as the
//! API's clients must. The run prints its figures; the README shows them.
//!
//! Built only with the feature `fault-run`, so the ordinary test run (whose stack has no faults)
//! does not build it: `cargo test -p oms-system-tests --features fault-run --test faults`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oms_system_tests::{psp_body, tracking, unique, Probe, Reply, Stack, StatusCode};
use serde_json::{json, Value};

/// How many orders the run places.
const ORDERS: usize = 200;
/// How many SKUs they share, and each one's stock: about a fifth of the orders find it gone.
const SKUS: usize = 8;
const STOCK_PER_SKU: u32 = 45;
/// Of every other SKU's stock, how much sits in the second warehouse rather than the default
/// one: orders with such a SKU and one only the default holds ship as two parcels once the
/// default runs out of the first.
const STOCK_ELSEWHERE: u32 = 20;
/// Requests in flight at once.
const CLIENTS: usize = 8;

/// Retries a call while the API answers `503` (a throttled or contended dependency), as clients
/// must; counts the retries.
async fn retrying<F, Fut>(retries: &AtomicU64, what: &str, call: F) -> Reply
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    for attempt in 0..12u64 {
        let reply = call().await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            return reply;
        }
        retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    panic!("{what}: still 503 after 12 attempts");
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lines(u64);

impl Lines {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

async fn get_json(stack: &Stack, retries: &AtomicU64, path: &str, token: &str) -> Value {
    let reply = retrying(retries, path, || stack.get(path, token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    reply.body
}

/// Takes a shipment through pick, pack and ship, re-reading it after any refusal: a step whose
/// answer was a 503 may have been done all the same.
async fn ship(stack: &Stack, retries: &AtomicU64, id: &str) -> String {
    let warehouse = stack.token("fault-packer", Some("oms:warehouse"));
    let number = unique("JJD").to_uppercase();
    for _ in 0..20 {
        let path = format!("/fulfillments/{id}");
        let shipment = retrying(retries, "a shipment", || stack.get(&path, &warehouse)).await;
        assert_eq!(shipment.status, StatusCode::OK, "{:?}", shipment.body);
        let etag = shipment.headers["etag"].to_str().unwrap().to_owned();
        let (step, body) = match shipment.body["status"].as_str().unwrap() {
            "AWAITING_PICK" => ("pick", None),
            "PICKED" => (
                "pack",
                Some(json!({"weightGrams": 900, "lengthCm": 30, "widthCm": 20, "heightCm": 10})),
            ),
            "PACKED" => ("ship", Some(tracking(&number))),
            _ => {
                return shipment.body["tracking"]["trackingNumber"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let path = format!("/fulfillments/{id}/{step}");
        let reply = retrying(retries, step, || {
            stack.warehouse_post(&path, &warehouse, Some(&etag), body.as_ref())
        })
        .await;
        assert!(
            [
                StatusCode::OK,
                StatusCode::CONFLICT,
                StatusCode::PRECONDITION_FAILED
            ]
            .contains(&reply.status),
            "{step}: {} {:?}",
            reply.status,
            reply.body
        );
    }
    panic!("order {id} never shipped");
}

/// Waits until `check` holds for the order as staff see it.
async fn until_order(
    stack: &Stack,
    retries: &AtomicU64,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let admin = stack.token("fault-staff", Some("oms:admin"));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let order = get_json(stack, retries, &format!("/orders/{id}"), &admin).await;
        if check(&order) {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} never {what}: {}",
            order["status"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The faults injected so far: the emulator's counts and the local stack's.
async fn fault_counts(stack: &Stack) -> (Value, Value) {
    let http = reqwest::Client::new();
    (
        counts_at(
            &http,
            format!("{}/_faults", stack.emulator),
            "the emulator's",
        )
        .await,
        counts_at(
            &http,
            format!("{}/_local/faults", stack.api),
            "the local stack's",
        )
        .await,
    )
}

/// The fault counts `whose` serves at `url`.
async fn counts_at(http: &reqwest::Client, url: String, whose: &str) -> Value {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{whose} fault counts: {e}"))
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn a_few_hundred_orders_live_their_whole_lives_exactly_with_faults_injected() {
    let stack = Stack::connect().await;
    let (emulator, local) = fault_counts(&stack).await;
    for kind in [
        "dynamodb_throttle",
        "transaction_conflict",
        "sns_entry_failure",
    ] {
        assert!(
            emulator["shares"][kind].as_f64().unwrap_or(0.0) > 0.0,
            "this test needs a stack with its faults on (infra/local/test.sh starts one): {emulator}"
        );
    }
    assert!(local["crashShare"].as_f64().unwrap_or(0.0) > 0.0, "{local}");
    let started = Instant::now();
    let retries = AtomicU64::new(0);
    let admin = stack.token("fault-staff", Some("oms:admin"));

    // The catalog.
    let mut skus = Vec::new();
    for n in 0..SKUS {
        let sku = unique(&format!("FAULT{n}")).to_uppercase();
        let elsewhere = if n % 2 == 1 { STOCK_ELSEWHERE } else { 0 };
        let body = json!({"name": format!("Fault run {n}"), "unitPrice": {"amount": 1000, "currency": "EUR"}, "weightGrams": 300, "onHand": STOCK_PER_SKU - elsewhere});
        let path = format!("/inventory/{sku}");
        let reply = retrying(&retries, "a SKU", || stack.put(&path, &admin, &body)).await;
        assert!(reply.status.is_success(), "{:?}", reply.body);
        if elsewhere > 0 {
            let receipt = json!({"reason": "RECEIPT", "delta": elsewhere, "location": "AMS-1"});
            let path = format!("/inventory/{sku}/adjustments");
            let reply = retrying(&retries, "a receipt", || {
                stack.post(&path, &admin, &[], receipt.clone())
            })
            .await;
            assert!(reply.status.is_success(), "{:?}", reply.body);
        }
        skus.push(sku);
    }

    // Customers, and a probe of everything they are told.
    let customers: Vec<String> = (0..20).map(|_| unique("fault-customer")).collect();
    let inbox = Probe::subscribe(
        &stack,
        "CustomerNotificationsTopic",
        Some(json!({"customerId": customers})),
    )
    .await;

    // Orders: one or two lines of one to three units, placed by eight clients at once.
    let mut lines = Lines(0x5EED_0F_FA17);
    let plans: Vec<(String, String, Vec<(String, u32)>)> = (0..ORDERS)
        .map(|n| {
            let count = 1 + lines.next(2) as usize;
            let mut chosen = BTreeMap::new();
            for _ in 0..count {
                let sku = skus[lines.next(SKUS as u64) as usize].clone();
                *chosen.entry(sku).or_insert(0) += 1 + lines.next(3) as u32;
            }
            (
                customers[n % customers.len()].clone(),
                unique("key"),
                chosen.into_iter().collect(),
            )
        })
        .collect();
    let placed: Vec<(String, String, Vec<(String, u32)>)> = futures::stream::iter(plans.iter())
        .map(|(customer, key, order_lines)| {
            let stack = &stack;
            let retries = &retries;
            async move {
                let token = stack.token(customer, None);
                let lines: Vec<(&str, u32)> =
                    order_lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
                let body = oms_system_tests::order_body(&lines).to_string();
                let headers = [("idempotency-key", key.as_str())];
                let reply = retrying(retries, "POST /orders", || {
                    stack.call(
                        reqwest::Method::POST,
                        "/orders",
                        Some(&token),
                        &headers,
                        Some(body.clone().into_bytes()),
                    )
                })
                .await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
                let id = reply.body["orderId"].as_str().unwrap().to_owned();
                (customer.clone(), id, order_lines.clone())
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let ids: BTreeSet<&str> = placed.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        ids.len(),
        ORDERS,
        "every order created once, whatever the retries"
    );
    // Each customer's own listing holds exactly the orders placed for them.
    for customer in &customers {
        let token = stack.token(customer, None);
        let listed = get_json(&stack, &retries, "/orders?limit=100", &token).await;
        let mine = placed.iter().filter(|(c, _, _)| c == customer).count();
        assert_eq!(
            listed["items"].as_array().unwrap().len(),
            mine,
            "{customer}'s orders, once each"
        );
    }

    // Each decided; the reserved ones paid for, shipped and delivered.
    let split_orders = AtomicU64::new(0);
    let parcels: std::sync::Mutex<HashMap<String, usize>> = Default::default();
    let outcomes: Vec<(String, &'static str, Vec<(String, u32)>)> = futures::stream::iter(placed.iter())
        .map(|(_, id, order_lines)| {
            let stack = &stack;
            let retries = &retries;
            let split_orders = &split_orders;
            let parcels = &parcels;
            async move {
                let decided = until_order(stack, retries, id, "decided", |o| oms_system_tests::reservation(o) != "PENDING").await;
                if oms_system_tests::reservation(&decided) == "REJECTED" {
                    return (id.clone(), "REJECTED", order_lines.clone());
                }
                let locations: BTreeSet<&str> = decided["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|l| l["allocations"].as_array().into_iter().flatten())
                    .filter_map(|a| a["location"].as_str())
                    .collect();
                if locations.len() > 1 {
                    split_orders.fetch_add(1, Ordering::Relaxed);
                }
                // The PSP retries its event as it is: the same id.
                let body = psp_body("authorization.succeeded", id, &decided["totals"]["total"], None);
                let reply = retrying(retries, "the PSP's event", || stack.psp_event(&body)).await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                let sent = until_order(stack, retries, id, "in the warehouse", |o| o["status"] == "FULFILLING").await;
                // Every parcel through its own location's steps and delivered on its own.
                let shipments: Vec<String> = sent["shipments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["shipmentId"].as_str().map(str::to_owned))
                    .collect();
                assert_eq!(shipments.len(), locations.len().max(1), "one shipment per location: {sent}");
                for shipment in &shipments {
                    let number = ship(stack, retries, shipment).await;
                    let delivered = json!({"eventId": format!("{number}-delivered"), "shipmentReference": shipment, "trackingNumber": number, "status": "DELIVERED", "occurredAt": chrono::Utc::now().to_rfc3339()});
                    let reply = retrying(retries, "the carrier's event", || stack.carrier_event(&delivered, None)).await;
                    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                }
                until_order(stack, retries, id, "delivered", |o| o["status"] == "DELIVERED").await;
                parcels.lock().unwrap().insert(id.clone(), shipments.len());
                (id.clone(), "DELIVERED", order_lines.clone())
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let delivered: Vec<_> = outcomes
        .iter()
        .filter(|(_, o, _)| *o == "DELIVERED")
        .collect();
    let rejected = outcomes.len() - delivered.len();
    assert!(
        !delivered.is_empty() && rejected > 0,
        "the run reaches both ends: {} delivered, {rejected} rejected",
        delivered.len()
    );

    // The counters: what left is exactly what was delivered, nothing still reserved.
    let mut shipped_units: HashMap<&str, u32> = HashMap::new();
    for (_, _, order_lines) in &delivered {
        for (sku, quantity) in order_lines {
            *shipped_units.entry(sku.as_str()).or_default() += quantity;
        }
    }
    for sku in &skus {
        let product = get_json(&stack, &retries, &format!("/inventory/{sku}"), &admin).await;
        let left = STOCK_PER_SKU - shipped_units.get(sku.as_str()).copied().unwrap_or(0);
        assert_eq!(
            (
                product["available"].as_u64(),
                product["reserved"].as_u64(),
                product["onHand"].as_u64()
            ),
            (Some(u64::from(left)), Some(0), Some(u64::from(left))),
            "{sku}: exact after the run"
        );
        for location in product["locations"].as_array().into_iter().flatten() {
            assert_eq!(
                location["reserved"].as_u64(),
                Some(0),
                "{sku}: nothing still reserved at {}",
                location["location"]
            );
        }
    }

    // Told exactly once per step: every order its placement and its decision, every delivered
    // one its payment, and each of its parcels' shipment and delivery; nothing twice.
    let parcels = parcels.into_inner().unwrap();
    let expected: BTreeMap<(String, String), usize> = outcomes
        .iter()
        .flat_map(|(id, outcome, _)| {
            let per_parcel = parcels.get(id).copied().unwrap_or(1);
            let steps: Vec<(&str, usize)> = if *outcome == "DELIVERED" {
                vec![
                    ("oms.order.placed", 1),
                    ("oms.order.reserved", 1),
                    ("oms.payment.authorized", 1),
                    ("oms.order.shipped", per_parcel),
                    ("oms.order.delivered", per_parcel),
                ]
            } else {
                vec![("oms.order.placed", 1), ("oms.order.rejected", 1)]
            };
            steps
                .into_iter()
                .map(move |(s, n)| ((id.clone(), s.to_string()), n))
        })
        .collect();
    let key = |(body, _): &(Value, HashMap<String, String>)| {
        (
            body["orderId"].as_str().unwrap_or_default().to_owned(),
            body["eventType"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let seen = inbox
        .collect(Duration::from_secs(600), |seen| {
            let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
            for m in seen.iter().filter(|m| m.0["channel"] == "email") {
                *got.entry(key(m)).or_default() += 1;
            }
            expected
                .iter()
                .all(|(k, n)| got.get(k).copied().unwrap_or(0) >= *n)
        })
        .await;
    let late = inbox.collect(Duration::from_secs(10), |_| false).await;
    let all: Vec<_> = seen.iter().chain(late.iter()).collect();
    let mut told: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for message in &all {
        let (order, event) = key(message);
        *told
            .entry((
                order,
                event,
                message.0["channel"].as_str().unwrap_or_default().to_owned(),
            ))
            .or_default() += 1;
    }
    let wanted = |order: &str, event: &str| {
        expected
            .get(&(order.to_owned(), event.to_owned()))
            .copied()
            .unwrap_or(1)
    };
    let duplicated: Vec<_> = told
        .iter()
        .filter(|((o, e, _), n)| **n > wanted(o, e))
        .collect();
    let lost: Vec<_> = expected
        .iter()
        .filter(|((o, e), n)| {
            told.get(&(o.clone(), e.clone(), "email".to_owned()))
                .copied()
                .unwrap_or(0)
                < **n
        })
        .collect();
    assert!(duplicated.is_empty(), "told twice: {duplicated:?}");
    assert!(lost.is_empty(), "never told: {lost:?}");

    // No dead-letter queue holds anything: nothing here was poison.
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    for queue in [
        "ReservationsDeadLetterQueue",
        "FulfillmentDeadLetterQueue",
        "NotifierDeadLetterQueue",
        "EmailOutboxDeadLetterQueue",
        "SmsOutboxDeadLetterQueue",
        "EventPublisherDeadLetterQueue",
    ] {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(format!(
                "{}/123456789012/{}",
                stack.emulator,
                stack.resource(queue)
            ))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let depth: u64 = attributes
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum();
        assert_eq!(depth, 0, "{queue} holds {depth} messages");
    }

    // The faults were there.
    let (emulator, local) = fault_counts(&stack).await;
    let injected = |kind: &str| emulator["injected"][kind].as_u64().unwrap_or(0);
    let crashed = |kind: &str| local[kind].as_u64().unwrap_or(0);
    for kind in [
        "dynamodb_throttle",
        "transaction_conflict",
        "sns_entry_failure",
    ] {
        assert!(injected(kind) > 0, "no {kind} was injected: {emulator}");
    }
    assert!(
        crashed("crashedBeforeTheWork") > 0 && crashed("crashedAfterTheWork") > 0,
        "{local}"
    );
    let split_orders = split_orders.load(Ordering::Relaxed);
    assert!(
        split_orders > 0,
        "some orders were split over two warehouses"
    );
    println!(
        "fault run: {ORDERS} orders ({} delivered, {split_orders} of them split over two warehouses, {rejected} rejected) in {:.0} s; injected: {} DynamoDB throttles, {} transaction conflicts, {} SNS entry failures, {} crashes before the work and {} after it; client retries of a 503: {}; notifications: {} sent, 0 lost, 0 duplicated; dead-letter queues: empty",
        delivered.len(),
        started.elapsed().as_secs_f64(),
        injected("dynamodb_throttle"),
        injected("transaction_conflict"),
        injected("sns_entry_failure"),
        crashed("crashedBeforeTheWork"),
        crashed("crashedAfterTheWork"),
        retries.load(Ordering::Relaxed),
        all.len(),
    );
}
