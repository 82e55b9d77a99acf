//! The site driven through its router as a browser drives it: a signed link, the lookup, the
//! neutral refusal, and a cancellation with and without the visit's token.

use super::*;
use axum::body::Body;
use axum::http::Request;
use oms_adapters::secrets::FixedSecret;
use oms_domain::memory::InMemoryStore;
use tower::ServiceExt;

const ORIGIN: &str = "https://shop.example";
const SECRET: &[u8] = b"a customer pages key that is long enough for HMAC";
const ORDER: &str = "01KAZ3Q6W8T2Y7X9V5N4M3K2J1";

/// The site over a store holding the sample order, reserved.
fn shop() -> Router {
    let at = Utc::now();
    let order = oms_domain::fixtures::sample_order(ORDER, "customer-ada", at)
        .reserve_all_at("BER-1", at)
        .unwrap();
    shop_with(order)
}

/// The site over a store holding `order`.
fn shop_with(order: Order) -> Router {
    shop_with_catalog(order, Vec::new())
}

/// The site over a store holding `order` and the catalog `products`.
fn shop_with_catalog(order: Order, products: Vec<oms_domain::stock::Product>) -> Router {
    let store = InMemoryStore::with_products(products);
    store.insert_order(order);
    router(Shop {
        store,
        secret: FixedSecret::new(SECRET),
        returns: ReturnPolicy::default_policy(),
        origin: ORIGIN.into(),
        locations: oms_domain::app::locations::LocationDirectory::demo(),
        checkout: None::<Checkout<oms_domain::fixtures::FakePsp>>,
    })
}

/// The site over a store holding `order`, taking payments with Stripe.js against a PSP that
/// opens a payment per idempotency key.
fn shop_taking_payments(order: Order) -> Router {
    let store = InMemoryStore::with_products(Vec::new());
    store.insert_order(order);
    router(Shop {
        store,
        secret: FixedSecret::new(SECRET),
        returns: ReturnPolicy::default_policy(),
        origin: ORIGIN.into(),
        locations: oms_domain::app::locations::LocationDirectory::demo(),
        checkout: Some(Checkout {
            provider: oms_domain::fixtures::FakePsp::default(),
            publishable_key: "pk_test_shop".into(),
            script_url: "https://js.stripe.com/v3/".into(),
            api_origin: "https://api.stripe.com".into(),
            window: chrono::Duration::hours(1),
        }),
    })
}

/// The value of the attribute `name` on the page (the first).
fn hidden_data(page: &str, name: &str) -> String {
    page.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        .to_owned()
}

/// The value of the hidden field `name` of the page's form.
fn hidden(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no field {name} in {page}"))
        .to_owned()
}

/// The visit's cookie after the sample order's signed link is opened.
async fn visit(router: &Router) -> String {
    let (_, headers, _) = send(router, get(&link(ORDER, Utc::now().timestamp() + 60), None)).await;
    cookie_of(&headers)
}

fn link(order: &str, expires: i64) -> String {
    let token = OrderLinks::from_secret(SECRET)
        .unwrap()
        .token(order, expires);
    format!("/shop/orders/{order}?t={token}")
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, origin: &str, form: &str) -> Request<Body> {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, origin);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(form.to_owned())).unwrap()
}

/// The visit's cookie as the browser sends it back.
fn cookie_of(headers: &HeaderMap) -> String {
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/shop"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_link_opens_its_order_and_leaves_the_address_bar() {
    let router = shop();
    let (status, headers, _) = send(
        &router,
        get(&link(ORDER, Utc::now().timestamp() + 60), None),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], format!("/shop/orders/{ORDER}"));
    let cookie = cookie_of(&headers);
    let (status, headers, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(ORDER));
    assert!(
        page.contains("Everything is in stock and set aside for you."),
        "{page}"
    );
    assert!(!page.contains("ada@example.com"), "no address on the page");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
}

#[tokio::test]
async fn wrong_links_numbers_and_addresses_get_one_and_the_same_refusal() {
    let router = shop();
    let now = Utc::now().timestamp();
    let other = "01KAZ3Q6W8T2Y7X9V5N4M3K2J2";
    let tampered = link(ORDER, now + 60).replace(ORDER, other);
    let find = |form: String| post("/shop/orders/find", None, ORIGIN, &form);
    // Each with the number typed, if a lookup (it is put back in its field).
    let refusals = [
        (get(&link(ORDER, now - 1), None), String::new()),
        (get(&tampered, None), String::new()),
        (get(&format!("/shop/orders/{ORDER}"), None), String::new()),
        (
            find(format!("order={ORDER}&email=eve%40example.com")),
            ORDER.to_owned(),
        ),
        (
            find(format!("order={other}&email=ada%40example.com")),
            other.to_owned(),
        ),
        (
            find("order=not-an-order&email=ada%40example.com".into()),
            "not-an-order".to_owned(),
        ),
        (find(format!("order={ORDER}&email=")), ORDER.to_owned()),
    ];
    let mut answers = Vec::new();
    for (request, typed) in refusals {
        let (status, headers, page) = send(&router, request).await;
        assert!(
            headers.get(header::SET_COOKIE).is_none(),
            "no visit for a refusal"
        );
        // The same page but for what the visitor typed themselves.
        let page = if typed.is_empty() {
            page
        } else {
            assert!(page.contains(&format!("value=\"{typed}\"")), "{page}");
            page.replace(&format!("value=\"{typed}\""), "value=\"\"")
                .replace(" aria-invalid=\"true\" aria-describedby=\"refused\"", "")
        };
        answers.push((status, page));
    }
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
    assert!(answers[0].1.contains("We could not open that order."));
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "the same refusal for each"
    );
}

#[tokio::test]
async fn the_number_and_address_open_the_order_and_its_customer_cancels_it_with_the_visits_token() {
    // Placed, not yet reserved: its cancellation releases no stock (the stock's release is the
    // API's own, tested there).
    let router = shop_with(oms_domain::fixtures::sample_order(
        ORDER,
        "customer-ada",
        Utc::now(),
    ));
    let (status, headers, _) = send(
        &router,
        post(
            "/shop/orders/find",
            None,
            ORIGIN,
            &format!("order={ORDER}&email=%20ADA%40example.com"),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the address as typed, in any case"
    );
    let cookie = cookie_of(&headers);
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    let csrf = hidden(&page, "csrf");
    let version: u64 = hidden(&page, "version").parse().unwrap();
    let path = format!("/shop/orders/{ORDER}/cancel");
    // Another site's form, or one without the visit's token: refused, nothing changed.
    let form = format!("csrf={csrf}&version={version}&reason=");
    let (status, _, _) = send(
        &router,
        post(&path, Some(&cookie), "https://evil.example", &form),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let forged = format!("csrf=00&version={version}");
    let (status, _, _) = send(&router, post(&path, Some(&cookie), ORIGIN, &forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A stale page: refused, told so, nothing changed.
    let stale = format!("csrf={csrf}&version={}", version - 1);
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &stale)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        page.contains("Your order changed while the page was open"),
        "{page}"
    );
    let (status, headers, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (_, _, page) = send(
        &router,
        get(headers[header::LOCATION].to_str().unwrap(), Some(&cookie)),
    )
    .await;
    assert!(page.contains("id=\"banner\""), "{page}");
    assert!(page.contains("data-status=\"CANCELLED\""));
    assert!(
        !page.contains(&format!("action=\"/shop/orders/{ORDER}/cancel\"")),
        "nothing left to cancel"
    );
}

#[tokio::test]
async fn the_customer_cancels_one_item_from_the_page_once_and_keeps_the_rest() {
    // Placed, not yet reserved: the units' release is the API's own, tested there.
    let router = shop_with(oms_domain::fixtures::sample_order(
        ORDER,
        "customer-ada",
        Utc::now(),
    ));
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains("name=\"units-TSHIRT-RED-M\""), "{page}");
    let (csrf, version, key) = (
        hidden(&page, "csrf"),
        hidden(&page, "version"),
        hidden(&page, "key"),
    );
    let path = format!("/shop/orders/{ORDER}/cancel-units");
    // Nothing chosen: told so, nothing changed.
    let none = format!("csrf={csrf}&version={version}&key={key}&units-TSHIRT-RED-M=0");
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &none)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Choose at least one item"), "{page}");
    // Another site's form: refused.
    let form =
        format!("csrf={csrf}&version={version}&key={key}&units-TSHIRT-RED-M=1&units-MUG-WHITE=0");
    let (status, _, _) = send(
        &router,
        post(&path, Some(&cookie), "https://evil.example", &form),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Sent twice (a double click): one change.
    for _ in 0..2 {
        let (status, headers, page) =
            send(&router, post(&path, Some(&cookie), ORIGIN, &form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        assert!(headers[header::LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=units-cancelled"));
    }
    let (_, _, page) = send(
        &router,
        get(
            &format!("/shop/orders/{ORDER}?done=units-cancelled"),
            Some(&cookie),
        ),
    )
    .await;
    assert!(page.contains("Those items are cancelled"), "{page}");
    assert!(page.contains("id=\"cancelled-items\""), "{page}");
    assert_eq!(
        page.matches("1 × TSHIRT-RED-M (").count(),
        1,
        "one change: {page}"
    );
}

#[tokio::test]
async fn repeated_guessing_of_one_order_is_refused_for_a_while() {
    let router = shop();
    for attempt in 1..=LOOKUPS_PER_CLIENT_AND_ORDER {
        let form = format!("order={ORDER}&email=guess{attempt}%40example.com");
        let (status, _, _) = send(&router, post("/shop/orders/find", None, ORIGIN, &form)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "attempt {attempt}");
    }
    // Over the allowance: refused even with the right address, and told to wait.
    let form = format!("order={ORDER}&email=ada%40example.com");
    let (status, headers, page) =
        send(&router, post("/shop/orders/find", None, ORIGIN, &form)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "900");
    assert!(page.contains("Too many attempts"));
}

#[tokio::test]
async fn the_page_is_in_the_orders_language() {
    let at = Utc::now();
    let mut request = oms_domain::fixtures::sample_request();
    let mut body = serde_json::to_value(&request.contact).unwrap();
    body["language"] = "de".into();
    request.contact = serde_json::from_value(body).unwrap();
    let catalog: Vec<_> = request
        .lines
        .iter()
        .map(|l| oms_domain::fixtures::product(l.sku.as_str(), 2500, 10))
        .collect();
    let order = Order::place(
        OrderId::parse(ORDER).unwrap(),
        oms_domain::ids::CustomerId::parse("customer-ada").unwrap(),
        &request,
        &catalog,
        &oms_domain::shipping::ShippingPolicy::default_policy(),
        at,
    )
    .unwrap();
    let router = shop_with(order);
    let (_, headers, _) = send(&router, get(&link(ORDER, at.timestamp() + 60), None)).await;
    let cookie = cookie_of(&headers);
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains("<html lang=\"de\">"));
    assert!(page.contains("Wir haben Ihre Bestellung"), "{page}");
    assert!(
        page.contains("€") && page.contains(",00"),
        "money as German writes it"
    );
}

#[tokio::test]
async fn a_delivered_item_is_sent_back_from_the_page_and_its_label_prints_for_the_visit_only() {
    let router = shop_with(oms_domain::fixtures::delivered_order(
        ORDER,
        "customer-ada",
        Utc::now(),
    ));
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains("id=\"start-return\""), "{page}");
    let (status, _, form) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/return"), Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{form}");
    let (csrf, key) = (hidden(&form, "csrf"), hidden(&form, "key"));
    let path = format!("/shop/orders/{ORDER}/returns");
    // Nothing chosen: the form again, saying so.
    let none = format!("csrf={csrf}&key={key}&quantity-0=0&reason-0=DOES_NOT_FIT");
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &none)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Choose at least one item"));
    let one =
        format!("csrf={csrf}&key={key}&quantity-0=1&reason-0=DOES_NOT_FIT&comment-0=too+small");
    let (status, headers, _) = send(&router, post(&path, Some(&cookie), ORIGIN, &one)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Sent twice (the same form's key): still one return.
    send(&router, post(&path, Some(&cookie), ORIGIN, &one)).await;
    let (_, _, page) = send(
        &router,
        get(headers[header::LOCATION].to_str().unwrap(), Some(&cookie)),
    )
    .await;
    let rma = format!("RMA-{ORDER}-1");
    assert!(page.contains(&format!("id=\"return-{rma}\"")), "{page}");
    assert!(!page.contains(&format!("RMA-{ORDER}-2")), "one return");
    assert!(page.contains("Approved: print the label"), "{page}");
    let label = format!("/shop/orders/{ORDER}/returns/{rma}/label");
    let (status, headers, _) = send(&router, get(&label, Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    let (status, _, _) = send(&router, get(&label, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no label without the visit");
}

/// The form offers the line's variants in stock (itself first, as "the same item again"; a
/// dearer one with what it costs more) instead of a refund; the one chosen is reserved by the
/// policy's approval and shown.
#[tokio::test]
async fn a_delivered_item_is_exchanged_for_another_size_from_the_page() {
    use oms_domain::fixtures::product;
    let mut large = product("TSHIRT-RED-L", 2500, 1);
    large.name = "T-shirt, red, size L".into();
    let router = shop_with_catalog(
        oms_domain::fixtures::delivered_order(ORDER, "customer-ada", Utc::now()),
        vec![
            product("TSHIRT-RED-M", 2500, 4),
            large,
            product("TSHIRT-RED-XL", 2900, 3),
            product("TSHIRT-RED-S", 2500, 0),
            product("MUG-WHITE", 1200, 5),
            product("TSHIRT-BLUE-M", 2500, 5),
        ],
    );
    let cookie = visit(&router).await;
    let (_, _, form) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/return"), Some(&cookie)),
    )
    .await;
    let choices = form
        .split("<select id=\"exchange-0\"")
        .nth(1)
        .and_then(|rest| rest.split("</select>").next())
        .unwrap_or_else(|| panic!("no exchange choice: {form}"));
    assert!(
        choices.contains(">A refund</option>")
            && choices.contains("value=\"TSHIRT-RED-M\">The same item again<")
            && choices.contains("value=\"TSHIRT-RED-L\">T-shirt, red, size L<"),
        "{choices}"
    );
    assert!(
        choices.contains(
            "value=\"TSHIRT-RED-XL\">TSHIRT-RED-XL (€4.00 more each, paid before it ships)<"
        ),
        "a dearer size, its difference said: {choices}"
    );
    assert!(
        !choices.contains("TSHIRT-RED-S\""),
        "none in stock: {choices}"
    );
    let (csrf, key) = (hidden(&form, "csrf"), hidden(&form, "key"));
    // A second tab's form, opened while the size L was still there.
    let (_, _, second_tab) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/return"), Some(&cookie)),
    )
    .await;
    let path = format!("/shop/orders/{ORDER}/returns");
    // An item of the same price that is no variant of the shirt: not an exchange the page
    // offered; refused, with what was chosen put back.
    let unrelated = format!(
        "csrf={csrf}&key={key}&quantity-0=1&reason-0=DOES_NOT_FIT&exchange-0=TSHIRT-BLUE-M&comment-0=too+tight"
    );
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &unrelated)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("no longer in stock"), "{page}");
    assert!(
        page.contains("<option value=\"1\" selected>1</option>"),
        "{page}"
    );
    assert!(page.contains("value=\"DOES_NOT_FIT\" selected"), "{page}");
    assert!(page.contains("value=\"too tight\""), "{page}");
    let one =
        format!("csrf={csrf}&key={key}&quantity-0=1&reason-0=DOES_NOT_FIT&exchange-0=TSHIRT-RED-L");
    let (status, headers, _) = send(&router, post(&path, Some(&cookie), ORIGIN, &one)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = send(
        &router,
        get(headers[header::LOCATION].to_str().unwrap(), Some(&cookie)),
    )
    .await;
    assert!(
        page.contains("exchanged for T-shirt, red, size L"),
        "{page}"
    );
    assert!(page.contains("Approved: print the label"), "{page}");

    // The second tab asks for the size L too: its one unit is reserved for the first return,
    // so it is no longer offered; refused, the form shown again with what was chosen.
    let (csrf, key) = (hidden(&second_tab, "csrf"), hidden(&second_tab, "key"));
    let again =
        format!("csrf={csrf}&key={key}&quantity-0=1&reason-0=DOES_NOT_FIT&exchange-0=TSHIRT-RED-L");
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &again)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("no longer in stock"), "{page}");
    assert!(
        !page.contains("TSHIRT-RED-L"),
        "sold out, not offered: {page}"
    );

    // The other shirt for the dearer size: opened as offered, its difference paid before the
    // replacement ships.
    let (_, _, form) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/return"), Some(&cookie)),
    )
    .await;
    let (csrf, key) = (hidden(&form, "csrf"), hidden(&form, "key"));
    let dearer = format!(
        "csrf={csrf}&key={key}&quantity-0=1&reason-0=DOES_NOT_FIT&exchange-0=TSHIRT-RED-XL"
    );
    let (status, headers, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &dearer)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (_, _, page) = send(
        &router,
        get(headers[header::LOCATION].to_str().unwrap(), Some(&cookie)),
    )
    .await;
    assert!(page.contains(&format!("RMA-{ORDER}-2")), "{page}");
    assert!(page.contains("exchanged for TSHIRT-RED-XL"), "{page}");
}

/// A customer on a shared computer ends the visit: the browser is told to drop its cookie, the
/// lookup says so, and the form works only with the visit's own token from the site's origin.
#[tokio::test]
async fn a_visit_is_forgotten_on_the_customers_request() {
    let router = shop();
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains("action=\"/shop/forget\""), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _, _) = send(
        &router,
        post("/shop/forget", Some(&cookie), ORIGIN, "csrf=forged"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not the visit's token");
    let (status, _, _) = send(
        &router,
        post(
            "/shop/forget",
            Some(&cookie),
            "https://elsewhere.example",
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not from the site");
    let (status, headers, _) = send(
        &router,
        post(
            "/shop/forget",
            Some(&cookie),
            ORIGIN,
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let dropped = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        dropped.starts_with(&format!("{VISIT_COOKIE}=")) && dropped.contains("Max-Age=0"),
        "{dropped}"
    );
    let (_, _, page) = send(
        &router,
        get(headers[header::LOCATION].to_str().unwrap(), None),
    )
    .await;
    assert!(
        page.contains("This browser no longer shows your orders."),
        "{page}"
    );
}

/// The lookup page from the event API Gateway hands over (`events/customer-pages/find-page.json`),
/// in the browser's language.
#[tokio::test]
async fn the_lookup_answers_api_gateways_event_in_the_browsers_language() {
    let json = oms_domain::fixtures::event_text("customer-pages/find-page.json");
    let request = lambda_http::request::from_str(&json).expect("an API Gateway event");
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, Body::from(body.to_vec()));
    let (status, _, page) = send(&shop(), request).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<html lang=\"de\">"), "{page}");
    assert!(page.contains("action=\"/shop/orders/find\""), "{page}");
}

#[tokio::test]
async fn a_dearer_address_for_an_order_already_paid_is_refused_as_dearer_not_as_too_late() {
    let at = Utc::now();
    let order = oms_domain::fixtures::sample_order(ORDER, "customer-ada", at)
        .reserve_all_at("BER-1", at)
        .unwrap()
        .captured_for_test(at);
    let router = shop_with(order);
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    let (csrf, version, key) = (
        hidden(&page, "csrf"),
        hidden(&page, "version"),
        hidden(&page, "key"),
    );
    let form = format!(
        "csrf={csrf}&version={version}&key={key}&name=Ada+Lovelace&line1=1+Rue+de+Rivoli\
         &postalCode=75001&city=Paris&country=fr"
    );
    let (status, _, page) = send(
        &router,
        post(
            &format!("/shop/orders/{ORDER}/address"),
            Some(&cookie),
            ORIGIN,
            &form,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("costs more"), "{page}");
    assert!(!page.contains("no longer be sent elsewhere"), "{page}");
}

#[tokio::test]
async fn the_customer_sends_the_order_elsewhere_from_the_page_once_but_not_somewhere_dearer() {
    // Its money held: a dearer address would need a new authorization the page does not take.
    let at = Utc::now();
    let order = oms_domain::fixtures::sample_order(ORDER, "customer-ada", at)
        .reserve_all_at("BER-1", at)
        .unwrap()
        .authorized_for_test(at);
    let router = shop_with(order);
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains("id=\"address-form\""), "{page}");
    let (csrf, version, key) = (
        hidden(&page, "csrf"),
        hidden(&page, "version"),
        hidden(&page, "key"),
    );
    let path = format!("/shop/orders/{ORDER}/address");
    let form = |street: &str, country: &str| {
        format!(
            "csrf={csrf}&version={version}&key={key}&name=Ada+Lovelace&line1={street}\
             &postalCode=10115&city=Berlin&country={country}"
        )
    };
    // France costs more to ship to: refused, saying so, nothing changed.
    let (status, _, page) = send(
        &router,
        post(&path, Some(&cookie), ORIGIN, &form("1+Rue+de+Rivoli", "fr")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("costs more"), "{page}");
    // Not a country: named as an incomplete address.
    let (status, _, page) = send(
        &router,
        post(&path, Some(&cookie), ORIGIN, &form("Hauptstr.+2", "ZZZ")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("whole address"), "{page}");
    // Another street in Berlin, sent twice: one change.
    for _ in 0..2 {
        let (status, headers, page) = send(
            &router,
            post(&path, Some(&cookie), ORIGIN, &form("Hauptstr.+2", "de")),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        assert!(headers[header::LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=address-changed"));
    }
    let (_, _, page) = send(
        &router,
        get(
            &format!("/shop/orders/{ORDER}?done=address-changed"),
            Some(&cookie),
        ),
    )
    .await;
    assert!(page.contains("goes to the new address"), "{page}");
    assert!(page.contains("value=\"Hauptstr. 2\""), "{page}");
    // The page it was sent from is out of date now: refused, nothing changed.
    let other_key = format!(
        "csrf={csrf}&version={version}&key=another&name=Ada+Lovelace&line1=Elsewhere+1\
         &postalCode=10115&city=Berlin&country=DE"
    );
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &other_key)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("changed while the page was open"), "{page}");
}

/// An order waiting whole for a backordered mug, paid for: its page offers to send what is in
/// stock now. Sent twice, one edit; the order no longer waits, the offer is gone, and a page
/// read before that is refused, saying so.
#[tokio::test]
async fn the_customer_sends_what_is_in_stock_ahead_from_the_page_once() {
    let at = Utc::now();
    let placed = oms_domain::fixtures::sample_order(ORDER, "customer-ada", at);
    let shirt = placed.lines[0].sku.clone();
    let mug = placed.lines[1].sku.clone();
    let order = placed
        .reserve_backordering(
            &oms_domain::routing::Plan::one_location(
                "BER-1",
                [(&shirt, oms_domain::quantity::Quantity::new(2).unwrap())],
            ),
            &[oms_domain::order::Backordered {
                sku: mug,
                units: 1,
                location: "BER-1".into(),
                promised_on: None,
            }],
            at,
        )
        .unwrap()
        .authorized_for_test(at);
    assert_eq!(order.hold(), Some("BACKORDERED"));
    let router = shop_with(order);
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains("id=\"ship-ahead-form\""), "{page}");
    let form = format!(
        "csrf={}&version={}&key={}",
        hidden(&page, "csrf"),
        hidden(&page, "version"),
        hidden(&page, "key")
    );
    let path = format!("/shop/orders/{ORDER}/ship-ahead");
    for _ in 0..2 {
        let (status, headers, page) =
            send(&router, post(&path, Some(&cookie), ORIGIN, &form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        assert!(headers[header::LOCATION]
            .to_str()
            .unwrap()
            .ends_with("done=shipping-ahead"));
    }
    let (_, _, page) = send(
        &router,
        get(
            &format!("/shop/orders/{ORDER}?done=shipping-ahead"),
            Some(&cookie),
        ),
    )
    .await;
    assert!(page.contains("goes to our warehouse now"), "{page}");
    assert!(page.contains("follows in a parcel of its own"), "{page}");
    assert!(
        !page.contains("id=\"ship-ahead-form\""),
        "offered once: {page}"
    );
    // Without the page's token, or from a page read before: nothing changes.
    let (status, _, _) = send(
        &router,
        post(&path, Some(&cookie), ORIGIN, "csrf=forged&version=1&key=k"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let stale = form.replacen("key=shop", "key=another-shop", 1);
    let (status, _, page) = send(&router, post(&path, Some(&cookie), ORIGIN, &stale)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("changed while the page was open"), "{page}");
}

/// Where the site takes payments, a dearer address for an order whose money is held is not
/// refused: the change waits for a payment of the whole new total, and the payment page comes
/// next, with Stripe.js's card fields and the payment the system opened (the same one however
/// often it is shown); the page's policy lets Stripe's script, frames and API in, and no other.
/// Sent twice, one change. An order with nothing to pay has no payment page.
#[tokio::test]
async fn a_dearer_address_waits_for_its_payment_taken_on_the_payment_page() {
    let at = Utc::now();
    let order = oms_domain::fixtures::sample_order(ORDER, "customer-ada", at)
        .reserve_all_at("BER-1", at)
        .unwrap()
        .authorized_for_test(at);
    let before = oms_domain::notifications::format_money(order.totals.total, "en");
    let router = shop_taking_payments(order);
    let cookie = visit(&router).await;
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(!page.contains("id=\"pay-link\""), "paid: nothing to pay");
    // Paid for: no payment page, the order's instead.
    let (status, headers, _) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/pay"), Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], format!("/shop/orders/{ORDER}"));

    let form = format!(
        "csrf={}&version={}&key={}&name=Ada+Lovelace&line1=1+Rue+de+Rivoli\
         &postalCode=75001&city=Paris&country=fr",
        hidden(&page, "csrf"),
        hidden(&page, "version"),
        hidden(&page, "key"),
    );
    for _ in 0..2 {
        let (status, headers, page) = send(
            &router,
            post(
                &format!("/shop/orders/{ORDER}/address"),
                Some(&cookie),
                ORIGIN,
                &form,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(
            headers[header::LOCATION],
            format!("/shop/orders/{ORDER}/pay")
        );
    }
    let (status, headers, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/pay"), Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let total = page
        .split("id=\"pay-amount\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the amount to pay")
        .to_owned();
    assert_ne!(total, before, "France costs more to ship to: the new total");
    assert!(page.contains("data-key=\"pk_test_shop\""), "{page}");
    // The payment of the change (one per change: the form sent twice made one).
    let secret = hidden_data(&page, "data-secret");
    assert!(
        secret.starts_with("pi_") && secret.ends_with("-INTENT_secret_x"),
        "{secret}"
    );
    assert!(
        // Stripe's own script (the template escapes its slashes, as every attribute's).
        page.contains("<script src=\"https:&#x2f;&#x2f;js.stripe.com&#x2f;v3&#x2f;\"></script>"),
        "{page}"
    );
    assert!(
        page.contains("<script src=\"/shop/assets/pay.js?v="),
        "{page}"
    );
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self' https://js.stripe.com https://*.js.stripe.com;"),
        "{policy}"
    );
    assert!(
        policy.contains(
            "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com;"
        ),
        "{policy}"
    );
    assert!(
        policy.contains("connect-src https://api.stripe.com;"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // The order's page offers the payment too, with the new total.
    let (_, headers, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(page.contains(&format!("Pay {total} now")), "{page}");
    assert!(
        page.contains(&format!("id=\"order-total\">{total}<")),
        "{page}"
    );
    // Back from paying, before Stripe's webhook reached the order: thanked, not asked again.
    let (_, _, paid) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}?done=paid"), Some(&cookie)),
    )
    .await;
    assert!(paid.contains("your payment was sent"), "{paid}");
    assert!(!paid.contains("pay-link"), "{paid}");
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        oms_adapters::web::CONTENT_SECURITY_POLICY,
        "no script on the order's page"
    );

    // The script, kept by its digest.
    let (status, headers, script) = send(&router, get("/shop/assets/pay.js", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.contains("confirmCardPayment"));
}

/// A site that takes no payments shows no payment page: the one neutral refusal.
#[tokio::test]
async fn a_site_taking_no_payments_has_no_payment_page() {
    let router = shop();
    let cookie = visit(&router).await;
    let (status, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}/pay"), Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("action=\"/shop/orders/find\""), "{page}");
    let (_, _, page) = send(
        &router,
        get(&format!("/shop/orders/{ORDER}"), Some(&cookie)),
    )
    .await;
    assert!(!page.contains("pay-link"), "{page}");
}
