//! Stock administration from the outside: receipts, counts and write-offs keep the counters exact.

use std::time::Duration;

use oms_system_tests::{unique, wait_for, Probe, Stack, StatusCode};
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

    // One location's figures: B received at Amsterdam, where it sold nothing, is overstock
    // there; A and C are not kept there at all.
    stack.receive_at(&sku("B"), "AMS-1", 40).await;
    let page = stack
        .get(
            &format!("/inventory?q={token}&sort=overstock&location=AMS-1"),
            &admin,
        )
        .await;
    let skus: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{:?}", page.body))
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["B", "A", "C"].map(sku), "overstock at AMS-1");
    for refused in [
        format!("/inventory?q={token}&sort=sku&location=AMS-1"),
        format!("/inventory?q={token}&sort=reorder&location=NOWHERE-1"),
        format!("/inventory?skus={}&location=AMS-1", sku("B")),
    ] {
        let reply = stack.get(&refused, &admin).await;
        assert_eq!(
            (reply.status, reply.body["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("/problems/invalid-query")),
            "{refused}"
        );
    }

    let storefront = stack.token(&unique("customer"), None);
    let refused = stack
        .get("/inventory?sort=reorder&location=AMS-1", &storefront)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "staff's listing");

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
        .goto(&format!(
            "/console/inventory?q={token}&sort=overstock&location=AMS-1"
        ))
        .await;
    let [a, b, c] = rows(browser.text("#inventory tbody").await);
    assert!(b < a && a < c, "overstock at AMS-1 first: B");
    assert_eq!(browser.text(&row("B", "health")).await, "overstock");
    assert_eq!(browser.text(&row("A", "health")).await, "not kept here");
    assert_eq!(browser.value("#health-at").await, "AMS-1");
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

/// A purchase order staff record in the console is incoming until it arrives: the SKU's health
/// counts it (what is ordered is not suggested again), a packer receives part of it and then
/// the rest, each delivery once (the same form sent again from the back button is refused),
/// and the history names the order; the API says the same.
#[tokio::test]
async fn a_purchase_order_is_incoming_until_its_deliveries_arrive_each_once() {
    let stack = Stack::connect().await;
    let admin = stack.token("staff-tests", Some("oms:admin"));
    let sku = unique("PURCHASE").to_uppercase();
    let body = json!({"name": "Purchase test", "unitPrice": {"amount": 1000, "currency": "EUR"}, "weightGrams": 500, "onHand": 12, "leadTimeDays": 30});
    let reply = stack.put(&format!("/inventory/{sku}"), &admin, &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let customer = unique("customer");
    let paid = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 9)])
        .await;
    stack
        .wait_decided(&customer, paid.body["orderId"].as_str().unwrap())
        .await;
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await;
    assert_eq!(
        product.body["health"]["suggestedReorder"], 15,
        "{:?}",
        product.body
    );

    // An administrator orders what the console suggests.
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-erin", "admin").await;
    browser.goto(&format!("/console/inventory/{sku}")).await;
    assert_eq!(
        browser.value("#purchase-units").await,
        "15",
        "the suggestion"
    );
    let expected_on = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    browser
        .client
        .execute(
            "document.querySelector('#purchase-expected').value = arguments[0];",
            vec![json!(expected_on.to_string())],
        )
        .await
        .unwrap();
    browser.fill("#purchase-reference", "ACME-4711").await;
    browser.submit("#place-purchase").await;
    assert_eq!(
        browser.text("#banner").await,
        "The purchase order was recorded; its units are incoming until they arrive."
    );
    assert_eq!(browser.text("#incoming").await, "15");
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await;
    assert_eq!(
        (
            &product.body["available"],
            &product.body["incoming"],
            &product.body["health"]["reorder"],
            &product.body["health"]["suggestedReorder"]
        ),
        (&json!(3), &json!(15), &json!(false), &json!(0)),
        "ordered: not suggested again"
    );
    let orders = stack
        .get(&format!("/inventory/{sku}/purchase-orders"), &admin)
        .await;
    let order = &orders.body["items"][0];
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &order["quantity"],
            &order["supplierReference"],
            &order["expectedOn"],
            &order["status"]
        ),
        (
            &json!(15),
            &json!("ACME-4711"),
            &json!(expected_on.to_string()),
            &json!("OPEN")
        )
    );

    // A packer has the SKU's page open in two tabs: 10 arrive, recorded in the first; the
    // second still shows none arrived, so its delivery is refused.
    let packer = Browser::open(&stack).await;
    packer.sign_in("staff-finn", "warehouse").await;
    let page = format!("/console/inventory/{sku}");
    packer.goto(&page).await;
    let first = packer.client.window().await.unwrap();
    let second = packer.client.new_window(true).await.unwrap().handle;
    packer
        .client
        .switch_to_window(second.clone())
        .await
        .unwrap();
    packer.goto(&page).await;
    packer.client.switch_to_window(first).await.unwrap();
    packer.fill(&format!("#arrived-{id}"), "10").await;
    packer.submit(&format!("#receive-{id}")).await;
    assert_eq!(
        packer.text("#banner").await,
        "The delivery was recorded; its units are available."
    );
    assert_eq!(packer.text(&format!("#po-{id} .received")).await, "10");
    packer.client.switch_to_window(second).await.unwrap();
    packer.fill(&format!("#arrived-{id}"), "5").await;
    packer.submit(&format!("#receive-{id}")).await;
    let refusal = packer.text("#form-refused").await;
    assert!(refusal.contains("10 units of purchase order"), "{refusal}");
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await;
    assert_eq!(
        (&product.body["available"], &product.body["incoming"]),
        (&json!(13), &json!(5)),
        "the delivery counted once"
    );
    // The rest arrives: received, nothing incoming, the history names the order.
    packer.goto(&format!("/console/inventory/{sku}")).await;
    packer.submit(&format!("#receive-{id}")).await;
    assert_eq!(packer.text(&format!("#po-{id} .status")).await, "received");
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await;
    assert_eq!(
        (&product.body["available"], &product.body["incoming"]),
        (&json!(18), &json!(0))
    );
    let history = stack
        .get(&format!("/inventory/{sku}/adjustments"), &admin)
        .await;
    let note = history.body["items"][0]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(note, format!("purchase order {id} (ACME-4711)"));
    packer
        .client
        .execute(
            "document.querySelector('#purchase-h').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    packer.screenshot("purchase-orders").await;
    // Nothing more arrives on it.
    let late = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders/{id}/receive"),
            &admin,
            &[],
            json!({"quantity": 1, "expectedReceived": 15}),
        )
        .await;
    assert_eq!(
        (late.status, late.body["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("/problems/purchase-order-not-open")
        )
    );
}

/// A pre-order whose stock came before the release date: one unit waits (the cap allows it)
/// and the rest is in stock; once the delivery fills the waiting unit and the order is paid,
/// it still does not reach the warehouse — held as awaiting its release, the sweep passing it
/// over — and its customer's page says when it leaves. (Its leaving on the day is the domain's
/// test of the sweep: the stack's clock cannot be moved.)
#[tokio::test]
async fn a_pre_order_filled_before_its_release_date_waits_for_the_date() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PREORDER", 1).await;
    let admin = stack.token("staff-preorders", Some("oms:admin"));
    let release_on = (chrono::Utc::now() + chrono::Duration::days(20)).date_naive();
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    let body = json!({"name": product["name"], "unitPrice": product["unitPrice"],
        "weightGrams": product["weightGrams"],
        "selling": {"policy": "PRE_ORDER", "releaseOn": release_on.to_string(), "cap": 5}});
    let put = stack.put(&format!("/inventory/{sku}"), &admin, &body).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);

    let customer = unique("preorders");
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let waiting = wait_for(&stack, &id, "reserved", |o| o["status"] == "RESERVED").await;
    assert_eq!(waiting["lines"][0]["releaseOn"], release_on.to_string());
    assert_eq!(waiting["lines"][0]["backordered"], 1, "{waiting}");
    // The last unit arrives early: the order's units are all here, and it stays.
    stack.receive_at(&sku, "BER-1", 1).await;
    let held = wait_for(&stack, &id, "filled and held for its release", |o| {
        o["hold"] == "AWAITING_RELEASE"
    })
    .await;
    assert_eq!(held["status"], "RESERVED", "{held}");
    assert!(held["lines"][0].get("backordered").is_none(), "{held}");
    assert!(
        held["shipments"].as_array().is_none_or(|s| s.is_empty()),
        "{held}"
    );
    // Several sweeps later (every 2 s on the test stack): still not in the warehouse.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let still = stack.order_as_staff(&id).await;
    assert_eq!(still["status"], "RESERVED", "{still}");
    assert_eq!(still["hold"], "AWAITING_RELEASE");
    // The customer's page, opened from its link (the visit's cookie, then the page).
    let visit = stack.shop_visit(&id).await;
    let page = reqwest::Client::new()
        .get(format!("{}/shop/orders/{id}", stack.api))
        .header("cookie", visit)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("goes to our warehouse on its release date"),
        "{page}"
    );
}

/// A release date moved by staff through the API: the pre-order already reserved and paid
/// follows it (its line and hold, its customer told the new date once, by e-mail), within the
/// sweep's run after the payment window of its reservation (20 s on the test stack); the SKU
/// then no longer sold as a pre-order releases it, and it goes to the warehouse.
#[tokio::test]
async fn a_pre_order_follows_its_release_date_when_staff_move_it() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PREMOVE", 5).await;
    let admin = stack.token("staff-release-dates", Some("oms:admin"));
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    let selling = |selling: Value| {
        json!({"name": product["name"], "unitPrice": product["unitPrice"],
            "weightGrams": product["weightGrams"], "selling": selling})
    };
    let today = chrono::Utc::now().date_naive();
    let (first, moved_to) = (
        today + chrono::Duration::days(10),
        today + chrono::Duration::days(40),
    );
    let pre_order = |on: chrono::NaiveDate| {
        selling(json!({"policy": "PRE_ORDER", "releaseOn": on.to_string(), "cap": 5}))
    };
    let put = stack
        .put(&format!("/inventory/{sku}"), &admin, &pre_order(first))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);

    let customer = unique("release-moves");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let held = wait_for(&stack, &id, "held for its release", |o| {
        o["hold"] == "AWAITING_RELEASE"
    })
    .await;
    assert_eq!(held["lines"][0]["releaseOn"], first.to_string());

    let put = stack
        .put(&format!("/inventory/{sku}"), &admin, &pre_order(moved_to))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let moved = wait_for(&stack, &id, "moved to the new release date", |o| {
        o["lines"][0]["releaseOn"] == moved_to.to_string()
    })
    .await;
    assert_eq!(
        (&moved["status"], &moved["hold"]),
        (&json!("RESERVED"), &json!("AWAITING_RELEASE"))
    );
    let date = moved_to.format("%a %-d %b %Y").to_string();
    let told = inbox
        .collect(Duration::from_secs(30), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.release-moved")
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let revisions: Vec<&Value> = told
        .iter()
        .chain(late.iter())
        .map(|(m, _)| m)
        .filter(|m| m["eventType"] == "oms.order.release-moved" && m["orderId"] == id.as_str())
        .collect();
    assert_eq!(revisions.len(), 1, "told once: {revisions:?}");
    let text = revisions[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&date) && text.contains("has a new release date"),
        "{text}"
    );

    // No longer a pre-order: released now, it leaves.
    let put = stack
        .put(
            &format!("/inventory/{sku}"),
            &admin,
            &selling(json!({"policy": "DENY"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let sent = wait_for(&stack, &id, "released and sent to the warehouse", |o| {
        o["status"] == "FULFILLING"
    })
    .await;
    assert_eq!(sent["lines"][0]["releaseOn"], today.to_string(), "{sent}");
}

/// Issue "Orders that bend", items 1–2, through the stack: a SKU that may backorder three units
/// takes orders past its two in stock up to that and no further, each promised the date of the
/// purchase order that brings it; a delivery of fewer units than wait fills the oldest order
/// first in its own write (the order goes to the warehouse, its customer is told once); the
/// same delivery sent again fills nothing more; checkouts racing a delivery never get a unit
/// that was given to a waiting order; the counters balance throughout.
#[tokio::test]
async fn backorders_are_taken_up_to_the_limit_and_a_delivery_fills_the_oldest_first() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("BACKORDER", 2).await;
    let admin = stack.token("staff-backorders", Some("oms:admin"));
    stack.sell_past_stock(&sku, 3).await;
    let put = stack.get(&format!("/inventory/{sku}"), &admin).await;
    assert_eq!(put.body["selling"]["policy"], "BACKORDER");
    assert_eq!(put.body["backorderable"], 3);
    let expected_on = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    let po = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 6, "expectedOn": expected_on.to_string()}),
        )
        .await;
    assert_eq!(po.status, StatusCode::CREATED, "{:?}", po.body);
    let po = po.body["id"].as_str().unwrap().to_owned();

    let first_customer = unique("waits");
    let inbox = Probe::customer_email(&stack, &first_customer).await;
    // The oldest: 3 of which 2 are in stock; then 2 more; the limit (3 waiting) is reached.
    let order = |customer: String, units: u32| {
        let (stack, sku) = (&stack, &sku);
        async move {
            let placed = stack
                .place_then_pay(&customer, &unique("key"), &[(sku, units)])
                .await;
            let id = placed.body["orderId"].as_str().unwrap().to_owned();
            (customer, id)
        }
    };
    let (_, first) = order(first_customer.clone(), 3).await;
    let (_, second) = order(unique("waits"), 2).await;
    let (third_customer, third) = order(unique("late"), 1).await;
    let rejected = stack.wait_decided(&third_customer, &third).await;
    assert_eq!(rejected["status"], "REJECTED", "past the limit");
    assert_eq!(rejected["shortages"][0]["sku"], sku.as_str());

    let oldest = stack.order_as_staff(&first).await;
    assert_eq!(oldest["status"], "RESERVED");
    assert_eq!(oldest["hold"], "BACKORDERED");
    assert_eq!(oldest["lines"][0]["backordered"], 1);
    assert_eq!(
        oldest["lines"][0]["promisedOn"],
        expected_on.to_string(),
        "promised the purchase order's date"
    );
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(
        (
            &product["available"],
            &product["reserved"],
            &product["onHand"],
            &product["backordered"],
            &product["backorderable"]
        ),
        (&json!(0), &json!(2), &json!(2), &json!(3), &json!(0)),
        "backordered units are never available nor on hand"
    );
    assert_eq!(
        product["waiting"][0]["orderId"],
        first.as_str(),
        "oldest first"
    );
    assert_eq!(product["waiting"][1]["orderId"], second.as_str());

    // Two arrive: the oldest's one, then one of the second's two, in the delivery's own write.
    let deliver = |received_before: u32, quantity: u32| {
        let (stack, admin, sku, po) = (&stack, &admin, &sku, &po);
        async move {
            stack
                .post(
                    &format!("/inventory/{sku}/purchase-orders/{po}/receive"),
                    admin,
                    &[],
                    json!({"quantity": quantity, "expectedReceived": received_before}),
                )
                .await
        }
    };
    let delivered = deliver(0, 2).await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(
        (
            &product["available"],
            &product["reserved"],
            &product["backordered"]
        ),
        (&json!(0), &json!(4), &json!(1)),
        "nothing became available to new orders"
    );
    assert_eq!(product["waiting"][0]["orderId"], second.as_str());
    // The oldest goes to the warehouse; the second still waits for one.
    stack
        .wait_status(&first_customer, &first, "FULFILLING")
        .await;
    let second_now = stack.order_as_staff(&second).await;
    assert_eq!(
        (
            &second_now["status"],
            &second_now["lines"][0]["backordered"]
        ),
        (&json!("RESERVED"), &json!(1))
    );
    // The same delivery again (a retry): refused, nothing filled twice.
    let again = deliver(0, 2).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(
        (&product["reserved"], &product["backordered"]),
        (&json!(4), &json!(1))
    );

    // Four checkouts of one unit race a delivery of three: every unit goes to exactly one
    // order, the waiting one first.
    let racers: Vec<_> = (0..4).map(|_| unique("racer")).collect();
    let (placed, delivered) = tokio::join!(
        futures::future::join_all(racers.iter().map(|c| order(c.clone(), 1))),
        deliver(2, 3)
    );
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    let mut reserved_units = 0;
    let mut waiting_units = 0;
    for (customer, id) in placed
        .iter()
        .chain([(String::new(), second.clone())].iter())
    {
        let decided = if customer.is_empty() {
            stack.order_as_staff(id).await
        } else {
            stack.wait_decided(customer, id).await
        };
        if decided["status"] == "REJECTED" {
            continue;
        }
        let waits = decided["lines"][0]["backordered"].as_u64().unwrap_or(0);
        waiting_units += waits;
        reserved_units += decided["lines"][0]["quantity"].as_u64().unwrap() - waits;
    }
    let second_now = stack.order_as_staff(&second).await;
    assert!(
        second_now["lines"][0].get("backordered").is_none(),
        "the waiting order was filled first: {second_now}"
    );
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    let n = |k: &str| product[k].as_u64().unwrap();
    assert_eq!(
        n("onHand"),
        7,
        "2 in stock, 2 and 3 delivered, nothing shipped yet"
    );
    assert_eq!(n("onHand"), n("available") + n("reserved"));
    // The first order's 3, plus what the second and the racers hold.
    assert_eq!(n("reserved"), 3 + reserved_units, "{product}");
    assert_eq!(n("backordered"), waiting_units, "{product}");

    // The oldest customer heard of the confirmation with its date, and of the fill, once each.
    let told = inbox
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.backorder-filled")
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let of = |kind: &str| {
        told.iter()
            .chain(late.iter())
            .filter(|(m, _)| m["eventType"] == kind && m["orderId"] == first.as_str())
            .map(|(m, _)| m["text"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("oms.order.backorder-filled").len(), 1, "told once");
    let confirmed = of("oms.order.reserved");
    assert_eq!(confirmed.len(), 1);
    assert!(
        confirmed[0].contains("expected in our warehouse by"),
        "{}",
        confirmed[0]
    );
}

/// Stock that arrives at a store, which sends no parcels, fills no waiting order; sent on to
/// Berlin by transfer, it goes to the order waiting there first, in the transfer's own write:
/// the order reaches the warehouse, and the counters balance.
#[tokio::test]
async fn a_transfer_arriving_where_an_order_waits_fills_it_first() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("XFER-WAIT", 0).await;
    let admin = stack.token("staff-transfer-fill", Some("oms:admin"));
    stack.sell_past_stock(&sku, 5).await;
    let customer = unique("waits");
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let waiting = stack.wait_decided(&customer, &id).await;
    assert_eq!(waiting["hold"], "BACKORDERED", "{waiting}");
    // Two arrive at the Berlin store (it hands orders over, sends no parcels), then travel to
    // the warehouse.
    stack.receive_at(&sku, "BER-STORE-1", 2).await;
    assert_eq!(stack.order_as_staff(&id).await["hold"], "BACKORDERED");
    let sent = stack
        .post(
            &format!("/inventory/{sku}/transfers"),
            &admin,
            &[("idempotency-key", &unique("send"))],
            json!({"from": "BER-STORE-1", "to": "BER-1", "quantity": 2}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{:?}", sent.body);
    let transfer = sent.body["id"].as_str().unwrap();
    let arrived = stack
        .post(
            &format!("/inventory/{sku}/transfers/{transfer}/receive"),
            &stack.token("warehouse-ber", Some("oms:warehouse")),
            &[],
            json!({}),
        )
        .await;
    assert_eq!(arrived.status, StatusCode::OK, "{:?}", arrived.body);
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(product["backordered"], 0, "{product}");
    assert_eq!(product["available"], 0, "{product}");
    assert_eq!(product["reserved"], 2, "{product}");
}

/// A delivery to the second warehouse serves the orders waiting for the SKU before any new
/// order: the oldest is filled there, in the delivery's write, and leaves from there; an order
/// placed while the delivery was on its way is promised its date. Counters balance at both.
#[tokio::test]
async fn a_delivery_to_the_second_warehouse_fills_the_waiting_order_there() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("SECOND-WH", 0).await;
    let admin = stack.token("staff-second-warehouse", Some("oms:admin"));
    stack.sell_past_stock(&sku, 5).await;
    let first_customer = unique("waits");
    let inbox = Probe::customer_email(&stack, &first_customer).await;
    let first = stack
        .place_then_pay(&first_customer, &unique("key"), &[(&sku, 2)])
        .await;
    let first = first.body["orderId"].as_str().unwrap().to_owned();
    let waiting = stack.wait_decided(&first_customer, &first).await;
    assert_eq!(waiting["hold"], "BACKORDERED", "{waiting}");

    // Three are ordered for Amsterdam; an order placed now is promised their date.
    let expected_on = (chrono::Utc::now() + chrono::Duration::days(6)).date_naive();
    let po = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 3, "expectedOn": expected_on.to_string(), "location": "AMS-1"}),
        )
        .await;
    assert_eq!(po.status, StatusCode::CREATED, "{:?}", po.body);
    let po = po.body["id"].as_str().unwrap().to_owned();
    let second_customer = unique("waits");
    let second = stack
        .place_then_pay(&second_customer, &unique("key"), &[(&sku, 1)])
        .await;
    let second = second.body["orderId"].as_str().unwrap().to_owned();
    let promised = stack.wait_decided(&second_customer, &second).await;
    assert_eq!(promised["hold"], "BACKORDERED", "{promised}");
    assert_eq!(
        promised["lines"][0]["promisedOn"],
        expected_on.to_string(),
        "promised the Amsterdam delivery's date: {promised}"
    );

    // Two of the three arrive: the oldest order's two, in the delivery's own write.
    let delivered = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders/{po}/receive"),
            &stack.token("warehouse-ams", Some("oms:warehouse")),
            &[],
            json!({"quantity": 2, "expectedReceived": 0}),
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    let at = |location: &str| {
        product["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["location"] == location)
            .map(|l| (l["available"].clone(), l["reserved"].clone()))
    };
    assert_eq!(at("AMS-1"), Some((json!(0), json!(2))), "{product}");
    assert_eq!(
        (&product["available"], &product["backordered"]),
        (&json!(0), &json!(1)),
        "nothing became available to new orders: {product}"
    );
    assert_eq!(product["waiting"][0]["orderId"], second.as_str());
    stack
        .wait_status(&first_customer, &first, "FULFILLING")
        .await;
    let filled = order_until(&stack, &first, |o| {
        !o["shipments"].as_array().unwrap().is_empty()
    })
    .await;
    let from: Vec<&str> = filled["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["warehouse"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["AMS-1"], "{filled}");
    assert_eq!(
        filled["lines"][0]["backordered"].as_u64().unwrap_or(0),
        0,
        "{filled}"
    );

    // The last one fills the second order the same way.
    let delivered = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders/{po}/receive"),
            &admin,
            &[],
            json!({"quantity": 1, "expectedReceived": 2}),
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    stack
        .wait_status(&second_customer, &second, "FULFILLING")
        .await;
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(
        (
            &product["available"],
            &product["reserved"],
            &product["onHand"],
            &product["backordered"]
        ),
        (&json!(0), &json!(3), &json!(3), &json!(0)),
        "{product}"
    );

    // The first customer is told of the fill once.
    let told = inbox
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.backorder-filled")
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let fills = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| {
            m["eventType"] == "oms.order.backorder-filled" && m["orderId"] == first.as_str()
        })
        .count();
    assert_eq!(fills, 1, "told once");
}

/// Waits until `id`, read as staff, satisfies `done`, and returns it.
/// An order waits with no date; a purchase order gives it one, and closing that purchase order
/// short takes it away: each time the order is written with its new promise and its customer
/// is told, once.
#[tokio::test]
async fn a_waiting_orders_promise_follows_the_purchase_orders_and_its_customer_is_told() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PROMISE", 0).await;
    let admin = stack.token("staff-promises", Some("oms:admin"));
    stack.sell_past_stock(&sku, 5).await;
    let customer = unique("waits");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let waiting = order_until(&stack, &id, |o| o["hold"] == "BACKORDERED").await;
    assert!(waiting["lines"][0]["promisedOn"].is_null(), "{waiting}");

    let expected_on = (chrono::Utc::now() + chrono::Duration::days(7)).date_naive();
    let po = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 3, "expectedOn": expected_on.to_string()}),
        )
        .await;
    assert_eq!(po.status, StatusCode::CREATED, "{:?}", po.body);
    let po = po.body["id"].as_str().unwrap().to_owned();
    let dated = order_until(&stack, &id, |o| {
        o["lines"][0]["promisedOn"] == expected_on.to_string()
    })
    .await;
    assert_eq!(dated["hold"], "BACKORDERED");
    let revised = |seen: &[(Value, std::collections::HashMap<String, String>)]| {
        seen.iter()
            .filter(|(m, _)| m["eventType"] == "oms.order.promise-revised")
            .map(|(m, _)| m["text"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    // Told before the next change (a message says what the order is when it is sent).
    let mut seen = inbox
        .collect(Duration::from_secs(60), |seen| !revised(seen).is_empty())
        .await;

    let closed = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders/{po}/close"),
            &admin,
            &[],
            json!({}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
    order_until(&stack, &id, |o| o["lines"][0]["promisedOn"].is_null()).await;

    seen.extend(
        inbox
            .collect(Duration::from_secs(60), |more| !revised(more).is_empty())
            .await,
    );
    seen.extend(inbox.collect(Duration::from_secs(3), |_| false).await);
    let texts = revised(&seen);
    assert_eq!(texts.len(), 2, "told once of each: {texts:?}");
    assert!(
        texts[0].contains("now expected in our warehouse by"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("will not bring them as planned"),
        "{}",
        texts[1]
    );
}

async fn order_until(stack: &Stack, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order = stack.order_as_staff(id).await;
        if done(&order) {
            return order;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not there: {order}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The captures an order asked of the PSP: the parcel, the amount, the request's id.
fn captures(order: &Value) -> Vec<(u64, i64, String)> {
    order["payment"]["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "CAPTURE")
        .map(|r| {
            (
                r["shipment"].as_u64().unwrap_or(0),
                r["amount"]["amount"].as_i64().unwrap(),
                r["requestId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// An order that ships what is there (`shipComplete: false`): its units in stock leave at
/// once, their share captured with the shipping charge; the waiting unit arrives, gets a parcel
/// of its own and takes the rest of the total, the captures adding up to it. Another customer,
/// whose order waits whole, asks on the version seen for what is there now (one edit, nothing
/// to pay): it leaves, and the unit still waiting is called off after it did — the hold's rest
/// released, the SKU's waiting count given back. Each customer is told once of each step.
#[tokio::test]
async fn an_order_that_ships_what_is_there_sends_it_ahead_and_the_rest_follows() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("AHEAD", 2).await;
    let admin = stack.token("staff-ahead", Some("oms:admin"));
    stack.sell_past_stock(&sku, 5).await;
    let customer = unique("ahead");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let mut body = oms_system_tests::order_body(&[(&sku, 3)]);
    body["shipComplete"] = json!(false);
    let placed = stack
        .post(
            "/orders",
            &stack.token(&customer, None),
            &[("idempotency-key", &unique("key"))],
            body,
        )
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    assert_eq!(placed.body["shipping"]["shipComplete"], false);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let decided = stack.wait_decided(&customer, &id).await;
    assert_eq!(decided["lines"][0]["backordered"], 1, "{decided}");
    stack.authorize(&decided).await;

    // What is there goes ahead: one parcel of two mugs, while one waits.
    let started = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert!(started.get("hold").is_none(), "{started}");
    assert_eq!(started["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(started["shipments"][0]["lines"][0]["quantity"], 2);
    stack.pick_pack_ship(&format!("{id}-1"), None).await;
    let first_left = stack.wait_status(&customer, &id, "PARTIALLY_SHIPPED").await;
    let total = placed.body["totals"]["total"]["amount"].as_i64().unwrap();
    let shipping = placed.body["totals"]["shipping"]["amount"]
        .as_i64()
        .unwrap();
    let asked = captures(&stack.order_as_staff(&id).await);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!((asked[0].0, asked[0].1), (1, 2 * 1000 + shipping));
    assert_eq!(first_left["lines"][0]["backordered"], 1);
    let psp_confirms = |id: String, amount: i64, request: String| {
        let stack = &stack;
        async move {
            let mut body = oms_system_tests::psp_body(
                "capture.succeeded",
                &id,
                &json!({"amount": amount, "currency": "EUR"}),
                None,
            );
            body["requestId"] = request.into();
            let reply = stack.psp_event(&body).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        }
    };
    psp_confirms(id.clone(), asked[0].1, asked[0].2.clone()).await;

    // The mug arrives: it fills the waiting unit and its own parcel is made.
    stack.receive_at(&sku, "BER-1", 1).await;
    let parcelled = order_until(&stack, &id, |o| {
        o["shipments"].as_array().is_some_and(|s| s.len() == 2)
    })
    .await;
    assert_eq!(parcelled["status"], "PARTIALLY_SHIPPED");
    assert!(
        parcelled["lines"][0].get("backordered").is_none(),
        "{parcelled}"
    );
    assert_eq!(
        (
            &parcelled["shipments"][1]["status"],
            &parcelled["shipments"][1]["lines"][0]["quantity"]
        ),
        (&json!("AWAITING_PICK"), &json!(1))
    );
    stack.pick_pack_ship(&format!("{id}-2"), None).await;
    stack.wait_status(&customer, &id, "SHIPPED").await;
    let asked = captures(&stack.order_as_staff(&id).await);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!((asked[1].0, asked[1].1), (2, 1000), "the rest of the total");
    psp_confirms(id.clone(), asked[1].1, asked[1].2.clone()).await;
    let paid = stack.order_as_staff(&id).await;
    assert_eq!(paid["payment"]["status"], "PAID");
    assert_eq!(asked.iter().map(|a| a.1).sum::<i64>(), total);

    // Another waits whole for two of three, then asks for what is there now.
    stack.receive_at(&sku, "BER-1", 1).await;
    let other = unique("whole");
    let placed = stack
        .place_then_pay(&other, &unique("key"), &[(&sku, 3)])
        .await;
    let other_id = placed.body["orderId"].as_str().unwrap().to_owned();
    let waiting = order_until(&stack, &other_id, |o| {
        o["payment"]["status"] == "AUTHORIZED"
    })
    .await;
    assert_eq!(waiting["hold"], "BACKORDERED", "{waiting}");
    assert_eq!(waiting["shipping"]["shipComplete"], true);
    let path = format!("/orders/{other_id}/edits");
    let ahead = json!({"shipComplete": false, "reason": "what is there now, please"});
    let other_token = stack.token(&other, None);
    let stale = stack
        .post(
            &path,
            &other_token,
            &[("idempotency-key", &unique("edit")), ("if-match", "\"v1\"")],
            ahead.clone(),
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    let key = unique("edit");
    let seen = format!("\"v{}\"", waiting["version"]);
    for _ in 0..2 {
        let sent = stack
            .post(
                &path,
                &other_token,
                &[("idempotency-key", &key), ("if-match", &seen)],
                ahead.clone(),
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    }
    let started = stack.wait_status(&other, &other_id, "FULFILLING").await;
    let edits = started["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "once per key");
    assert_eq!(edits[0]["shippingAfter"]["shipComplete"], false);
    assert_eq!(started["totals"], placed.body["totals"], "nothing to pay");
    assert_eq!(started["shipments"][0]["lines"][0]["quantity"], 1);
    // Waiting again once what was there is with the warehouse: refused, naming the field.
    let left = stack.order_as_staff(&other_id).await;
    let again = stack
        .post(
            &path,
            &other_token,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &format!("\"v{}\"", left["version"])),
            ],
            json!({"shipComplete": true, "reason": "all together after all"}),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        again.body
    );
    assert_eq!(again.body["errors"][0]["field"], "shipComplete");
    stack.pick_pack_ship(&format!("{other_id}-1"), None).await;
    stack
        .wait_status(&other, &other_id, "PARTIALLY_SHIPPED")
        .await;
    // The two still waiting are called off: the order is shipped, the SKU waits for nothing.
    let called_off = stack
        .post(
            &format!("/orders/{other_id}/cancel-units"),
            &other_token,
            &[("idempotency-key", &unique("fewer"))],
            json!({"lines": [{"sku": sku, "quantity": 2}], "reason": "no longer needed"}),
        )
        .await;
    assert_eq!(called_off.status, StatusCode::OK, "{:?}", called_off.body);
    let shipped = stack.wait_status(&other, &other_id, "SHIPPED").await;
    assert_eq!(shipped["totals"]["subtotal"]["amount"], 1000);
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(product["backordered"], 0, "{product}");
    // The first parcel's share was asked with the shipping charge of three; one ships, so
    // the difference to the charge re-quoted for it is refunded.
    let staff_view = stack.order_as_staff(&other_id).await;
    let asked = captures(&staff_view);
    assert_eq!(asked.len(), 1);
    let charged = placed.body["totals"]["shipping"]["amount"]
        .as_i64()
        .unwrap();
    assert_eq!(asked[0].1, 1000 + charged);
    let total_now = shipped["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(total_now <= asked[0].1, "{staff_view}");
    let refunded: i64 = staff_view["refunds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["amount"]["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(refunded, asked[0].1 - total_now, "{staff_view}");
    // Once the share is taken, what the authorization still holds is released.
    psp_confirms(other_id.clone(), asked[0].1, asked[0].2.clone()).await;
    let released = stack.order_as_staff(&other_id).await;
    assert!(
        released["payment"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "VOID"),
        "{released}"
    );

    // The first customer heard that what was there ships first, of the arrival, and of two
    // parcels leaving, once each.
    let seen = inbox
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .filter(|(m, _)| m["eventType"] == "oms.order.shipped")
                .count()
                >= 2
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let texts = |kind: &str| -> Vec<String> {
        seen.iter()
            .chain(late.iter())
            .filter(|(m, _)| m["eventType"] == kind)
            .map(|(m, _)| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let reserved = texts("oms.order.reserved");
    assert_eq!(reserved.len(), 1);
    assert!(
        reserved[0].contains("What is in stock ships now"),
        "{}",
        reserved[0]
    );
    assert_eq!(texts("oms.order.backorder-filled").len(), 1);
    let shipped = texts("oms.order.shipped");
    assert_eq!(shipped.len(), 2, "{shipped:?}");
}

/// Units a cancellation frees go to the order waiting for them first, in a write right after
/// the cancellation's: the waiting order reaches the warehouse, and nothing is left for a new
/// order to take ahead of it.
#[tokio::test]
async fn a_cancelled_orders_units_go_to_the_order_waiting_for_them() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("FREED", 2).await;
    let admin = stack.token("staff-freed", Some("oms:admin"));
    stack.sell_past_stock(&sku, 5).await;
    let holder = unique("holder");
    let held = stack
        .place_then_pay(&holder, &unique("key"), &[(&sku, 2)])
        .await;
    let held_id = held.body["orderId"].as_str().unwrap().to_owned();
    let waiter = unique("waiter");
    let waiting = stack
        .place_then_pay(&waiter, &unique("key"), &[(&sku, 1)])
        .await;
    let waiting_id = waiting.body["orderId"].as_str().unwrap().to_owned();
    let waits = order_until(&stack, &waiting_id, |o| {
        o["payment"]["status"] == "AUTHORIZED"
    })
    .await;
    assert_eq!(waits["hold"], "BACKORDERED", "{waits}");

    let cancelled = stack
        .post(
            &format!("/orders/{held_id}/cancel"),
            &stack.token(&holder, None),
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    stack.wait_status(&waiter, &waiting_id, "FULFILLING").await;
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await.body;
    assert_eq!(
        (
            &product["available"],
            &product["reserved"],
            &product["backordered"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{product}"
    );
}

/// Staff add an item that is out of stock but sells past it to an order in the warehouse: it
/// may wait only if the order ships what is there (refused, saying so, otherwise); with that,
/// the edit waits for the new total's authorization, the item waits for stock promised the
/// purchase order's date, and the delivery puts it in the parcel still awaiting its pick.
#[tokio::test]
async fn an_item_added_past_stock_waits_for_its_delivery_and_joins_the_parcel() {
    let stack = Stack::connect().await;
    let in_stock = stack.create_sku("ADDHAVE", 5).await;
    let later = stack.create_sku("ADDLATER", 0).await;
    let admin = stack.token("staff-add-later", Some("oms:admin"));
    stack.sell_past_stock(&later, 5).await;
    let expected_on = (chrono::Utc::now() + chrono::Duration::days(9)).date_naive();
    let po = stack
        .post(
            &format!("/inventory/{later}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 4, "expectedOn": expected_on.to_string()}),
        )
        .await;
    assert_eq!(po.status, StatusCode::CREATED, "{:?}", po.body);
    let po = po.body["id"].as_str().unwrap().to_owned();
    let (customer, id, _) = stack.order_in_warehouse(&[(&in_stock, 1)]).await;
    let seen = stack.order_as_staff(&id).await;
    let path = format!("/orders/{id}/edits");
    let if_match = format!("\"v{}\"", seen["version"]);
    let add = |ahead: bool| {
        let mut body = json!({"addLines": [{"sku": later, "quantity": 2}], "reason": "forgotten on the phone"});
        if ahead {
            body["shipComplete"] = json!(false);
        }
        body
    };
    let whole = stack
        .post(
            &path,
            &admin,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &if_match),
            ],
            add(false),
        )
        .await;
    assert_eq!(
        whole.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        whole.body
    );
    assert_eq!(whole.body["errors"][0]["field"], "addLines[0].quantity");
    assert!(whole.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("shipComplete: false"));
    let edited = stack
        .post(
            &path,
            &admin,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &if_match),
            ],
            add(true),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["hold"], "EDIT_AWAITING_PAYMENT", "{order}");
    assert_eq!(order["edits"][0]["added"][0]["backordered"], 2);
    let line = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == later.as_str())
        .unwrap()
        .clone();
    assert_eq!(line["backordered"], 2);
    assert!(
        line.get("allocations").is_none(),
        "nothing of it reserved: {line}"
    );
    assert_eq!(line["promisedOn"], expected_on.to_string());
    let product = stack.get(&format!("/inventory/{later}"), &admin).await.body;
    assert_eq!(product["backordered"], 2, "{product}");
    // A unit arriving in Amsterdam meanwhile is not given to the edit's units: undone unpaid,
    // they would be given back where they wait, to the address before.
    stack.receive_at(&later, "AMS-1", 1).await;
    let product = stack.get(&format!("/inventory/{later}"), &admin).await.body;
    assert_eq!(
        (&product["available"], &product["backordered"]),
        (&json!(1), &json!(2)),
        "{product}"
    );

    // The customer authorizes the new total under a new payment: back to the warehouse.
    let mut body = oms_system_tests::psp_body(
        "authorization.succeeded",
        &id,
        &order["totals"]["total"],
        None,
    );
    body["pspReference"] = json!(format!("pi_{id}_edit"));
    let reply = stack.psp_event(&body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    stack.wait_status(&customer, &id, "FULFILLING").await;
    // The delivery fills the waiting units; they get a parcel of their own.
    let delivered = stack
        .post(
            &format!("/inventory/{later}/purchase-orders/{po}/receive"),
            &admin,
            &[],
            json!({"quantity": 4, "expectedReceived": 0}),
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    let in_parcel = |o: &Value| -> u64 {
        o["shipments"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["lines"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["sku"] == later.as_str())
            .map(|l| l["quantity"].as_u64().unwrap_or(0))
            .sum()
    };
    let parcelled = order_until(&stack, &id, |o| in_parcel(o) > 0).await;
    assert_eq!(in_parcel(&parcelled), 2, "{parcelled}");
    assert_eq!(
        parcelled["shipments"].as_array().unwrap().len(),
        1,
        "with the parcel still awaiting its pick"
    );
    let product = stack.get(&format!("/inventory/{later}"), &admin).await.body;
    assert_eq!(
        (
            &product["available"],
            &product["reserved"],
            &product["backordered"]
        ),
        (&json!(3), &json!(2), &json!(0)),
        "two left in Berlin, the one in Amsterdam: {product}"
    );
}
