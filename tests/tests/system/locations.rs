//! Stock in several places, from the outside: receipts per location, orders reserved where the
//! routing plan says, and the counters of every location exact through the order's life.

use oms_system_tests::{unique, Probe, Stack, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// `(available, reserved)` of `sku` at every location that holds some, in id order.
async fn by_location(stack: &Stack, sku: &str) -> Vec<(String, u64, u64)> {
    let token = stack.token("storefront", None);
    let reply = stack.get(&format!("/inventory/{sku}"), &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["locations"]
        .as_array()
        .expect("the counters per location")
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap().to_owned(),
                l["available"].as_u64().unwrap(),
                l["reserved"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `sku`'s counters at every location that holds some, in id order, as
/// `"AMS-1 2/3, BER-1 1/0"` (available/reserved).
async fn counters(stack: &Stack, sku: &str) -> String {
    let rows: Vec<String> = by_location(stack, sku)
        .await
        .iter()
        .map(|(location, available, reserved)| format!("{location} {available}/{reserved}"))
        .collect();
    rows.join(", ")
}

fn at(rows: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
    rows.iter()
        .map(|(l, a, r)| (l.to_string(), *a, *r))
        .collect()
}

/// Where each line's units were allocated: (SKU, location, units).
fn allocations(order: &Value) -> Vec<(String, String, u64)> {
    order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|line| {
            let sku = line["sku"].as_str().unwrap().to_owned();
            line["allocations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |a| {
                    (
                        sku.clone(),
                        a["location"].as_str().unwrap().to_owned(),
                        a["quantity"].as_u64().unwrap(),
                    )
                })
        })
        .collect()
}

#[tokio::test]
async fn an_order_the_far_warehouse_holds_whole_is_reserved_and_shipped_there() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("FAR", 1).await;
    stack.receive_at(&sku, "AMS-1", 5).await;
    assert_eq!(counters(&stack, &sku).await, "AMS-1 5/0, BER-1 1/0");

    let customer = unique("customer");
    let placed = stack
        .place_order(&customer, &unique("key"), &[(&sku, 3)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let order = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(
        allocations(&order),
        [(sku.clone(), "AMS-1".to_owned(), 3)],
        "one parcel from the one warehouse that holds the whole order"
    );
    assert_eq!(counters(&stack, &sku).await, "AMS-1 2/3, BER-1 1/0");
    // Amsterdam's pick list has it; Berlin's does not.
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    let listed = |body: &Value| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["orderId"] == id.as_str())
    };
    let amsterdam = stack
        .get(
            "/fulfillments?status=AWAITING_PICK&warehouse=AMS-1&limit=100",
            &warehouse,
        )
        .await;
    assert!(listed(&amsterdam.body), "{:?}", amsterdam.body);
    let berlin = stack
        .get(
            "/fulfillments?status=AWAITING_PICK&warehouse=BER-1&limit=100",
            &warehouse,
        )
        .await;
    assert!(!listed(&berlin.body));

    stack.pick_pack_ship(&id, None).await;
    assert_eq!(
        counters(&stack, &sku).await,
        "AMS-1 2/0, BER-1 1/0",
        "the shipped units left Amsterdam's building"
    );
}

#[tokio::test]
async fn an_order_no_one_location_holds_is_split_and_cancelling_it_gives_each_back() {
    let stack = Stack::connect().await;
    let berlin_only = stack.create_sku("SPLIT-A", 2).await;
    let amsterdam_only = stack.create_sku("SPLIT-B", 0).await;
    stack.receive_at(&amsterdam_only, "AMS-1", 1).await;

    let customer = unique("customer");
    let placed = stack
        .place_unpaid_order(
            &customer,
            &unique("key"),
            &[(&berlin_only, 2), (&amsterdam_only, 1)],
        )
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let order = stack.wait_status(&customer, &id, "RESERVED").await;
    assert_eq!(
        allocations(&order),
        [
            (berlin_only.clone(), "BER-1".to_owned(), 2),
            (amsterdam_only.clone(), "AMS-1".to_owned(), 1)
        ]
    );
    assert_eq!(
        counters(&stack, &amsterdam_only).await,
        "AMS-1 0/1, BER-1 0/0"
    );

    let token = stack.token(&customer, None);
    let cancelled = stack
        .post(
            &format!("/orders/{id}/cancel"),
            &token,
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(counters(&stack, &berlin_only).await, "BER-1 2/0");
    assert_eq!(
        counters(&stack, &amsterdam_only).await,
        "AMS-1 1/0, BER-1 0/0",
        "each unit back where it was reserved"
    );
}

#[tokio::test]
async fn the_locations_are_listed_and_an_adjustment_names_one_of_them() {
    let stack = Stack::connect().await;
    let token = stack.token("storefront", None);
    let listed = stack.get("/locations", &token).await;
    assert_eq!(listed.status, StatusCode::OK);
    let ids: Vec<_> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l["default"].as_bool().unwrap()))
        .collect();
    // The demo's three first, in the order listed (staff may have added more since).
    assert_eq!(
        ids[..3],
        [("BER-1", true), ("AMS-1", false), ("BER-STORE-1", false)]
    );

    let sku = stack.create_sku("NOWHERE", 1).await;
    let admin = stack.token("staff-locations", Some("oms:admin"));
    let refused = stack
        .post(
            &format!("/inventory/{sku}/adjustments"),
            &admin,
            &[],
            json!({"reason": "RECEIPT", "delta": 3, "location": "NOWHERE-9"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["field"], "location");
    assert_eq!(counters(&stack, &sku).await, "BER-1 1/0");
}

#[tokio::test]
async fn a_transfer_takes_units_out_of_one_location_and_puts_them_in_the_other_once() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("TRANSFER", 5).await;
    let admin = stack.token("staff-locations", Some("oms:admin"));
    let send = |quantity: u32| {
        let (stack, admin, sku) = (stack.clone(), admin.clone(), sku.clone());
        async move {
            stack
                .post(
                    &format!("/inventory/{sku}/transfers"),
                    &admin,
                    &[("idempotency-key", &format!("send-{quantity}"))],
                    json!({"from": "BER-1", "to": "AMS-1", "quantity": quantity, "note": "rebalance"}),
                )
                .await
        }
    };
    let refused = send(6).await;
    assert_eq!(
        (refused.status, refused.body["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/insufficient-stock"))
    );
    let sent = send(3).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{:?}", sent.body);
    assert_eq!(sent.body["status"], "IN_TRANSIT");
    assert_eq!(
        counters(&stack, &sku).await,
        "BER-1 2/0",
        "in transit: counted at neither location, sold by neither"
    );
    // The client retries the same request: the same transfer, sent once.
    let retried = send(3).await;
    assert_eq!(retried.status, StatusCode::CREATED);
    assert_eq!(retried.body["id"], sent.body["id"]);
    assert_eq!(retried.headers["idempotent-replayed"], "true");
    assert_eq!(counters(&stack, &sku).await, "BER-1 2/0", "sent once");

    // The destination's staff receive it.
    let warehouse = stack.token("warehouse-ams", Some("oms:warehouse"));
    let id = sent.body["id"].as_str().unwrap();
    let receive = format!("/inventory/{sku}/transfers/{id}/receive");
    let arrived = stack.post(&receive, &warehouse, &[], json!({})).await;
    assert_eq!(arrived.status, StatusCode::OK, "{:?}", arrived.body);
    assert_eq!(arrived.body["receivedBy"], "warehouse-ams");
    assert_eq!(counters(&stack, &sku).await, "AMS-1 3/0, BER-1 2/0");
    let again = stack.post(&receive, &warehouse, &[], json!({})).await;
    assert_eq!(
        (again.status, again.body["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("/problems/transfer-already-received")
        )
    );
    assert_eq!(
        counters(&stack, &sku).await,
        "AMS-1 3/0, BER-1 2/0",
        "received once"
    );

    // Every step is in the SKU's history and its transfers.
    let history = stack
        .get(&format!("/inventory/{sku}/adjustments"), &admin)
        .await;
    let steps: Vec<_> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["reason"].as_str().unwrap(),
                a["location"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("TRANSFER_IN", "AMS-1"),
            ("TRANSFER_OUT", "BER-1"),
            ("RECEIPT", "BER-1")
        ]
    );
    let listed = stack
        .get(&format!("/inventory/{sku}/transfers"), &warehouse)
        .await;
    assert_eq!(listed.body["items"][0]["id"], id);
    assert_eq!(listed.body["items"][0]["status"], "RECEIVED");
    let storefront = stack.token("storefront", None);
    let forbidden = stack
        .get(&format!("/inventory/{sku}/transfers"), &storefront)
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn staff_send_and_receive_a_transfer_in_the_console() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLE-TR", 4).await;
    let admin = stack.console_session("staff-lea", "admin").await;
    // The same form sent twice (a double click, a second tab): one transfer.
    let form = [
        ("from", "BER-1"),
        ("to", "AMS-1"),
        ("quantity", "4"),
        ("key", "console-form-1"),
    ];
    for _ in 0..2 {
        let path = format!("/console/inventory/{sku}/transfers");
        let (status, to) = admin.post(&path, &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    }
    let (_, page) = admin.get(&format!("/console/inventory/{sku}")).await;
    assert_eq!(page.matches("id=\"receive-").count(), 1, "one transfer");
    let (_, page) = admin.get(&format!("/console/inventory/{sku}")).await;
    assert!(page.contains("in transit"), "{page}");
    let id = page
        .split("id=\"receive-")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a receive button")
        .to_owned();

    let packer = stack.console_session("staff-max", "warehouse").await;
    let (status, _) = packer
        .post(
            &format!("/console/inventory/{sku}/transfers/{id}/receive"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(counters(&stack, &sku).await, "AMS-1 4/0, BER-1 0/0");
    let (_, page) = packer.get(&format!("/console/inventory/{sku}")).await;
    assert!(page.contains("id=\"at-AMS-1\""), "{page}");
    assert!(!page.contains("id=\"receive-"), "nothing left to receive");
    // Sending stock is an administrator's.
    let (status, _) = packer
        .post(
            &format!("/console/inventory/{sku}/transfers"),
            &[
                ("from", "AMS-1"),
                ("to", "BER-1"),
                ("quantity", "1"),
                ("key", "k2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn buyers_racing_for_stock_spread_over_locations_leave_every_counter_exact() {
    let stack = Stack::connect().await;
    // 10 in Berlin, 8 in Amsterdam, 5 in the store (which does not ship): 18 to sell.
    let sku = stack.create_sku("SPREAD", 10).await;
    stack.receive_at(&sku, "AMS-1", 8).await;
    stack.receive_at(&sku, "BER-STORE-1", 5).await;
    let wants: Vec<u32> = (0..30).map(|i| 1 + u32::from(i % 3 == 0)).collect();
    let buyers: Vec<String> = wants.iter().map(|_| unique("buyer")).collect();
    let replies = futures::future::join_all(buyers.iter().zip(&wants).map(|(buyer, n)| {
        let (stack, sku) = (&stack, &sku);
        async move { stack.place_order(buyer, &unique("key"), &[(sku, *n)]).await }
    }))
    .await;
    let mut allocated: std::collections::BTreeMap<String, u64> = Default::default();
    let mut rejected_singles = 0;
    for ((buyer, n), reply) in buyers.iter().zip(&wants).zip(replies) {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        let order = stack
            .wait_decided(buyer, reply.body["orderId"].as_str().unwrap())
            .await;
        match oms_system_tests::reservation(&order) {
            "RESERVED" => {
                let units = allocations(&order);
                assert_eq!(
                    units.iter().map(|(_, _, q)| q).sum::<u64>(),
                    u64::from(*n),
                    "every unit of a reserved order is allocated once"
                );
                for (_, location, q) in units {
                    assert_ne!(location, "BER-STORE-1", "the store does not ship");
                    *allocated.entry(location).or_default() += q;
                }
            }
            "REJECTED" => rejected_singles += usize::from(*n == 1),
            other => panic!("neither reserved nor rejected: {other}"),
        }
    }
    let counters = by_location(&stack, &sku).await;
    for (location, available, reserved) in &counters {
        let start = match location.as_str() {
            "BER-1" => 10,
            "AMS-1" => 8,
            _ => 5,
        };
        assert_eq!(
            available + reserved,
            start,
            "{location}: nothing left the building"
        );
        assert_eq!(
            *reserved,
            allocated.get(location).copied().unwrap_or(0),
            "{location}: the counter is the sum of the orders reserved there"
        );
    }
    let sold: u64 = allocated.values().sum();
    assert!(sold <= 18, "never oversold: {sold}");
    if rejected_singles > 0 {
        // A one-unit order was turned away: then no shipping location had a unit left.
        assert_eq!(
            counters,
            at(&[("AMS-1", 0, 8), ("BER-1", 0, 10), ("BER-STORE-1", 5, 0)])
        );
    }
}

#[tokio::test]
async fn a_pickup_order_is_reserved_at_its_store_only() {
    let stack = Stack::connect().await;
    // Plenty in the Berlin warehouse, two in the store.
    let sku = stack.create_sku("PICKUP", 9).await;
    stack.receive_at(&sku, "BER-STORE-1", 2).await;
    let place = |quantity: u32, store: &str| {
        let mut body = oms_system_tests::order_body(&[(sku.as_str(), quantity)]);
        body["shippingMethod"] = json!("IN_STORE_PICKUP");
        body["pickupLocation"] = json!(store);
        let customer = unique("collector");
        let stack = stack.clone();
        async move {
            let token = stack.token(&customer, None);
            let key = unique("key");
            let reply = stack
                .post(
                    "/orders",
                    &token,
                    &[("idempotency-key", key.as_str())],
                    body,
                )
                .await;
            (customer, reply)
        }
    };
    let (customer, placed) = place(2, "BER-STORE-1").await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    assert_eq!(placed.body["shipping"]["pickupLocation"], "BER-STORE-1");
    let id = placed.body["orderId"].as_str().unwrap();
    let order = stack.wait_status(&customer, id, "RESERVED").await;
    assert_eq!(
        allocations(&order),
        [(sku.clone(), "BER-STORE-1".to_owned(), 2)]
    );
    // One more than the store holds: rejected, though the warehouse has plenty.
    let (customer, placed) = place(1, "BER-STORE-1").await;
    let id = placed.body["orderId"].as_str().unwrap();
    let order = stack.wait_decided(&customer, id).await;
    assert_eq!(oms_system_tests::reservation(&order), "REJECTED");
    assert_eq!(counters(&stack, &sku).await, "BER-1 9/0, BER-STORE-1 0/2");
    // A location that does not hand orders over is no pickup store.
    let (_, refused) = place(1, "AMS-1").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["field"], "pickupLocation");
}

/// The shipment ids on `location`'s pick list in `status`, every page of it.
async fn pick_list(stack: &Stack, location: &str, status: &str) -> Vec<String> {
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/fulfillments?status={status}&warehouse={location}&limit=100");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let reply = stack.get(&path, &warehouse).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        ids.extend(
            reply.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["shipmentId"].as_str().unwrap().to_owned()),
        );
        match reply.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// The carrier reports parcel `number` delivered, under `reference`; answers the order status
/// the carrier endpoint reports.
async fn delivered(stack: &Stack, reference: &str, number: &str) -> Value {
    let event = json!({"eventId": format!("{number}-delivered"), "shipmentReference": reference, "trackingNumber": number, "status": "DELIVERED", "occurredAt": chrono::Utc::now().to_rfc3339()});
    let reply = stack.carrier_event(&event, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["orderStatus"].clone()
}

#[tokio::test]
async fn an_order_split_over_two_warehouses_ships_and_arrives_as_two_parcels_each_told_once() {
    let stack = Stack::connect().await;
    let berlin_only = stack.create_sku("PARCEL-A", 2).await;
    let amsterdam_only = stack.create_sku("PARCEL-B", 0).await;
    stack.receive_at(&amsterdam_only, "AMS-1", 1).await;
    let customer = unique("customer");
    let inbox = Probe::customer_email(&stack, &customer).await;

    let placed = stack
        .place_order(
            &customer,
            &unique("key"),
            &[(&berlin_only, 2), (&amsterdam_only, 1)],
        )
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let order = stack.wait_status(&customer, &id, "FULFILLING").await;
    let shipments: Vec<(String, String, u64)> = order["shipments"]
        .as_array()
        .expect("the order's shipments")
        .iter()
        .map(|s| {
            (
                s["shipmentId"].as_str().unwrap().to_owned(),
                s["warehouse"].as_str().unwrap().to_owned(),
                s["lines"][0]["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    let (first, second) = (format!("{id}-1"), format!("{id}-2"));
    assert_eq!(
        shipments,
        [
            (first.clone(), "BER-1".to_owned(), 2),
            (second.clone(), "AMS-1".to_owned(), 1)
        ],
        "one shipment per location, with that location's units"
    );
    assert!(pick_list(&stack, "BER-1", "AWAITING_PICK")
        .await
        .contains(&first));
    assert!(pick_list(&stack, "AMS-1", "AWAITING_PICK")
        .await
        .contains(&second));
    assert!(!pick_list(&stack, "BER-1", "AWAITING_PICK")
        .await
        .contains(&second));

    // Berlin's staff cannot pick Amsterdam's parcel: its units are reserved there.
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    let wrong = stack
        .warehouse_post(
            &format!("/fulfillments/{second}/pick?location=BER-1"),
            &warehouse,
            None,
            None,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::CONFLICT, "{:?}", wrong.body);
    assert!(wrong.body["detail"].as_str().unwrap().contains("AMS-1"));

    // Amsterdam's parcel leaves first; Berlin's ETag is not moved by it.
    let berlin_etag = stack.shipment_etag(&first, &warehouse).await;
    let amsterdam_tracking = stack.pick_pack_ship(&second, None).await;
    assert_eq!(stack.shipment_etag(&first, &warehouse).await, berlin_etag);
    let order = stack.wait_status(&customer, &id, "PARTIALLY_SHIPPED").await;
    assert_eq!(order["shipments"][1]["status"], "SHIPPED");
    assert_eq!(
        counters(&stack, &amsterdam_only).await,
        "AMS-1 0/0, BER-1 0/0",
        "the parcel's units left Amsterdam"
    );
    assert_eq!(
        counters(&stack, &berlin_only).await,
        "BER-1 0/2",
        "Berlin's still reserved"
    );
    let berlin_tracking = stack.pick_pack_ship(&first, Some(berlin_etag)).await;
    stack.wait_status(&customer, &id, "SHIPPED").await;
    assert_eq!(counters(&stack, &berlin_only).await, "BER-1 0/0");
    // Each parcel's share is captured as it left, one capture at a time: Amsterdam's first
    // (with the shipping charge), then, once the PSP took it, the rest with Berlin's.
    let captures = |order: &Value| -> Vec<(u64, Value, String)> {
        order["payment"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "CAPTURE")
            .map(|r| {
                (
                    r["shipment"].as_u64().unwrap_or(0),
                    r["amount"].clone(),
                    r["requestId"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let asked = captures(&stack.order_as_staff(&id).await);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, 2, "Amsterdam's parcel left first");
    // The first answer names no request (answering the oldest unanswered), the second names
    // its own, as a PSP that echoes the idempotency key does.
    let psp_confirms = |amount: Value, request: Option<String>| {
        let mut body = oms_system_tests::psp_body("capture.succeeded", &id, &amount, None);
        if let Some(request) = request {
            body["requestId"] = request.into();
        }
        let stack = &stack;
        async move {
            let reply = stack.psp_event(&body).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        }
    };
    psp_confirms(asked[0].1.clone(), None).await;
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["payment"]["status"], "PARTIALLY_PAID");
    let asked = captures(&order);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[1].0, 1);
    psp_confirms(asked[1].1.clone(), Some(asked[1].2.clone())).await;
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["payment"]["status"], "PAID");
    let minor = |m: &Value| m["amount"].as_i64().unwrap();
    assert_eq!(
        asked.iter().map(|(_, m, _)| minor(m)).sum::<i64>(),
        minor(&placed.body["totals"]["total"]),
        "the captures add up to exactly the order's total"
    );

    // The carrier names the order; each parcel is found by its tracking number.
    assert_eq!(
        delivered(&stack, &id, &amsterdam_tracking).await,
        "PARTIALLY_DELIVERED"
    );
    assert_eq!(
        delivered(&stack, &first, &berlin_tracking).await,
        "DELIVERED"
    );
    stack.wait_status(&customer, &id, "DELIVERED").await;

    // Told of each parcel once: two "shipped" and two "delivered" e-mails.
    let seen = inbox
        .collect(Duration::from_secs(120), |seen| {
            seen.iter()
                .filter(|(m, _)| m["eventType"] == "oms.order.delivered")
                .count()
                >= 2
        })
        .await;
    let texts = |kind: &str| -> Vec<String> {
        seen.iter()
            .filter(|(m, _)| m["eventType"] == kind)
            .map(|(m, _)| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let shipped = texts("oms.order.shipped");
    assert_eq!(shipped.len(), 2, "{shipped:?}");
    assert!(shipped[0].contains("1 of the 3 items"), "{}", shipped[0]);
    assert!(shipped[0].contains(&amsterdam_tracking), "{}", shipped[0]);
    assert!(shipped[1].contains("2 of the 3 items"), "{}", shipped[1]);
    assert!(shipped[1].contains(&berlin_tracking), "{}", shipped[1]);
    let arrived = texts("oms.order.delivered");
    assert_eq!(arrived.len(), 2, "{arrived:?}");
    assert!(arrived[0].contains("parcel 2 of 2"), "{}", arrived[0]);
    assert!(arrived[0].contains("the rest arrives"), "{}", arrived[0]);
    assert!(arrived[1].contains("last one"), "{}", arrived[1]);
}

#[tokio::test]
async fn staff_move_a_shipment_before_picking_and_its_reservation_moves_with_it() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("MOVE", 3).await;
    stack.receive_at(&sku, "AMS-1", 1).await;
    let (customer, id, _) = stack.order_in_warehouse(&[(&sku, 2)]).await;
    assert_eq!(counters(&stack, &sku).await, "AMS-1 1/0, BER-1 1/2");
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    let staff = stack.token("staff-tests", Some("oms:admin"));
    let etag = stack.shipment_etag(&id, &warehouse).await;
    let path = format!("/fulfillments/{id}/move");
    let packer = stack
        .warehouse_post(
            &path,
            &warehouse,
            Some(&etag),
            Some(&json!({"to": "AMS-1"})),
        )
        .await;
    assert_eq!(
        packer.status,
        StatusCode::FORBIDDEN,
        "a packer does not move reservations"
    );

    // Both units to Amsterdam, which holds one: refused, nothing moved.
    let short = stack
        .warehouse_post(&path, &staff, Some(&etag), Some(&json!({"to": "AMS-1"})))
        .await;
    assert_eq!(short.status, StatusCode::CONFLICT, "{:?}", short.body);
    assert_eq!(short.body["type"], "/problems/insufficient-stock");
    assert_eq!(counters(&stack, &sku).await, "AMS-1 1/0, BER-1 1/2");
    let unknown = stack
        .warehouse_post(
            &path,
            &staff,
            Some(&etag),
            Some(&json!({"to": "NOWHERE-9"})),
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        unknown.body
    );
    let without = stack
        .warehouse_post(&path, &staff, None, Some(&json!({"to": "AMS-1"})))
        .await;
    assert_eq!(without.status, StatusCode::PRECONDITION_REQUIRED);

    // One of them: a second parcel, from Amsterdam, its unit reserved there in the same write.
    let one = json!({"to": "AMS-1", "lines": [{"sku": sku, "quantity": 1}]});
    let moved = stack
        .warehouse_post(&path, &staff, Some(&etag), Some(&one))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["shipmentId"], format!("{id}-2"));
    assert_eq!(moved.body["warehouse"], "AMS-1");
    assert_eq!(counters(&stack, &sku).await, "AMS-1 0/1, BER-1 2/1");
    let again = stack
        .warehouse_post(&path, &staff, Some(&etag), Some(&one))
        .await;
    assert_eq!(
        again.status,
        StatusCode::PRECONDITION_FAILED,
        "the same move on the page it came from: {:?}",
        again.body
    );
    assert_eq!(counters(&stack, &sku).await, "AMS-1 0/1, BER-1 2/1");
    assert!(pick_list(&stack, "AMS-1", "AWAITING_PICK")
        .await
        .contains(&format!("{id}-2")));

    // The move is in the SKU's stock history at both locations, with the counters it wrote.
    let history = stack
        .get(&format!("/inventory/{sku}/adjustments"), &staff)
        .await;
    let moves: Vec<_> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reason"].as_str().unwrap().starts_with("SHIPMENT_MOVE"))
        .map(|a| {
            (
                a["reason"].as_str().unwrap().to_owned(),
                a["location"].as_str().unwrap().to_owned(),
                format!("{}/{}", a["before"]["available"], a["before"]["reserved"]),
                format!("{}/{}", a["after"]["available"], a["after"]["reserved"]),
            )
        })
        .collect();
    let entry = |reason: &str, location: &str, before: &str, after: &str| {
        (
            reason.to_owned(),
            location.to_owned(),
            before.to_owned(),
            after.to_owned(),
        )
    };
    assert_eq!(
        moves,
        [
            entry("SHIPMENT_MOVE_IN", "AMS-1", "1/0", "0/1"),
            entry("SHIPMENT_MOVE_OUT", "BER-1", "1/2", "2/1"),
        ],
        "newest first: {:?}",
        history.body
    );

    // Both parcels leave; every counter ends exact.
    stack.pick_pack_ship(&format!("{id}-1"), None).await;
    stack.pick_pack_ship(&format!("{id}-2"), None).await;
    stack.wait_status(&customer, &id, "SHIPPED").await;
    assert_eq!(counters(&stack, &sku).await, "AMS-1 0/0, BER-1 2/0");
}

/// A location as `PUT /locations/{id}` takes it: a domestic warehouse that ships, or (with
/// `open` false) one that can do nothing any more.
fn warehouse_body(open: bool) -> Value {
    json!({
        "name": "Hamburg test warehouse", "kind": "WAREHOUSE", "country": "DE",
        "postalCode": "20457", "zone": "domestic", "handlingDays": 1, "cutoffHourUtc": 15,
        "capabilities": {"ships": open, "pickup": false, "returns": open}, "priority": 9
    })
}

/// Long enough for every function's cached list of locations to be read again
/// (`LOCATIONS_CACHE_SECONDS`, 2 s in the test stack).
const LOCATIONS_CACHE: Duration = Duration::from_millis(2_500);

#[tokio::test]
async fn staff_add_a_location_orders_are_routed_to_it_and_a_retired_one_gets_none() {
    let stack = Stack::connect().await;
    let admin = stack.token("staff-locations", Some("oms:admin"));
    // One id for every run (the list is bounded, and never shrinks): opened here, retired at
    // the end.
    let location = "TEST-HAM-1".to_owned();
    let path = format!("/locations/{location}");
    let packer = stack.token("warehouse-tests", Some("oms:warehouse"));
    let refused = stack.put(&path, &packer, &warehouse_body(true)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut bad = warehouse_body(true);
    bad["zone"] = json!("moon");
    let invalid = stack.put(&path, &admin, &bad).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.body["errors"][0]["field"], "zone");

    let added = stack.put(&path, &admin, &warehouse_body(true)).await;
    assert!(
        [StatusCode::CREATED, StatusCode::OK].contains(&added.status),
        "added, or opened again on a stack an earlier run used: {:?}",
        added.body
    );
    assert_eq!(added.body["id"], location.as_str());
    // The list's version: this change's, or a later one's (other tests change it too).
    let version = |reply: &oms_system_tests::Reply| -> u64 {
        let etag = reply.headers["etag"].to_str().unwrap();
        etag.trim_matches('"')
            .trim_start_matches('v')
            .parse()
            .unwrap()
    };
    let listed = stack.get("/locations", &admin).await;
    assert!(version(&listed) >= version(&added) && version(&added) >= 1);
    assert!(listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == location.as_str() && l["default"] == false));

    // Stock received there, and an order no other location can serve: reserved there.
    tokio::time::sleep(LOCATIONS_CACHE).await;
    let sku = stack.create_sku("NEWLOC", 0).await;
    stack.receive_at(&sku, &location, 3).await;
    let customer = unique("customer");
    let placed = stack
        .place_order(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let order = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(allocations(&order), [(sku.clone(), location.clone(), 2)]);
    let listed = pick_list(&stack, &location, "AWAITING_PICK").await;
    assert!(listed.iter().any(|s| s.starts_with(&id)), "{listed:?}");

    // Retired on the list as it is now; a PUT on the list as it was is refused.
    let stale = stack
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&admin),
            &[("if-match", "\"v0\"")],
            Some(warehouse_body(false).to_string().into_bytes()),
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        stale.body
    );
    // Read, then write on what was read; other tests change the list too, so a write that
    // finds it changed in between reads again, as any client would.
    let mut retired = None;
    for _ in 0..5 {
        let current = stack.get("/locations", &admin).await;
        let etag = current.headers["etag"].to_str().unwrap().to_owned();
        let reply = stack
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&admin),
                &[("if-match", &etag)],
                Some(warehouse_body(false).to_string().into_bytes()),
            )
            .await;
        if reply.status != StatusCode::PRECONDITION_FAILED {
            retired = Some(reply);
            break;
        }
    }
    let retired = retired.expect("the list stops changing");
    assert_eq!(retired.status, StatusCode::OK, "{:?}", retired.body);
    assert_eq!(retired.body["capabilities"]["ships"], false);
    tokio::time::sleep(LOCATIONS_CACHE).await;
    // Its last unit is no longer sold: the order is rejected, the unit stays where it is.
    let late = unique("customer");
    let placed = stack.place_order(&late, &unique("key"), &[(&sku, 1)]).await;
    let late_id = placed.body["orderId"].as_str().unwrap().to_owned();
    stack.wait_status(&late, &late_id, "REJECTED").await;
    assert!(counters(&stack, &sku)
        .await
        .contains(&format!("{location} 1/2")));
    // The order it already holds still leaves from there.
    stack.pick_pack_ship(&id, None).await;
    assert!(counters(&stack, &sku)
        .await
        .contains(&format!("{location} 1/0")));
}

/// A split order's parcel whose every unit is called off while the warehouse builds its pick
/// list: gone from its location's pick list in the same write, its units back on that shelf,
/// never packed or shipped; the other parcel ships alone and takes the smaller total.
#[tokio::test]
async fn a_parcel_whose_units_are_all_called_off_leaves_its_pick_list_and_never_ships() {
    let stack = Stack::connect().await;
    let berlin_only = stack.create_sku("UNITS-SPLIT-A", 2).await;
    let amsterdam_only = stack.create_sku("UNITS-SPLIT-B", 0).await;
    stack.receive_at(&amsterdam_only, "AMS-1", 2).await;
    let customer = unique("customer");
    let placed = stack
        .place_order(
            &customer,
            &unique("key"),
            &[(&berlin_only, 1), (&amsterdam_only, 2)],
        )
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let order = stack.wait_status(&customer, &id, "FULFILLING").await;
    let amsterdam = order["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["warehouse"] == "AMS-1")
        .unwrap()["shipmentId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pick_list(&stack, "AMS-1", "AWAITING_PICK")
        .await
        .contains(&amsterdam));
    assert_eq!(
        counters(&stack, &amsterdam_only).await,
        "AMS-1 0/2, BER-1 0/0"
    );
    let packer_saw = stack
        .shipment_etag(
            &amsterdam,
            &stack.token("warehouse-tests", Some("oms:warehouse")),
        )
        .await;

    let admin = stack.token("staff-units", Some("oms:admin"));
    let smaller = stack
        .post(
            &format!("/orders/{id}/cancel-units"),
            &admin,
            &[("idempotency-key", &unique("units"))],
            json!({"lines": [{"sku": amsterdam_only, "quantity": 2}], "reason": "out of the bundle"}),
        )
        .await;
    assert_eq!(smaller.status, StatusCode::OK, "{:?}", smaller.body);
    assert_eq!(smaller.body["shipments"].as_array().unwrap().len(), 1);
    assert_eq!(
        counters(&stack, &amsterdam_only).await,
        "AMS-1 2/0, BER-1 0/0",
        "back on Amsterdam's shelf"
    );
    assert!(
        !pick_list(&stack, "AMS-1", "AWAITING_PICK")
            .await
            .contains(&amsterdam),
        "off Amsterdam's pick list"
    );
    // The packer who read it before: refused, nothing picked.
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    let refused = stack
        .warehouse_post(
            &format!("/fulfillments/{amsterdam}/pick"),
            &warehouse,
            Some(&packer_saw),
            None,
        )
        .await;
    assert!(
        refused.status.is_client_error(),
        "{:?} {:?}",
        refused.status,
        refused.body
    );
    assert_eq!(
        counters(&stack, &amsterdam_only).await,
        "AMS-1 2/0, BER-1 0/0"
    );

    // Berlin's parcel ships alone: the capture asks for the smaller total.
    let berlin = smaller.body["shipments"][0]["shipmentId"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.pick_pack_ship(&berlin, None).await;
    let shipped = stack.order_as_staff(&id).await;
    assert_eq!(shipped["status"], "SHIPPED");
    let capture = shipped["payment"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "CAPTURE")
        .unwrap();
    assert_eq!(capture["amount"], smaller.body["totals"]["total"]);
}
