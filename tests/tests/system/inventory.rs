//! Stock administration from the outside: receipts, counts and write-offs keep the counters exact.

use std::time::Duration;

use oms_system_tests::{unique, Probe, Stack, StatusCode};
use serde_json::{json, Value};

use crate::console::Browser;

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

/// Inventory health from orders placed through the stack: each SKU's demand is the units its
/// orders reserved, and the figures staff see equal their hand calculation; a storefront sees
/// none of it; the API and the console sort by them; the SKU that fell to its reorder point is
/// announced once.
#[tokio::test]
async fn the_health_of_stock_follows_its_orders_and_staff_sort_by_it() {
    let stack = Stack::connect().await;
    let probe = Probe::subscribe(&stack, "OrderEventsTopic", None).await;
    let token = unique("HEALTH").to_uppercase();
    let sku = |letter: &str| format!("{token}-{letter}");
    let admin = stack.token("staff-tests", Some("oms:admin"));
    // (SKU, on hand, lead time, safety stock)
    for (letter, on_hand, lead, safety) in [("A", 20, 15, 2), ("B", 30, 14, 0), ("C", 12, 30, 0)] {
        let body = json!({"name": format!("Health {letter}"), "unitPrice": {"amount": 1000, "currency": "EUR"}, "weightGrams": 500, "onHand": on_hand, "leadTimeDays": lead, "safetyStock": safety});
        let reply = stack
            .put(&format!("/inventory/{}", sku(letter)), &admin, &body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    // Paid orders (an unpaid one would expire and give its units back in the middle).
    for (letter, units) in [("A", 2), ("A", 3), ("A", 1), ("C", 9)] {
        let customer = unique("customer");
        let reply = stack
            .place_then_pay(&customer, &unique("key"), &[(&sku(letter), units)])
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        stack
            .wait_decided(&customer, reply.body["orderId"].as_str().unwrap())
            .await;
    }
    // By hand, with the business's defaults (overstock past 90 days of cover, reorders for 30):
    // A sold 6 and has 14: ⌊14 × 30 / 6⌋ = 70 days; reorder point ⌈6 × 15 / 30⌉ + 2 = 5.
    // B sold nothing and has 30 above its safety stock of 0: overstock, no cover figure.
    // C sold 9 and has 3: ⌊3 × 30 / 9⌋ = 10 days; reorder point ⌈9 × 30 / 30⌉ = 9, and 3 is
    // below it: reorder up to 9 + 9 (30 days of demand), 15 units.
    let expected = [
        (
            "A",
            json!({"demand30Days": 6, "daysOfCover": 70, "reorderPoint": 5, "reorder": false, "suggestedReorder": 0, "overstock": false}),
        ),
        (
            "B",
            json!({"demand30Days": 0, "daysOfCover": null, "reorderPoint": 0, "reorder": false, "suggestedReorder": 0, "overstock": true}),
        ),
        (
            "C",
            json!({"demand30Days": 9, "daysOfCover": 10, "reorderPoint": 9, "reorder": true, "suggestedReorder": 15, "overstock": false}),
        ),
    ];
    for (letter, health) in &expected {
        let product = stack
            .get(&format!("/inventory/{}", sku(letter)), &admin)
            .await;
        assert_eq!(
            product.body["health"], *health,
            "{letter}: {:?}",
            product.body
        );
        assert_eq!(
            product.body["locations"][0]["health"], *health,
            "{letter}: all of it at the default location"
        );
    }
    let warehouse = stack.token("staff-packer", Some("oms:warehouse"));
    let seen = stack
        .get(&format!("/inventory/{}", sku("C")), &warehouse)
        .await;
    assert_eq!(
        seen.body["health"], expected[2].1,
        "the warehouse's staff see it"
    );
    let customer = stack.token(&unique("customer"), None);
    for path in [
        format!("/inventory/{}", sku("C")),
        format!("/inventory?skus={}", sku("C")),
    ] {
        let public = stack.get(&path, &customer).await;
        let product = public
            .body
            .get("items")
            .map_or(&public.body, |items| &items[0]);
        assert_eq!(product["sku"], sku("C"), "{path}");
        for staff_only in ["health", "leadTimeDays", "safetyStock"] {
            assert!(
                product.get(staff_only).is_none(),
                "{path} shows {staff_only}"
            );
        }
    }

    for (sort, order) in [
        ("reorder", ["C", "A", "B"]),
        ("cover", ["C", "A", "B"]),
        ("overstock", ["B", "A", "C"]),
    ] {
        let page = stack
            .get(&format!("/inventory?q={token}&sort={sort}"), &admin)
            .await;
        let skus: Vec<&str> = page.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{sort}: {:?}", page.body))
            .iter()
            .map(|p| p["sku"].as_str().unwrap())
            .collect();
        assert_eq!(skus, order.map(sku), "sort={sort}");
    }

    // C fell to its reorder point with its order; A and B never reached theirs.
    let reorder = |event: &Value| {
        event["type"] == "oms.inventory.reorder-point-reached"
            && event["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(&token))
    };
    let seen = probe
        .collect(Duration::from_secs(30), |seen| {
            seen.iter().any(|(event, _)| reorder(event))
        })
        .await;
    let announced: Vec<&Value> = seen.iter().map(|(e, _)| e).filter(|e| reorder(e)).collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["subject"], sku("C"));
    assert_eq!(
        (
            &announced[0]["data"]["reorderPoint"],
            &announced[0]["data"]["available"],
            &announced[0]["data"]["demand30Days"]
        ),
        (&json!(9), &json!(3), &json!(9))
    );

    // The console shows the same figures and sorts by them, in Chromium.
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-dora", "warehouse").await;
    browser
        .goto(&format!("/console/inventory?q={token}&sort=reorder"))
        .await;
    let rows = |text: String| {
        ["A", "B", "C"].map(|letter| text.find(&sku(letter)).expect("every SKU listed"))
    };
    let [a, b, c] = rows(browser.text("#inventory tbody").await);
    assert!(c < a && a < b, "reorder first: C, then A and B by SKU");
    let row = |letter: &str, cell: &str| format!("#sku-{} .{cell}", sku(letter));
    assert_eq!(browser.text(&row("C", "suggested")).await, "15");
    assert_eq!(browser.text(&row("C", "cover")).await, "10");
    assert_eq!(browser.text(&row("A", "reorder-point")).await, "5");
    assert_eq!(browser.text(&row("B", "health")).await, "overstock");
    assert_eq!(browser.text(&row("A", "demand")).await, "6");
    browser.screenshot("inventory-health").await;
    browser.submit("#sort-overstock").await;
    let [a, b, c] = rows(browser.text("#inventory tbody").await);
    assert!(b < a && a < c, "overstock first: B, then the most cover");
    assert_eq!(browser.value("#sort").await, "overstock");
    browser
        .goto(&format!("/console/inventory/{}", sku("C")))
        .await;
    let point = browser.text("#reorder-point").await;
    assert!(
        point.starts_with("9 (30 days' lead time, 0 safety stock)"),
        "{point}"
    );
    assert!(point.contains("reorder 15"), "{point}");
}
