//! The table's stream becomes CloudEvents on the order-events topic, with the event type as a
//! message attribute subscribers can filter on.

use std::time::{Duration, Instant};

use oms_system_tests::{unique, Stack, StatusCode};

#[tokio::test]
async fn each_state_change_is_published_once_as_a_cloudevent() {
    let stack = Stack::connect().await;
    let sdk = stack.sdk().await;
    let (sns, sqs) = (
        aws_sdk_sns::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    );
    let topic = format!(
        "arn:aws:sns:us-east-1:123456789012:{}",
        stack.resource("OrderEventsTopic")
    );
    let queue_name = unique("events-probe");
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}"))
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let sku = stack.create_sku("EVENTS", 5).await;
    let customer = unique("customer");
    let reply = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let order_id = reply.body["orderId"].as_str().unwrap().to_owned();
    stack.wait_decided(&customer, &order_id).await;

    let mut mine = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mine.len() < 4 && Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        for message in output.messages.unwrap_or_default() {
            let event: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
            if event["subject"] == order_id.as_str() {
                let attribute = message
                    .message_attributes()
                    .and_then(|a| a.get("eventType"))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned);
                assert_eq!(
                    attribute.as_deref(),
                    event["type"].as_str(),
                    "the type is a filterable attribute"
                );
                mine.push(event);
            }
        }
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
