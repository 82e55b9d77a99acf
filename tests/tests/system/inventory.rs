//! Stock administration from the outside: receipts, counts and write-offs keep the counters exact.

use oms_system_tests::{unique, Stack, StatusCode};
use serde_json::json;

#[tokio::test]
async fn adjustments_move_the_counters_and_never_below_zero() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("ADJUST", 10).await;
    let admin = stack.token("staff-inventory", Some("oms:admin"));
    let adjust = |body: serde_json::Value| {
        let (stack, admin, sku) = (stack.clone(), admin.clone(), sku.clone());
        async move {
            stack
                .call(
                    reqwest::Method::POST,
                    &format!("/inventory/{sku}/adjustments"),
                    Some(&admin),
                    &[],
                    Some(body.to_string().into_bytes()),
                )
                .await
        }
    };
    assert_eq!(
        adjust(json!({"reason": "RECEIPT", "delta": 5, "note": "PO-1"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(stack.stock(&sku).await, (15, 0, 15));

    let customer = unique("customer");
    let order = stack
        .place_order(&customer, &unique("key"), &[(&sku, 4)])
        .await;
    stack
        .wait_decided(&customer, order.body["orderId"].as_str().unwrap())
        .await;
    assert_eq!(stack.stock(&sku).await, (11, 4, 15));

    // A count below the reserved units is refused; reserved units stay promised.
    let refused = adjust(json!({"reason": "COUNT", "countedOnHand": 3})).await;
    assert_eq!(
        (refused.status, refused.body["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/insufficient-stock"))
    );
    let counted = adjust(json!({"reason": "COUNT", "countedOnHand": 12})).await;
    assert_eq!(counted.status, StatusCode::OK);
    assert_eq!(stack.stock(&sku).await, (8, 4, 12));

    let too_much = adjust(json!({"reason": "DAMAGE", "delta": -9})).await;
    assert_eq!(too_much.status, StatusCode::CONFLICT);
    let invalid = adjust(json!({"reason": "RECEIPT", "delta": -1})).await;
    assert_eq!(
        (invalid.status, invalid.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("delta"))
    );
    assert_eq!(stack.stock(&sku).await, (8, 4, 12));

    let missing = stack.get("/inventory/NO-SUCH-SKU-EVER", &admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// A cart naming one SKU twice is quoted as one line of both quantities (the catalog read once:
/// a batch read refuses a key named twice), and a cart longer than an order may be is refused.
#[tokio::test]
async fn a_quote_merges_a_repeated_sku_and_bounds_the_cart() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("QUOTE-TWICE", 10).await;
    let customer = stack.token(&unique("customer"), None);
    let quote = |items: String| {
        let (stack, customer) = (stack.clone(), customer.clone());
        async move {
            stack
                .get(
                    &format!("/shipping/options?country=DE&postalCode=10115&items={items}"),
                    &customer,
                )
                .await
        }
    };
    let twice = quote(format!("{sku}:2,{sku}:1")).await;
    assert_eq!(twice.status, StatusCode::OK, "{}", twice.body);
    let once = quote(format!("{sku}:3")).await;
    assert_eq!(twice.body, once.body);

    let long: Vec<String> = (0..100).map(|i| format!("SKU-{i}:1")).collect();
    let refused = quote(long.join(",")).await;
    assert_eq!(
        (refused.status, refused.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("items"))
    );
}
