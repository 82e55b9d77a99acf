//! Customers hear of every step they care about, once per channel, in order, on the channels they
//! chose — read from a probe queue subscribed to the customer-notifications topic, filtered on
//! the test's own customer.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use oms_system_tests::{order_body, tracking, unique, Probe, Stack, StatusCode};
use serde_json::{json, Value};

/// Places an order with a phone number and `language`, returns its id.
async fn place(stack: &Stack, customer: &str, sku: &str, quantity: u32, language: &str) -> String {
    let mut body = order_body(&[(sku, quantity)]);
    body["contact"] =
        json!({"email": "ada@example.com", "phone": "+4915112345678", "language": language});
    let token = stack.token(customer, None);
    let reply = stack
        .call(
            reqwest::Method::POST,
            "/orders",
            Some(&token),
            &[("idempotency-key", &unique("key"))],
            Some(body.to_string().into_bytes()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let id = reply.body["orderId"].as_str().unwrap().to_owned();
    // Paid for once decided, so the order's events come in one order: placed, reserved (or
    // rejected), then the authorization.
    stack.wait_decided(customer, &id).await;
    stack.authorize(&reply.body).await;
    id
}

/// Drives an order from the warehouse to the customer's door over HTTP.
async fn deliver(stack: &Stack, customer: &str, id: &str) {
    stack.wait_status(customer, id, "FULFILLING").await;
    let warehouse = stack.token("packer-notify", Some("oms:warehouse"));
    let post = |path: String, etag: Option<String>, body: Option<Value>| {
        let (stack, warehouse) = (stack.clone(), warehouse.clone());
        async move {
            let reply = stack
                .warehouse_post(&path, &warehouse, etag.as_deref(), body.as_ref())
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
            reply.headers["etag"].to_str().unwrap().to_owned()
        }
    };
    let etag = post(format!("/fulfillments/{id}/pick"), None, None).await;
    let etag = post(
        format!("/fulfillments/{id}/pack"),
        Some(etag),
        Some(json!({"weightGrams": 700, "lengthCm": 20, "widthCm": 15, "heightCm": 10})),
    )
    .await;
    let number = format!("JJD{}", &id[18..]);
    post(
        format!("/fulfillments/{id}/ship"),
        Some(etag),
        Some(tracking(&number)),
    )
    .await;
    for (n, status) in ["OUT_FOR_DELIVERY", "DELIVERED"].iter().enumerate() {
        let event = json!({"eventId": format!("{number}-{n}"), "shipmentReference": id, "trackingNumber": number, "status": status, "occurredAt": "2026-11-30T10:15:00Z"});
        assert_eq!(
            stack.carrier_event(&event, None).await.status,
            StatusCode::OK
        );
    }
    stack.wait_status(customer, id, "DELIVERED").await;
}

fn summary(seen: &[(Value, std::collections::HashMap<String, String>)]) -> Vec<(String, String)> {
    seen.iter()
        .map(|(body, _)| {
            (
                body["eventType"].as_str().unwrap_or_default().to_owned(),
                body["channel"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_order_to_delivery_notifies_each_step_once_per_channel_in_order_even_with_every_event_twice(
) {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("NOTIFY", 10).await;
    let customer = unique("customer");
    let inbox = Probe::subscribe(
        &stack,
        "CustomerNotificationsTopic",
        Some(json!({"customerId": [customer]})),
    )
    .await;
    let events = Probe::subscribe(&stack, "OrderEventsTopic", None).await;

    let id = place(&stack, &customer, &sku, 2, "en").await;
    deliver(&stack, &customer, &id).await;

    // Every event of this order is delivered to the system a second time.
    let sdk = stack.sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = format!(
        "arn:aws:sns:us-east-1:123456789012:{}",
        stack.resource("OrderEventsTopic")
    );
    let mine = |seen: &[(Value, std::collections::HashMap<String, String>)]| {
        seen.iter()
            .filter(|(e, _)| e["subject"] == id.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    let order_events = events
        .collect(Duration::from_secs(30), |seen| {
            mine(seen)
                .iter()
                .any(|(e, _)| e["type"] == "oms.order.delivered")
        })
        .await;
    let order_events = mine(&order_events);
    assert_eq!(order_events.len(), 9, "every change was one event");
    for (event, attributes) in &order_events {
        let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&attributes["eventType"])
            .build()
            .unwrap();
        sns.publish()
            .topic_arn(&topic)
            .message(event.to_string())
            .message_attributes("eventType", attribute)
            .send()
            .await
            .unwrap();
    }

    let expected = [
        ("oms.order.placed", "email"),
        ("oms.order.placed", "sms"),
        ("oms.order.reserved", "email"),
        ("oms.order.reserved", "sms"),
        ("oms.payment.authorized", "email"),
        ("oms.payment.authorized", "sms"),
        ("oms.order.shipped", "email"),
        ("oms.order.shipped", "sms"),
        ("oms.fulfillment.out-for-delivery", "email"),
        ("oms.fulfillment.out-for-delivery", "sms"),
        ("oms.order.delivered", "email"),
        ("oms.order.delivered", "sms"),
    ];
    let seen = inbox
        .collect(Duration::from_secs(180), |seen| {
            seen.len() >= expected.len()
        })
        .await;
    // Wait a little longer: the duplicates must not produce anything more.
    let late = inbox.collect(Duration::from_secs(5), |_| false).await;
    assert!(late.is_empty(), "nothing twice: {:?}", summary(&late));
    let got = summary(&seen);
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(t, c)| (t.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want, "exactly the expected notifications, in order");

    for (body, attributes) in &seen {
        assert_eq!(attributes["customerId"], customer);
        assert_eq!(attributes["channel"], body["channel"].as_str().unwrap());
        assert_eq!(attributes["eventType"], body["eventType"].as_str().unwrap());
        assert_eq!(body["orderId"], id.as_str());
        assert_eq!(body["language"], "en");
    }
    let shipped = &seen[6].0;
    assert_eq!(shipped["to"], "ada@example.com");
    assert!(
        shipped["subject"].as_str().unwrap().contains(&id[18..]),
        "the subject names the order"
    );
    assert!(
        shipped["text"]
            .as_str()
            .unwrap()
            .contains("https://www.dhl.com/track?id="),
        "the tracking link"
    );
    assert!(
        shipped["text"].as_str().unwrap().contains("€"),
        "money for people"
    );
    assert!(shipped["html"]
        .as_str()
        .unwrap()
        .starts_with("<!doctype html>"));
    assert_eq!(seen[7].0["to"], "+4915112345678");
    assert!(seen[7].0["text"].as_str().unwrap().chars().count() <= 160);
    assert_eq!(
        shipped["data"]["trackingNumber"],
        format!("JJD{}", &id[18..])
    );
}

#[tokio::test]
async fn a_rejection_is_explained_in_the_customers_language() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("NOTIFYSHORT", 1).await;
    let customer = unique("customer");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let id = place(&stack, &customer, &sku, 3, "de-DE").await;
    let order = stack.wait_decided(&customer, &id).await;
    assert_eq!(order["status"], "REJECTED");
    let seen = inbox
        .collect(Duration::from_secs(180), |seen| seen.len() >= 2)
        .await;
    assert_eq!(
        summary(&seen),
        [
            ("oms.order.placed".to_owned(), "email".to_owned()),
            ("oms.order.rejected".to_owned(), "email".to_owned())
        ]
    );
    let rejected = &seen[1].0;
    assert_eq!(rejected["language"], "de");
    assert!(rejected["subject"]
        .as_str()
        .unwrap()
        .contains("nicht annehmen"));
    assert!(
        rejected["text"]
            .as_str()
            .unwrap()
            .contains("3 bestellt, 1 verfügbar"),
        "{}",
        rejected["text"]
    );
}

#[tokio::test]
async fn a_customer_who_opted_out_of_a_channel_hears_nothing_on_it() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("NOTIFYPREFS", 10).await;
    let customer = unique("customer");
    let token = stack.token(&customer, None);
    let prefs = json!({"email": false, "sms": true, "webhook": true});
    let put = stack
        .put("/customers/me/notification-preferences", &token, &prefs)
        .await;
    assert_eq!((put.status, &put.body), (StatusCode::OK, &prefs));
    assert_eq!(
        stack
            .get("/customers/me/notification-preferences", &token)
            .await
            .body,
        prefs
    );
    let bad = stack
        .put(
            "/customers/me/notification-preferences",
            &token,
            &json!({"email": "yes"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let inbox = Probe::subscribe(
        &stack,
        "CustomerNotificationsTopic",
        Some(json!({"customerId": [customer]})),
    )
    .await;
    let id = place(&stack, &customer, &sku, 1, "en").await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let seen = inbox
        .collect(Duration::from_secs(180), |seen| seen.len() >= 6)
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let mut channels: Vec<String> = summary(&seen)
        .into_iter()
        .chain(summary(&late))
        .map(|(_, c)| c)
        .collect();
    channels.sort();
    assert_eq!(
        channels,
        ["sms", "sms", "sms", "webhook", "webhook", "webhook"],
        "no e-mail after opting out"
    );
    let webhook = seen
        .iter()
        .find(|(b, _)| b["channel"] == "webhook")
        .unwrap();
    assert!(
        webhook.0.get("text").is_none() && webhook.0["data"]["orderId"] == id.as_str(),
        "webhooks carry the structured data"
    );
}

/// The order's notification cursor, read from the table: the next event to handle.
async fn cursor_next(stack: &Stack, id: &str) -> Option<u64> {
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk().await);
    let item = dynamodb
        .get_item()
        .table_name(stack.resource("OrdersTable"))
        .key("pk", AttributeValue::S(format!("ORDER#{id}")))
        .key("sk", AttributeValue::S("NOTIFIED".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    item.item()
        .and_then(|i| i.get("next"))
        .and_then(|n| n.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// A delivery that claimed the "shipped" event and crashed before publishing holds a live claim:
/// the event is retried in short steps until the claim runs out, then taken over and sent, and
/// every later event of the order — which waits behind it — still reaches the customer once.
/// (With a claim that outlived the queue's retries, the event went to the dead-letter queue and
/// every later message of the order waited forever.)
#[tokio::test]
async fn a_notification_that_crashed_after_its_claim_strands_nothing() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CRASH", 10).await;
    let customer = unique("customer");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let id = place(&stack, &customer, &sku, 1, "en").await;
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let warehouse = stack.token("packer-crash", Some("oms:warehouse"));
    let picked = stack
        .post(
            &format!("/fulfillments/{id}/pick"),
            &warehouse,
            &[],
            json!({}),
        )
        .await;
    let etag = picked.headers["etag"].to_str().unwrap().to_owned();
    let packed = stack
        .post(
            &format!("/fulfillments/{id}/pack"),
            &warehouse,
            &[("if-match", &etag)],
            json!({"weightGrams": 700, "lengthCm": 20, "widthCm": 15, "heightCm": 10}),
        )
        .await;
    assert_eq!(packed.status, StatusCode::OK, "{:?}", packed.body);
    let etag = packed.headers["etag"].to_str().unwrap().to_owned();
    // The order's version, whose next event is the shipment's "shipped".
    let shipping = stack.order_as_staff(&id).await["version"].as_u64().unwrap() + 1;

    // Wait for the notifier to reach the "shipped" event's turn, then claim it as a delivery
    // that crashes at once would have.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cursor_next(&stack, &id).await != Some(shipping) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cursor never reached {shipping}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk().await);
    let crashed_at = chrono::Utc::now();
    dynamodb
        .update_item()
        .table_name(stack.resource("OrdersTable"))
        .key("pk", AttributeValue::S(format!("ORDER#{id}")))
        .key("sk", AttributeValue::S("NOTIFIED".into()))
        .update_expression("SET claimedAt = :now")
        .condition_expression("#next = :shipping")
        .expression_attribute_names("#next", "next")
        .expression_attribute_values(
            ":now",
            AttributeValue::N(crashed_at.timestamp_millis().to_string()),
        )
        .expression_attribute_values(":shipping", AttributeValue::N(shipping.to_string()))
        .send()
        .await
        .unwrap();

    let number = format!("JJD{}", &id[18..]);
    let shipped = stack
        .post(
            &format!("/fulfillments/{id}/ship"),
            &warehouse,
            &[("if-match", &etag)],
            json!({"carrier": "DHL", "trackingNumber": number, "trackingUrl": format!("https://www.dhl.com/track?id={number}")}),
        )
        .await;
    assert_eq!(shipped.status, StatusCode::OK, "{:?}", shipped.body);
    for (n, status) in ["OUT_FOR_DELIVERY", "DELIVERED"].iter().enumerate() {
        let event = json!({"eventId": format!("{number}-{n}"), "shipmentReference": id, "trackingNumber": number, "status": status, "occurredAt": "2026-11-30T10:15:00Z"});
        assert_eq!(
            stack.carrier_event(&event, None).await.status,
            StatusCode::OK
        );
    }

    let want = [
        "oms.order.placed",
        "oms.order.reserved",
        "oms.payment.authorized",
        "oms.order.shipped",
        "oms.fulfillment.out-for-delivery",
        "oms.order.delivered",
    ];
    let seen = inbox
        .collect(Duration::from_secs(180), |seen| seen.len() >= want.len())
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    assert!(late.is_empty(), "nothing twice: {:?}", summary(&late));
    let got: Vec<String> = summary(&seen).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        got, want,
        "every message once, in order, after the crashed claim"
    );
    let taken_over = chrono::Utc::now() - crashed_at;
    assert!(
        taken_over.num_seconds() >= oms_domain::ports::NOTIFICATION_CLAIM_SECONDS,
        "the claim held until it ran out ({taken_over})"
    );
}
