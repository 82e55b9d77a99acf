//! Cancellations and returns through the local stack, over HTTP only: the customer, staff
//! (`oms:admin`), the warehouse (`oms:warehouse`) and the carrier's webhook, with the refund events
//! read from the order-events topic and the label read by a PDF renderer and a barcode scanner.

use std::time::{Duration, Instant};

use oms_system_tests::{unique, Probe, Reply, Stack, StatusCode};
use serde_json::{json, Value};

fn delivered_recently() -> String {
    // The window counts from delivery; "now" minus a day keeps every test inside it.
    (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339()
}

async fn cancel(stack: &Stack, customer: &str, id: &str) -> Reply {
    stack
        .post(
            &format!("/orders/{id}/cancel"),
            &stack.token(customer, None),
            &[],
            json!({"reason": "ordered by mistake"}),
        )
        .await
}

async fn request_return(stack: &Stack, customer: &str, id: &str, key: &str, lines: Value) -> Reply {
    stack
        .post(
            &format!("/orders/{id}/returns"),
            &stack.token(customer, None),
            &[("idempotency-key", key)],
            json!({ "lines": lines }),
        )
        .await
}

pub(crate) async fn receive(stack: &Stack, rma: &str, lines: Value) -> Reply {
    stack
        .post(
            &format!("/returns/{rma}/receive"),
            &stack.token("warehouse-tests", Some("oms:warehouse")),
            &[],
            json!({ "lines": lines }),
        )
        .await
}

async fn order(stack: &Stack, customer: &str, id: &str) -> Value {
    let reply = stack
        .get(&format!("/orders/{id}"), &stack.token(customer, None))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn problem(reply: &Reply) -> (StatusCode, &str) {
    (
        reply.status,
        reply.body["type"].as_str().unwrap_or_default(),
    )
}

/// The customer returns one unit of `sku` of their delivered order `id` in exchange for
/// `exchange_sku` (approved at once by the policy) and the warehouse receives it to restock:
/// the return's number and the receipt's reply.
async fn exchange_one_unit(
    stack: &Stack,
    customer: &str,
    id: &str,
    sku: &str,
    exchange_sku: &str,
) -> (String, Reply) {
    let opened = request_return(
        stack,
        customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": exchange_sku}]),
    )
    .await;
    assert_eq!(opened.body["status"], "APPROVED", "{:?}", opened.body);
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();
    let received = receive(
        stack,
        &rma,
        json!([{"sku": sku, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    (rma, received)
}

/// Waits for the refund events of `order_id` on the probe.
async fn refunds(probe: &Probe, order_id: &str, count: usize) -> Vec<Value> {
    let events = probe
        .collect(Duration::from_secs(30), |seen| {
            seen.iter()
                .filter(|(body, _)| body["data"]["orderId"] == order_id)
                .count()
                >= count
        })
        .await;
    events
        .into_iter()
        .map(|(body, _)| body)
        .filter(|body| body["data"]["orderId"] == order_id)
        .collect()
}

#[tokio::test]
async fn cancelling_an_authorized_order_releases_its_stock_exactly_and_voids_its_payment() {
    let stack = Stack::connect().await;
    let psp_probe = Probe::subscribe(
        &stack,
        "OrderEventsTopic",
        Some(json!({"eventType": ["oms.refund.requested", "oms.psp.void-requested"]})),
    )
    .await;
    let sku = stack.create_sku("CANCEL", 10).await;
    let (customer, id, _) = stack.order_in_warehouse(&[(&sku, 3)]).await;
    assert_eq!(stack.stock(&sku).await, (7, 3, 10));

    // Another customer cannot cancel it; a cancel without a reason changes nothing.
    assert_eq!(
        cancel(&stack, "someone-else", &id).await.status,
        StatusCode::NOT_FOUND
    );
    let no_reason = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &stack.token(&customer, None),
            &[],
            json!({}),
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(stack.stock(&sku).await, (7, 3, 10));

    let cancelled = cancel(&stack, &customer, &id).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (StatusCode::OK, Some("CANCELLED")),
        "{:?}",
        cancelled.body
    );
    assert_eq!(stack.stock(&sku).await, (10, 0, 10), "released exactly");
    assert_eq!(
        cancelled.body["cancellation"]["reason"],
        "ordered by mistake"
    );

    // A retry answers the cancelled order and releases nothing twice.
    let again = cancel(&stack, &customer, &id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["version"], cancelled.body["version"]);
    assert_eq!(stack.stock(&sku).await, (10, 0, 10));

    // The order's warehouse work is gone: picking it is refused.
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    let pick = stack
        .warehouse_post(&format!("/fulfillments/{id}/pick"), &warehouse, None, None)
        .await;
    assert_eq!(pick.status, StatusCode::CONFLICT, "{:?}", pick.body);

    // Authorized, never captured: the hold is voided, nothing is refunded.
    let events = refunds(&psp_probe, &id, 1).await;
    assert_eq!(events.len(), 1, "one request of the PSP: {events:?}");
    assert_eq!(events[0]["type"], "oms.psp.void-requested");
    assert_eq!(events[0]["data"]["kind"], "VOID");
    assert_eq!(
        events[0]["data"]["amount"],
        cancelled.body["totals"]["total"]
    );
    assert!(cancelled.body.get("refunds").is_none());
}

#[tokio::test]
async fn a_shipped_order_cannot_be_cancelled_only_returned() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("LATE", 5).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&sku, 1)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();
    let reply = cancel(&stack, &customer, id).await;
    assert_eq!(
        problem(&reply),
        (StatusCode::CONFLICT, "/problems/return-instead")
    );
    assert!(reply.body["detail"]
        .as_str()
        .unwrap()
        .contains("return it instead"));
    assert_eq!(
        order(&stack, &customer, id).await["version"],
        delivered["version"]
    );
}

/// Many orders placed and cancelled at once, each cancel racing its own reservation: whichever
/// wins, the counters end exact, and stay so once every late reservation message has been read.
#[tokio::test]
async fn cancels_racing_reservations_leave_exact_counters() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("RACE", 100).await;
    let orders = 30;
    let mut tasks = Vec::new();
    for i in 0..orders {
        let stack = stack.clone();
        let sku = sku.clone();
        tasks.push(tokio::spawn(async move {
            let customer = unique("racer");
            let placed = stack
                .place_order(&customer, &unique("key"), &[(&sku, 2)])
                .await;
            assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
            let id = placed.body["orderId"].as_str().unwrap().to_owned();
            // Every other order is cancelled, after a delay from none to longer than the
            // reservation takes, so cancels land both before and after their reservation.
            let cancelled = i % 2 == 0;
            if cancelled {
                tokio::time::sleep(Duration::from_millis(100 * i as u64)).await;
                let reply = cancel(&stack, &customer, &id).await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            }
            (customer, id, cancelled)
        }));
    }
    let (mut kept, mut released) = (0, 0);
    for task in tasks {
        let (customer, id, cancelled) = task.await.unwrap();
        if cancelled {
            let order = order(&stack, &customer, &id).await;
            assert_eq!(order["status"], "CANCELLED");
            if oms_system_tests::reservation(&order) == "RESERVED" {
                released += 1;
            }
        } else {
            stack.wait_status(&customer, &id, "FULFILLING").await;
            kept += 1;
        }
    }
    eprintln!(
        "{} cancels: {released} after their reservation, {} before",
        orders / 2,
        orders / 2 - released
    );
    let expected = (100 - 2 * kept, 2 * kept, 100);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.stock(&sku).await != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stack.stock(&sku).await, expected);
    // A reservation message of a cancelled order read late must change nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.stock(&sku).await, expected);
}

#[tokio::test]
async fn a_partial_return_restocks_one_line_recycles_another_and_refunds_both() {
    let stack = Stack::connect().await;
    let refunds_probe = Probe::subscribe(
        &stack,
        "OrderEventsTopic",
        Some(json!({"eventType": ["oms.refund.requested"]})),
    )
    .await;
    let shirt = stack.create_sku("SHIRT", 10).await;
    let mug = stack.create_sku("MUG", 10).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&shirt, 2), (&mug, 1)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();
    assert_eq!(stack.stock(&shirt).await, (8, 0, 8));
    assert_eq!(stack.stock(&mug).await, (9, 0, 9));

    let told = Probe::customer_email(&stack, &customer).await;
    let key = unique("return");
    let lines = json!([
        {"sku": shirt, "quantity": 1, "reason": "NO_LONGER_NEEDED"},
        {"sku": mug, "quantity": 1, "reason": "DAMAGED", "comment": "handle broken"}
    ]);
    let opened = request_return(&stack, &customer, id, &key, lines.clone()).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    assert_eq!(
        opened.body["status"], "APPROVED",
        "within the policy's auto-approval"
    );
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();
    assert_eq!(
        opened.headers["location"],
        format!("/returns/{rma}").as_str()
    );
    // The same key again: the same return, nothing new.
    let retry = request_return(&stack, &customer, id, &key, lines).await;
    assert_eq!(retry.body["returnId"], rma.as_str());
    assert_eq!(retry.headers["idempotent-replayed"], "true");

    // The label: a 4×6 inch page, both addresses, the items, and a barcode that scans as the RMA.
    let label = stack
        .get(
            &format!("/returns/{rma}/label"),
            &stack.token(&customer, None),
        )
        .await;
    assert_eq!(label.status, StatusCode::OK);
    assert_eq!(label.headers["content-type"], "application/pdf");
    let read = read_label(&label.raw);
    assert_eq!(read["barcodes"][0]["format"], "Code128");
    assert_eq!(read["barcodes"][0]["text"], rma.as_str());
    assert_eq!(
        (read["width"].as_f64(), read["height"].as_f64()),
        (Some(288.0), Some(432.0))
    );
    let text = read["text"].as_str().unwrap();
    for expected in [
        "Test Customer",
        "1 Test Street",
        "10115 Berlin",
        "OMS Returns",
        &shirt,
        &mug,
        &rma,
    ] {
        assert!(
            text.contains(expected),
            "the label shows {expected}: {text}"
        );
    }

    // The warehouse receives: the shirt back on the shelf, the mug to recycling.
    let received = receive(
        &stack,
        &rma,
        json!([
            {"sku": shirt, "quantity": 1, "disposition": "RESTOCK"},
            {"sku": mug, "quantity": 1, "disposition": "RECYCLE"}
        ]),
    )
    .await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    assert_eq!(received.body["status"], "RECEIVED");
    assert_eq!(
        stack.stock(&shirt).await,
        (9, 0, 9),
        "available and onHand up by the restocked unit"
    );
    assert_eq!(
        stack.stock(&mug).await,
        (9, 0, 9),
        "a recycled unit is never available"
    );

    // Refund: both items at the prices paid, and shipping, since the mug arrived damaged.
    let shipping = delivered["totals"]["shipping"]["amount"].as_i64().unwrap();
    let expected_refund = 1000 + 1000 + shipping;
    assert_eq!(received.body["refund"]["amount"]["amount"], expected_refund);
    let events = refunds(&refunds_probe, id, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["amount"]["amount"], expected_refund);
    assert_eq!(events[0]["data"]["returnId"], rma.as_str());

    // The order shows the return, its dispositions, the refund and every step.
    let after = order(&stack, &customer, id).await;
    let shown = &after["returns"][0];
    assert_eq!(shown["status"], "RECEIVED");
    let dispositions: Vec<_> = shown["receipt"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap(),
                l["disposition"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dispositions,
        [(shirt.as_str(), "RESTOCK"), (mug.as_str(), "RECYCLE")]
    );
    assert_eq!(after["refunds"][0]["amount"]["amount"], expected_refund);
    let notes: Vec<&str> = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["note"].as_str())
        .collect();
    assert!(
        notes.contains(&format!("return {rma} requested and approved").as_str()),
        "{notes:?}"
    );
    assert!(
        notes.contains(&format!("return {rma} received").as_str()),
        "{notes:?}"
    );
    let shown = stack
        .get(
            &format!("/returns/{rma}"),
            &stack.token("staff-tests", Some("oms:admin")),
        )
        .await;
    assert_eq!(shown.body["refund"]["amount"]["amount"], expected_refund);

    // The customer heard of the approval, with the label link, and of the receipt and refund.
    // Under the whole suite's load the notifier may lag its events by several seconds each.
    let emails = told
        .collect(Duration::from_secs(180), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.return.received")
        })
        .await;
    let email = |kind: &str| {
        emails
            .iter()
            .find(|(m, _)| m["eventType"] == kind)
            .unwrap_or_else(|| panic!("no {kind} e-mail among {emails:?}"))
            .0["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(email("oms.return.approved").contains(&format!("{}/returns/{rma}/label", stack.api)));
    assert!(email("oms.return.received").contains("A refund of €"));

    // A second receipt is refused and moves nothing.
    let twice = receive(
        &stack,
        &rma,
        json!([{"sku": shirt, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(
        problem(&twice),
        (StatusCode::CONFLICT, "/problems/return-already-received")
    );
    assert_eq!(stack.stock(&shirt).await, (9, 0, 9));
    assert_eq!(
        order(&stack, &customer, id).await["version"],
        after["version"]
    );
}

#[tokio::test]
async fn returns_outside_the_rules_get_a_clear_4xx_and_change_nothing() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("RULES", 10).await;

    // Delivered 60 days ago: the 30-day window has closed.
    let old_delivery = (chrono::Utc::now() - chrono::Duration::days(60)).to_rfc3339();
    let (customer, old) = stack.delivered_order(&[(&sku, 2)], &old_delivery).await;
    let old_id = old["orderId"].as_str().unwrap();
    let late = request_return(
        &stack,
        &customer,
        old_id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 1, "reason": "DOES_NOT_FIT"}]),
    )
    .await;
    assert_eq!(
        problem(&late),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/validation-error"
        )
    );
    assert!(late.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("return window of 30 days"));
    assert_eq!(
        order(&stack, &customer, old_id).await["version"],
        old["version"]
    );

    // More than was delivered, counting what another return already holds.
    let (customer, recent) = stack
        .delivered_order(&[(&sku, 2)], &delivered_recently())
        .await;
    let id = recent["orderId"].as_str().unwrap();
    let too_many = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 3, "reason": "DOES_NOT_FIT"}]),
    )
    .await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_many.body["errors"][0]["field"], "lines[0].quantity");
    let first = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 2, "reason": "DOES_NOT_FIT"}]),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let version = order(&stack, &customer, id).await["version"].clone();
    let more = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 1, "reason": "DOES_NOT_FIT"}]),
    )
    .await;
    assert_eq!(more.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(more.body["detail"]
        .as_str()
        .unwrap()
        .contains("2 already being returned"));
    // Receiving more than was announced, or something not on the return, is named too.
    let rma = first.body["returnId"].as_str().unwrap();
    let over = receive(
        &stack,
        rma,
        json!([{"sku": sku, "quantity": 3, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(order(&stack, &customer, id).await["version"], version);

    // An order that has not been delivered.
    let waiting = unique("customer");
    let placed = stack
        .place_order(&waiting, &unique("key"), &[(&sku, 1)])
        .await;
    let pending_id = placed.body["orderId"].as_str().unwrap().to_owned();
    let decided = stack.wait_status(&waiting, &pending_id, "FULFILLING").await;
    let undelivered = request_return(
        &stack,
        &waiting,
        &pending_id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 1, "reason": "DOES_NOT_FIT"}]),
    )
    .await;
    assert_eq!(
        problem(&undelivered),
        (StatusCode::CONFLICT, "/problems/not-returnable")
    );
    assert_eq!(
        order(&stack, &waiting, &pending_id).await["version"],
        decided["version"]
    );

    // Bad fields are all named at once.
    let bad = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 0, "reason": "BORED"}]),
    )
    .await;
    let fields = oms_domain::fixtures::error_fields(&bad.body);
    assert_eq!(fields, ["lines[0].quantity", "lines[0].reason"]);
}

#[tokio::test]
async fn staff_decide_returns_the_policy_does_not_approve() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("DECIDE", 10).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&sku, 2)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();
    let admin = stack.token("staff-tests", Some("oms:admin"));

    // "Other" reasons wait for staff; no label until approved.
    let opened = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 1, "reason": "OTHER"}]),
    )
    .await;
    assert_eq!(
        opened.body["status"], "PENDING_APPROVAL",
        "{:?}",
        opened.body
    );
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();
    let label = stack
        .get(
            &format!("/returns/{rma}/label"),
            &stack.token(&customer, None),
        )
        .await;
    assert_eq!(
        problem(&label),
        (StatusCode::CONFLICT, "/problems/label-not-issued")
    );
    let by_customer = stack
        .post(
            &format!("/returns/{rma}/approve"),
            &stack.token(&customer, None),
            &[],
            json!({}),
        )
        .await;
    assert_eq!(by_customer.status, StatusCode::FORBIDDEN);
    assert!(
        approval_queue(&stack, &admin).await.contains(&rma),
        "staff find it in the approval queue"
    );
    let by_customer_queue = stack
        .get(
            "/returns?status=PENDING_APPROVAL",
            &stack.token(&customer, None),
        )
        .await;
    assert_eq!(by_customer_queue.status, StatusCode::FORBIDDEN);
    let early = receive(
        &stack,
        &rma,
        json!([{"sku": sku, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(
        problem(&early),
        (StatusCode::CONFLICT, "/problems/invalid-return-step")
    );

    let rejected = stack
        .post(
            &format!("/returns/{rma}/reject"),
            &admin,
            &[],
            json!({"note": "worn"}),
        )
        .await;
    assert_eq!(
        (rejected.status, rejected.body["status"].as_str()),
        (StatusCode::OK, Some("REJECTED"))
    );
    assert!(
        !approval_queue(&stack, &admin).await.contains(&rma),
        "a decided return leaves the queue"
    );
    let approve_after = stack
        .post(&format!("/returns/{rma}/approve"), &admin, &[], json!({}))
        .await;
    assert_eq!(
        problem(&approve_after),
        (StatusCode::CONFLICT, "/problems/invalid-return-step")
    );

    // A rejected return holds nothing: both units can be returned again.
    let second = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": sku, "quantity": 2, "reason": "OTHER"}]),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{:?}", second.body);
    let rma2 = second.body["returnId"].as_str().unwrap();
    let approved = stack
        .post(
            &format!("/returns/{rma2}/approve"),
            &admin,
            &[],
            json!({"note": "goodwill"}),
        )
        .await;
    assert_eq!(approved.body["status"], "APPROVED");
    assert_eq!(
        approved.body["labelUrl"],
        format!("/returns/{rma2}/label").as_str()
    );
    let shown = stack
        .get(
            &format!("/returns/{rma2}"),
            &stack.token("someone-else", None),
        )
        .await;
    assert_eq!(
        shown.status,
        StatusCode::NOT_FOUND,
        "another customer cannot see it"
    );
}

#[tokio::test]
async fn an_exchange_reserves_the_replacement_and_ships_it_once_the_return_arrives() {
    let stack = Stack::connect().await;
    let small = stack.create_sku("SIZE-S", 5).await;
    let large = stack.create_sku("SIZE-L", 5).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&small, 1)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();

    let opened = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": small, "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": large}]),
    )
    .await;
    assert_eq!(opened.body["status"], "APPROVED", "{:?}", opened.body);
    assert_eq!(
        stack.stock(&large).await,
        (4, 1, 5),
        "the replacement is reserved on approval"
    );
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();

    let received = receive(
        &stack,
        &rma,
        json!([{"sku": small, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    assert!(
        received.body.get("refund").is_none(),
        "an exchange is not refunded"
    );
    assert_eq!(
        stack.stock(&small).await,
        (5, 0, 5),
        "the returned unit is back on the shelf"
    );
    let replacement_id = received.body["replacementOrderId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The replacement is a new order in the warehouse, free of charge, shipped like any other.
    let replacement = order(&stack, &customer, &replacement_id).await;
    assert_eq!(replacement["status"], "FULFILLING");
    assert_eq!(replacement["replacementFor"]["returnId"], rma.as_str());
    assert_eq!(replacement["lines"][0]["sku"], large.as_str());
    assert_eq!(replacement["totals"]["total"]["amount"], 0);
    let number = stack.ship_through_warehouse(&replacement_id).await;
    assert_eq!(
        stack.stock(&large).await,
        (4, 0, 4),
        "the replacement left the building"
    );

    // It does not fit either: returned, it is refunded at what was paid for it — on the
    // original order, which took the money (the replacement cost nothing).
    stack
        .deliver(&customer, &replacement_id, &number, &delivered_recently())
        .await;
    let back = stack
        .return_one_unit(&customer, &replacement_id, &large)
        .await;
    assert!(back.body.get("refund").is_none(), "{:?}", back.body);
    assert_eq!(stack.stock(&large).await, (5, 0, 5));
    let original = order(&stack, &customer, id).await;
    let owed = original["refunds"].as_array().expect("refunds");
    assert_eq!(owed.len(), 1, "{original}");
    assert_eq!(owed[0]["amount"]["amount"], 1000);
    assert_eq!(owed[0]["returnId"], rma.as_str());
}

/// An approved exchange the customer will not send after all: staff close the return before
/// anything arrives — its replacement's reservation is released in the same write, the
/// customer sees it closed by `staff` (not by account), and a parcel that turns up later is no
/// longer received against it.
#[tokio::test]
async fn staff_close_an_approved_return_that_will_not_arrive_and_its_exchange_is_released() {
    let stack = Stack::connect().await;
    let small = stack.create_sku("CLOSE-S", 5).await;
    let large = stack.create_sku("CLOSE-L", 5).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&small, 1)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();
    let opened = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": small, "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": large}]),
    )
    .await;
    assert_eq!(opened.body["status"], "APPROVED", "{:?}", opened.body);
    assert_eq!(stack.stock(&large).await, (4, 1, 5));
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();

    // The warehouse may receive, not close; staff close it.
    let warehouse = stack.token("close-packer", Some("oms:warehouse"));
    let refused = stack
        .post(&format!("/returns/{rma}/close"), &warehouse, &[], json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let admin = stack.token("close-admin", Some("oms:admin"));
    let closed = stack
        .post(
            &format!("/returns/{rma}/close"),
            &admin,
            &[],
            json!({"note": "the customer keeps it"}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
    assert_eq!(closed.body["status"], "EXPIRED");
    assert_eq!(closed.body["closing"]["note"], "the customer keeps it");
    assert_eq!(
        stack.stock(&large).await,
        (5, 0, 5),
        "the replacement's reservation released"
    );
    let seen = stack
        .get(&format!("/returns/{rma}"), &stack.token(&customer, None))
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.body);
    assert_eq!(seen.body["closing"]["by"], "staff", "{:?}", seen.body);
    assert!(!seen.body.to_string().contains("close-admin"));

    let late = receive(
        &stack,
        &rma,
        json!([{"sku": small, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(
        problem(&late),
        (StatusCode::CONFLICT, "/problems/invalid-return-step")
    );
    let again = stack
        .post(&format!("/returns/{rma}/close"), &admin, &[], json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
}

/// The customer calls off an exchange's replacement before it is packed: its unit goes back on
/// the shelf and the original order refunds the goods that came back, in the same write, once;
/// the refund is announced to the payment system like any other.
#[tokio::test]
async fn a_replacement_called_off_has_the_original_order_refund_the_goods_that_came_back() {
    let stack = Stack::connect().await;
    let psp_probe = Probe::subscribe(
        &stack,
        "OrderEventsTopic",
        Some(json!({"eventType": ["oms.refund.requested"]})),
    )
    .await;
    let small = stack.create_sku("OFF-S", 5).await;
    let large = stack.create_sku("OFF-L", 5).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&small, 1)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();
    let (rma, received) = exchange_one_unit(&stack, &customer, id, &small, &large).await;
    let replacement_id = received.body["replacementOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stack.stock(&large).await, (4, 1, 5));

    let cancelled = cancel(&stack, &customer, &replacement_id).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    assert_eq!(stack.stock(&large).await, (5, 0, 5), "released exactly");
    let original = order(&stack, &customer, id).await;
    let owed = original["refunds"].as_array().expect("refunds");
    assert_eq!(owed.len(), 1, "{original}");
    assert_eq!(owed[0]["amount"]["amount"], 1000);
    assert_eq!(owed[0]["returnId"], rma.as_str());
    assert_eq!(owed[0]["lines"][0]["sku"], small.as_str());
    // Asked again: the cancelled replacement answers as it is, nothing more is refunded.
    let again = cancel(&stack, &customer, &replacement_id).await;
    assert_eq!(again.status, StatusCode::OK);
    let original = order(&stack, &customer, id).await;
    assert_eq!(original["refunds"].as_array().unwrap().len(), 1);
    let events = refunds(&psp_probe, id, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["amount"]["amount"], 1000);
}

/// Every RMA number in the approval queue, page by page.
async fn approval_queue(stack: &Stack, admin: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/returns?status=PENDING_APPROVAL&limit=100&cursor={c}"),
            None => "/returns?status=PENDING_APPROVAL&limit=100".to_owned(),
        };
        let page = stack.get(&path, admin).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        found.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["returnId"].as_str().unwrap().to_owned()),
        );
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return found,
        }
    }
}

/// Reads a PDF as a printer and scanner would: `tests/tools/read_label.py` renders it with PDFium
/// and decodes its barcodes with ZXing (both installed by `infra/local/bootstrap.sh`).
pub(crate) fn read_label(pdf: &[u8]) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run infra/local/bootstrap.sh (infra/local/test.sh does)",
        python.display()
    );
    let file = std::env::temp_dir().join(format!("{}.pdf", unique("label")));
    std::fs::write(&file, pdf).unwrap();
    let output = std::process::Command::new(python)
        .arg(root.join("tests/tools/read_label.py"))
        .arg(&file)
        .output()
        .expect("running the label reader");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the label reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the label reader prints JSON")
}

/// An exchange for a dearer item: on receipt the replacement order is created for the
/// difference, held (its units reserved) until it is paid, then shipped; one for a cheaper item
/// ships at once and the difference is refunded on receipt.
#[tokio::test]
async fn an_exchange_for_a_dearer_item_is_paid_before_it_ships_and_a_cheaper_one_refunds_the_difference(
) {
    let stack = Stack::connect().await;
    let small = stack.create_sku("DIFF-S", 5).await; // 10.00
    let gold = unique("DIFF-GOLD").to_uppercase();
    stack.create_product(&gold, "Gold edition", 1450, 5).await;
    let plain = unique("DIFF-PLAIN").to_uppercase();
    stack.create_product(&plain, "Plain edition", 800, 5).await;
    let (customer, delivered) = stack
        .delivered_order(&[(&small, 2)], &delivered_recently())
        .await;
    let id = delivered["orderId"].as_str().unwrap();

    // One unit for the dearer item.
    let opened = request_return(
        &stack,
        &customer,
        id,
        &unique("k"),
        json!([{"sku": small, "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": gold}]),
    )
    .await;
    assert_eq!(opened.body["status"], "APPROVED", "{:?}", opened.body);
    assert_eq!(stack.stock(&gold).await, (4, 1, 5), "reserved on approval");
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();
    let received = receive(
        &stack,
        &rma,
        json!([{"sku": small, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    assert_eq!(received.body["exchangeDue"]["amount"], 450);
    assert!(received.body.get("refund").is_none(), "nothing refunded");
    let replacement_id = received.body["replacementOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let replacement = order(&stack, &customer, &replacement_id).await;
    assert_eq!(replacement["status"], "RESERVED");
    assert_eq!(replacement["hold"], "AWAITING_PAYMENT");
    assert_eq!(replacement["totals"]["total"]["amount"], 450);
    assert_eq!(stack.stock(&gold).await, (4, 1, 5), "still held for it");
    // Paid: it goes to the warehouse and ships.
    let authorized = stack.authorize(&replacement).await;
    assert!(authorized.status.is_success(), "{:?}", authorized.body);
    stack
        .wait_status(&customer, &replacement_id, "FULFILLING")
        .await;
    stack.ship_through_warehouse(&replacement_id).await;
    assert_eq!(stack.stock(&gold).await, (4, 0, 4), "the replacement left");

    // The other unit for the cheaper item: it ships at once, the difference refunded.
    let (_, received) = exchange_one_unit(&stack, &customer, id, &small, &plain).await;
    assert_eq!(
        received.body["refund"]["amount"]["amount"], 200,
        "{:?}",
        received.body
    );
    assert!(received.body.get("exchangeDue").is_none());
    let replacement = order(
        &stack,
        &customer,
        received.body["replacementOrderId"].as_str().unwrap(),
    )
    .await;
    assert_eq!(replacement["status"], "FULFILLING");
    assert_eq!(replacement["totals"]["total"]["amount"], 0);
}
