//! A poison message on a queue ends in its dead-letter queue, and the other messages of its
//! batch are processed. The test stack shortens visibility timeouts
//! (`OMS_LOCAL_QUEUE_VISIBILITY_SECONDS`) so the five receipts before redrive take seconds.

use std::time::{Duration, Instant};

use oms_system_tests::{unique, Stack, StatusCode};

/// Sends a poison message to `queue`, places a good order beside it that must reach `then`, and
/// waits for the poison in `dead_letters`.
async fn poison_reaches_the_dead_letter_queue(queue: &str, dead_letters: &str, then: &str) {
    let stack = Stack::connect().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let url = |name: &str| format!("{}/123456789012/{}", stack.emulator, stack.resource(name));
    let marker = unique("poison");
    sqs.send_message()
        .queue_url(url(queue))
        .message_body(format!("not an event {marker}"))
        .send()
        .await
        .unwrap();

    // A good order placed beside it goes through meanwhile.
    let sku = stack.create_sku("BESIDEPOISON", 2).await;
    let customer = unique("customer");
    let reply = stack
        .place_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    stack
        .wait_status(&customer, reply.body["orderId"].as_str().unwrap(), then)
        .await;

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let output = sqs
            .receive_message()
            .queue_url(url(dead_letters))
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let found = output
            .messages
            .unwrap_or_default()
            .into_iter()
            .any(|m| m.body().is_some_and(|b| b.contains(&marker)));
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message never reached the dead-letter queue"
        );
    }
}

#[tokio::test]
async fn a_poison_message_ends_in_the_reservations_dead_letter_queue_without_blocking_others() {
    poison_reaches_the_dead_letter_queue(
        "ReservationsQueue",
        "ReservationsDeadLetterQueue",
        "FULFILLING",
    )
    .await;
}

#[tokio::test]
async fn a_poison_message_ends_in_the_fulfillment_dead_letter_queue_without_blocking_others() {
    poison_reaches_the_dead_letter_queue(
        "FulfillmentQueue",
        "FulfillmentDeadLetterQueue",
        "FULFILLING",
    )
    .await;
}
