//! The console's handler tests: every screen and form through the router, on the in-memory
//! store.

use super::*;
use axum::body::Body;
use axum::http::Request;
use oms_adapters::secrets::FixedSecret;
use oms_domain::fixtures;
use oms_domain::memory::InMemoryStore;
use tower::ServiceExt;

const SECRET: &[u8] = b"the console's secret in the handler tests, long enough";
const ORIGIN: &str = "http://127.0.0.1:3000";
const ORDER: &str = "01JDAAAAAAAAAAAAAAAAAAAAAA";

fn console(store: InMemoryStore) -> Router {
    router(Console {
        store,
        shipping: ShippingPolicy::default_policy(),
        backorder_alert: chrono::Duration::days(14),
        locations: oms_domain::app::locations::LocationDirectory::demo(),
        returns: ReturnPolicy::default_policy(),
        payments: Default::default(),
        health: Default::default(),
        secret: FixedSecret::new(SECRET),
        signin: SignIn::new(
            "http://127.0.0.1:9/oidc",
            "oms-console",
            "http://127.0.0.1:3000/console",
        )
        .unwrap(),
        dead_letters: None,
        pages: Pages::new(),
        origin: ORIGIN.into(),
    })
}

fn session(scopes: &[&str]) -> Session {
    Session {
        sub: "staff-ada".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_at: Utc::now() + chrono::Duration::hours(1),
        nonce: "nonce".into(),
    }
}

/// The `Cookie` header a browser sends back for `session`.
fn cookie(session: &Session) -> String {
    let keys = SessionKeys::derive(SECRET, crate::session::KEYS_PURPOSE).unwrap();
    let set = keys.write(SESSION_COOKIE, session, BASE, 60);
    set.split(';').next().unwrap().to_owned()
}

fn csrf(session: &Session) -> String {
    SessionKeys::derive(SECRET, crate::session::KEYS_PURPOSE)
        .unwrap()
        .csrf_token(&session.nonce)
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn get(path: &str, session: Option<&Session>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(s) = session {
        request = request.header(header::COOKIE, cookie(s));
    }
    request.body(Body::empty()).unwrap()
}

fn post(path: &str, session: &Session, origin: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie(session))
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

/// An order in the warehouse, waiting to be picked.
fn in_the_warehouse() -> InMemoryStore {
    let at = Utc::now();
    let order = fixtures::sample_order(ORDER, "customer-ada", at)
        .reserve_all_at("BER-1", at)
        .unwrap()
        .authorized_for_test(at)
        .start_fulfillment("BER-1", at)
        .unwrap();
    let store = InMemoryStore::default();
    store.insert_order(order);
    store
}

#[tokio::test]
async fn without_a_session_every_screen_sends_to_sign_in() {
    let app = console(InMemoryStore::default());
    for path in [
        "/console/orders",
        "/console/warehouse",
        "/console/exceptions",
        "/console/inventory",
    ] {
        let (status, headers, _) = call(&app, get(path, None)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        // With the page to come back to once signed in.
        let back = path.replace('/', "%2F");
        assert_eq!(
            headers[header::LOCATION],
            format!("/console/sign-in?next={back}").as_str()
        );
    }
    // Without an earlier action's banner word: the request that asked was not done.
    let (_, headers, _) = call(&app, get("/console/orders?done=cancelled", None)).await;
    assert_eq!(
        headers[header::LOCATION],
        "/console/sign-in?next=%2Fconsole%2Forders"
    );
    // Only the console's own pages are come back to.
    for path in [
        "/console/orders",
        "/console/orders?status=RESERVED",
        "/console/inventory/MUG-1#history-h",
    ] {
        assert!(crate::session::returnable(path), "{path}");
    }
    for path in [
        "https://evil.example/console/",
        "//evil.example/console/",
        "/console//evil.example",
        "/console/sign-in?next=/console/orders",
        "/console/auth/callback",
        "/elsewhere",
        // A form's target answers only its form; a control character is no path.
        "/console/orders/search",
        "/console/orders/01J/cancel",
        "/console/sign-out",
        "/console/orders\r\nSet-Cookie:x",
        "/console/orders/\u{e9}",
    ] {
        assert!(!crate::session::returnable(path), "{path}");
    }
    // A cookie this console did not write is no session either.
    let forged = Request::get("/console/orders")
        .header(
            header::COOKIE,
            format!("{SESSION_COOKIE}=eyJzdWIiOiJhZGEifQ"),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, forged).await.0, StatusCode::SEE_OTHER);
    let expired = Session {
        expires_at: Utc::now() - chrono::Duration::seconds(1),
        ..session(&[SCOPE_ADMIN])
    };
    assert_eq!(
        call(&app, get("/console/orders", Some(&expired))).await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn screens_need_their_scopes_and_every_page_is_hardened() {
    let app = console(in_the_warehouse());
    let admin = session(&[SCOPE_ADMIN, SCOPE_WAREHOUSE]);
    let packer = session(&[SCOPE_WAREHOUSE]);
    let customer = session(&[]);
    for path in [
        "/console/orders",
        "/console/returns",
        "/console/exceptions",
        "/console/inventory",
        "/console/locations",
        "/console/warehouse",
        &format!("/console/orders/{ORDER}"),
    ] {
        let (status, headers, body) = call(&app, get(path, Some(&admin))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            oms_adapters::web::CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(body.contains("staff-ada"), "{path} names who is signed in");
    }
    for path in ["/console/orders", "/console/exceptions", "/console/returns"] {
        assert_eq!(
            call(&app, get(path, Some(&packer))).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(
        call(&app, get("/console/warehouse", Some(&packer))).await.0,
        StatusCode::OK
    );
    for path in [
        "/console/warehouse",
        "/console/inventory",
        "/console/orders",
    ] {
        assert_eq!(
            call(&app, get(path, Some(&customer))).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let (_, _, body) = call(&app, get("/console/warehouse", Some(&packer))).await;
    assert!(body.contains(ORDER), "the pick list shows the order");
    assert!(
        !body.contains("/console/exceptions"),
        "a packer is not offered the admin screens"
    );
}

/// Reading a dead-letter queue holds its messages from other readers: a link from another site
/// may not do it (no queues are configured here, so a read from the console finds none).
#[tokio::test]
async fn dead_letters_are_not_read_from_a_link_on_another_site() {
    let app = console(in_the_warehouse());
    let admin = session(&[SCOPE_ADMIN]);
    let path = "/console/exceptions/dead-letters/ReservationsDeadLetterQueue";
    let mut from_elsewhere = get(path, Some(&admin));
    from_elsewhere
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(call(&app, from_elsewhere).await.0, StatusCode::FORBIDDEN);
    let mut from_the_console = get(path, Some(&admin));
    from_the_console
        .headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    assert_eq!(call(&app, from_the_console).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_form_needs_the_consoles_origin_its_csrf_token_and_a_fresh_version() {
    let store = in_the_warehouse();
    let app = console(store);
    let packer = session(&[SCOPE_WAREHOUSE]);
    let pick = format!("/console/warehouse/{ORDER}/pick");
    let token = csrf(&packer);
    let (status, _, _) = call(
        &app,
        post(
            &pick,
            &packer,
            "https://evil.example",
            &format!("csrf={token}&version=5"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another origin");
    let (status, _, _) = call(&app, post(&pick, &packer, ORIGIN, "version=5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let other = Session {
        nonce: "another".into(),
        ..packer.clone()
    };
    let (status, _, _) = call(
        &app,
        post(
            &pick,
            &packer,
            ORIGIN,
            &format!("csrf={}&version=5", csrf(&other)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another session's token");
    let (status, _, body) = call(
        &app,
        post(&pick, &packer, ORIGIN, &format!("csrf={token}&version=7")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a stale page: {body}");
    assert!(body.contains("changed since your page was loaded"));
    let version = {
        let (_, _, page) = call(&app, get("/console/warehouse", Some(&packer))).await;
        let at = page.find("name=\"version\" value=\"").unwrap() + 22;
        page[at..].split('"').next().unwrap().to_owned()
    };
    let (status, headers, _) = call(
        &app,
        post(
            &pick,
            &packer,
            ORIGIN,
            &format!("csrf={token}&version={version}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let next = format!("/console/warehouse?order={ORDER}-1&location=BER-1&done=picked");
    assert_eq!(headers[header::LOCATION], next.as_str());
    let (_, _, page) = call(&app, get(&next, Some(&packer))).await;
    assert!(page.contains("Picked."), "the banner says what was done");
    assert!(
        page.contains("name=\"weightGrams\""),
        "the order now waits to be packed"
    );
}

#[tokio::test]
async fn a_cancel_form_whose_order_changed_before_its_write_is_refused_by_the_stores_condition() {
    let store = in_the_warehouse();
    let shown = store.stored(ORDER);
    // The page showed `shown`; a packer picks the order after the cancel form's read of it and
    // before its write.
    let picked = shown.pick(1, "packer-2", Utc::now()).unwrap();
    store.interleave_after_next_read(move |orders| {
        orders.insert(picked.id.clone(), picked);
    });
    let app = console(store);
    let admin = session(&[SCOPE_ADMIN]);
    let (status, _, body) = call(
        &app,
        post(
            &format!("/console/orders/{ORDER}/cancel"),
            &admin,
            ORIGIN,
            &format!(
                "csrf={}&version={}&reason=ordered+twice",
                csrf(&admin),
                shown.version
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("changed since your page was loaded"),
        "{body}"
    );
    let (_, _, page) = call(&app, get(&format!("/console/orders/{ORDER}"), Some(&admin))).await;
    assert!(page.contains("FULFILLING"), "nothing was cancelled");
    assert!(!page.contains("CANCELLED"), "nothing was cancelled");
}

#[tokio::test]
async fn staff_add_a_location_and_change_one_on_the_version_their_page_showed() {
    let app = console(InMemoryStore::default());
    let admin = session(&[SCOPE_ADMIN]);
    let packer = session(&[SCOPE_WAREHOUSE]);
    let (status, _, page) = call(&app, get("/console/locations", Some(&packer))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Amsterdam warehouse") && page.contains("BER-STORE-1"));
    assert!(
        !page.contains("add-location-form"),
        "a packer reads, does not change"
    );
    let (_, _, page) = call(&app, get("/console/locations", Some(&admin))).await;
    assert!(page.contains("id=\"add-location-form\""));

    let token = csrf(&admin);
    let hamburg = "name=Hamburg+warehouse&kind=WAREHOUSE&country=DE&postalCode=20457\
                   &zone=domestic&handlingDays=1&cutoffHourUtc=15&priority=4&ships=on&returns=on";
    let form = format!("csrf={token}&version=0&id=ham-1&{hamburg}");
    let (status, headers, body) =
        call(&app, post("/console/locations", &admin, ORIGIN, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let next = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(
        next,
        "/console/locations?done=location-added#location-HAM-1"
    );
    let (_, _, page) = call(&app, get(&next, Some(&admin))).await;
    assert!(page.contains("The location was added"));
    assert!(page.contains("id=\"location-HAM-1\""));
    assert!(page.contains("name=\"version\" value=\"1\""));

    // A page loaded before that change is refused, and changes nothing.
    let stale = format!("csrf={token}&version=0&{hamburg}&priority=0");
    let (status, _, body) = call(
        &app,
        post("/console/locations/BER-1", &admin, ORIGIN, &stale),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("changed since your page was loaded"));
    // A bad field is named; a packer may not change a location.
    let bad = format!(
        "csrf={token}&version=1&id=HAM-2&{}",
        hamburg.replace("=4", "=x")
    );
    let (status, _, body) = call(&app, post("/console/locations", &admin, ORIGIN, &bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("priority"), "{body}");
    let by_packer = format!("csrf={}&version=1&{hamburg}", csrf(&packer));
    let (status, _, _) = call(
        &app,
        post("/console/locations/HAM-1", &packer, ORIGIN, &by_packer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Retiring a location: nothing checked, so it can do nothing.
    let retire = format!(
        "csrf={token}&version=1&name=Hamburg+warehouse&kind=WAREHOUSE&country=DE&postalCode=20457\
         &zone=domestic&handlingDays=1&cutoffHourUtc=15&priority=4"
    );
    let (status, _, _) = call(
        &app,
        post("/console/locations/HAM-1", &admin, ORIGIN, &retire),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = call(&app, get("/console/locations", Some(&admin))).await;
    assert!(page.contains("nothing (retired)"));
}

#[tokio::test]
async fn pages_link_the_stylesheet_by_its_digest_and_browsers_keep_it() {
    let app = console(InMemoryStore::default());
    let admin = session(&[SCOPE_ADMIN]);
    let (_, headers, page) = call(&app, get("/console/orders", Some(&admin))).await;
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "no-store",
        "a page is never stored"
    );
    let href = crate::pages::stylesheet_href();
    assert!(page.contains(&format!("href=\"{href}\"")), "{page}");
    let (status, headers, css) = call(&app, get(href, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(css, crate::pages::STYLESHEET);
    // An old digest, or none, is the current stylesheet, not kept.
    for old in [
        "/console/assets/console.css",
        "/console/assets/console.css?v=000000000000",
    ] {
        let (status, headers, _) = call(&app, get(old, None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{old}");
    }
}

#[tokio::test]
async fn an_error_page_keeps_the_navigation_leads_home_and_shows_what_was_typed() {
    let store = in_the_warehouse();
    let app = console(store);
    let packer = session(&[SCOPE_WAREHOUSE]);
    // The console's address leads each role to its own screen.
    let (status, headers, _) = call(&app, get("/console", Some(&packer))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/warehouse");
    let (_, headers, _) = call(&app, get("/console", None)).await;
    assert_eq!(headers[header::LOCATION], "/console/sign-in");

    // A screen the packer may not open: the navigation stays, and "back" is their pick list.
    let (status, _, page) = call(&app, get("/console/orders", Some(&packer))).await;
    // Attributes are escaped as the templates escape every value (`/` as `&#x2f;`).
    let page = page.replace("&#x2f;", "/");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("aria-label=\"Screens\""), "{page}");
    assert!(
        page.contains("href=\"/console/warehouse\" id=\"back-home\""),
        "{page}"
    );

    // A form larger than the console takes: refused unread, inside the layout all the same.
    let token = csrf(&packer);
    let huge = format!("csrf={token}&note={}", "x".repeat(100 * 1024));
    let (status, _, page) = call(
        &app,
        post(
            &format!("/console/warehouse/{ORDER}/pack"),
            &packer,
            ORIGIN,
            &huge,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.contains("aria-label=\"Screens\""), "{page}");
    assert!(page.contains("larger than the console takes"), "{page}");

    // A pack form with a weight that is no number: refused, and what was typed is shown with a
    // way back to the page it came from.
    let token = csrf(&packer);
    let mut request = post(
        &format!("/console/warehouse/{ORDER}/pack"),
        &packer,
        ORIGIN,
        &format!("csrf={token}&version=2&location=BER-1&weightGrams=heavy&lengthCm=30&widthCm=20&heightCm=10"),
    );
    request.headers_mut().insert(
        header::REFERER,
        HeaderValue::from_str(&format!("{ORIGIN}/console/warehouse?order={ORDER}")).unwrap(),
    );
    let (status, _, page) = call(&app, request).await;
    let page = page
        .replace("&#x2f;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x3f;", "?");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("aria-label=\"Screens\""), "{page}");
    assert!(
        page.contains("<dt>weightGrams</dt><dd>heavy</dd>"),
        "{page}"
    );
    assert!(page.contains("<dt>lengthCm</dt><dd>30</dd>"), "{page}");
    assert!(
        !page.contains("<dt>csrf</dt>") && !page.contains("<dt>version</dt>"),
        "the form's machinery is not shown back"
    );
    assert!(
        page.contains(&format!(
            "href=\"/console/warehouse?order={ORDER}\" id=\"back-to-page\""
        )),
        "{page}"
    );
    // A referer of another origin is no way back.
    let mut request = post(
        &format!("/console/warehouse/{ORDER}/pack"),
        &packer,
        ORIGIN,
        &format!("csrf={token}&version=2&weightGrams=heavy"),
    );
    request.headers_mut().insert(
        header::REFERER,
        HeaderValue::from_static("https://evil.example/console/orders"),
    );
    let (status, _, page) = call(&app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("aria-label=\"Screens\""),
        "re-rendered: {page}"
    );
    assert!(!page.contains("back-to-page"), "{page}");
    // Nor is a look-alike host that starts with the console's origin.
    let mut request = post(
        &format!("/console/warehouse/{ORDER}/pack"),
        &packer,
        ORIGIN,
        &format!("csrf={token}&version=2&weightGrams=heavy"),
    );
    request.headers_mut().insert(
        header::REFERER,
        HeaderValue::from_str(&format!("{ORIGIN}.evil.example/console/orders")).unwrap(),
    );
    let (_, _, page) = call(&app, request).await;
    assert!(!page.contains("back-to-page"), "{page}");
}

#[tokio::test]
async fn a_refused_form_comes_back_on_its_own_page_with_what_was_typed_and_why() {
    let app = console(in_the_warehouse());
    let admin = session(&[SCOPE_ADMIN, SCOPE_WAREHOUSE]);
    let token = csrf(&admin);
    let order_page = format!("{ORIGIN}/console/orders/{ORDER}");
    let version = {
        let (_, _, page) = call(&app, get(&format!("/console/orders/{ORDER}"), Some(&admin))).await;
        let at = page.find("name=\"version\" value=\"").unwrap() + 22;
        page[at..].split('"').next().unwrap().to_owned()
    };
    // A cancellation whose reason is too long: the order's page again, the reason as typed in
    // its field and why beside it, the status a refusal's.
    let reason = "r".repeat(501);
    let mut request = post(
        &format!("/console/orders/{ORDER}/cancel"),
        &admin,
        ORIGIN,
        &format!("csrf={token}&version={version}&form=cancel&reason={reason}"),
    );
    request
        .headers_mut()
        .insert(header::REFERER, HeaderValue::from_str(&order_page).unwrap());
    let (status, _, page) = call(&app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("id=\"form-refused\""), "{page}");
    assert!(
        page.contains("id=\"order-status\""),
        "the order's page: {page}"
    );
    assert!(page.contains(&format!("value=\"{reason}\"")), "{page}");
    assert!(
        page.contains("<span class=\"field-error\">reason: "),
        "{page}"
    );
    assert!(
        page.contains("with what you entered back in its form"),
        "{page}"
    );
    // Nothing was written: the order keeps its version.
    let (_, _, again) = call(&app, get(&format!("/console/orders/{ORDER}"), Some(&admin))).await;
    assert!(again.contains(&format!("name=\"version\" value=\"{version}\"")));
    assert!(
        !again.contains("form-refused"),
        "a page read normally has no refusal"
    );

    // An edit adding no units of an item: the reason beside the field it names, whose name
    // has a path (`addLines[0].quantity`).
    let mut request = post(
        &format!("/console/orders/{ORDER}/edits"),
        &admin,
        ORIGIN,
        &format!(
            "csrf={token}&version={version}&form=edit&key=k-edit&method=STANDARD&reason=x\
             &add-sku=A&add-quantity=0"
        ),
    );
    request
        .headers_mut()
        .insert(header::REFERER, HeaderValue::from_str(&order_page).unwrap());
    let (status, _, page) = call(&app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("<span class=\"field-error\">addLines[0].quantity: "),
        "{page}"
    );

    // A stale pick: the pick list as it is now, with the refusal above it.
    let mut request = post(
        &format!("/console/warehouse/{ORDER}/pick"),
        &admin,
        ORIGIN,
        &format!("csrf={token}&version=99&form=pick-{ORDER}-1&location=BER-1"),
    );
    request.headers_mut().insert(
        header::REFERER,
        HeaderValue::from_str(&format!("{ORIGIN}/console/warehouse?order={ORDER}")).unwrap(),
    );
    let (status, _, page) = call(&app, request).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        page.contains("changed since your page was loaded"),
        "{page}"
    );
    assert!(
        page.contains("The page below shows what is current now"),
        "{page}"
    );
    assert!(page.contains("Mark as picked"), "the pick list: {page}");
    // Another form on the same page is not filled with what this one sent.
    assert!(!page.contains("value=\"99\""), "{page}");
}

/// The console's address from the event API Gateway hands over (`events/staff-console/home.json`):
/// without a session, to the sign-in.
#[tokio::test]
async fn the_console_answers_api_gateways_event_with_the_sign_in() {
    let json = fixtures::event_text("staff-console/home.json");
    let request = lambda_http::request::from_str(&json).expect("an API Gateway event");
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, Body::from(body.to_vec()));
    let (status, headers, _) = call(&console(InMemoryStore::default()), request).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/sign-in");
}

/// Every word a form's redirect carries has its banner: staff always see what their action did.
#[test]
fn every_word_a_form_redirects_with_has_a_banner() {
    let sources = [
        include_str!("exceptions.rs"),
        include_str!("locations.rs"),
        include_str!("orders.rs"),
        include_str!("returns.rs"),
        include_str!("stock.rs"),
        include_str!("warehouse.rs"),
    ];
    let mut words = vec![
        // Passed through a variable: the steps of returns, purchase orders and the warehouse.
        "approved",
        "rejected",
        "received",
        "return-closed",
        "delivered",
        "closed",
        "picked",
        "packed",
        "shipped",
    ];
    for source in sources {
        for (at, _) in source.match_indices("done(") {
            // The call's arguments, up to its closing parenthesis; a literal word is the last
            // string in them.
            let mut depth = 0;
            let call: String = source[at + 4..]
                .chars()
                .take_while(|c| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth > 0
                })
                .collect();
            if let Some(word) = call
                .rsplit('"')
                .nth(1)
                .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            {
                words.push(Box::leak(word.to_owned().into_boxed_str()));
            }
        }
    }
    assert!(words.contains(&"units-cancelled") && words.contains(&"selling-saved"));
    for word in words {
        assert!(access::banner(word).is_some(), "no banner for done={word}");
    }
    assert_eq!(access::banner("bulk-picked-2-of-3").is_some(), true);
    assert_eq!(access::banner("no-such-word"), None);
}

/// A SKU with more purchase orders than a page shows: the older ones are reached, each with its
/// delivery form while open.
#[tokio::test]
async fn a_skus_older_purchase_orders_are_a_page_away_and_can_still_be_received() {
    let store = InMemoryStore::with_products([fixtures::product("A", 1000, 5)]);
    let admin = session(&[SCOPE_ADMIN, SCOPE_WAREHOUSE]);
    let caller = oms_domain::app::Caller {
        customer_id: oms_domain::ids::CustomerId::parse("staff-1").unwrap(),
        scopes: vec![SCOPE_ADMIN.into()],
    };
    let sku = oms_domain::ids::Sku::parse("A").unwrap();
    let locations = oms_domain::location::Locations::default_locations();
    let next_week = (Utc::now() + chrono::Duration::days(7)).date_naive();
    let mut ids = Vec::new();
    for n in 0..(PAGE_ROWS + 2) {
        let placed = oms_domain::app::inventory::place_purchase_order(
            &store,
            &locations,
            &caller,
            &sku,
            &oms_domain::ids::IdempotencyKey::parse(format!("po-{n}")).unwrap(),
            &serde_json::json!({"quantity": 1, "expectedOn": next_week.to_string()}),
            Utc::now(),
        )
        .await
        .unwrap();
        ids.push(placed.order.id.clone());
    }
    let app = console(store);
    let (status, _, page) = call(&app, get("/console/inventory/A", Some(&admin))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let receivable = |page: &str| -> Vec<String> {
        ids.iter()
            .filter(|id| page.contains(&format!("id=\"receive-{id}\"")))
            .cloned()
            .collect()
    };
    let first = receivable(&page);
    assert_eq!(first.len(), PAGE_ROWS as usize);
    let at = page
        .find("id=\"older-purchases\"")
        .expect("a link to older ones");
    let href = page[..at]
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (status, _, older) = call(&app, get(&href.replace("&amp;", "&"), Some(&admin))).await;
    assert_eq!(status, StatusCode::OK, "{older}");
    let rest = receivable(&older);
    assert_eq!(
        rest.len(),
        2,
        "the two older ones, each with its delivery form"
    );
    assert!(rest.iter().all(|id| !first.contains(id)));
    assert!(older.contains("Newest purchase orders"));
}
