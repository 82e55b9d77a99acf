//! Money in the order's life, driven from the outside: the PSP's signed webhook, the warehouse
//! waiting for the authorization, the capture asked for on shipment, unpaid orders expiring
//! through the schedule (the test stack's window, `OMS_LOCAL_PARAMETER_PaymentWindowSeconds`, is 20 s),
//! an authorization racing its expiry, refunds settled, and what staff are shown.

use std::time::{Duration, Instant};

use oms_system_tests::{
    if_match, open_at_stripe, parcel, pay_at_stripe, pay_at_stripe_with, psp_body, psp_secret,
    texts, tracking, unique, wait_for, Probe, Stack, StatusCode, ROTATED_PSP_SECRET,
};
use serde_json::{json, Value};

/// The test stack's payment window.
fn window() -> Duration {
    Duration::from_secs(
        std::env::var("OMS_LOCAL_PARAMETER_PaymentWindowSeconds")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    )
}

fn notes(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["note"].as_str().map(str::to_owned))
        .collect()
}

async fn place_unpaid(stack: &Stack, sku: &str, quantity: u32) -> (String, Value) {
    let customer = unique("payer");
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(sku, quantity)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    (customer, placed.body)
}

#[tokio::test]
async fn an_order_ships_only_once_authorized_and_its_capture_is_asked_for_on_shipment() {
    let stack = Stack::connect().await;
    let captures = Probe::subscribe(
        &stack,
        "OrderEventsTopic",
        Some(json!({"eventType": ["oms.psp.capture-requested"]})),
    )
    .await;
    let sku = stack.create_sku("PAID", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 2).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();

    // Reserved, but held: not in the warehouse's hands until the money is.
    let held = wait_for(&stack, &id, "reserved", |o| o["status"] == "RESERVED").await;
    assert_eq!(held["hold"], "AWAITING_PAYMENT");
    assert_eq!(held["payment"]["status"], "PENDING");
    assert!(notes(&held).iter().any(|n| n.contains("awaiting payment")));
    assert_eq!(stack.stock(&sku).await, (3, 2, 5), "its stock is held");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warehouse = stack.token("packer-pay", Some("oms:warehouse"));
    assert_eq!(
        stack
            .get(&format!("/fulfillments/{id}"), &warehouse)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "not on the pick list before it is paid for"
    );

    // Authorized: the warehouse gets it.
    let ack = stack.authorize(&placed).await;
    assert_eq!(ack.body["outcome"], "recorded");
    assert_eq!(ack.body["paymentStatus"], "AUTHORIZED");
    let fulfilling = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(fulfilling["payment"]["status"], "AUTHORIZED");
    assert!(fulfilling.get("hold").is_none());

    // Shipped: the capture is asked for, once, with an id the PSP deduplicates on. (Staff see
    // what was asked of the PSP; the customer sees the payment's status.)
    stack.ship_through_warehouse(&id).await;
    let as_customer = stack.wait_status(&customer, &id, "SHIPPED").await;
    assert_eq!(as_customer["payment"]["status"], "AUTHORIZED");
    assert!(as_customer["payment"].get("requests").is_none());
    assert!(as_customer["payment"].get("ledger").is_none());
    let shipped = stack.order_as_staff(&id).await;
    assert_eq!(shipped["status"], "SHIPPED");
    let requests = shipped["payment"]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["kind"], "CAPTURE");
    assert_eq!(requests[0]["amount"], placed["totals"]["total"]);
    assert_eq!(requests[0]["pspReference"], format!("pi_{id}"));
    let request_id = requests[0]["requestId"].as_str().unwrap().to_owned();
    let asked: Vec<Value> = captures
        .collect(Duration::from_secs(20), |seen| {
            seen.iter()
                .any(|(b, _)| b["data"]["orderId"] == id.as_str())
        })
        .await
        .into_iter()
        .map(|(body, _)| body)
        .filter(|b| b["data"]["orderId"] == id.as_str())
        .collect();
    assert_eq!(asked.len(), 1, "one capture request event");
    assert_eq!(asked[0]["id"], request_id.as_str());

    // The PSP captures: paid.
    stack.psp("capture.succeeded", &shipped).await;
    let paid = wait_for(&stack, &id, "paid", |o| o["payment"]["status"] == "PAID").await;
    let kinds = texts(&paid["payment"]["ledger"], "kind");
    assert_eq!(kinds, ["authorization.succeeded", "capture.succeeded"]);

    // Delivered, and paid for: the whole life in the timeline.
    let number = shipped["fulfillment"]["tracking"]["trackingNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = chrono::Utc::now().to_rfc3339();
    stack.deliver(&customer, &id, &number, &now).await;
    let done = stack.order_as_staff(&id).await;
    assert_eq!(done["payment"]["status"], "PAID");
    assert!(done["payment"].get("attention").is_none());
    let notes = notes(&done);
    let position = |prefix: &str| {
        notes
            .iter()
            .position(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {notes:?}"))
    };
    let steps = [
        "stock held; awaiting payment",
        "payment: authorization.succeeded",
        "sent to warehouse",
        "shipped",
        "payment: capture.succeeded",
        "delivered",
    ]
    .map(position);
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "in the order they happened: {notes:?}"
    );
}

#[tokio::test]
async fn a_declined_payment_is_told_once_and_the_customer_may_pay_again() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("DECLINE", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let inbox = Probe::customer_email(&stack, &customer).await;
    wait_for(&stack, &id, "reserved", |o| o["status"] == "RESERVED").await;

    // Declined: held, awaiting payment, and the customer is told what to do — in words they can
    // act on, never the PSP's word for suspected fraud.
    let mut declined = psp_body(
        "authorization.failed",
        &id,
        &placed["totals"]["total"],
        None,
    );
    declined["reason"] = "insufficient_funds".into();
    let reply = stack.psp_event(&declined).await;
    assert_eq!(reply.body["paymentStatus"], "FAILED", "{:?}", reply.body);
    let mut suspected = psp_body(
        "authorization.failed",
        &id,
        &placed["totals"]["total"],
        None,
    );
    suspected["reason"] = "fraudulent".into();
    assert_eq!(stack.psp_event(&suspected).await.status, StatusCode::OK);
    let held = stack.order_as_staff(&id).await;
    assert_eq!(held["status"], "RESERVED");
    assert_eq!(held["hold"], "AWAITING_PAYMENT");
    assert_eq!(held["payment"]["status"], "FAILED");

    // Paid again with another card: on to the warehouse.
    let mut again = psp_body(
        "authorization.succeeded",
        &id,
        &placed["totals"]["total"],
        None,
    );
    again["pspReference"] = format!("pi_{id}_2").into();
    assert_eq!(
        stack.psp_event(&again).await.body["paymentStatus"],
        "AUTHORIZED"
    );
    stack.wait_status(&customer, &id, "FULFILLING").await;

    let told = inbox
        .collect(Duration::from_secs(180), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.payment.authorized")
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let failed: Vec<&Value> = told
        .iter()
        .chain(late.iter())
        .map(|(m, _)| m)
        .filter(|m| m["eventType"] == "oms.payment.failed")
        .collect();
    assert_eq!(failed.len(), 1, "told once, for the first decline");
    let text = failed[0]["text"].as_str().unwrap();
    assert!(text.contains("insufficient funds"), "{text}");
    assert!(!text.to_lowercase().contains("fraud"), "{text}");
    let received = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| m["eventType"] == "oms.payment.authorized")
        .count();
    assert_eq!(received, 1, "and told once that the payment was received");
}

#[tokio::test]
async fn an_order_never_paid_for_expires_with_its_stock_back_and_the_customer_told_once() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("EXPIRE", 4).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 3).await;
    let notifications = Probe::customer_email(&stack, &customer).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    wait_for(&stack, &id, "reserved", |o| o["status"] == "RESERVED").await;
    assert_eq!(stack.stock(&sku).await, (1, 3, 4));

    let expired = wait_for(&stack, &id, "expired", |o| o["status"] == "CANCELLED").await;
    assert_eq!(expired["payment"]["status"], "EXPIRED");
    assert_eq!(expired["cancellation"]["expired"], true);
    assert_eq!(expired["cancellation"]["by"], "system");
    assert!(expired.get("refunds").is_none(), "nothing was paid");
    assert!(expired["payment"]
        .get("requests")
        .is_none_or(|r| r.as_array().unwrap().is_empty()));
    assert_eq!(
        stack.stock(&sku).await,
        (4, 0, 4),
        "its stock is back exactly"
    );
    let waited = chrono::DateTime::parse_from_rfc3339(expired["updatedAt"].as_str().unwrap())
        .unwrap()
        - chrono::DateTime::parse_from_rfc3339(expired["createdAt"].as_str().unwrap()).unwrap();
    assert!(
        waited.num_milliseconds() >= window().as_millis() as i64,
        "not before its window: {waited}"
    );

    // More runs of the schedule change nothing.
    let run = stack.run_schedule("OrderSweeperFunction").await;
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
    assert_eq!(
        stack.order_as_staff(&id).await["version"],
        expired["version"]
    );
    assert_eq!(stack.stock(&sku).await, (4, 0, 4));

    let told = notifications
        .collect(Duration::from_secs(180), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.expired")
        })
        .await;
    let late = notifications
        .collect(Duration::from_secs(3), |_| false)
        .await;
    let expiries = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| m["eventType"] == "oms.order.expired")
        .count();
    assert_eq!(expiries, 1, "told once");
}

#[tokio::test]
async fn fifty_authorizations_race_their_orders_expiry_and_each_order_has_one_fate() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("RACE-PAY", 50).await;
    let mut orders = Vec::new();
    for _ in 0..50 {
        orders.push(place_unpaid(&stack, &sku, 1).await.1);
    }
    // Each order's window closes a window after its reservation (the sweep reads orders by how
    // long they have been reserved; the expiry itself counts from the placing). Side by side, so
    // a slow machine's last orders are not left to expire before the first band has paid.
    let edges = futures::future::join_all(orders.iter().enumerate().map(|(i, order)| {
        let stack = stack.clone();
        async move {
            let id = order["orderId"].as_str().unwrap();
            let reserved = wait_for(&stack, id, "reserved", |o| o["status"] == "RESERVED").await;
            if i < 15 {
                // The first band pays at once, well inside its window: it must proceed.
                let authorization = psp_body(
                    "authorization.succeeded",
                    id,
                    &order["totals"]["total"],
                    None,
                );
                let reply = stack.psp_event(&authorization).await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            }
            let at = reserved["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["status"] == "RESERVED")
                .and_then(|t| t["at"].as_str())
                .unwrap()
                .to_owned();
            let at = chrono::DateTime::parse_from_rfc3339(&at)
                .unwrap()
                .with_timezone(&chrono::Utc);
            at + chrono::Duration::from_std(window()).unwrap()
        }
    }))
    .await;
    assert_eq!(stack.stock(&sku).await, (0, 50, 50));

    // The other bands: the last fifteen pay once their order is seen expired (they must be
    // voided), and the twenty between pay exactly as their window closes, while the sweep runs
    // on demand beside them.
    let sleep_until = |at: chrono::DateTime<chrono::Utc>| {
        tokio::time::sleep((at - chrono::Utc::now()).to_std().unwrap_or_default())
    };
    let fates = futures::future::join_all(orders.iter().zip(&edges).enumerate().map(
        |(i, (order, edge))| {
            let stack = stack.clone();
            async move {
                let id = order["orderId"].as_str().unwrap();
                let authorization = psp_body(
                    "authorization.succeeded",
                    id,
                    &order["totals"]["total"],
                    None,
                );
                let reply = match i {
                    0..15 => return,
                    15..35 => {
                        let jitter = chrono::Duration::milliseconds(40 * (i as i64 % 10));
                        sleep_until(*edge + jitter).await;
                        let (reply, swept) = tokio::join!(
                            stack.psp_event(&authorization),
                            stack.run_schedule("OrderSweeperFunction")
                        );
                        assert_eq!(swept.status, StatusCode::OK, "{:?}", swept.body);
                        reply
                    }
                    _ => {
                        wait_for(&stack, id, "expired", |o| o["status"] == "CANCELLED").await;
                        stack.psp_event(&authorization).await
                    }
                };
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            }
        },
    ))
    .await;
    assert_eq!(fates.len(), 50);

    // Each order: on to the warehouse (authorized, stock held) or expired (stock released, the
    // late authorization voided) — never both.
    let (mut proceeded, mut expired) = (0u64, 0u64);
    for order in &orders {
        let id = order["orderId"].as_str().unwrap();
        let settled = wait_for(&stack, id, "its fate", |o| {
            o["status"] == "FULFILLING"
                || (o["status"] == "CANCELLED"
                    && o["payment"]["requests"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r["kind"] == "VOID")))
        })
        .await;
        match settled["status"].as_str().unwrap() {
            "FULFILLING" => {
                assert_eq!(settled["payment"]["status"], "AUTHORIZED");
                assert!(settled.get("cancellation").is_none());
                proceeded += 1;
            }
            _ => {
                assert_eq!(settled["cancellation"]["expired"], true);
                assert_eq!(
                    settled["payment"]["status"], "AUTHORIZED",
                    "held until voided"
                );
                let voids = settled["payment"]["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["kind"] == "VOID")
                    .count();
                assert_eq!(voids, 1);
                assert!(settled.get("fulfillment").is_none());
                expired += 1;
            }
        }
    }
    assert_eq!(proceeded + expired, 50);
    assert!(
        proceeded >= 15 && expired >= 15,
        "the bands that cannot race came out as they must: {proceeded} proceeded, {expired} expired"
    );
    assert_eq!(
        stack.stock(&sku).await,
        (expired, proceeded, 50),
        "{proceeded} proceeded, {expired} expired"
    );
    println!("authorization vs expiry: {proceeded} proceeded, {expired} expired");
}

#[tokio::test]
async fn repeated_reordered_forged_and_stale_psp_events_change_nothing_twice() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PSP", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let total = &placed["totals"]["total"];

    // The capture arrives before its authorization: paid all the same.
    let capture = psp_body("capture.succeeded", &id, total, None);
    let reply = stack.psp_event(&capture).await;
    assert_eq!(
        (reply.status, reply.body["paymentStatus"].as_str()),
        (StatusCode::OK, Some("PAID"))
    );
    let authorization = psp_body("authorization.succeeded", &id, total, None);
    assert_eq!(stack.psp_event(&authorization).await.status, StatusCode::OK);
    let order = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(order["payment"]["status"], "PAID");
    let version = order["version"].clone();

    // Both again: acknowledged, nothing changes.
    for event in [&capture, &authorization] {
        let again = stack.psp_event(event).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["outcome"], "duplicate");
    }
    assert_eq!(stack.order_as_staff(&id).await["version"], version);

    // Forged, stale, unsigned: 401, nothing changes.
    let void = psp_body("void.succeeded", &id, total, None);
    let now = chrono::Utc::now().timestamp();
    let secret = psp_secret();
    for (what, reply) in [
        (
            "forged",
            stack
                .psp_event_signed(&void, &["a-secret-nobody-holds"], now)
                .await,
        ),
        (
            "stale",
            stack
                .psp_event_signed(&void, &[&secret, ROTATED_PSP_SECRET], now - 301)
                .await,
        ),
        (
            // Read the clock again: the requests before may have taken a while, and a second
            // less would put this one back inside the window.
            "from the future",
            stack
                .psp_event_signed(
                    &void,
                    &[&secret, ROTATED_PSP_SECRET],
                    chrono::Utc::now().timestamp() + 330,
                )
                .await,
        ),
        ("unsigned", stack.psp_event_signed(&void, &[], now).await),
    ] {
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["type"], "/problems/invalid-signature", "{what}");
    }
    assert_eq!(stack.order_as_staff(&id).await["version"], version);

    // An amount that is not the order's is recorded, counts for nothing, and goes to staff.
    let other = stack.create_sku("PSP-MISMATCH", 5).await;
    let (_, second) = place_unpaid(&stack, &other, 1).await;
    let second_id = second["orderId"].as_str().unwrap().to_owned();
    let wrong = psp_body(
        "authorization.succeeded",
        &second_id,
        &json!({"amount": 1, "currency": "EUR"}),
        None,
    );
    let reply = stack.psp_event(&wrong).await;
    assert_eq!(reply.body["paymentStatus"], "PENDING", "{:?}", reply.body);
    let shown = stack.order_as_staff(&second_id).await;
    assert_eq!(shown["payment"]["attention"]["reason"], "AMOUNT_MISMATCH");
    assert!(shown["payment"]["ledger"][0]["mismatch"].is_string());
    assert_eq!(shown["hold"], "AWAITING_PAYMENT");
    let admin = stack.token("staff-payments", Some("oms:admin"));
    let list = wait_listed(&stack, &admin, &second_id).await;
    assert_eq!(list["attention"]["reason"], "AMOUNT_MISMATCH");
    let as_customer = stack
        .get("/payments/attention", &stack.token("nosy", None))
        .await;
    assert_eq!(as_customer.status, StatusCode::FORBIDDEN);
}

/// Waits until the order is on the payment attention list, and returns its entry.
async fn wait_listed(stack: &Stack, admin: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(entry) = listed(stack, admin, id).await {
            return entry;
        }
        assert!(Instant::now() < deadline, "{id} never listed for staff");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The order's entry on the payment attention list now, if it is there (every page read).
async fn listed(stack: &Stack, admin: &str, id: &str) -> Option<Value> {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/payments/attention?limit=100&cursor={c}"),
            None => "/payments/attention?limit=100".to_owned(),
        };
        let page = stack.get(&path, admin).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let items = page.body["items"].as_array().unwrap();
        if let Some(entry) = items.iter().find(|e| e["orderId"] == id) {
            return Some(entry.clone());
        }
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return None,
        }
    }
}

#[tokio::test]
async fn a_mismatch_on_a_cancelled_order_closes_once_staff_acknowledge_it() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PSP-ACK", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let wrong = psp_body(
        "authorization.succeeded",
        &id,
        &json!({"amount": 1, "currency": "EUR"}),
        None,
    );
    assert_eq!(stack.psp_event(&wrong).await.status, StatusCode::OK);
    let admin = stack.token("staff-payments", Some("oms:admin"));
    wait_listed(&stack, &admin, &id).await;
    // The customer calls it off: the mismatch still needs a person.
    let cancelled = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &stack.token(&customer, None),
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert!(
        listed(&stack, &admin, &id).await.is_some(),
        "still needs staff"
    );
    // The hold that was not the order's is released at once, for the amount it holds.
    let requests = stack.order_as_staff(&id).await["payment"]["requests"].clone();
    assert_eq!(requests.as_array().map(Vec::len), Some(1), "{requests}");
    assert_eq!(requests[0]["kind"], "VOID");
    assert_eq!(requests[0]["pspReference"], format!("pi_{id}"));
    assert_eq!(
        requests[0]["amount"],
        json!({"amount": 1, "currency": "EUR"})
    );

    // Staff deal with it at the PSP and say so in the console, on the order they saw.
    let console = stack.console_session("staff-ren", "admin").await;
    let path = format!("/console/orders/{id}/payment/acknowledge");
    let stale = (cancelled.body["version"].as_u64().unwrap() - 1).to_string();
    let (status, _) = console
        .post(
            &path,
            &[("version", stale.as_str()), ("note", "voided at the PSP")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "an older page is refused");
    let (status, _) = console
        .post(
            &path,
            &[
                ("version", &cancelled.body["version"].to_string()),
                ("note", ""),
            ],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a note is required"
    );
    // In the browser: the order's page says what needs staff, and its form acknowledges it.
    let browser = crate::console::Browser::open(&stack).await;
    browser.sign_in("staff-ren", "admin").await;
    browser.goto(&format!("/console/orders/{id}")).await;
    assert!(browser
        .text("#payment-attention")
        .await
        .contains("Needs staff"));
    browser
        .fill("#acknowledge-note", "voided the 0.01 EUR hold at the PSP")
        .await;
    browser.submit("#acknowledge").await;
    assert!(
        browser
            .text("#acknowledgments")
            .await
            .contains("staff-ren: voided the 0.01 EUR hold at the PSP"),
        "{}",
        browser.body().await
    );
    assert!(
        listed(&stack, &admin, &id).await.is_none(),
        "off the attention list"
    );
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#payment-attention"))
            .await
            .is_err(),
        "nothing needs staff any more"
    );
    let shown = stack.order_as_staff(&id).await;
    assert!(shown["payment"]["attention"].is_null());
    // Staff's note is staff's: on the console's order page, not in what the customer reads.
    let (_, page) = console.get(&format!("/console/orders/{id}")).await;
    assert!(
        page.contains("staff-ren: voided the 0.01 EUR hold at the PSP"),
        "{page}"
    );
    let as_customer = stack
        .get(&format!("/orders/{id}"), &stack.token(&customer, None))
        .await;
    let note = b"hold at the PSP";
    assert!(
        !as_customer.raw.windows(note.len()).any(|w| w == note),
        "{:?}",
        as_customer.body
    );
}

#[tokio::test]
async fn an_old_secret_is_refused_once_the_secret_is_rotated() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("ROTATE", 5).await;
    let (_, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let old = psp_secret();

    // The secret is rotated (every other test signs with both, as a PSP mid-rotation does).
    let sdk = stack.sdk().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = secrets
        .describe_secret()
        .secret_id(stack.resource("PspWebhookSecret"))
        .send()
        .await
        .expect("the PSP secret exists")
        .arn
        .expect("an ARN");
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(ROTATED_PSP_SECRET)
        .send()
        .await
        .expect("rotating the secret");
    // The function reads the secret again within its cache time (2 s in the test stack).
    tokio::time::sleep(Duration::from_secs(4)).await;

    let authorization = psp_body(
        "authorization.succeeded",
        &id,
        &placed["totals"]["total"],
        None,
    );
    let now = chrono::Utc::now().timestamp();
    let refused = stack.psp_event_signed(&authorization, &[&old], now).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    assert_eq!(
        stack.order_as_staff(&id).await["payment"]["status"],
        "PENDING"
    );
    let taken = stack
        .psp_event_signed(&authorization, &[ROTATED_PSP_SECRET], now)
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{:?}", taken.body);
    assert_eq!(taken.body["paymentStatus"], "AUTHORIZED");
}

#[tokio::test]
async fn a_partial_return_is_refunded_once_the_psp_confirms_and_a_failed_refund_goes_to_staff() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("REFUND", 6).await;
    let mut settled = Vec::new();
    for outcome in ["refund.succeeded", "refund.failed"] {
        let delivered_at = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
        let (customer, delivered) = stack.delivered_order(&[(&sku, 2)], &delivered_at).await;
        let id = delivered["orderId"].as_str().unwrap().to_owned();
        // This customer's e-mails from here on: the return's and the refund's.
        let inbox = Probe::customer_email(&stack, &customer).await;
        assert_eq!(
            delivered["payment"]["status"], "PAID",
            "captured on shipment"
        );
        stack.return_one_unit(&customer, &id, &sku).await;
        let order = wait_for(&stack, &id, "a refund requested", |o| {
            o["refunds"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
        let refund = &order["refunds"][0];
        assert_eq!(refund["state"], "REQUESTED");
        assert_eq!(order["payment"]["status"], "PAID");
        let body = psp_body(
            outcome,
            &id,
            &refund["amount"],
            Some(refund["refundId"].as_str().unwrap()),
        );
        let reply = stack.psp_event(&body).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(stack.psp_event(&body).await.body["outcome"], "duplicate");
        settled.push((id, outcome, inbox));
    }

    let (issued_id, _, issued_inbox) = &settled[0];
    let issued = stack.order_as_staff(issued_id).await;
    assert_eq!(issued["refunds"][0]["state"], "ISSUED");
    assert_eq!(issued["payment"]["status"], "PARTIALLY_REFUNDED");
    let (failed_id, _, failed_inbox) = &settled[1];
    let failed = stack.order_as_staff(failed_id).await;
    assert_eq!(failed["refunds"][0]["state"], "FAILED");
    assert_eq!(failed["payment"]["attention"]["reason"], "REFUND_FAILED");
    let admin = stack.token("staff-refunds", Some("oms:admin"));
    assert_eq!(
        wait_listed(&stack, &admin, failed_id).await["attention"]["reason"],
        "REFUND_FAILED"
    );

    // The customer hears "refund issued" once, and nothing of a refund that failed (the
    // receipt's own message, which came before, shows the inbox was read).
    let of = |seen: &[(Value, std::collections::HashMap<String, String>)], kind: &str| {
        seen.iter().filter(|(m, _)| m["eventType"] == kind).count()
    };
    let told = issued_inbox
        .collect(Duration::from_secs(180), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.payment.refund-issued")
        })
        .await;
    let late = issued_inbox
        .collect(Duration::from_secs(3), |_| false)
        .await;
    assert_eq!(
        of(&told, "oms.payment.refund-issued") + of(&late, "oms.payment.refund-issued"),
        1
    );
    let told = failed_inbox
        .collect(Duration::from_secs(180), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.return.received")
        })
        .await;
    let late = failed_inbox
        .collect(Duration::from_secs(5), |_| false)
        .await;
    assert_eq!(of(&told, "oms.return.received"), 1);
    for kind in ["oms.payment.refund-issued", "oms.payment.refund-failed"] {
        assert_eq!(of(&told, kind) + of(&late, kind), 0, "{kind}");
    }

    // Staff ask the PSP again for the failed refund: a new refund under its own id, the failed
    // one marked, the order off the attention list; the PSP pays the new one out.
    let failed_refund = failed["refunds"][0]["refundId"]
        .as_str()
        .unwrap()
        .to_owned();
    let retry = format!("/orders/{failed_id}/refunds/{failed_refund}/retry");
    let as_customer = stack
        .post(&retry, &stack.token("nosy-refunds", None), &[], json!({}))
        .await;
    assert_eq!(as_customer.status, StatusCode::FORBIDDEN);
    let retried = stack.post(&retry, &admin, &[], json!({})).await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    let again = retried.body["refunds"][1].clone();
    assert_eq!(again["state"], "REQUESTED");
    assert_eq!(again["amount"], failed["refunds"][0]["amount"]);
    assert_eq!(retried.body["refunds"][0]["retriedAs"], again["refundId"]);
    assert!(retried.body["payment"].get("attention").is_none());
    let twice = stack.post(&retry, &admin, &[], json!({})).await;
    assert_eq!(
        (twice.status, twice.body["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/refund-not-retryable"))
    );
    let paid_out = psp_body(
        "refund.succeeded",
        failed_id,
        &again["amount"],
        Some(again["refundId"].as_str().unwrap()),
    );
    assert_eq!(stack.psp_event(&paid_out).await.status, StatusCode::OK);
    let settled_now = stack.order_as_staff(failed_id).await;
    assert_eq!(settled_now["refunds"][1]["state"], "ISSUED");
    assert_eq!(settled_now["payment"]["status"], "PARTIALLY_REFUNDED");
}

/// The PSP says `kind` about the order's payment `reference` over its total.
async fn psp_on(stack: &Stack, kind: &str, order: &Value, reference: &str) {
    let id = order["orderId"].as_str().unwrap();
    let mut body = psp_body(kind, id, &order["totals"]["total"], None);
    body["pspReference"] = reference.into();
    let reply = stack.psp_event(&body).await;
    assert_eq!(reply.status, StatusCode::OK, "{kind}: {:?}", reply.body);
}

/// Posts a warehouse step on the order and answers its reply.
async fn warehouse_step(
    stack: &Stack,
    id: &str,
    step: &str,
    body: Option<Value>,
) -> oms_system_tests::Reply {
    let warehouse = stack.token("packer-hold", Some("oms:warehouse"));
    let etag = stack.order_as_staff(id).await["shipments"][0]["version"].to_string();
    stack
        .warehouse_post(
            &format!("/fulfillments/{id}/{step}"),
            &warehouse,
            Some(&format!("\"v{etag}\"")),
            body.as_ref(),
        )
        .await
}

/// An order of two units authorized under payment A and taken by the warehouse to `step`
/// (`pick` or `pack`), whose hold the PSP then releases: it leaves the warehouse at once.
async fn released_in_the_warehouse(stack: &Stack, sku: &str, step: &str) -> (String, Value) {
    let (customer, placed) = place_unpaid(stack, sku, 2).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    wait_for(stack, &id, "reserved", |o| o["status"] == "RESERVED").await;
    psp_on(stack, "authorization.succeeded", &placed, "pi_A").await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let picked = warehouse_step(stack, &id, "pick", None).await;
    assert_eq!(picked.status, StatusCode::OK, "{:?}", picked.body);
    if step == "pack" {
        let packed = warehouse_step(
            stack,
            &id,
            "pack",
            Some(json!({"weightGrams": 900, "lengthCm": 30, "widthCm": 20, "heightCm": 10})),
        )
        .await;
        assert_eq!(packed.status, StatusCode::OK, "{:?}", packed.body);
    }
    psp_on(stack, "void.succeeded", &placed, "pi_A").await;
    let held = stack.order_as_staff(&id).await;
    assert_eq!(held["status"], "RESERVED", "out of the warehouse at once");
    assert_eq!(held["hold"], "AWAITING_PAYMENT");
    assert_eq!(held["payment"]["status"], "VOIDED");
    let warehouse = stack.token("packer-hold", Some("oms:warehouse"));
    let listed = stack.get("/fulfillments?limit=100", &warehouse).await;
    assert!(
        !listed.body.to_string().contains(id.as_str()),
        "off the pick list: {}",
        listed.body
    );
    let refused = warehouse_step(stack, &id, "pick", None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("waits for its payment")),
        "the warehouse is told why: {:?}",
        refused.body
    );
    (customer, placed)
}

#[tokio::test]
async fn after_a_released_hold_and_a_new_payment_the_capture_and_the_void_name_the_new_payment() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("REPAID", 10).await;

    // Released after packing, paid again under B: back at the packing table, shipped, and the
    // capture names B.
    let (customer, placed) = released_in_the_warehouse(&stack, &sku, "pack").await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    psp_on(&stack, "authorization.succeeded", &placed, "pi_B").await;
    let back = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(back["payment"]["status"], "AUTHORIZED");
    let staff = stack.order_as_staff(&id).await;
    assert_eq!(
        staff["fulfillment"]["status"], "PACKED",
        "where it had got to"
    );
    assert!(staff["payment"].get("attention").is_none());
    let shipped = warehouse_step(
        &stack,
        &id,
        "ship",
        Some(json!({"carrier": "DHL", "trackingNumber": "JJD-REPAID", "trackingUrl": "https://www.dhl.com/track?id=JJD-REPAID"})),
    )
    .await;
    assert_eq!(shipped.status, StatusCode::OK, "{:?}", shipped.body);
    let requests = stack.order_as_staff(&id).await["payment"]["requests"].clone();
    assert_eq!(requests.as_array().map(Vec::len), Some(1), "{requests}");
    assert_eq!(requests[0]["kind"], "CAPTURE");
    assert_eq!(requests[0]["requestId"], format!("{id}-CAPTURE-1"));
    assert_eq!(requests[0]["pspReference"], "pi_B");

    // Released after picking, paid again under B, then cancelled: the void names B.
    let (customer, placed) = released_in_the_warehouse(&stack, &sku, "pick").await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    psp_on(&stack, "authorization.succeeded", &placed, "pi_B").await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let cancelled = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &stack.token(&customer, None),
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let requests = stack.order_as_staff(&id).await["payment"]["requests"].clone();
    assert_eq!(requests.as_array().map(Vec::len), Some(1), "{requests}");
    assert_eq!(requests[0]["kind"], "VOID");
    assert_eq!(requests[0]["pspReference"], "pi_B");
}

/// The PSP releases the hold of an order in the warehouse (it lapsed, say): the customer is
/// told at once, once, to pay again within the time the order has left.
#[tokio::test]
async fn a_customer_whose_hold_was_released_is_asked_to_pay_again() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("LAPSED", 10).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let told = Probe::customer_email(&stack, &customer).await;
    wait_for(&stack, &id, "reserved", |o| o["status"] == "RESERVED").await;
    psp_on(&stack, "authorization.succeeded", &placed, "pi_A").await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    psp_on(&stack, "void.succeeded", &placed, "pi_A").await;
    let voided = |seen: &[(Value, std::collections::HashMap<String, String>)]| {
        seen.iter()
            .filter(|(m, _)| m["eventType"] == "oms.payment.voided")
            .count()
    };
    let seen = told
        .collect(Duration::from_secs(60), |seen| voided(seen) >= 1)
        .await;
    let later = told.collect(Duration::from_secs(3), |_| false).await;
    let all: Vec<_> = seen.into_iter().chain(later).collect();
    assert_eq!(voided(&all), 1, "told once");
    let message = &all
        .iter()
        .find(|(m, _)| m["eventType"] == "oms.payment.voided")
        .unwrap()
        .0;
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("please pay again within") && text.contains("Nothing was charged"),
        "{text}"
    );
}

#[tokio::test]
async fn an_order_whose_hold_was_released_in_the_warehouse_expires_with_its_stock_back() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("RELEASED", 10).await;
    let (customer, placed) = released_in_the_warehouse(&stack, &sku, "pick").await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let released = Instant::now();
    assert_eq!(
        stack.stock(&sku).await,
        (8, 2, 10),
        "still held while it waits"
    );
    let expired = wait_for(&stack, &id, "expired", |o| o["status"] == "CANCELLED").await;
    assert!(
        released.elapsed() >= window() - Duration::from_secs(2),
        "the window counts from the release: expired after {:?}",
        released.elapsed()
    );
    assert_eq!(expired["payment"]["status"], "VOIDED");
    assert_eq!(expired["cancellation"]["by"], "system");
    assert!(
        expired["payment"].get("requests").is_none(),
        "nothing is held, nothing asked"
    );
    assert_eq!(stack.stock(&sku).await, (10, 0, 10), "its stock is back");
    let as_customer = stack.wait_status(&customer, &id, "CANCELLED").await;
    assert_eq!(as_customer["status"], "CANCELLED");
}

#[tokio::test]
async fn a_refund_is_asked_only_once_its_capture_is_confirmed_and_an_unconfirmed_capture_goes_to_staff(
) {
    let stack = Stack::connect().await;
    let refunds_asked = Probe::subscribe(
        &stack,
        "OrderEventsTopic",
        Some(json!({"eventType": ["oms.refund.requested"]})),
    )
    .await;
    let sku = stack.create_sku("UNCAPTURED", 10).await;
    // Shipped (the capture asked for, never confirmed), delivered, partly returned.
    let (customer, id, placed) = stack.order_in_warehouse(&[(&sku, 2)]).await;
    let number = stack.ship_through_warehouse(&id).await;
    let now = chrono::Utc::now().to_rfc3339();
    stack.deliver(&customer, &id, &number, &now).await;
    stack.return_one_unit(&customer, &id, &sku).await;
    let admin = stack.token("staff-uncaptured", Some("oms:admin"));
    let waiting = stack.order_as_staff(&id).await;
    assert_eq!(waiting["payment"]["status"], "AUTHORIZED");
    assert_eq!(waiting["refunds"][0]["state"], "AWAITING_CAPTURE");
    let owed = waiting["refunds"][0]["amount"].clone();
    let ours = |seen: &[(Value, std::collections::HashMap<String, String>)]| {
        seen.iter()
            .filter(|(b, _)| b["data"]["orderId"] == id.as_str())
            .map(|(b, _)| b.clone())
            .collect::<Vec<_>>()
    };
    let early = refunds_asked
        .collect(Duration::from_secs(4), |_| false)
        .await;
    assert!(
        ours(&early).is_empty(),
        "no refund before the capture: {early:?}"
    );

    // The capture is not confirmed within the test stack's time: in front of staff.
    let flagged = wait_for(&stack, &id, "capture unconfirmed", |o| {
        o["payment"]["attention"]["reason"] == "CAPTURE_UNCONFIRMED"
    })
    .await;
    assert_eq!(flagged["refunds"][0]["state"], "AWAITING_CAPTURE");
    assert_eq!(
        wait_listed(&stack, &admin, &id).await["attention"]["reason"],
        "CAPTURE_UNCONFIRMED"
    );

    // The PSP confirms: the refund is asked, once, for exactly what is owed, off the list.
    stack.psp("capture.succeeded", &placed).await;
    let asked = refunds_asked
        .collect(Duration::from_secs(30), |seen| !ours(seen).is_empty())
        .await;
    let late = refunds_asked
        .collect(Duration::from_secs(3), |_| false)
        .await;
    let events: Vec<Value> = ours(&asked).into_iter().chain(ours(&late)).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["amount"], owed);
    assert_eq!(events[0]["data"]["pspReference"], format!("pi_{id}"));
    let settled = stack.order_as_staff(&id).await;
    assert_eq!(settled["refunds"][0]["state"], "REQUESTED");
    assert_eq!(settled["payment"]["status"], "PAID");
    assert!(settled["payment"].get("attention").is_none());
}

#[tokio::test]
async fn a_mismatched_hold_of_a_cancelled_order_is_voided_and_then_needs_no_one() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PSP-MISVOID", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let wrong = json!({"amount": 1, "currency": "EUR"});
    let auth = psp_body("authorization.succeeded", &id, &wrong, None);
    assert_eq!(stack.psp_event(&auth).await.status, StatusCode::OK);
    let admin = stack.token("staff-payments", Some("oms:admin"));
    wait_listed(&stack, &admin, &id).await;
    let cancelled = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &stack.token(&customer, None),
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let request = stack.order_as_staff(&id).await["payment"]["requests"][0].clone();
    assert_eq!(request["kind"], "VOID", "{request}");
    // The PSP confirms the release of that hold: nothing is left for staff.
    let mut void = psp_body("void.succeeded", &id, &wrong, None);
    void["requestId"] = request["requestId"].clone();
    let reply = stack.psp_event(&void).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let shown = stack.order_as_staff(&id).await;
    assert!(shown["payment"]["attention"].is_null(), "{shown}");
    // The order was never paid for: a stray hold released leaves it unpaid, not voided.
    assert_eq!(shown["payment"]["status"], "PENDING");
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(&stack, &admin, &id).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "{id} stayed on the attention list"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A second word of the same release changes nothing.
    assert_eq!(stack.psp_event(&void).await.status, StatusCode::OK);
    assert_eq!(stack.order_as_staff(&id).await["version"], shown["version"]);
}

#[tokio::test]
async fn stripes_own_events_pay_for_an_order_and_the_rest_are_left_alone() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("STRIPE", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let total = &placed["totals"]["total"];
    let intent = format!("pi_{}", unique("st").replace('-', ""));
    let payment_intent = |status: &str, received: &Value| {
        json!({
            "id": intent, "object": "payment_intent", "amount": total["amount"],
            "amount_capturable": if status == "requires_capture" { total["amount"].clone() } else { json!(0) },
            "amount_received": received, "capture_method": "manual",
            "currency": total["currency"].as_str().unwrap().to_lowercase(), "status": status,
            "livemode": false, "metadata": {"order_id": id}
        })
    };
    let event = |kind: &str, object: Value| {
        json!({
            "id": unique("evt"), "object": "event", "api_version": "2024-06-20",
            "created": chrono::Utc::now().timestamp(), "livemode": false, "type": kind,
            "data": {"object": object}
        })
    };
    // The authorization, as Stripe announces a manual-capture intent that can be captured.
    let capturable = event(
        "payment_intent.amount_capturable_updated",
        payment_intent("requires_capture", &json!(0)),
    );
    let forged = stack.stripe_event_signed(&capturable, &psp_secret()).await;
    assert_eq!(
        forged.status,
        StatusCode::UNAUTHORIZED,
        "the generic webhook's secret is not Stripe's"
    );
    let reply = stack.stripe_event(&capturable).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["outcome"], "recorded");
    assert_eq!(reply.body["paymentStatus"], "AUTHORIZED");
    assert_eq!(
        stack.stripe_event(&capturable).await.body["outcome"],
        "duplicate"
    );
    // Events the system does not need are taken and change nothing (once the order has
    // stopped moving by itself: in the warehouse, waiting to be picked).
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let version = stack.order_as_staff(&id).await["version"].clone();
    let other = event(
        "charge.succeeded",
        json!({"id": "ch_1", "object": "charge", "metadata": {}}),
    );
    let ignored = stack.stripe_event(&other).await;
    assert_eq!(ignored.status, StatusCode::OK);
    assert_eq!(
        ignored.body,
        json!({"outcome": "ignored", "eventType": "charge.succeeded"})
    );
    assert_eq!(stack.order_as_staff(&id).await["version"], version);

    // Paid for: the warehouse ships it, the capture is asked of the intent, Stripe's
    // `payment_intent.succeeded` settles it.
    stack.pick_pack_ship(&id, None).await;
    let shipped = stack.order_as_staff(&id).await;
    assert_eq!(shipped["payment"]["requests"][0]["kind"], "CAPTURE");
    assert_eq!(
        shipped["payment"]["requests"][0]["pspReference"],
        intent.as_str()
    );
    let captured = stack
        .stripe_event(&event(
            "payment_intent.succeeded",
            payment_intent("succeeded", &total["amount"]),
        ))
        .await;
    assert_eq!(captured.status, StatusCode::OK, "{:?}", captured.body);
    assert_eq!(captured.body["paymentStatus"], "PAID");
    // A payment event naming no order of this system (another integration's, a refund made in
    // Stripe's Dashboard), or an order it does not have, is taken — Stripe would send it again
    // for days — as unmatched.
    let mut orphan = payment_intent("succeeded", &total["amount"]);
    orphan["metadata"] = json!({});
    let taken = stack
        .stripe_event(&event("payment_intent.succeeded", orphan))
        .await;
    assert_eq!(taken.status, StatusCode::OK);
    assert_eq!(taken.body["outcome"], "unmatched");
    let mut elsewhere = payment_intent("succeeded", &total["amount"]);
    elsewhere["metadata"]["order_id"] = json!("01JZZZZZZZZZZZZZZZZZZZZZZZ");
    let taken = stack
        .stripe_event(&event("payment_intent.succeeded", elsewhere))
        .await;
    assert_eq!(taken.body["outcome"], "unmatched");
}

#[tokio::test]
async fn a_card_confirmed_at_the_stripe_emulator_pays_for_the_order_through_its_signed_events() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("STRIPE-EMU", 5).await;
    let customer = unique("payer");
    let told = Probe::customer_email(&stack, &customer).await;
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let placed = placed.body;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let amount = placed["totals"]["total"]["amount"].to_string();

    // The system opens the payment at Stripe for the order's customer: a manual-capture
    // PaymentIntent for the order's total, its id in the metadata. Asked again, the same one.
    let token = stack.token(&customer, None);
    let open = format!("/orders/{id}/payment-intent");
    let opened = stack.post(&open, &token, &[], json!(null)).await;
    assert_eq!(opened.status, StatusCode::OK, "{:?}", opened.body);
    assert_eq!(opened.body["amount"], placed["totals"]["total"]);
    assert_eq!(opened.body["status"], "requires_payment_method");
    let intent_id = opened.body["paymentIntentId"].as_str().unwrap().to_owned();
    assert!(opened.body["clientSecret"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{intent_id}_secret_")));
    let again = stack.post(&open, &token, &[], json!(null)).await;
    assert_eq!(
        again.body["paymentIntentId"],
        intent_id.as_str(),
        "the same payment"
    );
    let nosy = stack
        .post(&open, &stack.token("nosy", None), &[], json!(null))
        .await;
    assert_eq!(
        nosy.status,
        StatusCode::NOT_FOUND,
        "another customer's order"
    );

    // Confirmed with a test card, as Stripe.js does in the customer's browser.
    let path = format!("/v1/payment_intents/{intent_id}");
    let confirmed = pay_at_stripe(&stack, &intent_id).await;
    assert_eq!(confirmed["status"], "requires_capture");
    assert_eq!(confirmed["capture_method"], "manual");
    assert_eq!(confirmed["metadata"]["order_id"], id.as_str());

    // Stripe's signed `payment_intent.amount_capturable_updated` authorizes the order, and the
    // warehouse takes it.
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let authorized = stack.order_as_staff(&id).await;
    assert_eq!(authorized["payment"]["status"], "AUTHORIZED");
    assert_eq!(
        authorized["payment"]["ledger"][0]["pspReference"],
        intent_id.as_str()
    );

    // Shipped: the capture asked names the intent, and the system asks Stripe for it under the
    // request's id; Stripe's answer (or its `payment_intent.succeeded`, whichever comes first:
    // they are the same state) pays the order, recorded once.
    let number = stack.pick_pack_ship(&id, None).await;
    let paid = wait_for(&stack, &id, "paid through Stripe", |o| {
        o["payment"]["status"] == "PAID"
    })
    .await;
    let request = paid["payment"]["requests"][0].clone();
    assert_eq!(request["kind"], "CAPTURE");
    assert_eq!(request["pspReference"], intent_id.as_str());
    let at_stripe = stack.stripe_get(&path).await;
    assert_eq!(at_stripe["status"], "succeeded");
    assert_eq!(at_stripe["amount_received"].to_string(), amount);
    // Asked again under the same key (a redelivered request): Stripe captures once.
    let request_id = request["requestId"].as_str().unwrap();
    let capture = [("amount_to_capture", request["amount"]["amount"].to_string())];
    let capture: Vec<(&str, &str)> = capture.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = stack
        .stripe_api(&format!("{path}/capture"), &capture, Some(request_id))
        .await;
    assert_eq!(again["amount_received"].to_string(), amount);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = stack.order_as_staff(&id).await;
    let captures = settled["payment"]["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "capture.succeeded")
        .count();
    assert_eq!(
        captures, 1,
        "one capture, one entry: {}",
        settled["payment"]
    );
    // Paid for: no payment is opened any more.
    let refused = stack.post(&open, &token, &[], json!(null)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["type"], "/problems/payment-not-needed");

    // Delivered, then returned: the refund the receipt asks for is paid out at Stripe, under
    // the refund's id, for exactly what is owed, and Stripe's answer settles it.
    stack
        .deliver(&customer, &id, &number, &chrono::Utc::now().to_rfc3339())
        .await;
    let received = stack.return_one_unit(&customer, &id, &sku).await;
    let owed = received.body["refund"]["amount"].clone();
    let refund_id = received.body["refund"]["refundId"]
        .as_str()
        .expect("a refund")
        .to_owned();
    let refunded = wait_for(&stack, &id, "refunded through Stripe", |o| {
        o["refunds"][0]["state"] == "ISSUED"
    })
    .await;
    assert_eq!(refunded["refunds"][0]["amount"], owed);
    let at_stripe = stack
        .stripe_get(&format!("/v1/refunds?payment_intent={intent_id}"))
        .await;
    let refunds = at_stripe["data"].as_array().expect("Stripe's refunds");
    assert_eq!(refunds.len(), 1, "one refund at Stripe: {at_stripe}");
    assert_eq!(refunds[0]["amount"], owed["amount"]);
    assert_eq!(refunds[0]["metadata"]["refund_id"], refund_id.as_str());

    // The customer heard of each step once: the order, its payment, its parcel on the way and
    // delivered, the return and the refund.
    let emails = told
        .collect(Duration::from_secs(180), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.payment.refund-issued")
        })
        .await;
    // Anything sent twice would come within the notifier's retries: a little longer.
    let late = told.collect(Duration::from_secs(3), |_| false).await;
    let kinds: Vec<&str> = emails
        .iter()
        .chain(late.iter())
        .filter_map(|(m, _)| m["eventType"].as_str())
        .collect();
    for step in [
        "oms.order.placed",
        "oms.payment.authorized",
        "oms.order.shipped",
        "oms.order.delivered",
        "oms.return.received",
        "oms.payment.refund-issued",
    ] {
        let times = kinds.iter().filter(|k| **k == step).count();
        assert_eq!(times, 1, "{step} told {times} times: {kinds:?}");
    }
}

#[tokio::test]
async fn staff_acknowledge_what_the_money_needs_through_the_json_api() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PSP-ACK-API", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    // Reserved first, so the version read below is still the order's when it is sent.
    stack.wait_decided(&customer, &id).await;
    let wrong = psp_body(
        "authorization.succeeded",
        &id,
        &json!({"amount": 1, "currency": "EUR"}),
        None,
    );
    assert_eq!(stack.psp_event(&wrong).await.status, StatusCode::OK);
    let admin = stack.token("staff-payments", Some("oms:admin"));
    wait_listed(&stack, &admin, &id).await;
    let path = format!("/orders/{id}/payment/acknowledge");
    let note = json!({"note": "the 0.01 EUR hold voided at the PSP"});
    let as_customer = stack
        .post(&path, &stack.token(&customer, None), &[], note.clone())
        .await;
    assert_eq!(as_customer.status, StatusCode::FORBIDDEN);
    let empty = stack.post(&path, &admin, &[], json!({"note": ""})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.body["errors"][0]["field"], "note");
    let version = stack.order_as_staff(&id).await["version"].as_u64().unwrap();
    let stale = format!("\"v{}\"", version - 1);
    let refused = stack
        .post(&path, &admin, &[("if-match", &stale)], note.clone())
        .await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    let current = format!("\"v{version}\"");
    let done = stack
        .post(&path, &admin, &[("if-match", &current)], note.clone())
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert!(done.body["payment"]["attention"].is_null());
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(&stack, &admin, &id).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "{id} stayed on the attention list"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let again = stack.post(&path, &admin, &[], note).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "nothing open any more");
}

#[tokio::test]
async fn a_stripe_order_cancelled_before_it_ships_has_its_hold_released_at_stripe() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("STRIPE-VOID", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let token = stack.token(&customer, None);
    let opened = stack
        .post(
            &format!("/orders/{id}/payment-intent"),
            &token,
            &[],
            json!(null),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{:?}", opened.body);
    let intent_id = opened.body["paymentIntentId"].as_str().unwrap().to_owned();
    let path = format!("/v1/payment_intents/{intent_id}");
    pay_at_stripe(&stack, &intent_id).await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    // The customer calls it off: the void asked of Stripe releases the hold there, and the
    // order's payment is voided.
    let cancelled = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &token,
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let voided = wait_for(&stack, &id, "voided at Stripe", |o| {
        o["payment"]["status"] == "VOIDED"
    })
    .await;
    assert_eq!(voided["payment"]["requests"][0]["kind"], "VOID");
    assert_eq!(stack.stripe_get(&path).await["status"], "canceled");
    assert!(
        voided["payment"]["attention"].is_null(),
        "nothing for staff"
    );
}

#[tokio::test]
async fn a_card_declined_at_the_stripe_emulator_leaves_the_order_unpaid_until_it_expires() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("STRIPE-DECLINE", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let intent_id = open_at_stripe(&stack, &customer, &id).await;
    // Stripe's test card that is declined when charged.
    let (status, declined) = pay_at_stripe_with(&stack, &intent_id, "4000000000000341").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    // Stripe's signed `payment_intent.payment_failed` is recorded; nothing reaches the
    // warehouse, and the order expires at the end of its window, its stock released.
    let failed = wait_for(&stack, &id, "the decline recorded", |o| {
        o["payment"]["ledger"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["kind"] == "authorization.failed"))
    })
    .await;
    assert_eq!(failed["status"], "RESERVED", "{failed}");
    assert!(failed["fulfillment"].is_null() || failed["fulfillment"]["status"].is_null());
    let expired = wait_for(&stack, &id, "expired", |o| o["status"] == "CANCELLED").await;
    assert_eq!(expired["cancellation"]["expired"], true);
    assert_eq!(stack.stock(&sku).await.1, 0, "nothing reserved any more");
}

#[tokio::test]
async fn a_stripe_webhook_lost_on_the_way_is_recovered_by_the_reconciliation() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("STRIPE-LOST", 5).await;
    let (customer, placed) = place_unpaid(&stack, &sku, 1).await;
    let id = placed["orderId"].as_str().unwrap().to_owned();
    let intent_id = open_at_stripe(&stack, &customer, &id).await;
    // Every webhook about this payment is lost on the way, as to an endpoint that is down.
    stack.lose_requests_holding(&intent_id).await;
    let lost_before = stack.faults().await["lostRequests"].as_u64().unwrap();
    pay_at_stripe(&stack, &intent_id).await;
    // The reconciliation reads Stripe's events once a few seconds old (the test stack's
    // StripeReconcileSettleSeconds) and records the authorization the webhook never brought,
    // well inside the payment window: the order goes to the warehouse, it does not expire.
    let authorized = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(authorized["status"], "FULFILLING");
    let order = stack.order_as_staff(&id).await;
    let entry = &order["payment"]["ledger"][0];
    assert_eq!(entry["kind"], "authorization.succeeded", "{order}");
    assert_eq!(entry["pspReference"], intent_id.as_str());
    let lost = stack.faults().await["lostRequests"].as_u64().unwrap();
    assert!(
        lost > lost_before,
        "the webhook was lost: {lost} ≤ {lost_before}"
    );
    // The capture goes on as ever: asked on shipment, answered by Stripe, recorded once.
    stack.pick_pack_ship(&id, None).await;
    wait_for(&stack, &id, "paid through Stripe", |o| {
        o["payment"]["status"] == "PAID"
    })
    .await;
}

#[tokio::test]
async fn an_order_split_over_two_warehouses_is_captured_parcel_by_parcel_at_stripe() {
    let stack = Stack::connect().await;
    let berlin_only = stack.create_sku("STRIPE-SPLIT-A", 2).await;
    let amsterdam_only = stack.create_sku("STRIPE-SPLIT-B", 0).await;
    stack.receive_at(&amsterdam_only, "AMS-1", 1).await;
    let customer = unique("payer");
    let placed = stack
        .place_unpaid_order(
            &customer,
            &unique("key"),
            &[(&berlin_only, 2), (&amsterdam_only, 1)],
        )
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let total = placed.body["totals"]["total"]["amount"].as_i64().unwrap();
    let intent_id = open_at_stripe(&stack, &customer, &id).await;
    let confirmed = pay_at_stripe(&stack, &intent_id).await;
    // Opened with multicapture asked for (the local stack's StripeMulticapture), which the
    // card allows.
    assert_eq!(
        confirmed["payment_method_options"]["card"]["request_multicapture"],
        "if_available"
    );
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let path = format!("/v1/payment_intents/{intent_id}");

    // Amsterdam's parcel leaves first: its share is taken, the rest stays held at Stripe.
    let (first, second) = (format!("{id}-1"), format!("{id}-2"));
    stack.pick_pack_ship(&second, None).await;
    let partly = wait_for(&stack, &id, "the first share taken", |o| {
        o["payment"]["status"] == "PARTIALLY_PAID"
    })
    .await;
    let share = partly["payment"]["requests"][0]["amount"]["amount"]
        .as_i64()
        .unwrap();
    assert!(0 < share && share < total, "{share} of {total}");
    let at_stripe = stack.stripe_get(&path).await;
    assert_eq!(at_stripe["status"], "requires_capture", "{at_stripe}");
    assert_eq!(at_stripe["amount_received"].as_i64(), Some(share));
    assert_eq!(at_stripe["amount_capturable"].as_i64(), Some(total - share));

    // Berlin's parcel: the rest is taken, and the payment is complete at Stripe and here.
    stack.pick_pack_ship(&first, None).await;
    let paid = wait_for(&stack, &id, "paid in two parts", |o| {
        o["payment"]["status"] == "PAID"
    })
    .await;
    let at_stripe = stack.stripe_get(&path).await;
    assert_eq!(at_stripe["status"], "succeeded", "{at_stripe}");
    assert_eq!(at_stripe["amount_received"].as_i64(), Some(total));
    let captured: Vec<i64> = paid["payment"]["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "capture.succeeded")
        .map(|e| e["amount"]["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(captured.len(), 2, "one entry per part: {}", paid["payment"]);
    assert_eq!(captured.iter().sum::<i64>(), total, "exactly the total");
    assert!(paid["payment"]["attention"].is_null(), "nothing for staff");
}

/// Issue "Orders that bend", item 3 through the stack and the Stripe emulator: a customer calls
/// off one unit of an authorized order while its shipment is picked. The unit's stock is back in
/// the same write, the totals shrink, the retry changes nothing, a packer working from what was
/// read before is refused, the customer is told once — and when the parcel ships, Stripe takes
/// exactly the smaller total and releases the rest of the hold.
#[tokio::test]
async fn a_unit_called_off_before_packing_is_never_taken_at_stripe() {
    let stack = Stack::connect().await;
    let kept = stack.create_sku("UNITS-KEPT", 5).await;
    let dropped = stack.create_sku("UNITS-DROPPED", 5).await;
    let customer = unique("payer");
    let notifications = Probe::customer_email(&stack, &customer).await;
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(&kept, 1), (&dropped, 2)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let total = placed.body["totals"]["total"]["amount"].as_i64().unwrap();
    let intent_id = open_at_stripe(&stack, &customer, &id).await;
    pay_at_stripe(&stack, &intent_id).await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(stack.stock(&dropped).await, (3, 2, 5));

    // The warehouse picks the parcel; the packer's screen keeps the ETag it was given.
    let warehouse = stack.token("warehouse-units", Some("oms:warehouse"));
    let shipment = format!("{id}-1");
    let picked = stack
        .warehouse_post(
            &format!("/fulfillments/{shipment}/pick"),
            &warehouse,
            None,
            None,
        )
        .await;
    assert_eq!(picked.status, StatusCode::OK, "{:?}", picked.body);
    let packer_saw = picked.headers["etag"].to_str().unwrap().to_owned();

    // More units than it has, or a SKU it does not hold: refused, naming the line, nothing
    // changed.
    let token = stack.token(&customer, None);
    let refused = stack
        .post(
            &format!("/orders/{id}/cancel-units"),
            &token,
            &[("idempotency-key", &unique("units"))],
            json!({"lines": [{"sku": dropped, "quantity": 3}, {"sku": "NOT-IN-IT", "quantity": 1}], "reason": "x"}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        refused.body
    );
    let fields: Vec<_> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["lines[0].quantity", "lines[1].sku"]);
    assert_eq!(stack.stock(&dropped).await, (3, 2, 5));

    // One unit called off, sent twice under one key: one change.
    let key = unique("units");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let reply = stack
            .post(
                &format!("/orders/{id}/cancel-units"),
                &token,
                &[("idempotency-key", &key)],
                json!({"lines": [{"sku": dropped, "quantity": 1}], "reason": "one is enough"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        answers.push(reply.body);
    }
    assert_eq!(answers[0]["version"], answers[1]["version"], "once");
    let smaller = &answers[0];
    let unit_price = placed.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == dropped.as_str())
        .unwrap()["unitPrice"]["amount"]
        .as_i64()
        .unwrap();
    let change = &smaller["unitCancellations"][0];
    assert_eq!(change["lines"][0]["quantity"], 1);
    assert_eq!(
        change["totalsBefore"]["total"]["amount"].as_i64(),
        Some(total)
    );
    let new_total = smaller["totals"]["total"]["amount"].as_i64().unwrap();
    let shipping_before = placed.body["totals"]["shipping"]["amount"]
        .as_i64()
        .unwrap();
    let shipping_after = smaller["totals"]["shipping"]["amount"].as_i64().unwrap();
    assert!(shipping_after <= shipping_before, "never more for shipping");
    assert_eq!(
        new_total,
        total - unit_price - (shipping_before - shipping_after),
        "the unit and any shipping it saved"
    );
    assert!(change.get("refundId").is_none(), "nothing was taken yet");
    assert_eq!(smaller["payment"]["status"], "AUTHORIZED");
    assert_eq!(
        stack.stock(&dropped).await,
        (4, 1, 5),
        "its stock is back in the same write"
    );

    // The packer's screen read the parcel before: refused, and reads it again.
    let stale = stack
        .warehouse_post(
            &format!("/fulfillments/{shipment}/pack"),
            &warehouse,
            Some(&packer_saw),
            Some(&parcel()),
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    let now_etag = stack.shipment_etag(&shipment, &warehouse).await;
    let read = stack
        .get(&format!("/fulfillments/{shipment}"), &warehouse)
        .await;
    let units: Vec<_> = read.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_owned(),
                l["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        units.contains(&(dropped.clone(), 1)),
        "the parcel holds one of the dropped SKU now: {units:?}"
    );
    let mut etag = now_etag;
    for (step, body) in [
        ("pack", Some(parcel())),
        ("ship", Some(tracking(&unique("JJD").to_uppercase()))),
    ] {
        let reply = stack
            .warehouse_post(
                &format!("/fulfillments/{shipment}/{step}"),
                &warehouse,
                Some(&etag),
                body.as_ref(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{step}: {:?}", reply.body);
        etag = reply.headers["etag"].to_str().unwrap().to_owned();
    }

    // Stripe takes the smaller total, and the rest of the hold goes with it.
    let paid = wait_for(&stack, &id, "paid", |o| o["payment"]["status"] == "PAID").await;
    let capture = paid["payment"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "CAPTURE")
        .unwrap();
    assert_eq!(capture["amount"]["amount"].as_i64(), Some(new_total));
    let at_stripe = stack
        .stripe_get(&format!("/v1/payment_intents/{intent_id}"))
        .await;
    assert_eq!(at_stripe["status"], "succeeded", "{at_stripe}");
    assert_eq!(at_stripe["amount_received"].as_i64(), Some(new_total));
    assert!(paid["payment"]["attention"].is_null(), "nothing for staff");
    assert_eq!(stack.stock(&dropped).await, (4, 0, 4));

    // Told once, with what was called off.
    let told = notifications
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.units-cancelled")
        })
        .await;
    let late = notifications
        .collect(Duration::from_secs(3), |_| false)
        .await;
    let changes: Vec<_> = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| m["eventType"] == "oms.order.units-cancelled")
        .collect();
    assert_eq!(changes.len(), 1, "told once");
    let text = changes[0].0["text"].as_str().unwrap();
    assert!(text.contains("1 × "), "{text}");
}

/// A split order whose first parcel left (its share taken at Stripe) and whose other parcel's
/// units are all called off before packing: nothing more ships, so the rest of the hold is
/// released at Stripe; what was taken beyond the smaller total is refunded; nothing is left for
/// staff.
#[tokio::test]
async fn the_rest_of_a_hold_is_released_at_stripe_when_the_parcel_still_to_leave_is_called_off() {
    let stack = Stack::connect().await;
    let berlin_only = stack.create_sku("STRIPE-REST-A", 2).await;
    let amsterdam_only = stack.create_sku("STRIPE-REST-B", 0).await;
    stack.receive_at(&amsterdam_only, "AMS-1", 1).await;
    let customer = unique("payer");
    let placed = stack
        .place_unpaid_order(
            &customer,
            &unique("key"),
            &[(&berlin_only, 2), (&amsterdam_only, 1)],
        )
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let intent_id = open_at_stripe(&stack, &customer, &id).await;
    pay_at_stripe(&stack, &intent_id).await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let path = format!("/v1/payment_intents/{intent_id}");
    stack.pick_pack_ship(&format!("{id}-2"), None).await;
    let partly = wait_for(&stack, &id, "the first share taken", |o| {
        o["payment"]["status"] == "PARTIALLY_PAID"
    })
    .await;
    let share = partly["payment"]["requests"][0]["amount"]["amount"]
        .as_i64()
        .unwrap();

    // Berlin's two units are called off before they are packed: nothing more will ship.
    let token = stack.token(&customer, None);
    let smaller = stack
        .post(
            &format!("/orders/{id}/cancel-units"),
            &token,
            &[("idempotency-key", &unique("units"))],
            json!({"lines": [{"sku": berlin_only, "quantity": 2}], "reason": "only the poster"}),
        )
        .await;
    assert_eq!(smaller.status, StatusCode::OK, "{:?}", smaller.body);
    assert_eq!(smaller.body["status"], "SHIPPED");
    let new_total = smaller.body["totals"]["total"]["amount"].as_i64().unwrap();
    let settled = wait_for(&stack, &id, "the rest released", |o| {
        o["payment"]["status"] == "PAID" || o["payment"]["status"] == "PARTIALLY_REFUNDED"
    })
    .await;
    let at_stripe = stack.stripe_get(&path).await;
    assert_eq!(
        at_stripe["amount_received"].as_i64(),
        Some(share),
        "{at_stripe}"
    );
    assert_eq!(
        at_stripe["amount_capturable"].as_i64(),
        Some(0),
        "nothing is held any more: {at_stripe}"
    );
    let refunded: i64 = settled["refunds"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| r["amount"]["amount"].as_i64().unwrap())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(
        refunded,
        (share - new_total).max(0),
        "what was taken beyond the total"
    );
    assert!(
        settled["payment"]["attention"].is_null(),
        "{}",
        settled["payment"]
    );
}

/// Staff change a paid order to a dearer method before it is packed: the order leaves the
/// warehouse until its customer authorizes the whole new total at Stripe; then the old hold is
/// released there, and the parcel's capture takes the new total. Customers may change only the
/// address; an edit is made on the version seen, once per key.
#[tokio::test]
async fn a_dearer_edit_is_authorized_at_stripe_before_it_ships_and_the_old_hold_is_released() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("EDIT-DEARER", 5).await;
    let customer = unique("editor");
    let notifications = Probe::customer_email(&stack, &customer).await;
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let total = placed.body["totals"]["total"]["amount"].as_i64().unwrap();
    let first_intent = open_at_stripe(&stack, &customer, &id).await;
    pay_at_stripe(&stack, &first_intent).await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let seen = stack.order_as_staff(&id).await;

    let path = format!("/orders/{id}/edits");
    let express = json!({"shippingMethod": "EXPRESS", "reason": "needed by Friday"});
    // The method is staff's; no edit without the version seen, nor on an older one.
    let customer_token = stack.token(&customer, None);
    let by_customer = stack
        .post(
            &path,
            &customer_token,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &if_match(&seen)),
            ],
            express.clone(),
        )
        .await;
    assert_eq!(
        by_customer.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        by_customer.body
    );
    let admin = stack.token("edit-admin", Some("oms:admin"));
    let unseen = stack
        .post(
            &path,
            &admin,
            &[("idempotency-key", &unique("edit"))],
            express.clone(),
        )
        .await;
    assert_eq!(
        unseen.status,
        StatusCode::PRECONDITION_REQUIRED,
        "{:?}",
        unseen.body
    );
    let stale = stack
        .post(
            &path,
            &admin,
            &[("idempotency-key", &unique("edit")), ("if-match", "\"v1\"")],
            express.clone(),
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );

    // Sent twice under one key: one edit.
    let key = unique("edit");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let reply = stack
            .post(
                &path,
                &admin,
                &[("idempotency-key", &key), ("if-match", &if_match(&seen))],
                express.clone(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        answers.push(reply.body);
    }
    assert_eq!(answers[0]["version"], answers[1]["version"], "once");
    let edited = &answers[0];
    let new_total = edited["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(new_total > total, "EXPRESS costs more: {edited}");
    assert_eq!(edited["edits"][0]["state"], "AWAITING_PAYMENT");
    assert_eq!(edited["hold"], "EDIT_AWAITING_PAYMENT");
    assert_eq!(edited["status"], "RESERVED");
    assert_eq!(edited["shipping"]["method"], "EXPRESS");

    // The warehouse may not pick it meanwhile.
    let warehouse = stack.token("warehouse-edit", Some("oms:warehouse"));
    let shipment = format!("{id}-1");
    let early = stack
        .warehouse_post(
            &format!("/fulfillments/{shipment}/pick"),
            &warehouse,
            None,
            None,
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.body);
    assert!(
        early.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-fulfillment-step")),
        "{:?}",
        early.body
    );

    // The customer authorizes the new total under a new payment.
    let second_intent = open_at_stripe(&stack, &customer, &id).await;
    assert_ne!(second_intent, first_intent);
    let opened = stack
        .stripe_get(&format!("/v1/payment_intents/{second_intent}"))
        .await;
    assert_eq!(opened["amount"].as_i64(), Some(new_total));
    pay_at_stripe(&stack, &second_intent).await;
    let resumed = wait_for(&stack, &id, "edit paid and the old hold released", |o| {
        o["edits"][0]["state"] == "APPLIED"
            && o["status"] == "FULFILLING"
            && o["payment"]["ledger"]
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["kind"] == "void.succeeded"))
    })
    .await;
    assert!(resumed["hold"].is_null());
    let first_at_stripe = stack
        .stripe_get(&format!("/v1/payment_intents/{first_intent}"))
        .await;
    assert_eq!(first_at_stripe["status"], "canceled", "{first_at_stripe}");
    assert!(
        resumed["payment"]["attention"].is_null(),
        "nothing for staff"
    );

    // The parcel leaves: the new payment is taken, for the new total.
    let mut etag = stack.shipment_etag(&shipment, &warehouse).await;
    for (step, body) in [
        ("pick", None),
        ("pack", Some(parcel())),
        ("ship", Some(tracking(&unique("JJD").to_uppercase()))),
    ] {
        let reply = stack
            .warehouse_post(
                &format!("/fulfillments/{shipment}/{step}"),
                &warehouse,
                Some(&etag),
                body.as_ref(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{step}: {:?}", reply.body);
        etag = reply.headers["etag"].to_str().unwrap().to_owned();
    }
    let paid = wait_for(&stack, &id, "paid", |o| o["payment"]["status"] == "PAID").await;
    let second_at_stripe = stack
        .stripe_get(&format!("/v1/payment_intents/{second_intent}"))
        .await;
    assert_eq!(
        second_at_stripe["amount_received"].as_i64(),
        Some(new_total)
    );
    assert!(paid["payment"]["attention"].is_null(), "nothing for staff");

    // Told once of the edit and once of its payment.
    let told = notifications
        .collect(Duration::from_secs(60), |seen| {
            ["oms.order.edited", "oms.order.edit-paid"]
                .iter()
                .all(|kind| seen.iter().any(|(m, _)| m["eventType"] == *kind))
        })
        .await;
    let late = notifications
        .collect(Duration::from_secs(3), |_| false)
        .await;
    for kind in ["oms.order.edited", "oms.order.edit-paid"] {
        let count = told
            .iter()
            .chain(late.iter())
            .filter(|(m, _)| m["eventType"] == kind)
            .count();
        assert_eq!(count, 1, "{kind} told once");
    }
}

/// A customer pays while staff make the order dearer: their authorization of the old total
/// arrives after the edit. It cannot pay for the order; it is released at Stripe at once, the
/// order stays unpaid (nothing for staff), and the customer's next payment is of the new total.
#[tokio::test]
async fn a_payment_of_the_old_total_made_as_staff_edited_is_released_and_the_new_total_paid() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("EDIT-RACE", 5).await;
    let customer = unique("editor");
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let total = placed.body["totals"]["total"]["amount"].as_i64().unwrap();
    let first_intent = open_at_stripe(&stack, &customer, &id).await;
    stack.wait_status(&customer, &id, "RESERVED").await;
    let seen = stack.order_as_staff(&id).await;
    let admin = stack.token("edit-admin", Some("oms:admin"));
    let edited = stack
        .post(
            &format!("/orders/{id}/edits"),
            &admin,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &if_match(&seen)),
            ],
            json!({"shippingMethod": "EXPRESS", "reason": "needed by Friday"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    let new_total = edited.body["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(new_total > total, "{:?}", edited.body);
    assert_eq!(
        edited.body["edits"][0]["state"], "APPLIED",
        "nothing was held"
    );

    // The payment opened before the edit is confirmed now, for the old total.
    pay_at_stripe(&stack, &first_intent).await;
    let released = wait_for(&stack, &id, "the old total's hold released", |o| {
        o["payment"]["ledger"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["kind"] == "void.succeeded"))
    })
    .await;
    assert_eq!(released["payment"]["status"], "PENDING", "{released}");
    assert_eq!(released["hold"], "AWAITING_PAYMENT");
    assert!(
        released["payment"]["attention"].is_null(),
        "nothing for staff: {}",
        released["payment"]
    );
    let at_stripe = stack
        .stripe_get(&format!("/v1/payment_intents/{first_intent}"))
        .await;
    assert_eq!(at_stripe["status"], "canceled", "{at_stripe}");

    // The customer pays again: the new payment is of the new total, and the order goes ahead.
    let second_intent = open_at_stripe(&stack, &customer, &id).await;
    assert_ne!(second_intent, first_intent);
    let opened = stack
        .stripe_get(&format!("/v1/payment_intents/{second_intent}"))
        .await;
    assert_eq!(opened["amount"].as_i64(), Some(new_total));
    pay_at_stripe(&stack, &second_intent).await;
    let paid = wait_for(&stack, &id, "authorized", |o| {
        o["payment"]["status"] == "AUTHORIZED"
    })
    .await;
    assert!(
        paid["payment"]["attention"].is_null(),
        "{}",
        paid["payment"]
    );
}

/// A dearer edit whose new total is never authorized is undone once the payment window has
/// passed: the order ships as it did, for what it cost, under the hold it had.
#[tokio::test]
async fn a_dearer_edit_never_authorized_is_undone_and_the_order_ships_as_before() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("EDIT-UNDONE", 5).await;
    let customer = unique("editor");
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let intent = open_at_stripe(&stack, &customer, &id).await;
    pay_at_stripe(&stack, &intent).await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let before = stack.order_as_staff(&id).await;
    let admin = stack.token("edit-admin", Some("oms:admin"));
    let edited = stack
        .post(
            &format!("/orders/{id}/edits"),
            &admin,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &if_match(&before)),
            ],
            json!({"shippingMethod": "OVERNIGHT", "reason": "asked by phone"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert_eq!(edited.body["edits"][0]["state"], "AWAITING_PAYMENT");
    // The test stack's payment window is 20 s; the sweep runs every 2 s.
    let undone = wait_for(&stack, &id, "edit undone", |o| {
        o["edits"][0]["state"] == "UNDONE"
    })
    .await;
    assert_eq!(undone["status"], "FULFILLING");
    assert_eq!(undone["totals"], before["totals"]);
    assert_eq!(undone["shipping"], before["shipping"]);
    assert!(undone["hold"].is_null());
    assert_eq!(undone["payment"]["status"], "AUTHORIZED", "the hold it had");
}

/// Staff add items to an order whose money is held: the units are reserved at once where the
/// order ships from, in its parcel; the order waits out of the warehouse until a new payment
/// holds the whole new total (the old hold then released); an addition never paid for is
/// undone and its units released. The counters balance throughout.
#[tokio::test]
async fn added_items_wait_for_their_payment_and_are_released_if_it_never_comes() {
    let stack = Stack::connect().await;
    let kept = stack.create_sku("ADD-KEPT", 5).await;
    let extra = stack.create_sku("ADD-EXTRA", 5).await;
    let admin = stack.token("edit-admin", Some("oms:admin"));
    let add = |order: &Value, key: String| {
        let (stack, admin, extra) = (&stack, &admin, &extra);
        let version = if_match(order);
        let id = order["orderId"].as_str().unwrap().to_owned();
        async move {
            stack
                .post(
                    &format!("/orders/{id}/edits"),
                    admin,
                    &[("idempotency-key", &key), ("if-match", &version)],
                    json!({"addLines": [{"sku": extra, "quantity": 2}], "reason": "the customer called"}),
                )
                .await
        }
    };

    // Paid for with a second payment: back to the warehouse, the first hold released.
    let (_, id, _) = stack.order_in_warehouse(&[(&kept, 1)]).await;
    let seen = stack.order_as_staff(&id).await;
    let added = add(&seen, unique("add")).await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    assert_eq!(added.body["edits"][0]["state"], "AWAITING_PAYMENT");
    assert_eq!(added.body["edits"][0]["added"][0]["location"], "BER-1");
    assert_eq!(
        stack.stock(&extra).await,
        (3, 2, 5),
        "reserved in the edit's write"
    );
    let shipment = stack
        .get(
            &format!("/fulfillments/{id}"),
            &stack.token("warehouse-add", Some("oms:warehouse")),
        )
        .await;
    assert!(
        shipment.body["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["sku"] == extra.as_str() && l["quantity"] == 2),
        "in its parcel: {:?}",
        shipment.body
    );
    let mut second = psp_body(
        "authorization.succeeded",
        &id,
        &added.body["totals"]["total"],
        None,
    );
    second["pspReference"] = format!("pi_{id}_2").into();
    let reply = stack.psp_event(&second).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let paid = wait_for(&stack, &id, "the addition paid", |o| {
        o["edits"][0]["state"] == "APPLIED" && o["status"] == "FULFILLING"
    })
    .await;
    let void = paid["payment"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "VOID")
        .expect("the first hold is released");
    assert_eq!(void["pspReference"], format!("pi_{id}").as_str());
    stack.pick_pack_ship(&id, None).await;
    let shipped = wait_for(&stack, &id, "capture asked", |o| {
        o["payment"]["requests"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["kind"] == "CAPTURE"))
    })
    .await;
    let capture = shipped["payment"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "CAPTURE")
        .unwrap()
        .clone();
    assert_eq!(capture["pspReference"], format!("pi_{id}_2").as_str());
    assert_eq!(capture["amount"], added.body["totals"]["total"]);
    assert_eq!(stack.stock(&extra).await, (3, 0, 3), "the added units left");

    // Never paid for: undone when the payment window has passed, its units released.
    let (_, id, _) = stack.order_in_warehouse(&[(&kept, 1)]).await;
    let seen = stack.order_as_staff(&id).await;
    let added = add(&seen, unique("add")).await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    assert_eq!(stack.stock(&extra).await, (1, 2, 3));
    let undone = wait_for(&stack, &id, "the addition undone", |o| {
        o["edits"][0]["state"] == "UNDONE"
    })
    .await;
    assert_eq!(undone["status"], "FULFILLING");
    assert_eq!(undone["lines"].as_array().unwrap().len(), 1);
    assert_eq!(undone["totals"], seen["totals"]);
    assert_eq!(
        stack.stock(&extra).await,
        (3, 0, 3),
        "released with the undo"
    );
}
