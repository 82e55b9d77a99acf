//! Orders from the outside: placed over HTTP, reserved or rejected by the queue consumer, read
//! back over HTTP.

use oms_system_tests::{order_body, reservation, texts, unique, Stack, StatusCode};

#[tokio::test]
async fn an_order_for_available_stock_is_reserved_and_moves_exactly_its_quantities() {
    let stack = Stack::connect().await;
    let (shirt, mug) = (
        stack.create_sku("SHIRT", 10).await,
        stack.create_sku("MUG", 5).await,
    );
    let customer = unique("customer");
    let reply = stack
        .place_then_pay(&customer, &unique("key"), &[(&shirt, 3), (&mug, 1)])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "PENDING");
    let id = reply.body["orderId"].as_str().unwrap().to_owned();
    assert_eq!(reply.headers["location"], format!("/orders/{id}").as_str());
    // Prices come from the catalog: 4 × 10.00, and 2 kg standard to DE at 4.90 + 2 × 0.50.
    assert_eq!(reply.body["totals"]["subtotal"]["amount"], 4000);
    assert_eq!(reply.body["totals"]["total"]["amount"], 4000 + 590);

    let order = stack.wait_status(&customer, &id, "FULFILLING").await;
    let timeline = texts(&order["timeline"], "status");
    // Reserved, then paid for (the authorization is an entry of its own), then to the warehouse.
    assert_eq!(timeline, ["PENDING", "RESERVED", "RESERVED", "FULFILLING"]);
    assert_eq!(stack.stock(&shirt).await, (7, 3, 10));
    assert_eq!(stack.stock(&mug).await, (4, 1, 5));
}

#[tokio::test]
async fn an_order_that_cannot_be_served_is_rejected_with_its_short_skus_and_moves_nothing() {
    let stack = Stack::connect().await;
    let (plenty, scarce) = (
        stack.create_sku("PLENTY", 10).await,
        stack.create_sku("SCARCE", 1).await,
    );
    let customer = unique("customer");
    let reply = stack
        .place_order(&customer, &unique("key"), &[(&plenty, 2), (&scarce, 2)])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let order = stack
        .wait_decided(&customer, reply.body["orderId"].as_str().unwrap())
        .await;
    assert_eq!(order["status"], "REJECTED");
    assert_eq!(
        order["shortages"],
        serde_json::json!([{"sku": scarce, "requested": 2, "available": 1}])
    );
    assert_eq!(stack.stock(&plenty).await, (10, 0, 10));
    assert_eq!(stack.stock(&scarce).await, (1, 0, 1));
}

#[tokio::test]
async fn retries_with_one_idempotency_key_create_one_order() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("IDEM", 50).await;
    let customer = unique("customer");
    let key = unique("key");
    let first = stack.place_order(&customer, &key, &[(&sku, 1)]).await;
    let again = stack.place_order(&customer, &key, &[(&sku, 1)]).await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(first.body, again.body, "a retry gets the same answer");
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let other = stack.place_order(&customer, &key, &[(&sku, 2)]).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.body["type"], "/problems/idempotency-key-reused");
    assert_eq!(other.headers["content-type"], "application/problem+json");

    let list = stack.get("/orders", &stack.token(&customer, None)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn twenty_concurrent_posts_with_one_key_create_one_order() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("RACEKEY", 100).await;
    let customer = unique("customer");
    let key = unique("key");
    let replies = futures::future::join_all((0..20).map(|_| {
        let (stack, customer, key, sku) = (&stack, &customer, &key, &sku);
        async move { stack.place_order(customer, key, &[(sku, 1)]).await }
    }))
    .await;
    let ids: std::collections::BTreeSet<_> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
            r.body["orderId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry names the same order");
    let list = stack.get("/orders", &stack.token(&customer, None)).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "one order exists"
    );
    let order = stack.wait_decided(&customer, ids.first().unwrap()).await;
    assert_eq!(reservation(&order), "RESERVED");
    assert_eq!(stack.stock(&sku).await, (99, 1, 100), "reserved once");
}

#[tokio::test]
async fn customers_see_only_their_own_orders_newest_first_in_pages() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("PAGES", 20).await;
    let (ada, mallory) = (unique("ada"), unique("mallory"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = stack.place_order(&ada, &unique("key"), &[(&sku, 1)]).await;
        ids.push(reply.body["orderId"].as_str().unwrap().to_owned());
    }
    let token = stack.token(&ada, None);
    let first = stack.get("/orders?limit=2", &token).await;
    let page = texts(&first.body["items"], "orderId");
    assert_eq!(page, [ids[2].clone(), ids[1].clone()]);
    let cursor = first.body["nextCursor"].as_str().expect("a next page");
    let second = stack
        .get(&format!("/orders?limit=2&cursor={cursor}"), &token)
        .await;
    let page = texts(&second.body["items"], "orderId");
    assert_eq!(page, [ids[0].clone()]);

    // Another customer: a 404 (not a 403), an empty list, and Ada's cursor opens nothing.
    let theirs = stack.token(&mallory, None);
    let reply = stack.get(&format!("/orders/{}", ids[0]), &theirs).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        stack.get("/orders", &theirs).await.body["items"],
        serde_json::json!([])
    );
    let stolen = stack
        .get(&format!("/orders?cursor={cursor}"), &theirs)
        .await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert_eq!(stolen.body["type"], "/problems/invalid-cursor");
    // An administrator may read any order.
    let admin = stack
        .get(
            &format!("/orders/{}", ids[0]),
            &stack.token("staff", Some("oms:admin")),
        )
        .await;
    assert_eq!(admin.status, StatusCode::OK);
    // The order carries its customer's name, address and contact: no cache may keep it.
    assert_eq!(
        admin
            .headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
}

/// One bad request and the problem it must get.
struct BadRequest {
    name: &'static str,
    body: Vec<u8>,
    key: Option<&'static str>,
    token: Option<String>,
    status: u16,
    kind: &'static str,
    field: Option<&'static str>,
}

#[tokio::test]
async fn bad_input_gets_a_problem_naming_what_is_wrong_and_writes_nothing() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("BADINPUT", 5).await;
    let customer = unique("customer");
    let token = stack.token(&customer, None);
    let valid = order_body(&[(&sku, 1)]);
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut body = valid.clone();
        change(&mut body);
        body.to_string().into_bytes()
    };
    let invalid = |name, key, body, field| BadRequest {
        name,
        body,
        key: Some(key),
        token: Some(token.clone()),
        status: 422,
        kind: "validation-error",
        field: Some(field),
    };
    let hundred_lines: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"sku": format!("S{i}"), "quantity": 1}))
        .collect();
    let cases = vec![
        BadRequest {
            name: "malformed JSON",
            body: b"{\"lines\": [".to_vec(),
            key: Some("k1"),
            token: Some(token.clone()),
            status: 400,
            kind: "malformed-json",
            field: None,
        },
        BadRequest {
            name: "no key",
            body: with(&|_| {}),
            key: None,
            token: Some(token.clone()),
            status: 400,
            kind: "missing-idempotency-key",
            field: None,
        },
        BadRequest {
            name: "no token",
            body: with(&|_| {}),
            key: Some("k2"),
            token: None,
            status: 401,
            kind: "unauthenticated",
            field: None,
        },
        BadRequest {
            name: "bad token",
            body: with(&|_| {}),
            key: Some("k3"),
            token: Some("not.a.jwt".into()),
            status: 401,
            kind: "unauthenticated",
            field: None,
        },
        BadRequest {
            name: "1 MB body",
            body: format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024)).into_bytes(),
            key: Some("k4"),
            token: Some(token.clone()),
            status: 413,
            kind: "payload-too-large",
            field: None,
        },
        invalid(
            "missing lines",
            "k5",
            with(&|b| {
                b.as_object_mut().unwrap().remove("lines");
            }),
            "lines",
        ),
        invalid(
            "quantity 0",
            "k6",
            with(&|b| b["lines"][0]["quantity"] = 0.into()),
            "lines[0].quantity",
        ),
        invalid(
            "quantity -1",
            "k7",
            with(&|b| b["lines"][0]["quantity"] = (-1).into()),
            "lines[0].quantity",
        ),
        invalid(
            "quantity 10^9",
            "k8",
            with(&|b| b["lines"][0]["quantity"] = 1_000_000_000u64.into()),
            "lines[0].quantity",
        ),
        invalid(
            "quantity as text",
            "k9",
            with(&|b| b["lines"][0]["quantity"] = "1".into()),
            "lines[0].quantity",
        ),
        invalid(
            "unknown SKU",
            "k10",
            with(&|b| b["lines"][0]["sku"] = "NO-SUCH-SKU-EVER".into()),
            "lines[0].sku",
        ),
        invalid(
            "too many lines",
            "k11",
            with(&|b| b["lines"] = serde_json::json!(hundred_lines)),
            "lines",
        ),
        invalid(
            "bad e-mail",
            "k12",
            with(&|b| b["contact"]["email"] = "nope".into()),
            "contact.email",
        ),
        invalid(
            "more of one item than one order may hold",
            "k14",
            with(&|b| b["lines"][0]["quantity"] = 21.into()),
            "lines[0].quantity",
        ),
        invalid(
            "unserved destination",
            "k13",
            with(&|b| b["shippingAddress"]["country"] = "AQ".into()),
            "shippingAddress.country",
        ),
    ];
    for case in cases {
        let headers: Vec<(&str, &str)> = case
            .key
            .map(|k| vec![("idempotency-key", k)])
            .unwrap_or_default();
        let reply = stack
            .call(
                reqwest::Method::POST,
                "/orders",
                case.token.as_deref(),
                &headers,
                Some(case.body),
            )
            .await;
        let name = case.name;
        assert_eq!(
            reply.status.as_u16(),
            case.status,
            "{name}: {:?}",
            reply.body
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert_eq!(
            reply.body["type"],
            format!("/problems/{}", case.kind),
            "{name}"
        );
        assert_eq!(reply.body["status"], case.status, "{name}");
        if let Some(field) = case.field {
            let fields = oms_domain::fixtures::error_fields(&reply.body);
            assert!(fields.iter().any(|f| f == field), "{name}: {fields:?}");
        }
    }
    assert_eq!(
        stack.get("/orders", &token).await.body["items"],
        serde_json::json!([]),
        "nothing was written"
    );
    assert_eq!(stack.stock(&sku).await, (5, 0, 5));

    // A customer's token on an admin route.
    let body = serde_json::json!({"name": "x", "unitPrice": {"amount": 1, "currency": "EUR"}, "weightGrams": 1, "onHand": 999});
    let put = stack.put(&format!("/inventory/{sku}"), &token, &body).await;
    assert_eq!(
        (put.status, put.body["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("/problems/forbidden"))
    );
    assert_eq!(stack.stock(&sku).await, (5, 0, 5));
}
