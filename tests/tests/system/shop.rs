//! The customers' pages, driven from the outside: in headless Chromium at a phone's width and a
//! desktop's, and over plain HTTP for what a browser does not show (statuses, cookies, the one
//! neutral refusal). Screenshots of the order's page go with the console's
//! (`OMS_CONSOLE_SCREENSHOTS`); the README shows the ones in `docs/shop`.

use std::time::{Duration, Instant};

use oms_system_tests::{order_link, unique, wait_for, Probe, Stack, StatusCode};

use crate::console::Browser;

/// An order placed and paid for by a new customer, in the warehouse's hands (not yet packed).
async fn paid_order(stack: &Stack, prefix: &str) -> (String, String, String) {
    paid_order_of(stack, prefix, &unique("shopper")).await
}

/// As [`paid_order`], for `customer`.
async fn paid_order_of(stack: &Stack, prefix: &str, customer: &str) -> (String, String, String) {
    let customer = customer.to_owned();
    let sku = stack.create_sku(prefix, 5).await;
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    stack.wait_status(&customer, &id, "FULFILLING").await;
    (customer, id, sku)
}

/// Runs the accessibility checker axe-core (`infra/local/bootstrap.sh` installs it) on the
/// browser's page against WCAG 2.1 A and AA, and fails on any serious or critical violation.
async fn assert_accessible(browser: &Browser, page: &str) {
    let violations = violations(browser).await;
    assert!(
        violations.is_empty(),
        "{page}: serious or critical accessibility violations: {violations:#?}"
    );
}

/// As [`assert_accessible`], leaving out what `outside` selects (the PSP's own card fields,
/// which are its frame in production).
async fn assert_accessible_outside(browser: &Browser, page: &str, outside: &str) {
    let violations = violations_outside(browser, Some(outside)).await;
    assert!(
        violations.is_empty(),
        "{page}: serious or critical accessibility violations: {violations:#?}"
    );
}

/// axe-core's serious and critical violations of WCAG 2.1 A and AA on the browser's page.
async fn violations(browser: &Browser) -> Vec<String> {
    violations_outside(browser, None).await
}

/// As [`violations`], leaving out what the CSS selector `outside` selects.
async fn violations_outside(browser: &Browser, outside: Option<&str>) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/axe-core/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} ({e}): run infra/local/bootstrap.sh (infra/local/test.sh does)",
            path.display()
        )
    });
    browser
        .client
        .execute(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await
        .expect("axe-core loads in the page");
    let found = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const outside = arguments[0];
             axe.run(outside ? {exclude: [[outside]]} : document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            vec![serde_json::json!(outside)],
        )
        .await
        .expect("axe-core's answer");
    serde_json::from_value(found).expect("a list")
}

/// The page's width against the phone's: nothing scrolls sideways.
async fn fits(browser: &Browser) -> (u64, u64) {
    let measured = browser
        .client
        .execute(
            "return [document.documentElement.scrollWidth, screen.width];",
            vec![],
        )
        .await
        .unwrap();
    (measured[0].as_u64().unwrap(), measured[1].as_u64().unwrap())
}

#[tokio::test]
async fn a_customer_opens_their_order_from_its_link_on_a_phone_and_cancels_it_before_packing() {
    let stack = Stack::connect().await;
    let customer = unique("shopper");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let (customer, id, sku) = paid_order_of(&stack, "SHOPCANCEL", &customer).await;
    let (_, reserved, _) = stack.stock(&sku).await;
    assert_eq!(reserved, 2);

    // The link in the customer's e-mail about the order (as the notifications log shows it).
    let emails = inbox
        .collect(Duration::from_secs(60), |seen| !seen.is_empty())
        .await;
    let text = emails[0].0["text"].as_str().expect("an e-mail's text");
    let link = text
        .split_whitespace()
        .find(|word| word.contains("/shop/orders/"))
        .unwrap_or_else(|| panic!("no link to the order's page in {text}"));
    let path = link
        .strip_prefix(stack.api.as_str())
        .unwrap_or_else(|| panic!("{link} is not the stack's"));
    assert!(path.starts_with(&format!("/shop/orders/{id}?t=")), "{path}");

    let phone = Browser::open_phone(&stack).await;
    phone.goto(path).await;
    // The link's token leaves the address bar at once.
    assert_eq!(phone.path().await, format!("/shop/orders/{id}"));
    assert!(phone.text("h1").await.contains(&id));
    assert_eq!(
        phone.text("#order-status").await,
        "Our warehouse is packing your order."
    );
    assert!(phone.text("#payment").await.starts_with("Approved"));
    let (width, screen) = fits(&phone).await;
    assert_eq!(screen, 390, "a phone's width");
    assert!(
        width <= screen,
        "the page is {width} px wide on a {screen} px phone"
    );
    phone.screenshot("shop-order-phone").await;
    assert_accessible(&phone, "the order's page").await;

    // Cancelled from the page: the stock goes back and the hold is released, as the API's
    // cancel does.
    phone.fill("#reason", "ordered the wrong size").await;
    phone.submit("form[action$='/cancel'] button").await;
    assert_eq!(phone.text("#banner").await, "Your order is cancelled.");
    assert_accessible(&phone, "a cancelled order's page").await;
    assert_eq!(
        phone.text("#order-status").await,
        "Your order is cancelled."
    );
    let cancelled = stack.wait_status(&customer, &id, "CANCELLED").await;
    assert_eq!(
        cancelled["cancellation"]["reason"],
        "ordered the wrong size"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while stack.stock(&sku).await.1 != 0 {
        assert!(Instant::now() < deadline, "the stock never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let order = stack.order_as_staff(&id).await;
    let requests = order["payment"]["requests"].as_array().unwrap();
    assert!(
        requests.iter().any(|r| r["kind"] == "VOID"),
        "the hold's release asked of the PSP: {}",
        order["payment"]
    );

    // Done on a borrowed phone: the customer ends the visit, and the order no longer opens on
    // it without a new proof.
    phone.submit("#forget").await;
    assert_eq!(phone.path().await, "/shop/orders/find?done=forgotten");
    assert_eq!(
        phone.text("#banner").await,
        "This browser no longer shows your orders."
    );
    assert_accessible(&phone, "the lookup after a visit ended").await;
    assert!(
        phone.client.get_named_cookie("oms_shop").await.is_err(),
        "the visit's cookie is gone"
    );
    phone.goto(&format!("/shop/orders/{id}")).await;
    assert!(phone.body().await.contains("We could not open that order"));
}

#[tokio::test]
async fn a_customer_finds_their_order_by_number_and_address_and_nothing_tells_a_stranger_more() {
    let stack = Stack::connect().await;
    let (customer, id, _) = paid_order(&stack, "SHOPFIND").await;
    let (_, other, _) = paid_order(&stack, "SHOPOTHER").await;

    // Over HTTP: a wrong address, a wrong number, an expired or altered link — one refusal.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let find = |order: String, email: &'static str| {
        let http = http.clone();
        let api = stack.api.clone();
        async move {
            let response = http
                .post(format!("{api}/shop/orders/find"))
                .header("origin", api.as_str())
                .form(&[("order", order.as_str()), ("email", email)])
                .send()
                .await
                .unwrap();
            let status = response.status();
            let cookie = response
                .headers()
                .get("set-cookie")
                .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
            (status, cookie, response.text().await.unwrap())
        }
    };
    let get = |path: String, cookie: Option<String>| {
        let http = http.clone();
        let api = stack.api.clone();
        async move {
            let mut request = http.get(format!("{api}{path}"));
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    // A lookup's refusal puts the number as typed back in its field: set aside, the pages are
    // one and the same.
    let untyped = |page: &str, typed: &str| {
        page.replace(&format!("value=\"{typed}\""), "value=\"\"")
            .replace(" aria-invalid=\"true\" aria-describedby=\"refused\"", "")
    };
    let mut wrong_address = find(id.clone(), "eve@example.com").await;
    wrong_address.2 = untyped(&wrong_address.2, &id);
    let guessed = id.replace(&id[20..], "ZZZZZZ");
    let mut wrong_number = find(guessed.clone(), "test@example.com").await;
    wrong_number.2 = untyped(&wrong_number.2, &guessed);
    let expired = get(order_link(&id, -1), None).await;
    let altered = get(order_link(&id, 3600).replace(&id, &other), None).await;
    assert_eq!(wrong_address.0, StatusCode::NOT_FOUND);
    assert!(wrong_address.1.is_none(), "no visit");
    for (status, page) in [
        (wrong_number.0, wrong_number.2.clone()),
        expired.clone(),
        altered.clone(),
    ] {
        assert_eq!(
            (status, page),
            (wrong_address.0, wrong_address.2.clone()),
            "the same refusal"
        );
    }
    // The number and the address open the order, and that order only.
    let (status, cookie, _) = find(id.clone(), "Test@Example.com").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a visit");
    let (status, page) = get(format!("/shop/orders/{id}"), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&id));
    let (status, page) = get(format!("/shop/orders/{other}"), Some(cookie)).await;
    assert_eq!((status, page), (wrong_address.0, wrong_address.2.clone()));
    // A signed-in storefront asks the API for its customer's link: it opens that order.
    let asked = stack
        .get(&format!("/orders/{id}/page"), &stack.token(&customer, None))
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{:?}", asked.body);
    let url = asked.body["url"].as_str().unwrap();
    let path = url.strip_prefix(stack.api.as_str()).expect("the stack's");
    let (status, _) = get(path.to_owned(), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the link opens the page");
    let nosy = stack
        .get(&format!("/orders/{id}/page"), &stack.token("nosy", None))
        .await;
    assert_eq!(nosy.status, StatusCode::NOT_FOUND, "not another customer's");
    // An API token opens no page: the pages take only their own proof.
    let token = stack.token("someone", None);
    let response = http
        .get(format!("{}/shop/orders/{id}", stack.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // In a desktop browser, as a customer types it.
    let desktop = Browser::open(&stack).await;
    desktop.goto("/shop/orders/find").await;
    desktop.fill("#order", &id).await;
    desktop.fill("#email", "test@example.com").await;
    desktop.submit("form button").await;
    assert_eq!(desktop.path().await, format!("/shop/orders/{id}"));
    assert!(desktop
        .body()
        .await
        .contains("Our warehouse is packing your order."));
    desktop.screenshot("shop-order-desktop").await;
    assert_accessible(&desktop, "the order's page on a desktop").await;
    desktop.goto("/shop/orders/find").await;
    assert_accessible(&desktop, "the lookup").await;
    desktop.fill("#order", &id).await;
    desktop.fill("#email", "eve@example.com").await;
    desktop.submit("form button").await;
    assert!(desktop
        .text("#refused")
        .await
        .starts_with("We could not open that order."));
    assert_accessible(&desktop, "the lookup's refusal").await;
    // The checker sees what it should: a field without a label is a critical violation.
    desktop
        .client
        .execute(
            "document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=\"unlabelled\">');",
            vec![],
        )
        .await
        .unwrap();
    let found = violations(&desktop).await;
    assert!(
        found.iter().any(|v| v.starts_with("label")),
        "the checker missed an unlabelled field: {found:?}"
    );
}

#[tokio::test]
async fn a_customer_returns_a_delivered_item_on_the_page_prints_its_label_and_sees_the_refund() {
    let stack = Stack::connect().await;
    // A shirt in size M, and its size L and XL (dearer) beside it: the variants share a stem.
    let stem = unique("SHOPTEE").to_uppercase();
    let (medium, large, dearer) = (
        format!("{stem}-M"),
        format!("{stem}-L"),
        format!("{stem}-XL"),
    );
    stack
        .create_product(&medium, "Shirt, size M", 1000, 5)
        .await;
    stack.create_product(&large, "Shirt, size L", 1000, 3).await;
    stack
        .create_product(&dearer, "Shirt, size XL", 1200, 3)
        .await;
    let sku = stack.create_sku("SHOPRETURN", 5).await;
    let (_, delivered) = stack
        .delivered_order(&[(&medium, 1), (&sku, 2)], &chrono::Utc::now().to_rfc3339())
        .await;
    let id = delivered["orderId"].as_str().unwrap().to_owned();

    let phone = Browser::open_phone(&stack).await;
    phone.goto(&order_link(&id, 3600)).await;
    assert_eq!(phone.text("#order-status").await, "Your order has arrived.");
    phone.submit("#start-return").await;
    assert_eq!(phone.path().await, format!("/shop/orders/{id}/return"));
    // The shirt may come back for a refund, the same shirt again, its size L, or the dearer XL
    // (its difference said).
    let choices = phone.text("#exchange-0").await;
    assert!(
        choices.contains("A refund")
            && choices.contains("The same item again")
            && choices.contains("Shirt, size L")
            && choices.contains("Shirt, size XL (€2.00 more each, paid before it ships)"),
        "{choices}"
    );
    phone
        .client
        .execute(
            &format!(
                "document.getElementById('quantity-0').value = '1';
                 document.getElementById('reason-0').value = 'DOES_NOT_FIT';
                 document.getElementById('exchange-0').value = '{large}';
                 document.getElementById('quantity-1').value = '1';
                 document.getElementById('reason-1').value = 'NO_LONGER_NEEDED';"
            ),
            vec![],
        )
        .await
        .unwrap();
    phone.fill("#comment-0", "one size too small").await;
    phone.screenshot("shop-return-phone").await;
    assert_accessible(&phone, "the return form").await;
    let (width, screen) = fits(&phone).await;
    assert!(
        width <= screen,
        "the form is {width} px wide on a {screen} px phone"
    );
    phone.submit("form[action$='/returns'] button").await;
    assert_eq!(
        phone.path().await,
        format!("/shop/orders/{id}?done=returned")
    );
    let order = stack.order_as_staff(&id).await;
    let rma = order["returns"][0]["returnId"].as_str().unwrap().to_owned();
    let lines = &order["returns"][0]["lines"];
    assert_eq!(lines[0]["sku"], medium.as_str());
    assert_eq!(lines[0]["exchange"]["sku"], large.as_str());
    assert_eq!(lines[0]["comment"], "one size too small");
    assert_eq!(lines[1]["sku"], sku.as_str());
    assert_eq!(lines[1]["quantity"], 1);
    // The default policy approves both at once, reserving the size L for the exchange.
    assert_eq!(order["returns"][0]["status"], "APPROVED", "{order}");
    assert_eq!(stack.stock(&large).await.1, 1, "the size L is reserved");
    let shown = phone.text(&format!("#return-{rma}")).await;
    assert!(shown.contains("Approved: print the label"), "{shown}");
    assert!(
        shown.contains("Shirt, size M (exchanged for Shirt, size L)"),
        "{shown}"
    );

    // The label the page links: the API's PDF, its barcode the RMA.
    let label_path = format!("/shop/orders/{id}/returns/{rma}/label");
    let visit = phone
        .client
        .get_named_cookie("oms_shop")
        .await
        .expect("the visit's cookie");
    let label = reqwest::Client::new()
        .get(format!("{}{label_path}", stack.api))
        .header("cookie", format!("oms_shop={}", visit.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(label.status(), StatusCode::OK);
    assert_eq!(label.headers()["content-type"], "application/pdf");
    let read = crate::returns::read_label(&label.bytes().await.unwrap());
    assert_eq!(read["barcodes"][0]["text"], rma.as_str());
    let stranger = reqwest::Client::new()
        .get(format!("{}{label_path}", stack.api))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stranger.status(),
        StatusCode::NOT_FOUND,
        "no label without the visit"
    );

    // Received in the console: a packer scans the label's number on the warehouse screen and
    // chooses what becomes of each unit.
    let console = Browser::open(&stack).await;
    console.sign_in("staff-dock", "warehouse").await;
    console.goto("/console/warehouse").await;
    console.fill("#shipment-search", &rma).await;
    console.submit("#find-shipment").await;
    for unit in [&medium, &sku] {
        console
            .client
            .find(fantoccini::Locator::Css(&format!("#disposition-{unit}")))
            .await
            .unwrap()
            .select_by_value("RESTOCK")
            .await
            .unwrap();
    }
    console
        .submit(&format!("#return-{rma} button.receive-button"))
        .await;
    assert_eq!(console.text("#banner").await, "The return was received.");
    let order = stack.order_as_staff(&id).await;
    let refund = order["refunds"][0].clone();
    assert_eq!(
        refund["amount"]["amount"], 1000,
        "the unit not exchanged: {order}"
    );
    assert!(
        order["returns"][0]["replacementOrderId"].is_string(),
        "the size L ships as a new order: {order}"
    );

    // Once the PSP confirms the refund, the page shows it issued.
    let paid_out = oms_system_tests::psp_body(
        "refund.succeeded",
        &id,
        &refund["amount"],
        Some(refund["refundId"].as_str().unwrap()),
    );
    assert_eq!(stack.psp_event(&paid_out).await.status, StatusCode::OK);
    phone.goto(&format!("/shop/orders/{id}")).await;
    let shown = phone.text(&format!("#return-{rma}")).await;
    assert!(shown.contains("Received at our warehouse."), "{shown}");
    assert!(shown.contains(": issued."), "{shown}");
    let replacement = order["returns"][0]["replacementOrderId"].as_str().unwrap();
    assert!(
        shown.contains(&format!("The exchange ships as order {replacement}")),
        "{shown}"
    );
    assert!(
        !shown.contains("Print the return label"),
        "nothing left to send: {shown}"
    );
    phone
        .client
        .execute(
            &format!(
                "document.getElementById('return-{rma}').scrollIntoView({{block: 'center'}});"
            ),
            vec![],
        )
        .await
        .unwrap();
    phone.screenshot("shop-returned-phone").await;
    assert_accessible(&phone, "a returned order's page").await;
}

/// A customer exchanges a shirt for a dearer size on the page: the form says what it costs
/// more; once the shirt is received, the replacement waits for the difference; the original's
/// page says so and opens the replacement's, which takes it with Stripe; then it goes to the
/// warehouse.
#[tokio::test]
async fn a_customer_exchanges_for_a_dearer_size_and_pays_the_difference_on_the_page() {
    let stack = Stack::connect().await;
    let stem = unique("SHOPDEARER").to_uppercase();
    let (medium, dearer) = (format!("{stem}-M"), format!("{stem}-XL"));
    stack
        .create_product(&medium, "Shirt, size M", 1000, 5)
        .await;
    stack
        .create_product(&dearer, "Shirt, size XL", 1250, 3)
        .await;
    let (customer, delivered) = stack
        .delivered_order(&[(&medium, 1)], &chrono::Utc::now().to_rfc3339())
        .await;
    let id = delivered["orderId"].as_str().unwrap().to_owned();

    let browser = Browser::open(&stack).await;
    browser.goto(&order_link(&id, 3600)).await;
    browser.submit("#start-return").await;
    assert!(browser
        .text("#exchange-0")
        .await
        .contains("Shirt, size XL (€2.50 more each, paid before it ships)"));
    browser
        .client
        .execute(
            &format!(
                "document.getElementById('quantity-0').value = '1';
                 document.getElementById('reason-0').value = 'DOES_NOT_FIT';
                 document.getElementById('exchange-0').value = '{dearer}';"
            ),
            vec![],
        )
        .await
        .unwrap();
    browser.submit("form[action$='/returns'] button").await;
    let order = stack.order_as_staff(&id).await;
    let rma = order["returns"][0]["returnId"].as_str().unwrap().to_owned();
    assert_eq!(
        order["returns"][0]["lines"][0]["exchange"]["sku"],
        dearer.as_str()
    );
    assert_eq!(order["returns"][0]["status"], "APPROVED", "{order}");
    let received = crate::returns::receive(
        &stack,
        &rma,
        serde_json::json!([{"sku": medium, "quantity": 1, "disposition": "RESTOCK"}]),
    )
    .await;
    assert_eq!(received.status, StatusCode::OK, "{:?}", received.body);
    assert_eq!(received.body["exchangeDue"]["amount"], 250);
    let replacement = received.body["replacementOrderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = stack.order_as_staff(&replacement).await;
    assert_eq!(waiting["hold"], "AWAITING_PAYMENT", "{waiting}");

    // The original's page says what is due and opens the replacement's, which takes it.
    browser.goto(&format!("/shop/orders/{id}")).await;
    let shown = browser.text(&format!("#return-{rma}")).await;
    assert!(
        shown.contains(&format!(
            "ships as order {replacement}; it costs €2.50 more, paid on its page before it ships"
        )),
        "{shown}"
    );
    browser.submit(&format!("#replacement-{rma}")).await;
    assert_eq!(browser.path().await, format!("/shop/orders/{replacement}"));
    assert_eq!(browser.text("#pay-link").await, "Pay €2.50 now");
    browser.submit("#pay-link").await;
    assert_eq!(browser.text("#pay-amount").await, "€2.50");
    type_card(&browser, "4242424242424242").await;
    browser.submit("#pay").await;
    assert_eq!(
        browser.path().await,
        format!("/shop/orders/{replacement}?done=paid")
    );
    stack
        .wait_status(&customer, &replacement, "FULFILLING")
        .await;
    let paid = stack.order_as_staff(&replacement).await;
    assert_eq!(authorizations(&paid).len(), 1, "{paid}");
    assert_eq!(authorizations(&paid)[0].1, 250, "the difference held");
    browser.goto(&format!("/shop/orders/{replacement}")).await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#pay-link"))
            .await
            .is_err(),
        "nothing left to pay"
    );
}

/// A customer keeps one of two items: the page's form calls the other off before it is packed.
/// Its stock is back at once, the page shows the smaller total and what was cancelled, the form
/// sent again from the browser's history changes nothing more, and the customer is told once.
#[tokio::test]
async fn a_customer_cancels_one_of_two_items_on_the_page_and_keeps_the_other() {
    let stack = Stack::connect().await;
    let customer = unique("shopper");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let (_, id, sku) = paid_order_of(&stack, "SHOPUNITS", &customer).await;
    assert_eq!(stack.stock(&sku).await, (3, 2, 5));
    let before = stack.order_as_staff(&id).await["totals"]["total"]["amount"]
        .as_i64()
        .unwrap();

    let browser = Browser::open(&stack).await;
    browser.goto(&order_link(&id, 600)).await;
    assert_eq!(browser.path().await, format!("/shop/orders/{id}"));
    browser.fill(&format!("#units-{sku}"), "1").await;
    browser.submit("#cancel-units").await;
    assert!(
        browser
            .text("#banner")
            .await
            .contains("Those items are cancelled"),
        "the page says what was done"
    );
    assert!(browser.text("#cancelled-items").await.contains("1 × "));
    assert_eq!(stack.stock(&sku).await, (4, 1, 5), "its unit back at once");
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["lines"][0]["quantity"], 1);
    assert_eq!(order["unitCancellations"][0]["by"], "customer");
    let after = order["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(after < before, "{after} < {before}");
    assert!(
        browser
            .text("#order-total")
            .await
            .contains(&format!("{}.", after / 100)),
        "the page shows the new total"
    );
    assert!(
        !browser.body().await.contains("id=\"cancel-units\""),
        "one unit left: cancelling it is cancelling the order"
    );
    assert_accessible(&browser, "the order's page after cancelling an item").await;
    browser.screenshot("shop-cancel-units").await;

    // The sent form again, from the browser's history: nothing more changes.
    browser.client.back().await.unwrap();
    if browser.body().await.contains("id=\"cancel-units\"") {
        browser.fill(&format!("#units-{sku}"), "1").await;
        browser.submit("#cancel-units").await;
    }
    assert_eq!(stack.stock(&sku).await, (4, 1, 5));
    assert_eq!(
        stack.order_as_staff(&id).await["unitCancellations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let told = inbox
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.units-cancelled")
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let changes = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| m["eventType"] == "oms.order.units-cancelled")
        .count();
    assert_eq!(changes, 1, "told once");
}

/// Types the test card `number` into the Stripe card fields on the payment page (the Stripe
/// emulator's Stripe.js mounts plain inputs where Stripe's own mounts its frame).
async fn type_card(browser: &Browser, number: &str) {
    for (field, value) in [
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "30"),
        ("cvc", "123"),
        ("postal_code", "10115"),
    ] {
        browser
            .fill(&format!("#card input[placeholder={field}]"), value)
            .await;
    }
}

/// The payments the order's ledger shows held: each PaymentIntent and the amount held, in minor
/// units, oldest first.
fn authorizations(order: &serde_json::Value) -> Vec<(String, i64)> {
    order["payment"]["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "authorization.succeeded")
        .map(|e| {
            (
                e["pspReference"].as_str().unwrap().to_owned(),
                e["amount"]["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// A customer pays on their order's page, with Stripe: an order placed in the shop but never
/// paid is paid from its page (the card typed into Stripe's fields, confirmed by Stripe.js,
/// the order authorized by Stripe's webhook and sent to the warehouse); then sent to another
/// street (same price: nothing to pay, once), and to somewhere dearer, which waits for a payment
/// of the whole new total: a declined card says so and changes nothing, a good one applies the
/// change and releases the first hold at Stripe. Every page passes the accessibility check
/// (Stripe's own card fields aside), and the customer is told of each change once.
#[tokio::test]
async fn a_customer_pays_on_the_page_and_pays_again_for_a_dearer_address() {
    let stack = Stack::connect().await;
    let customer = unique("shopper");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let sku = stack.create_sku("SHOPPAY", 5).await;
    // The browser first: an unpaid order waits for its payment only `PaymentWindowSeconds`
    // (20 s on the test stack), as does a dearer change.
    let browser = Browser::open(&stack).await;
    let placed = stack
        .place_unpaid_order(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    wait_for(&stack, &id, "reserved", |o| o["status"] == "RESERVED").await;

    // Unpaid: the page offers the payment.
    browser.goto(&order_link(&id, 600)).await;
    let total = stack.order_as_staff(&id).await["totals"]["total"].clone();
    assert!(browser.text("#pay-link").await.starts_with("Pay "));
    browser.submit("#pay-link").await;
    assert_eq!(browser.path().await, format!("/shop/orders/{id}/pay"));
    assert_accessible_outside(&browser, "the payment page", "#card").await;
    type_card(&browser, "4242424242424242").await;
    browser.submit("#pay").await;
    assert_eq!(browser.path().await, format!("/shop/orders/{id}?done=paid"));
    assert!(browser.text("#banner").await.contains("payment was sent"));
    let paid = wait_for(&stack, &id, "authorized at Stripe", |o| {
        o["payment"]["status"] == "AUTHORIZED"
    })
    .await;
    let holds = authorizations(&paid);
    assert_eq!(holds.len(), 1, "{paid}");
    let (first, held) = holds[0].clone();
    assert_eq!(
        held,
        total["amount"].as_i64().unwrap(),
        "the whole total held"
    );
    assert!(first.starts_with("pi_"), "{first}");
    stack.wait_status(&customer, &id, "FULFILLING").await;
    let before = stack.order_as_staff(&id).await;

    // Another street in Berlin: nothing to pay, changed at once.
    browser.goto(&format!("/shop/orders/{id}")).await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#pay-link"))
            .await
            .is_err(),
        "paid"
    );
    browser.fill("#address-line1", "Hauptstr. 2").await;
    browser.fill("#address-postal-code", "10115").await;
    browser.fill("#address-city", "Berlin").await;
    browser.fill("#address-country", "DE").await;
    browser.submit("#change-address").await;
    assert!(
        browser
            .text("#banner")
            .await
            .contains("goes to the new address"),
        "the page says what was done"
    );
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["shipping"]["address"]["line1"], "Hauptstr. 2");
    assert_eq!(order["edits"][0]["by"], "customer");
    assert_eq!(order["edits"][0]["state"], "APPLIED");
    assert_eq!(order["totals"], before["totals"], "nothing more to pay");
    assert_accessible(&browser, "the order's page after changing the address").await;
    browser.screenshot("shop-address").await;
    // The sent form again, from the browser's history: nothing more changes.
    browser.client.back().await.unwrap();
    if browser
        .client
        .find(fantoccini::Locator::Css("#change-address"))
        .await
        .is_ok()
    {
        browser.submit("#change-address").await;
    }
    assert_eq!(
        stack.order_as_staff(&id).await["edits"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // France costs more to ship to: the change waits for a payment of the whole new total.
    browser.goto(&format!("/shop/orders/{id}")).await;
    browser.fill("#address-line1", "12 Rue de Rivoli").await;
    browser.fill("#address-postal-code", "75001").await;
    browser.fill("#address-city", "Paris").await;
    browser.fill("#address-country", "FR").await;
    browser.submit("#change-address").await;
    assert_eq!(browser.path().await, format!("/shop/orders/{id}/pay"));
    let waiting = stack.order_as_staff(&id).await;
    assert_eq!(
        waiting["edits"][1]["state"], "AWAITING_PAYMENT",
        "{waiting}"
    );
    assert_eq!(waiting["hold"], "EDIT_AWAITING_PAYMENT", "{waiting}");
    let due = waiting["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(due > before["totals"]["total"]["amount"].as_i64().unwrap());
    assert!(browser.text("#pay-why").await.contains("more"), "says why");
    // A declined card: Stripe's refusal on the page, nothing changed.
    type_card(&browser, "4000000000000341").await;
    browser.click("#pay").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser.text("#pay-error").await.is_empty() {
        assert!(Instant::now() < deadline, "the refusal is never shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.path().await, format!("/shop/orders/{id}/pay"));
    assert_eq!(
        stack.order_as_staff(&id).await["edits"][1]["state"],
        "AWAITING_PAYMENT"
    );
    browser.screenshot("shop-pay").await;
    // A good card: the change applies once Stripe holds the new total, the first hold is
    // released at Stripe.
    type_card(&browser, "4242424242424242").await;
    browser.submit("#pay").await;
    let applied = wait_for(&stack, &id, "the dearer change paid", |o| {
        o["edits"][1]["state"] == "APPLIED"
    })
    .await;
    assert_eq!(applied["shipping"]["address"]["country"], "FR");
    let holds = authorizations(&applied);
    assert_eq!(holds.len(), 2, "{applied}");
    assert_ne!(holds[1].0, first, "a payment of its own");
    assert_eq!(holds[1].1, due, "the whole new total held");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let intent = stack
            .stripe_get(&format!("/v1/payment_intents/{first}"))
            .await;
        if intent["status"] == "canceled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first hold is never released: {intent}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    browser.goto(&format!("/shop/orders/{id}")).await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#pay-link"))
            .await
            .is_err(),
        "paid"
    );
    assert_accessible(&browser, "the order's page after paying for the change").await;

    let told = inbox
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .filter(|(m, _)| m["eventType"] == "oms.order.edited")
                .count()
                >= 2
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let changes = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| m["eventType"] == "oms.order.edited")
        .count();
    assert_eq!(changes, 2, "told of each change once");
}

/// A customer whose paid order waits whole for a backordered unit asks on its page for what is
/// in stock now: one edit, nothing to pay; the order reaches the warehouse with what is there,
/// the offer is gone, the page is accessible, and the customer is told once.
#[tokio::test]
async fn a_customer_waiting_for_stock_sends_what_is_there_ahead_from_the_page() {
    let stack = Stack::connect().await;
    let customer = unique("shopper");
    let inbox = Probe::customer_email(&stack, &customer).await;
    let sku = stack.create_sku("SHOPAHEAD", 1).await;
    stack.sell_past_stock(&sku, 5).await;
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut waiting = stack.order_as_staff(&id).await;
    while waiting["payment"]["status"] != "AUTHORIZED" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waiting = stack.order_as_staff(&id).await;
    }
    assert_eq!(waiting["hold"], "BACKORDERED", "{waiting}");

    let browser = Browser::open(&stack).await;
    browser.goto(&order_link(&id, 600)).await;
    assert_accessible(&browser, "the order's page offering to send what is there").await;
    browser.submit("#ship-ahead").await;
    assert!(
        browser
            .text("#banner")
            .await
            .contains("goes to our warehouse now"),
        "the page says what was done"
    );
    assert!(
        !browser.body().await.contains("Send what is here now"),
        "offered once"
    );
    browser.screenshot("shop-ahead").await;
    let started = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(started["shipping"]["shipComplete"], false);
    assert_eq!(started["shipments"][0]["lines"][0]["quantity"], 1);
    assert_eq!(started["lines"][0]["backordered"], 1);
    assert_eq!(
        started["totals"], placed.body["totals"],
        "nothing more to pay"
    );
    // The sent form again, from the browser's history: nothing more changes.
    browser.client.back().await.unwrap();
    if browser.body().await.contains("Send what is here now") {
        browser.submit("#ship-ahead").await;
    }
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["edits"].as_array().unwrap().len(), 1);
    assert_eq!(order["edits"][0]["by"], "customer");
    let told = inbox
        .collect(Duration::from_secs(60), |seen| {
            seen.iter()
                .any(|(m, _)| m["eventType"] == "oms.order.edited")
        })
        .await;
    let late = inbox.collect(Duration::from_secs(3), |_| false).await;
    let edited: Vec<_> = told
        .iter()
        .chain(late.iter())
        .filter(|(m, _)| m["eventType"] == "oms.order.edited")
        .collect();
    assert_eq!(edited.len(), 1, "told once");
    assert!(
        edited[0].0["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("what is in stock ships now"),
        "{}",
        edited[0].0
    );
}
