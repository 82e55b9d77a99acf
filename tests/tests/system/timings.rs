//! The template's timings fit each other and the code's, read from the template itself: a
//! consumer never outlives its message's invisibility, and an order's notifications cannot be
//! stranded by one crashed delivery. No stack needed.

use oms_domain::app::notify::{retry_delay, NotifyError};
use oms_domain::ports::NOTIFICATION_CLAIM_SECONDS;
use serde_yaml::Value;

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value:?} is not a number"))
}

/// The resource a `!GetAtt Name.Arn` names.
fn resource_of(reference: &Value) -> String {
    match reference {
        Value::Tagged(tagged) => tagged
            .value
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_owned(),
        other => panic!("an event source queue given as {other:?}"),
    }
}

/// Every (function, its timeout, queue, the event source's batching window) the template wires.
fn queue_consumers(template: &Value) -> Vec<(String, u64, String, u64)> {
    let default_timeout = number(&template["Globals"]["Function"]["Timeout"]);
    let mut consumers = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        let timeout = resource["Properties"]
            .get("Timeout")
            .map(number)
            .unwrap_or(default_timeout);
        for event in events.values().filter(|e| e["Type"] == "SQS") {
            let window = event["Properties"]
                .get("MaximumBatchingWindowInSeconds")
                .map(number)
                .unwrap_or(0);
            consumers.push((
                name.as_str().unwrap().to_owned(),
                timeout,
                resource_of(&event["Properties"]["Queue"]),
                window,
            ));
        }
    }
    consumers
}

#[test]
fn the_publishers_timeout_covers_its_worst_case_of_retries() {
    let template = oms_system_tests::template();
    let timeout = number(&template["Resources"]["EventPublisherFunction"]["Properties"]["Timeout"]);
    let worst = oms_adapters::sns::worst_case_publish();
    assert!(
        std::time::Duration::from_secs(timeout) > worst,
        "the publisher's timeout ({timeout} s) must cover its retries ({worst:?})"
    );
}

#[test]
fn every_queue_keeps_a_message_invisible_longer_than_its_consumer_can_take() {
    let template = oms_system_tests::template();
    let consumers = queue_consumers(&template);
    assert!(
        consumers.len() >= 3,
        "the template's queue consumers: {consumers:?}"
    );
    for (function, timeout, queue, window) in consumers {
        let visibility = number(&template["Resources"][&queue]["Properties"]["VisibilityTimeout"]);
        // AWS: at least six times the function's timeout, plus the batching window.
        assert!(
            visibility >= 6 * timeout + window,
            "{queue} hides a message {visibility} s; {function} may take {timeout} s with a \
             {window} s window: it needs at least {}",
            6 * timeout + window
        );
    }
}

/// A delivery that crashed between claiming an event and sending it holds the claim: the claim
/// must outlive a live delivery, be free again by the event's next delivery, and every later
/// event of the order must still be in the queue by then, waiting in short steps.
#[test]
fn a_crashed_notification_is_taken_over_before_anything_gives_up() {
    let template = oms_system_tests::template();
    let (_, timeout, queue, _) = queue_consumers(&template)
        .into_iter()
        .find(|(f, ..)| f == "NotifierFunction")
        .expect("the notifier consumes a queue");
    let properties = &template["Resources"][&queue]["Properties"];
    let visibility = number(&properties["VisibilityTimeout"]);
    let receives = number(&properties["RedrivePolicy"]["maxReceiveCount"]);
    let claim = NOTIFICATION_CLAIM_SECONDS as u64;
    assert!(
        claim >= timeout,
        "a claim of {claim} s could be taken from a live delivery of up to {timeout} s"
    );
    assert!(
        claim <= visibility,
        "a claim of {claim} s outlives the {visibility} s redelivery after a crash"
    );
    // The crashed event comes back after `visibility` and is taken over; an event after it,
    // waiting in short steps, must not reach the dead-letter queue before: its waits before
    // its last delivery add up to more than that, with a delivery's time to spare.
    let early = NotifyError::OutOfOrder {
        expected: 1,
        got: 2,
    };
    let waited: u64 = (1..receives as u32)
        .map(|n| retry_delay(&early, n).unwrap().as_secs())
        .sum();
    assert!(
        waited > 2 * visibility + timeout,
        "an early event waits {waited} s over {receives} deliveries; its predecessor may need \
         {} s",
        2 * visibility + timeout
    );
    // A lost predecessor is passed over before the waiting event itself is dead-lettered.
    assert!(
        u64::from(oms_domain::app::notify::PASS_GAP_ON_DELIVERY) < receives,
        "an event passes a gap on delivery {}; the queue gives up after {receives}",
        oms_domain::app::notify::PASS_GAP_ON_DELIVERY
    );
}
