//! The table's stream becomes CloudEvents on the order-events topic, with the event type as a
//! message attribute subscribers can filter on.

use std::collections::HashMap;
use std::time::Duration;

use oms_system_tests::{unique, Probe, Stack, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn each_state_change_is_published_once_as_a_cloudevent() {
    let stack = Stack::connect().await;
    let probe = Probe::subscribe(&stack, "OrderEventsTopic", None).await;

    let sku = stack.create_sku("EVENTS", 5).await;
    let customer = unique("customer");
    let reply = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let order_id = reply.body["orderId"].as_str().unwrap().to_owned();
    stack.wait_decided(&customer, &order_id).await;

    let of_order = |seen: &[(Value, HashMap<String, String>)]| {
        seen.iter()
            .filter(|(event, _)| event["subject"] == order_id.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    let seen = probe
        .collect(Duration::from_secs(30), |seen| of_order(seen).len() >= 4)
        .await;
    let mut mine = Vec::new();
    for (event, attributes) in of_order(&seen) {
        assert_eq!(
            attributes.get("eventType").map(String::as_str),
            event["type"].as_str(),
            "the type is a filterable attribute"
        );
        mine.push(event);
    }
    mine.sort_by_key(|e| e["sequence"].as_u64());
    let types: Vec<_> = mine.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "oms.order.placed",
            "oms.order.reserved",
            "oms.payment.authorized",
            "oms.order.fulfillment-started"
        ]
    );
    let event = &mine[1];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], format!("{order_id}-2"));
    assert_eq!(event["data"]["customerId"], customer);
    assert!(
        !event.to_string().contains("test@example.com"),
        "no personal data in events"
    );
}
