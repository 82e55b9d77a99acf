//! From a reserved order to a delivered one, over HTTP only: the customer, the warehouse
//! (scope `oms:warehouse`) and the carrier's signed webhook.

use oms_system_tests::{parcel, texts, tracking, unique, Reply, Stack, StatusCode};
use serde_json::{json, Value};

fn etag(reply: &Reply) -> String {
    reply.headers["etag"].to_str().unwrap().to_owned()
}

async fn post(stack: &Stack, path: &str, if_match: Option<&str>, body: Option<Value>) -> Reply {
    let token = stack.token("packer-tests", Some("oms:warehouse"));
    stack
        .warehouse_post(path, &token, if_match, body.as_ref())
        .await
}

fn carrier(order_id: &str, number: &str, event_id: &str, status: &str) -> Value {
    json!({"eventId": event_id, "shipmentReference": order_id, "trackingNumber": number, "status": status, "occurredAt": "2026-11-30T10:15:00Z"})
}

/// Places an order of 3 units and waits until the warehouse has it.
async fn order_in_the_warehouse(stack: &Stack, sku: &str) -> (String, String) {
    let customer = unique("customer");
    let reply = stack
        .place_then_pay(&customer, &unique("key"), &[(sku, 3)])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let id = reply.body["orderId"].as_str().unwrap().to_owned();
    stack.wait_status(&customer, &id, "FULFILLING").await;
    (customer, id)
}

#[tokio::test]
async fn an_order_goes_from_placed_to_delivered_over_http() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("SHIPME", 10).await;
    let (customer, id) = order_in_the_warehouse(&stack, &sku).await;
    let warehouse = stack.token("packer-tests", Some("oms:warehouse"));

    // The pick list, oldest first, holds it.
    let mut found = false;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/fulfillments?status=AWAITING_PICK&limit=100&cursor={c}"),
            None => "/fulfillments?status=AWAITING_PICK&limit=100".to_owned(),
        };
        let page = stack.get(&path, &warehouse).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        found |= page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["orderId"] == id.as_str());
        match page.body["nextCursor"].as_str() {
            Some(next) if !found => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    assert!(found, "the order is on the pick list");

    let shipment = stack.get(&format!("/fulfillments/{id}"), &warehouse).await;
    assert_eq!(shipment.body["status"], "AWAITING_PICK");
    assert_eq!(shipment.body["shipTo"]["city"], "Berlin");
    let picked = post(
        &stack,
        &format!("/fulfillments/{id}/pick"),
        Some(&etag(&shipment)),
        None,
    )
    .await;
    assert_eq!(picked.status, StatusCode::OK, "{:?}", picked.body);
    let packed = post(
        &stack,
        &format!("/fulfillments/{id}/pack"),
        Some(&etag(&picked)),
        Some(parcel()),
    )
    .await;
    assert_eq!(
        (packed.status, packed.body["status"].as_str()),
        (StatusCode::OK, Some("PACKED"))
    );
    assert_eq!(
        stack.stock(&sku).await,
        (7, 3, 10),
        "packing moves no stock"
    );
    let number = unique("JJD").to_uppercase();
    let shipped = post(
        &stack,
        &format!("/fulfillments/{id}/ship"),
        Some(&etag(&packed)),
        Some(tracking(&number)),
    )
    .await;
    assert_eq!(
        (shipped.status, shipped.body["orderStatus"].as_str()),
        (StatusCode::OK, Some("SHIPPED"))
    );
    assert_eq!(
        stack.stock(&sku).await,
        (7, 0, 7),
        "shipping takes the units out of reserved and onHand"
    );

    for (event_id, status) in [
        ("e1", "IN_TRANSIT"),
        ("e2", "OUT_FOR_DELIVERY"),
        ("e3", "DELIVERED"),
    ] {
        let reply = stack
            .carrier_event(
                &carrier(&id, &number, &format!("{number}-{event_id}"), status),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.body["outcome"].as_str()),
            (StatusCode::OK, Some("applied")),
            "{status}: {:?}",
            reply.body
        );
    }

    let order = stack.wait_status(&customer, &id, "DELIVERED").await;
    let fulfillment = &order["fulfillment"];
    assert_eq!(fulfillment["status"], "DELIVERED");
    assert_eq!(fulfillment["tracking"], tracking(&number));
    assert!(fulfillment["deliveredAt"].is_string() && fulfillment["shippedAt"].is_string());
    assert!(order["shipping"]["estimate"]["earliest"].is_string());
    let timeline: Vec<(String, String)> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["status"].as_str().unwrap().to_owned(),
                t["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let statuses: Vec<&str> = timeline.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "PENDING",
            "RESERVED",
            "RESERVED",
            "FULFILLING",
            "FULFILLING",
            "FULFILLING",
            "SHIPPED",
            "SHIPPED",
            "SHIPPED",
            "DELIVERED"
        ]
    );
    assert!(
        timeline[6].1.contains(&number),
        "the shipping step names the tracking number"
    );
    assert!(order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["at"].is_string()));
}

#[tokio::test]
async fn steps_out_of_order_or_repeated_are_refused_and_change_nothing() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("NOSKIP", 10).await;
    let (_, id) = order_in_the_warehouse(&stack, &sku).await;
    let warehouse = stack.token("packer-tests", Some("oms:warehouse"));
    let shipment = stack.get(&format!("/fulfillments/{id}"), &warehouse).await;
    let number = unique("JJD").to_uppercase();

    let early = post(
        &stack,
        &format!("/fulfillments/{id}/ship"),
        Some(&etag(&shipment)),
        Some(tracking(&number)),
    )
    .await;
    assert_eq!(
        (early.status, early.body["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("/problems/invalid-fulfillment-step")
        )
    );
    let unshipped = stack
        .carrier_event(&carrier(&id, &number, &unique("evt"), "DELIVERED"), None)
        .await;
    assert_eq!(
        unshipped.status,
        StatusCode::CONFLICT,
        "{:?}",
        unshipped.body
    );
    let no_if_match = post(
        &stack,
        &format!("/fulfillments/{id}/pack"),
        None,
        Some(parcel()),
    )
    .await;
    assert_eq!(no_if_match.status, StatusCode::PRECONDITION_REQUIRED);

    let picked = post(&stack, &format!("/fulfillments/{id}/pick"), None, None).await;
    assert_eq!(picked.status, StatusCode::OK);
    let packed = post(
        &stack,
        &format!("/fulfillments/{id}/pack"),
        Some(&etag(&picked)),
        Some(parcel()),
    )
    .await;
    assert_eq!(packed.status, StatusCode::OK);
    let twice = post(
        &stack,
        &format!("/fulfillments/{id}/pack"),
        Some(&etag(&packed)),
        Some(parcel()),
    )
    .await;
    assert_eq!(
        (twice.status, twice.body["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("/problems/invalid-fulfillment-step")
        )
    );
    // A second packer who read the shipment before it was packed cannot ship it.
    let stale = post(
        &stack,
        &format!("/fulfillments/{id}/ship"),
        Some(&etag(&picked)),
        Some(tracking(&number)),
    )
    .await;
    assert_eq!(
        (stale.status, stale.body["type"].as_str()),
        (
            StatusCode::PRECONDITION_FAILED,
            Some("/problems/precondition-failed")
        )
    );
    let unchanged = stack.get(&format!("/fulfillments/{id}"), &warehouse).await;
    assert_eq!(
        (unchanged.body["status"].as_str(), etag(&unchanged)),
        (Some("PACKED"), etag(&packed))
    );
    assert_eq!(stack.stock(&sku).await, (7, 3, 10));

    let shipped = post(
        &stack,
        &format!("/fulfillments/{id}/ship"),
        Some(&etag(&packed)),
        Some(tracking(&number)),
    )
    .await;
    assert_eq!(shipped.status, StatusCode::OK);
    let event = carrier(&id, &number, &unique("evt"), "IN_TRANSIT");
    assert_eq!(
        stack.carrier_event(&event, None).await.body["outcome"],
        "applied"
    );
    let again = stack.carrier_event(&event, None).await;
    assert_eq!(
        (again.status, again.body["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    let forged = stack
        .carrier_event(
            &carrier(&id, &number, &unique("evt"), "DELIVERED"),
            Some(&format!("sha256={}", "ab".repeat(32))),
        )
        .await;
    assert_eq!(
        (forged.status, forged.body["type"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("/problems/invalid-signature")
        )
    );
    // Carriers do not promise order: what happened before the latest event changes nothing,
    // and a time ahead of the system's clock is refused.
    let mut late = carrier(&id, &number, &unique("evt"), "SHIPPED_LATE");
    late["status"] = json!("OUT_FOR_DELIVERY");
    late["occurredAt"] = json!("2026-11-30T09:00:00Z");
    let superseded = stack.carrier_event(&late, None).await;
    assert_eq!(
        (superseded.status, superseded.body["outcome"].as_str()),
        (StatusCode::OK, Some("superseded"))
    );
    let mut future = carrier(&id, &number, &unique("evt"), "DELIVERED");
    future["occurredAt"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let refused = stack.carrier_event(&future, None).await;
    assert_eq!(
        (refused.status, refused.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("occurredAt"))
    );
    let after = stack.get(&format!("/fulfillments/{id}"), &warehouse).await;
    assert_eq!(
        after.body["status"], "IN_TRANSIT",
        "neither the duplicate, the forgery, the late nor the future event changed anything"
    );
    assert_eq!(
        etag(&after),
        format!("\"v{}\"", shipped.body["version"].as_u64().unwrap() + 1)
    );

    let customer_token = stack.token("not-staff", None);
    let refused = stack.get("/fulfillments", &customer_token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_price_an_order_is_charged_is_the_quote() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("QUOTE", 10).await;
    let token = stack.token("shopper", None);
    let quotes = stack
        .get(
            &format!("/shipping/options?country=DE&postalCode=10115&items={sku}:3"),
            &token,
        )
        .await;
    assert_eq!(quotes.status, StatusCode::OK, "{:?}", quotes.body);
    assert_eq!(
        texts(&quotes.body["options"], "method"),
        ["IN_STORE_PICKUP", "STANDARD", "EXPRESS", "OVERNIGHT"]
    );
    let standard = &quotes.body["options"][1];
    // 3 × 500 g = 1.5 kg, two started kilograms: 4.90 + 2 × 0.50.
    assert_eq!(standard["price"]["amount"], 590);

    let customer = unique("customer");
    let order = stack
        .place_order(&customer, &unique("key"), &[(&sku, 3)])
        .await;
    assert_eq!(order.body["shipping"]["price"], standard["price"]);
    assert_eq!(order.body["shipping"]["estimate"], standard["estimate"]);

    let abroad = stack
        .get(
            &format!("/shipping/options?country=FR&postalCode=75001&items={sku}:1"),
            &token,
        )
        .await;
    let methods = texts(&abroad.body["options"], "method");
    assert_eq!(
        methods,
        ["STANDARD", "EXPRESS"],
        "no overnight or pickup abroad"
    );
    let nowhere = stack
        .get(
            &format!("/shipping/options?country=AQ&postalCode=1&items={sku}:1"),
            &token,
        )
        .await;
    assert_eq!(nowhere.status, StatusCode::UNPROCESSABLE_ENTITY);
}
