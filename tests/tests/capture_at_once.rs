//! Money taken as soon as it is held (the template's `PaymentCapture: immediately`), driven from
//! the outside through the Stripe emulator: a stack of its own, which `infra/local/test.sh`
//! starts with `OMS_LOCAL_PARAMETER_PaymentCapture=immediately` after the system tests and runs
//! these with the feature `capture-at-once` (the system tests' stack captures on shipment).
//!
//! An order paid at once that staff make dearer is paid anew: a payment of the whole new total
//! is taken, the first one refunded in full at Stripe once it is, and every later refund comes
//! from the new one; never paid, the edit is undone and the first payment stays the order's.

use oms_system_tests::{
    if_match, open_at_stripe, pay_at_stripe, unique, wait_for, Stack, StatusCode,
};
use serde_json::{json, Value};

/// Places an order of one `sku` for a new customer, pays it at Stripe, and waits until the
/// money is taken: the customer, the order id and the PaymentIntent.
async fn paid_at_once(stack: &Stack, sku: &str) -> (String, String, String) {
    let customer = unique("at-once");
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(sku, 1)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let intent = open_at_stripe(stack, &customer, &id).await;
    pay_at_stripe(stack, &intent).await;
    let paid = wait_for(stack, &id, "paid", |o| o["payment"]["status"] == "PAID").await;
    assert_eq!(paid["payment"]["requests"][0]["kind"], "CAPTURE", "{paid}");
    (customer, id, intent)
}

/// Staff make the order `id` dearer (OVERNIGHT): answers the order after the edit.
async fn made_dearer(stack: &Stack, id: &str) -> Value {
    let admin = stack.token("at-once-admin", Some("oms:admin"));
    // Read, then edited on what was read: a late PSP event may write the order between (412),
    // and staff read it again.
    for _ in 0..5 {
        let seen = stack.order_as_staff(id).await;
        let edited = stack
            .post(
                &format!("/orders/{id}/edits"),
                &admin,
                &[
                    ("idempotency-key", &unique("edit")),
                    ("if-match", &if_match(&seen)),
                ],
                json!({"shippingMethod": "OVERNIGHT", "reason": "needed tomorrow"}),
            )
            .await;
        if edited.status == StatusCode::PRECONDITION_FAILED {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
        assert!(
            edited.body["totals"]["total"]["amount"].as_i64()
                > seen["totals"]["total"]["amount"].as_i64(),
            "{:?}",
            edited.body
        );
        assert_eq!(edited.body["edits"][0]["state"], "AWAITING_PAYMENT");
        return edited.body;
    }
    panic!("order {id} kept changing under the edit")
}

/// What Stripe gave back of the PaymentIntent `intent`, in minor units.
async fn refunded_at_stripe(stack: &Stack, intent: &str) -> i64 {
    let refunds = stack
        .stripe_get(&format!("/v1/refunds?payment_intent={intent}"))
        .await;
    refunds["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| r["amount"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_dearer_edit_of_money_taken_is_paid_anew_and_the_first_payment_refunded_at_stripe() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("AT-ONCE", 5).await;
    let (customer, id, first) = paid_at_once(&stack, &sku).await;
    let before = stack.order_as_staff(&id).await;
    let old_total = before["totals"]["total"]["amount"].as_i64().unwrap();
    let edited = made_dearer(&stack, &id).await;
    let new_total = edited["totals"]["total"]["amount"].as_i64().unwrap();
    assert_eq!(edited["hold"], "EDIT_AWAITING_PAYMENT", "{edited}");
    // Nothing given back before the new payment is taken.
    assert!(edited["refunds"].as_array().is_none_or(|r| r.is_empty()));
    assert_eq!(refunded_at_stripe(&stack, &first).await, 0);

    // The customer pays the new total: a new PaymentIntent of all of it, taken at once; then
    // the first is refunded in full at Stripe, and the order is paid under the new one.
    let second = open_at_stripe(&stack, &customer, &id).await;
    assert_ne!(second, first);
    let opened = stack
        .stripe_get(&format!("/v1/payment_intents/{second}"))
        .await;
    assert_eq!(opened["amount"].as_i64(), Some(new_total));
    pay_at_stripe(&stack, &second).await;
    let settled = wait_for(&stack, &id, "the first payment refunded", |o| {
        o["refunds"][0]["state"] == "ISSUED" && o["payment"]["status"] == "PAID"
    })
    .await;
    let refund = &settled["refunds"][0];
    assert_eq!(refund["reason"], "PAYMENT_REPLACED", "{refund}");
    assert_eq!(refund["fromPayment"].as_str(), Some(first.as_str()));
    assert_eq!(refund["amount"]["amount"].as_i64(), Some(old_total));
    assert_eq!(settled["edits"][0]["state"], "APPLIED");
    assert!(settled["hold"].is_null(), "{settled}");
    assert!(
        settled["payment"]["attention"].is_null(),
        "nothing for staff: {}",
        settled["payment"]
    );
    let taken = stack
        .stripe_get(&format!("/v1/payment_intents/{second}"))
        .await;
    assert_eq!(taken["status"], "succeeded", "{taken}");
    assert_eq!(taken["amount_received"].as_i64(), Some(new_total));
    assert_eq!(refunded_at_stripe(&stack, &first).await, old_total);
    assert_eq!(refunded_at_stripe(&stack, &second).await, 0);

    // Called off later: the whole new total comes back, from the new payment; at Stripe,
    // everything taken is given back, each payment what it took.
    let cancelled = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &stack.token(&customer, None),
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let refunded = wait_for(&stack, &id, "refunded", |o| {
        o["payment"]["status"] == "REFUNDED"
    })
    .await;
    assert_eq!(refunded["refunds"][1]["reason"], "CANCELLATION");
    assert_eq!(
        refunded["refunds"][1]["amount"]["amount"].as_i64(),
        Some(new_total)
    );
    assert_eq!(refunded_at_stripe(&stack, &second).await, new_total);
    assert_eq!(refunded_at_stripe(&stack, &first).await, old_total);
}

#[tokio::test]
async fn a_dearer_edit_of_money_taken_never_paid_is_undone_and_the_first_payment_kept() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("AT-ONCE-UNDONE", 5).await;
    let (_, id, first) = paid_at_once(&stack, &sku).await;
    let before = stack.order_as_staff(&id).await;
    made_dearer(&stack, &id).await;
    // The stack's payment window is 20 s; the sweep runs every 2 s.
    let undone = wait_for(&stack, &id, "edit undone", |o| {
        o["edits"][0]["state"] == "UNDONE"
    })
    .await;
    assert_eq!(undone["totals"], before["totals"]);
    assert_eq!(undone["payment"]["status"], "PAID");
    assert!(undone["refunds"].as_array().is_none_or(|r| r.is_empty()));
    assert!(undone["hold"].is_null(), "{undone}");
    assert_eq!(refunded_at_stripe(&stack, &first).await, 0);
}
