//! Least privilege, held against what the functions really do. The emulator, like the local
//! stack, enforces no IAM, so a policy missing an action would only fail on AWS: here the
//! emulator records every request while orders live whole lives through the HTTP API (placed,
//! paid for, reserved, picked, packed, shipped, captured, delivered, returned and received,
//! its return form opened on the customer's page;
//! another cancelled; stock and preferences changed; the scheduled sweep run), each request names the function that made it in its user
//! agent, and each must be allowed by that function's own role as the SAM transform gives it
//! (what AWS enforces) — the action, and for DynamoDB whether it reads the table or an index.

use std::collections::{BTreeMap, BTreeSet};

use oms_system_tests::{unique, RecordedRequest, Stack, StatusCode};
use serde_json::{json, Value};

/// What one function may do: `(action pattern, on an index)` per statement.
type Grants = Vec<(String, bool)>;

/// Each function's grants, by its binary name: every statement of the whole role the transformed
/// template gives it (`infra/local/sam_roles.py` runs the SAM transform), which is what AWS
/// enforces, not what the template's function says. A managed policy's grants are not in the
/// transformed template; the roles have none (`contract::` holds them to that), and one would
/// only allow more.
fn grants() -> BTreeMap<String, Grants> {
    let mut grants = BTreeMap::new();
    for (id, role) in oms_system_tests::execution_roles().as_object().unwrap() {
        let binary = role["binary"].as_str().unwrap().to_owned();
        let mut allowed = Grants::new();
        for statement in role["statements"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow", "{id}");
            assert!(
                statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
                "{id}: teach this test what a NotAction or NotResource allows"
            );
            let on_index = statement["Resource"].to_string().contains("/index/");
            for action in statement["Action"].as_array().unwrap() {
                allowed.push((action.as_str().unwrap().to_owned(), on_index));
            }
        }
        grants.insert(binary, allowed);
    }
    assert_eq!(
        grants.keys().cloned().collect::<BTreeSet<_>>(),
        oms_system_tests::functions()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        "a role for every function"
    );
    grants
}

/// The IAM actions one request needs, each with whether it reads an index: a transaction needs
/// the action of each of its items.
fn needs(request: &RecordedRequest) -> Vec<(String, bool)> {
    let body: Value = serde_json::from_str(&request.body).unwrap_or_default();
    match request.action.as_str() {
        "dynamodb:TransactWriteItems" => body["TransactItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let kind = item.as_object().unwrap().keys().next().unwrap().as_str();
                let action = match kind {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    other => panic!("a transaction item of kind {other}"),
                };
                (format!("dynamodb:{action}"), false)
            })
            .collect(),
        "dynamodb:TransactGetItems" => vec![("dynamodb:GetItem".into(), false)],
        "sns:PublishBatch" => vec![("sns:Publish".into(), false)],
        action => vec![(action.to_owned(), body.get("IndexName").is_some())],
    }
}

fn allows(grants: &Grants, (action, on_index): &(String, bool)) -> bool {
    grants.iter().any(|(pattern, index)| {
        index == on_index
            && match pattern.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => pattern == action,
            }
    })
}

#[tokio::test]
async fn every_request_a_function_makes_is_allowed_by_its_own_policy() {
    let stack = Stack::connect().await;
    let grants = grants();
    stack.start_recording().await;

    // Stock and preferences, an order's whole life and its return, and a cancellation.
    let sku = stack.create_sku("PRIVILEGE", 10).await;
    let admin = stack.token("staff-privilege", Some("oms:admin"));
    let adjusted = stack
        .post(
            &format!("/inventory/{sku}/adjustments"),
            &admin,
            &[],
            json!({"reason": "RECEIPT", "delta": 2}),
        )
        .await;
    assert!(adjusted.status.is_success(), "{:?}", adjusted.body);
    // A purchase order placed, listed and received in part.
    let next_week = (chrono::Utc::now() + chrono::Duration::days(7)).date_naive();
    let placed = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 3, "expectedOn": next_week.to_string()}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    let po = placed.body["id"].as_str().unwrap();
    let listed = stack
        .get(&format!("/inventory/{sku}/purchase-orders"), &admin)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let delivered_po = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders/{po}/receive"),
            &stack.token("warehouse-privilege", Some("oms:warehouse")),
            &[],
            json!({"quantity": 1, "expectedReceived": 0}),
        )
        .await;
    assert_eq!(
        delivered_po.status,
        StatusCode::OK,
        "{:?}",
        delivered_po.body
    );
    // A SKU sold past its stock: the reservation reads its purchase orders for the date it
    // promises, and the delivery fills the waiting order in its own write.
    let waits = stack.create_sku("PRIVILEGE-BO", 0).await;
    let allowed = stack
        .put(
            &format!("/inventory/{waits}"),
            &admin,
            &json!({"name": "Backordered", "unitPrice": {"amount": 1000, "currency": "EUR"},
                "weightGrams": 500, "selling": {"policy": "BACKORDER", "limit": 5}}),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{:?}", allowed.body);
    let coming = stack
        .post(
            &format!("/inventory/{waits}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 1, "expectedOn": next_week.to_string()}),
        )
        .await;
    assert_eq!(coming.status, StatusCode::CREATED, "{:?}", coming.body);
    let waiting_customer = unique("waits");
    let waiting = stack
        .place_then_pay(&waiting_customer, &unique("key"), &[(&waits, 1)])
        .await;
    let waiting_id = waiting.body["orderId"].as_str().unwrap().to_owned();
    assert_eq!(
        stack.wait_decided(&waiting_customer, &waiting_id).await["hold"],
        "BACKORDERED"
    );
    let filled = stack
        .post(
            &format!(
                "/inventory/{waits}/purchase-orders/{}/receive",
                coming.body["id"].as_str().unwrap()
            ),
            &admin,
            &[],
            json!({"quantity": 1, "expectedReceived": 0}),
        )
        .await;
    assert_eq!(filled.status, StatusCode::OK, "{:?}", filled.body);
    stack
        .wait_status(&waiting_customer, &waiting_id, "FULFILLING")
        .await;
    let (customer, delivered) = stack
        .delivered_order(
            &[(&sku, 2)],
            &(chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339(),
        )
        .await;
    let token = stack.token(&customer, None);
    let preferences = stack
        .put(
            "/customers/me/notification-preferences",
            &token,
            &json!({"email": true, "sms": false, "webhook": true}),
        )
        .await;
    assert_eq!(preferences.status, StatusCode::OK, "{:?}", preferences.body);
    let id = delivered["orderId"].as_str().unwrap();
    let opened = stack
        .post(
            &format!("/orders/{id}/returns"),
            &token,
            &[("idempotency-key", &unique("rma"))],
            json!({"lines": [{"sku": sku, "quantity": 1, "reason": "NO_LONGER_NEEDED"}]}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    let rma = opened.body["returnId"].as_str().unwrap();
    let received = stack
        .post(
            &format!("/returns/{rma}/receive"),
            &stack.token("warehouse-privilege", Some("oms:warehouse")),
            &[],
            json!({"lines": [{"sku": sku, "quantity": 1, "disposition": "RESTOCK"}]}),
        )
        .await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    let second = stack
        .place_order(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let second_id = second.body["orderId"].as_str().unwrap();
    stack.wait_status(&customer, second_id, "FULFILLING").await;
    // One of its units called off (the locations read to re-quote the shipping), then the rest.
    let one_fewer = stack
        .post(
            &format!("/orders/{second_id}/cancel-units"),
            &token,
            &[("idempotency-key", &unique("units"))],
            json!({"lines": [{"sku": sku, "quantity": 1}], "reason": "one is enough"}),
        )
        .await;
    assert_eq!(one_fewer.status, StatusCode::OK, "{:?}", one_fewer.body);
    // Its customer changes where it goes (the locations read to re-quote the shipping).
    let moved = stack
        .post(
            &format!("/orders/{second_id}/edits"),
            &token,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &format!("\"v{}\"", one_fewer.body["version"])),
            ],
            json!({"shippingAddress": {"name": "Ada Lovelace", "line1": "Hauptstr. 2",
                "city": "Berlin", "postalCode": "10115", "country": "DE"}, "reason": "moved"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    // Staff add a unit (the product read, its stock reserved in the edit's write).
    let more = stack
        .post(
            &format!("/orders/{second_id}/edits"),
            &admin,
            &[
                ("idempotency-key", &unique("edit")),
                ("if-match", &format!("\"v{}\"", moved.body["version"])),
            ],
            json!({"addLines": [{"sku": sku, "quantity": 1}], "reason": "the customer called"}),
        )
        .await;
    assert_eq!(more.status, StatusCode::OK, "{:?}", more.body);
    let cancelled = stack
        .post(
            &format!("/orders/{second_id}/cancel"),
            &token,
            &[],
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    // The customer's pages: an order opened by its signed link, and cancelled there.
    let third = stack
        .place_order(&customer, &unique("key"), &[(&sku, 1)])
        .await;
    let third_id = third.body["orderId"].as_str().unwrap();
    stack.wait_status(&customer, third_id, "FULFILLING").await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let visit = stack.shop_visit(third_id).await;
    let page = browser
        .get(format!("{}/shop/orders/{third_id}", stack.api))
        .header("cookie", &visit)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = |name: &str| {
        page.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {name} on the order's page: {page}"))
            .to_owned()
    };
    let (csrf, version) = (field("csrf"), field("version"));
    let cancelled_there = browser
        .post(format!("{}/shop/orders/{third_id}/cancel", stack.api))
        .header("cookie", &visit)
        .header("origin", stack.api.as_str())
        .form(&[("csrf", csrf.as_str()), ("version", version.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled_there.status(), StatusCode::SEE_OTHER);
    // The delivered order's return form there: what each line may be exchanged for.
    let visit = stack.shop_visit(id).await;
    let form = browser
        .get(format!("{}/shop/orders/{id}/return", stack.api))
        .header("cookie", &visit)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains("id=\"exchange-0\""),
        "the line's exchange choices: {form}"
    );
    // The PSP's capture of the delivered order, and a run of the scheduled sweep.
    stack.psp("capture.succeeded", &delivered).await;
    let swept = stack.run_schedule("OrderSweeperFunction").await;
    assert_eq!(swept.status, StatusCode::OK, "{:?}", swept.body);
    let attention = stack.get("/payments/attention", &admin).await;
    assert_eq!(attention.status, StatusCode::OK, "{:?}", attention.body);
    // The console: the exceptions (dead-letter queues included), the catalog and a SKU's
    // history, a stock receipt, and a redrive.
    let console = stack.console_session("staff-privilege", "admin").await;
    for page in [
        "/console/exceptions",
        "/console/inventory?sort=lowStock",
        "/console/inventory?sort=reorder",
        &format!("/console/inventory/{sku}"),
        "/console/warehouse",
        "/console/returns",
        "/console/orders?status=DELIVERED",
        "/console/locations",
    ] {
        let (status, html) = console.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
    }
    // A receipt as the SKU's page sends it: its key, and what it showed on hand.
    let (_, page) = console.get(&format!("/console/inventory/{sku}")).await;
    let key = crate::console::hidden(&page, "key", "-receipt");
    let on_hand = crate::console::hidden(&page, "onHand-BER-1", "");
    let (status, to) = console
        .post(
            &format!("/console/inventory/{sku}/adjustments"),
            &[
                ("reason", "RECEIPT"),
                ("units", "1"),
                ("key", &key),
                ("onHand-BER-1", &on_hand),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    // The rest of the purchase order, received on the SKU's page.
    let (status, to) = console
        .post(
            &format!("/console/inventory/{sku}/purchase-orders/{po}/receive"),
            &[("quantity", "2"), ("received", "1"), ("form", "po")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    // Staff keep the locations (the console writes the list item).
    let (_, page) = console.get("/console/locations").await;
    let version = crate::console::hidden(&page, "version", "");
    let (status, to) = console
        .post(
            "/console/locations/TEST-PRIV-1",
            &[
                ("version", version.as_str()),
                ("name", "Privilege test warehouse"),
                ("kind", "WAREHOUSE"),
                ("country", "DE"),
                ("postalCode", "10115"),
                ("zone", "domestic"),
                ("handlingDays", "1"),
                ("cutoffHourUtc", "14"),
                ("priority", "50"),
            ],
        )
        .await;
    assert!(
        [StatusCode::SEE_OTHER, StatusCode::CONFLICT].contains(&status),
        "saved, or the list changed meanwhile: {to}"
    );
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    sqs.send_message()
        .queue_url(format!(
            "{}/123456789012/{}",
            stack.emulator,
            stack.resource("SmsOutboxDeadLetterQueue")
        ))
        .message_body("{\"privilege\": true}")
        .send()
        .await
        .unwrap();
    let queue = stack.resource("SmsOutboxDeadLetterQueue");
    // Reading a dead-letter queue's messages (one no other test reads: reading holds them for
    // a minute), then the redrive.
    let quiet = stack.resource("NotifierDeadLetterQueue");
    let (status, html) = console
        .get(&format!("/console/exceptions/dead-letters/{quiet}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, to) = console
        .post(
            &format!("/console/exceptions/dead-letters/{queue}/redrive"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    // The notifications of the last steps go out after their answers.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let recorded = stack.stop_recording().await;
    let mut seen = BTreeSet::new();
    let mut refused = BTreeSet::new();
    for request in recorded.iter() {
        let Some(function) = request.app.as_deref().filter(|a| grants.contains_key(*a)) else {
            continue;
        };
        seen.insert(function.to_owned());
        for need in needs(request) {
            if !allows(&grants[function], &need) {
                refused.insert(format!(
                    "{function}: {}{}",
                    need.0,
                    if need.1 { " on an index" } else { "" }
                ));
            }
        }
    }
    assert!(
        refused.is_empty(),
        "requests their function's role does not allow: {refused:#?}"
    );
    let all: BTreeSet<String> = grants.keys().cloned().collect();
    assert_eq!(
        seen, all,
        "every function made requests while recorded (else this test proves nothing about it)"
    );
}
