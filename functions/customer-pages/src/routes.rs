//! Every page and form of the customer's site, and how a visitor proves an order is theirs.
//!
//! | page | path |
//! |---|---|
//! | find an order by its number and e-mail address | `GET`/`POST /shop/orders/find` |
//! | an order: where it is, what comes next, its parcels, money, history and returns | `GET /shop/orders/{id}` |
//! | cancel it before it is packed | `POST /shop/orders/{id}/cancel` |
//! | cancel some of its items before they are packed | `POST /shop/orders/{id}/cancel-units` |
//! | send it elsewhere before it is packed (dearer: paid next) | `POST /shop/orders/{id}/address` |
//! | send what is in stock ahead | `POST /shop/orders/{id}/ship-ahead` |
//! | pay what it waits for, with Stripe.js's card fields | `GET /shop/orders/{id}/pay` |
//! | forget the orders this browser opened (end the visit) | `POST /shop/forget` |
//! | choose what to send back, why, and a refund or an exchange for a variant | `GET /shop/orders/{id}/return` |
//! | ask for the return (approved at once or checked by staff, as the policy says) | `POST /shop/orders/{id}/returns` |
//! | print an approved return's label (the API's PDF) | `GET /shop/orders/{id}/returns/{rma}/label` |
//!
//! A visitor opens an order with its signed link (`?t=…`, from any message about it) or with
//! its number and the e-mail address it was placed with. Either puts the order in the visit:
//! an encrypted cookie (`HttpOnly`, `Secure`, `SameSite=Lax`, scoped to `/shop`, two hours)
//! holding the orders opened and a random nonce, and the link's token leaves the address bar at
//! once (a redirect to the order's plain address). A wrong number, a wrong address, an
//! expired or altered link and an order not in the visit all get the same refusal, with the same
//! status, so nothing tells whether an order number exists. The e-mail addresses are compared
//! as HMACs, in constant time. Lookups are counted in 15-minute windows per client (60), per
//! client and order number (5) and per order number (30): past any, the lookup answers `429`
//! until the window passes.
//!
//! Every form carries the visit's CSRF token and is refused unless it comes from the site's own
//! origin; the cancellation carries the order's version the page showed, so a stale page changes
//! nothing. Every answer is `no-store` (but the stylesheet and the payment script) with a strict
//! Content-Security-Policy; the payment page's lets Stripe's script, frames and API in.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use minijinja::context;
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::secrets::{SecretCache, SecretSource};
use oms_adapters::stripe::StripeClient;
use oms_adapters::web::{CookieKeys, OrderLinks};
use oms_domain::app::locations::LocationDirectory;
use oms_domain::app::payments::{awaits_payment, start_payment, PaymentAppError};
use oms_domain::app::returns::{cancel_order, exchange_choices, ReturnsAppError};
use oms_domain::app::Caller;
use oms_domain::ids::OrderId;
use oms_domain::notifications::{format_money, language_of};
use oms_domain::order::edits::EditState;
use oms_domain::order::returns::policy::ReturnPolicy;
use oms_domain::order::Order;
use oms_domain::ports::{
    AttemptCounter, InventoryStore, LocationStore, OrderStore, OrderTransactions, PaymentProvider,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::pages::{
    language_of_browser, page_context, pages, reasons, text, ExchangeChoice, OrderPage,
    ReturnableLine, STYLESHEET,
};

/// Where the site lives on the API.
pub const BASE: &str = "/shop";
/// The visit's cookie.
pub const VISIT_COOKIE: &str = "oms_shop";
/// How long a visit lasts.
pub const VISIT_SECONDS: i64 = 2 * 3600;
/// The most orders one visit holds: the newest are kept.
const MAX_ORDERS: usize = 10;
/// What the keys of the site's cookies are derived for.
const KEYS_PURPOSE: &str = "oms-shop";

/// The ports the pages use.
pub trait Store:
    OrderStore + InventoryStore + OrderTransactions + AttemptCounter + LocationStore + 'static
{
}
impl<
        T: OrderStore + InventoryStore + OrderTransactions + AttemptCounter + LocationStore + 'static,
    > Store for T
{
}

/// How long a window of lookups lasts, and how many one client and one order number may have
/// in it: enough for a customer who mistypes, far too few to guess (an order number has 80
/// random bits besides its time, and the address must match too).
const LOOKUP_WINDOW_SECONDS: i64 = 15 * 60;
const LOOKUPS_PER_CLIENT: u64 = 60;
/// One client's guesses at one order number.
const LOOKUPS_PER_CLIENT_AND_ORDER: u64 = 5;
/// Every client's at one order number: high enough that someone who knows a number cannot lock
/// its customer out alone, low enough that many clients together cannot guess.
const LOOKUPS_PER_ORDER: u64 = 30;

/// What the site needs, built once per cold start.
pub struct Shop<S, K, P> {
    pub store: S,
    /// The link keys, one per line: the first signs links and the visit's cookies.
    pub secret: K,
    /// The return rules (windows, what is approved at once, where returns go).
    pub returns: ReturnPolicy,
    /// The site's own origin (`https://host`): a form from any other is refused.
    pub origin: String,
    /// The locations and rate table: cancelling some items re-quotes the shipping of the rest.
    pub locations: LocationDirectory,
    /// Payments taken on the site (an order not paid yet, a change that costs more): none when
    /// no publishable key is set, and the pages then take none (a dearer address is refused).
    pub checkout: Option<Checkout<P>>,
}

/// How the site takes a payment: Stripe.js confirms the PaymentIntent the system opened with
/// the card typed into Stripe's own fields, so card data never reaches the system.
pub struct Checkout<P> {
    /// Opens the PaymentIntent, once per order and change (the JSON API's own rule).
    pub provider: P,
    /// Stripe's publishable key (`pk_…`): public by design, it only confirms.
    pub publishable_key: String,
    /// Where Stripe.js is loaded from (`https://js.stripe.com/v3/`).
    pub script_url: String,
    /// Where Stripe.js sends the card (`https://api.stripe.com`): the page's CSP allows it.
    pub api_origin: String,
    /// How long a change that costs more waits for its payment before it is undone.
    pub window: chrono::Duration,
}

impl Shop<DynamoStore, SecretCache, StripeClient<SecretCache>> {
    pub fn from_env() -> Result<Self, lambda_http::Error> {
        let url = config::required("PUBLIC_API_URL")?;
        let shipping = config::shipping_policy_from_env()?;
        let publishable_key = std::env::var("STRIPE_PUBLISHABLE_KEY").unwrap_or_default();
        let checkout = if publishable_key.is_empty() {
            None
        } else {
            let api = std::env::var("STRIPE_API_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "https://api.stripe.com".to_owned());
            Some(Checkout {
                provider: StripeClient::from_env()?,
                publishable_key,
                script_url: std::env::var("STRIPE_JS_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "https://js.stripe.com/v3/".to_owned()),
                api_origin: origin_of(&api),
                window: config::payment_policy_from_env()?.authorization_window,
            })
        };
        Ok(Shop {
            locations: config::location_directory_from_env(&shipping)?,
            store: DynamoStore::from_env()?
                .with_attempts_table(config::required("ATTEMPTS_TABLE_NAME")?),
            secret: SecretCache::from_env("SHOP_SECRET_ARN")?,
            returns: config::return_policy_from_env()?,
            origin: origin_of(&url),
            checkout,
        })
    }
}

/// `https://host:port/path` → `https://host:port`.
pub fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_ascii_lowercase();
    };
    let scheme = scheme.to_ascii_lowercase();
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    // A browser's `Origin` leaves the scheme's own port out.
    let host = match (
        scheme.as_str(),
        host.strip_suffix(":443"),
        host.strip_suffix(":80"),
    ) {
        ("https", Some(bare), _) | ("http", _, Some(bare)) => bare.to_owned(),
        _ => host,
    };
    format!("{scheme}://{host}")
}

type App<S, K, P> = Arc<Shop<S, K, P>>;

/// The site's router.
pub fn router<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    shop: Shop<S, K, P>,
) -> Router {
    Router::new()
        .route("/shop", get(|| async { Redirect::to("/shop/orders/find") }))
        .route(
            "/shop/",
            get(|| async { Redirect::to("/shop/orders/find") }),
        )
        .route("/shop/assets/shop.css", get(stylesheet))
        .route("/shop/assets/pay.js", get(pay_script))
        .route("/shop/orders/find", get(find_page).post(find::<S, K, P>))
        .route("/shop/forget", post(forget::<S, K, P>))
        .route("/shop/orders/{id}", get(order_page::<S, K, P>))
        .route("/shop/orders/{id}/cancel", post(cancel::<S, K, P>))
        .route(
            "/shop/orders/{id}/cancel-units",
            post(cancel_units::<S, K, P>),
        )
        .route("/shop/orders/{id}/address", post(change_address::<S, K, P>))
        .route("/shop/orders/{id}/pay", get(pay_page::<S, K, P>))
        .route("/shop/orders/{id}/ship-ahead", post(ship_ahead::<S, K, P>))
        .route("/shop/orders/{id}/return", get(return_page::<S, K, P>))
        .route("/shop/orders/{id}/returns", post(open_return::<S, K, P>))
        .route(
            "/shop/orders/{id}/returns/{rma}/label",
            get(return_label::<S, K, P>),
        )
        .fallback(|headers: HeaderMap| async move {
            let language = browser_language(&headers);
            Refusal::NotFound(language).into_response()
        })
        .with_state(Arc::new(shop))
        .layer(axum::middleware::map_response(harden))
}

/// Headers on every answer: never cached (pages show an order; the stylesheet says how long it
/// is kept), and the pages' own ([`oms_adapters::web::PAGE_HEADERS`]).
async fn harden(mut response: Response) -> Response {
    oms_adapters::web::harden(response.headers_mut());
    response
}

async fn stylesheet(uri: axum::http::Uri) -> impl IntoResponse {
    let cache =
        oms_adapters::web::asset_cache_control(uri.query(), crate::pages::stylesheet_href());
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
        ],
        STYLESHEET,
    )
}

/// The payment page's script, kept a year as the stylesheet is.
async fn pay_script(uri: axum::http::Uri) -> impl IntoResponse {
    let cache =
        oms_adapters::web::asset_cache_control(uri.query(), crate::pages::pay_script_href());
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
        ],
        crate::pages::PAY_SCRIPT,
    )
}

/// The orders a visitor has proved are theirs, for a while.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Visit {
    /// Each order proved in this visit, and when: each is open for [`VISIT_SECONDS`] from its
    /// own proof, never longer.
    orders: Vec<(String, DateTime<Utc>)>,
    /// Random, drawn anew at each proof: what the forms' CSRF token is derived from.
    nonce: String,
    /// When the visit began: it ends [`MAX_VISIT_SECONDS`] after, whatever was proved since.
    started_at: DateTime<Utc>,
}

/// The longest a visit lasts, however often orders are proved in it.
const MAX_VISIT_SECONDS: i64 = 12 * 3600;

impl Visit {
    /// Whether `id` was proved in this visit less than [`VISIT_SECONDS`] before `now`.
    fn holds(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.orders.iter().any(|(order, proved)| {
            order == id && now < *proved + chrono::Duration::seconds(VISIT_SECONDS)
        })
    }

    /// The visit with `id` proved at `now` (the newest last), its expired proofs dropped, and a
    /// new nonce: a proof never extends another order's, and a form token seen before it is
    /// void after it.
    fn with(mut self, id: &str, now: DateTime<Utc>) -> Self {
        let open =
            |proved: &DateTime<Utc>| now < *proved + chrono::Duration::seconds(VISIT_SECONDS);
        self.orders
            .retain(|(order, proved)| order != id && open(proved));
        self.orders.push((id.to_owned(), now));
        let excess = self.orders.len().saturating_sub(MAX_ORDERS);
        self.orders.drain(..excess);
        self.nonce = fresh_nonce();
        self
    }

    fn new(now: DateTime<Utc>) -> Self {
        Visit {
            orders: Vec::new(),
            nonce: fresh_nonce(),
            started_at: now,
        }
    }

    /// Seconds the cookie is kept: until the last proof runs out, within the visit's limit.
    fn cookie_seconds(&self, now: DateTime<Utc>) -> i64 {
        let end = self.started_at + chrono::Duration::seconds(MAX_VISIT_SECONDS);
        (end - now).num_seconds().clamp(0, VISIT_SECONDS)
    }
}

fn fresh_nonce() -> String {
    format!("{}{}", ulid::Ulid::new(), ulid::Ulid::new())
}

/// The site's keys, from its secret.
struct Keys {
    links: OrderLinks,
    cookies: CookieKeys,
    /// What the lookup's comparisons and counters are keyed with: derived, never the link key.
    lookup: Vec<u8>,
}

async fn keys<S, K: SecretSource, P>(app: &Shop<S, K, P>) -> Result<Keys, Refusal> {
    let secret = app
        .secret
        .value()
        .await
        .map_err(|e| Refusal::Internal(format!("the site's secret: {e}")))?;
    let links = OrderLinks::from_secret(&secret).map_err(|e| Refusal::Internal(e.into()))?;
    let cookies = CookieKeys::derive(links.current_key(), KEYS_PURPOSE)
        .map_err(|e| Refusal::Internal(e.into()))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(links.current_key()).expect("HMAC takes any key length");
    mac.update(b"oms-shop lookup key");
    let lookup = mac.finalize().into_bytes().to_vec();
    Ok(Keys {
        links,
        cookies,
        lookup,
    })
}

/// The visit the request carries, if any and not expired.
fn visit_of(keys: &Keys, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Visit> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    keys.cookies
        .read::<Visit>(&cookies, VISIT_COOKIE)
        .filter(|v| now < v.started_at + chrono::Duration::seconds(MAX_VISIT_SECONDS))
}

fn browser_language(headers: &HeaderMap) -> &'static str {
    language_of_browser(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Why a page was not shown as asked.
enum Refusal {
    /// The one neutral refusal: no such order, not the visitor's, a bad or expired link — all
    /// the same, so nothing tells whether an order exists. The lookup page again.
    NotFound(&'static str),
    /// The same refusal to a lookup, with the order number as typed put back in its field.
    NotFoundTyped(&'static str, String),
    /// A form not from the site's own pages (another origin, no or a wrong CSRF token).
    Forbidden,
    /// Lookups over their allowance: the lookup page, asking to wait.
    TooMany(&'static str),
    Internal(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound(language) => not_found(language, ""),
            Refusal::NotFoundTyped(language, typed) => not_found(language, &typed),
            Refusal::TooMany(language) => {
                let html = pages()
                    .render(
                        "find.html",
                        page_context(
                            language,
                            context! { refused => text(language, "find.slow") },
                        ),
                    )
                    .unwrap_or_default();
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, html_headers(), html).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("900"));
                response
            }
            Refusal::Forbidden => message(StatusCode::FORBIDDEN, "message.form-refused"),
            Refusal::Internal(why) => {
                tracing::error!(error = %why, "customer pages: internal error");
                message(StatusCode::INTERNAL_SERVER_ERROR, "message.internal")
            }
        }
    }
}

/// The one neutral refusal: the lookup page, saying it could not open the order, with the
/// number as typed (if it came from the lookup) back in its field.
fn not_found(language: &str, typed: &str) -> Response {
    let html = pages()
        .render(
            "find.html",
            page_context(
                language,
                context! { refused => text(language, "find.refused"), typed },
            ),
        )
        .unwrap_or_default();
    (StatusCode::NOT_FOUND, html_headers(), html).into_response()
}

/// A page of its own that says `key` (in English: these come before the order's language is
/// known), with the way back to the lookup.
fn message(status: StatusCode, key: &str) -> Response {
    let html = pages()
        .render(
            "find.html",
            page_context("en", context! { refused => text("en", key) }),
        )
        .unwrap_or_default();
    (status, html_headers(), html).into_response()
}

fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}

fn page(status: StatusCode, name: &str, language: &str, view: minijinja::Value) -> Response {
    match pages().render(name, page_context(language, view)) {
        Ok(html) => (status, html_headers(), html).into_response(),
        Err(e) => Refusal::Internal(format!("rendering {name}: {e:#}")).into_response(),
    }
}

#[derive(Deserialize)]
struct FindQuery {
    /// What the last form did, for the page's banner.
    done: Option<String>,
}

/// `GET /shop/orders/find`: the lookup form.
async fn find_page(headers: HeaderMap, Query(query): Query<FindQuery>) -> Response {
    let language = browser_language(&headers);
    // Whether this browser's visit was just ended: the cookie is gone either way, so the
    // banner shows nothing about any order.
    let forgotten =
        (query.done.as_deref() == Some("forgotten")).then(|| text(language, "forgotten"));
    page(
        StatusCode::OK,
        "find.html",
        language,
        context! { banner => forgotten },
    )
}

#[derive(Deserialize)]
struct ForgetForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /shop/forget`: ends the visit on this browser (a shared computer, a borrowed phone):
/// its cookie is dropped, so no order it proved opens again without a new proof.
async fn forget<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    headers: HeaderMap,
    Form(form): Form<ForgetForm>,
) -> Result<Response, Refusal> {
    let now = Utc::now();
    let keys = keys(&app).await?;
    let visit = visit_of(&keys, &headers, now);
    let from_the_visit = visit.is_some_and(|v| keys.cookies.csrf_valid(&v.nonce, &form.csrf));
    if !same_origin(&app.origin, &headers) || !from_the_visit {
        return Err(Refusal::Forbidden);
    }
    let gone = keys.cookies.write(VISIT_COOKIE, &Visit::new(now), BASE, 0);
    tracing::info!("a visit ended on the customer's request");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                format!("{BASE}/orders/find?done=forgotten"),
            ),
            (header::SET_COOKIE, gone),
        ],
    )
        .into_response())
}

#[derive(Deserialize)]
struct Lookup {
    #[serde(default)]
    order: String,
    #[serde(default)]
    email: String,
}

/// Whether the request comes from the site's own pages: its `Origin` (or, without one, its
/// `Referer`) is the site's.
fn same_origin(app_origin: &str, headers: &HeaderMap) -> bool {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .map(origin_of)
        });
    origin.as_deref() == Some(app_origin)
}

/// An e-mail address as compared: trimmed, in lower case.
fn normalized(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether two addresses are the same, compared as HMACs under `key` in constant time.
fn same_address(key: &[u8], given: &str, known: &str) -> bool {
    let mac = |text: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(normalized(text).as_bytes());
        mac
    };
    let known = mac(known).finalize().into_bytes();
    mac(given).verify_slice(&known).is_ok()
}

/// An order id no order has: looked up when the number given is no order id, so a malformed
/// number costs the same read as a wrong one.
const NO_ORDER: &str = "00000000000000000000000000";

/// The address the request came from, as API Gateway saw it.
pub struct ClientIp(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ip = match parts
            .extensions
            .get::<lambda_http::request::RequestContext>()
        {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
                context.http.source_ip.clone()
            }
            _ => None,
        };
        Ok(ClientIp(ip.unwrap_or_default()))
    }
}

/// Counts a lookup against the client's and the order number's allowance; `false` once either
/// is spent for the window. The keys are HMACs under the site's key: no address or number is
/// stored, and the counts go when their window has passed.
async fn within_allowance<S: Store, K, P>(
    app: &Shop<S, K, P>,
    keys: &Keys,
    client: &str,
    number: &str,
    now: DateTime<Utc>,
) -> Result<bool, Refusal> {
    let window = now.timestamp() - now.timestamp().rem_euclid(LOOKUP_WINDOW_SECONDS);
    let expires = window + 2 * LOOKUP_WINDOW_SECONDS;
    let hashed = |kind: &str, value: &str| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&keys.lookup).expect("HMAC takes any key length");
        mac.update(format!("{kind}\n{value}").as_bytes());
        format!("{kind}#{}", &hex::encode(mac.finalize().into_bytes())[..32])
    };
    let count = |key: String| async move {
        app.store
            .count_attempt(&key, window, expires)
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))
    };
    // A request without an address (none reaches API Gateway so) counts in one bucket of its
    // own, never in a real client's.
    let client = if client.is_empty() {
        "no-address"
    } else {
        client
    };
    let number = number.trim().to_uppercase();
    let by_client = count(hashed("lookup-client", client)).await?;
    let by_pair = count(hashed(
        "lookup-client-order",
        &format!("{client}\n{number}"),
    ))
    .await?;
    let by_order = count(hashed("lookup-order", &number)).await?;
    Ok(by_client <= LOOKUPS_PER_CLIENT
        && by_pair <= LOOKUPS_PER_CLIENT_AND_ORDER
        && by_order <= LOOKUPS_PER_ORDER)
}

/// `POST /shop/orders/find`: the order, if the number and the address are its own.
async fn find<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Form(lookup): Form<Lookup>,
) -> Result<Response, Refusal> {
    if !same_origin(&app.origin, &headers) {
        return Err(Refusal::Forbidden);
    }
    let language = browser_language(&headers);
    let keys = keys(&app).await?;
    let now = Utc::now();
    if !within_allowance(&app, &keys, &client, &lookup.order, now).await? {
        tracing::warn!("order lookups over their allowance");
        return Err(Refusal::TooMany(language));
    }
    let wanted = OrderId::parse(lookup.order.trim()).ok();
    let id = wanted
        .clone()
        .unwrap_or_else(|| OrderId::parse(NO_ORDER).expect("a valid id"));
    let order = app
        .store
        .get(&id)
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?;
    // The comparison is made whether or not there is an order, against its address or none.
    let known = order.as_ref().map(|o| o.contact.email().to_owned());
    let matches = same_address(
        &keys.lookup,
        &lookup.email,
        known.as_deref().unwrap_or("\u{0}"),
    );
    let Some(order) =
        order.filter(|_| matches && wanted.is_some() && !lookup.email.trim().is_empty())
    else {
        tracing::info!("an order lookup refused");
        return Err(Refusal::NotFoundTyped(
            language,
            lookup.order.trim().chars().take(40).collect(),
        ));
    };
    Ok(into_visit(&keys, &headers, &order.id.to_string(), now))
}

/// A redirect to the order's page, its order added to the visit (a new visit if none).
fn into_visit(keys: &Keys, headers: &HeaderMap, id: &str, now: DateTime<Utc>) -> Response {
    let visit = visit_of(keys, headers, now)
        .unwrap_or_else(|| Visit::new(now))
        .with(id, now);
    let cookie = keys
        .cookies
        .write(VISIT_COOKIE, &visit, BASE, visit.cookie_seconds(now));
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("{BASE}/orders/{id}")),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct OrderQuery {
    /// The signed link's token.
    t: Option<String>,
    /// What the last form did, for the page's banner.
    done: Option<String>,
}

/// The order's own customer, as the application layer knows callers: what every form of the
/// site acts as, once the visit has proved the order is theirs.
fn customer_of(order: &Order) -> Caller {
    Caller {
        customer_id: order.customer_id.clone(),
        scopes: vec![],
    }
}

/// The order `id` if the visit holds it.
async fn visible<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    app: &Shop<S, K, P>,
    visit: Option<&Visit>,
    id: &str,
    language: &'static str,
) -> Result<Order, Refusal> {
    let held = visit.is_some_and(|v| v.holds(id, Utc::now()));
    let parsed = OrderId::parse(id).ok().filter(|_| held);
    let Some(parsed) = parsed else {
        return Err(Refusal::NotFound(language));
    };
    app.store
        .get(&parsed)
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?
        .ok_or(Refusal::NotFound(language))
}

/// The site's keys, the visit the request carries and its order `id`, if the visit holds it:
/// what every page and form of an order starts with.
async fn proved<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    app: &Shop<S, K, P>,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Keys, Visit, Order), Refusal> {
    let keys = keys(app).await?;
    let visit = visit_of(&keys, headers, Utc::now());
    let order = visible(app, visit.as_ref(), id, browser_language(headers)).await?;
    let visit = visit.expect("a visible order is the visit's");
    Ok((keys, visit, order))
}

/// `GET /shop/orders/{id}`: the order's page; with a signed link's token, the order put in the
/// visit first and the token taken out of the address.
async fn order_page<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    Query(query): Query<OrderQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let language = browser_language(&headers);
    let keys = keys(&app).await?;
    let now = Utc::now();
    if let Some(token) = query.t.as_deref() {
        if !keys.links.opens(&id, token, now.timestamp()) {
            tracing::info!("an order link refused");
            return Err(Refusal::NotFound(language));
        }
        return Ok(into_visit(&keys, &headers, &id, now));
    }
    let visit = visit_of(&keys, &headers, now);
    let order = visible(&app, visit.as_ref(), &id, language).await?;
    let visit = visit.expect("a visible order is the visit's");
    Ok(order_response(
        &app,
        &keys,
        &visit,
        &order,
        StatusCode::OK,
        query.done.as_deref(),
        None,
    ))
}

/// `GET /shop/orders/{id}/pay`: the payment the order waits for (a change that made it dearer,
/// or the order itself not yet paid), taken with Stripe.js's card fields. The payment is the
/// one `POST /orders/{id}/payment-intent` opens for the customer (opened again, the same one),
/// confirmed in the browser; the order learns of it from Stripe's webhook. An order with
/// nothing to pay is shown instead; a site taking no payments shows no such page.
async fn pay_page<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    let language = language_of(&order);
    let Some(checkout) = app.checkout.as_ref() else {
        return Err(Refusal::NotFound(language));
    };
    let customer = customer_of(&order);
    let intent = match start_payment(&app.store, &checkout.provider, &customer, &order.id).await {
        Ok(intent) => intent,
        Err(PaymentAppError::NotPayable(_)) => {
            return Ok(Redirect::to(&format!("{BASE}/orders/{id}")).into_response())
        }
        Err(PaymentAppError::Provider(error)) => {
            tracing::warn!(order_id = %order.id, %error, "the payment could not be opened");
            return Ok(order_response(
                &app,
                &keys,
                &visit,
                &order,
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                Some(text(language, "pay.unavailable").to_owned()),
            ));
        }
        Err(error) => return Err(Refusal::Internal(error.to_string())),
    };
    let mut response = page(
        StatusCode::OK,
        "pay.html",
        language,
        context! {
            order => minijinja::Value::from(minijinja::value::Serde(OrderPage::of(&order, language))),
            amount => format_money(intent.amount, language),
            publishable_key => &checkout.publishable_key,
            // The customer's own, on a page never stored (`no-store`) and never logged.
            client_secret => intent.client_secret,
            script_url => &checkout.script_url,
        },
    );
    let policy = oms_adapters::web::payment_page_policy(
        &origin_of(&checkout.script_url),
        &checkout.api_origin,
    );
    match HeaderValue::from_str(&policy) {
        Ok(value) => {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
        // The strict policy stays, and Stripe's script is blocked: said, for the operator.
        Err(_) => tracing::error!(%policy, "the payment page's policy is no header value"),
    }
    Ok(response)
}

/// The order's page, with a banner for what was done or a refusal.
fn order_response<S, K, P>(
    app: &Shop<S, K, P>,
    keys: &Keys,
    visit: &Visit,
    order: &Order,
    status: StatusCode,
    done: Option<&str>,
    refused: Option<String>,
) -> Response {
    let policy = &app.returns;
    let language = language_of(order);
    let can_cancel = order.cancel(String::new(), "customer", Utc::now()).is_ok();
    // A banner only for what the order shows done: a link cannot make a live order look
    // cancelled.
    let banner = match done {
        Some("cancelled") if order.status == oms_domain::order::OrderStatus::Cancelled => {
            Some(text(language, "order.cancelled"))
        }
        Some("returned") if !order.returns.is_empty() => Some(text(language, "order.returned")),
        Some("units-cancelled") if !order.unit_cancellations.is_empty() => {
            Some(text(language, "order.units.done"))
        }
        Some("address-changed")
            if order
                .edits
                .iter()
                .any(|e| e.address_changed && e.state == EditState::Applied) =>
        {
            Some(text(language, "order.address.done"))
        }
        Some("shipping-ahead") if order.edits.iter().any(|e| e.ships_ahead()) => {
            Some(text(language, "order.ahead.done"))
        }
        // Back from the payment page: the payment reaches the order with Stripe's webhook,
        // usually before the page is shown again.
        Some("paid") if app.checkout.is_some() => Some(text(language, "order.paid")),
        _ => None,
    };
    // What the order waits for the customer to pay, where the site takes payments (not just
    // after paying: Stripe's webhook may not have reached the order yet).
    let pay =
        (app.checkout.is_some() && awaits_payment(order) && done != Some("paid")).then(|| {
            text(language, "order.pay")
                .replace("{amount}", &format_money(order.totals.total, language))
        });
    let now = Utc::now();
    let returnable = order
        .lines
        .iter()
        .any(|l| order.returnable_units(&l.sku, policy, now) > 0);
    // Some items may be cancelled while more than one unit could be (one alone: the order),
    // or the one still waiting for stock once the rest has left.
    let open = order.cancellable_units();
    let cancellable: u32 = open.iter().map(|(_, n)| n).sum();
    let unit_lines: Vec<_> = if cancellable > 1 || (cancellable == 1 && !can_cancel) {
        open.iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(sku, n)| {
                let line = order.lines.iter().find(|l| &l.sku == *sku)?;
                Some(context! { sku => sku.as_str(), name => line.name.clone(), open => *n })
            })
            .collect()
    } else {
        Vec::new()
    };
    page(
        status,
        "order.html",
        language,
        context! {
            order => minijinja::Value::from(minijinja::value::Serde(OrderPage::of(order, language))),
            version => order.version,
            csrf => keys.cookies.csrf_token(&visit.nonce),
            can_cancel,
            unit_lines,
            // Where it goes, and whether that may still change (a pickup has no address to
            // change).
            address => order.editable().is_ok().then(|| minijinja::Value::from(minijinja::value::Serde(&order.shipping.address))),
            // Waiting whole for stock with some of it here: what is here may go ahead.
            // (A pre-order leaves on its release date whatever is here.)
            can_ship_ahead => order.shipping.ship_complete
                && order.hold() == Some("BACKORDERED")
                && order.held_for_release(now.date_naive()).is_none()
                && order.reserved_units() > 0
                && order.editable().is_ok(),
            form_key => format!("shop-{}", OrderId::generate(now)),
            // Each exchange's replacement, by its return: its page opened with a signed link
            // (as its messages carry), for as long as a visit lasts.
            replacement_links => order
                .returns
                .iter()
                .filter_map(|r| {
                    let id = r.replacement_order_id.as_ref()?;
                    let token = keys.links.token(id.as_str(), now.timestamp() + VISIT_SECONDS);
                    Some((r.return_id.to_string(), format!("{BASE}/orders/{id}?t={token}")))
                })
                .collect::<std::collections::BTreeMap<_, _>>(),
            pay,
            returnable,
            banner,
            refused,
        },
    )
}

#[derive(Deserialize)]
struct CancelForm {
    #[serde(default)]
    csrf: String,
    /// The order's version the page showed: required, so a stale page changes nothing.
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    reason: String,
}

/// `POST /shop/orders/{id}/cancel`: cancels the order as `POST /orders/{id}/cancel` does for its
/// customer, on the version the page showed.
async fn cancel<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CancelForm>,
) -> Result<Response, Refusal> {
    let now = Utc::now();
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    if !same_origin(&app.origin, &headers) || !keys.cookies.csrf_valid(&visit.nonce, &form.csrf) {
        return Err(Refusal::Forbidden);
    }
    let customer = customer_of(&order);
    let reason = match form.reason.trim() {
        "" => "cancelled by the customer on the order's page".to_owned(),
        given => given.chars().take(500).collect(),
    };
    let Some(version) = form.version else {
        return Err(Refusal::Forbidden);
    };
    match cancel_order(
        &app.store,
        &app.locations,
        &customer,
        &order.id,
        reason,
        Some(version),
        now,
    )
    .await
    {
        Ok(_) => Ok(Redirect::to(&format!("{BASE}/orders/{id}?done=cancelled")).into_response()),
        Err(error) => refused_cancellation(&app, &keys, &visit, order, &error).await,
    }
}

/// A cancellation (of the order or of some items) the order refused: its page as it is now,
/// saying why (changed meanwhile, packed meanwhile, busy), or an error for anything else.
async fn refused_cancellation<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    app: &App<S, K, P>,
    keys: &Keys,
    visit: &Visit,
    order: Order,
    error: &ReturnsAppError,
) -> Result<Response, Refusal> {
    let language = language_of(&order);
    let why = match error {
        // A form sent again after the order changed under another key's use, or a stale page.
        ReturnsAppError::Stale { .. } | ReturnsAppError::KeyReused => text(language, "order.stale"),
        ReturnsAppError::Cancel(_) => text(language, "order.cancel.too-late"),
        ReturnsAppError::Edit(_) => text(language, "order.address.too-late"),
        ReturnsAppError::Contended => text(language, "order.try-again"),
        other => return Err(Refusal::Internal(other.to_string())),
    };
    refused_as_it_is(app, keys, visit, order, why).await
}

/// A form refused with `why` (409), on the order's page as the order is now.
async fn refused_as_it_is<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    app: &App<S, K, P>,
    keys: &Keys,
    visit: &Visit,
    order: Order,
    why: &str,
) -> Result<Response, Refusal> {
    let current = app
        .store
        .get(&order.id)
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?
        .unwrap_or(order);
    Ok(order_response(
        &app,
        keys,
        visit,
        &current,
        StatusCode::CONFLICT,
        None,
        Some(why.to_owned()),
    ))
}

/// `request` made by the order's own customer, as `POST /orders/{id}/edits` makes it for them,
/// on the page's `version` and once per its `key`; a change that costs more waits for its
/// payment for `window` (zero: never waits, where the site takes no payments).
async fn edit_as_customer<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    app: &App<S, K, P>,
    order: &Order,
    request: &oms_domain::request::staff::OrderEditRequest,
    key: &oms_domain::ids::IdempotencyKey,
    version: u64,
    window: chrono::Duration,
    now: chrono::DateTime<Utc>,
) -> Result<Order, ReturnsAppError> {
    let customer = customer_of(order);
    oms_domain::app::returns::edit_order(
        &app.store,
        &app.locations,
        &customer,
        &order.id,
        request,
        key,
        version,
        window,
        now,
    )
    .await
}

/// A form that changes the order once per page shown: from this site, with the visit's CSRF
/// token, the order's version the page showed and the page's key; anything else is refused.
fn versioned_form(
    origin: &str,
    headers: &HeaderMap,
    keys: &Keys,
    visit: &Visit,
    fields: &[(String, String)],
) -> Result<(u64, oms_domain::ids::IdempotencyKey), Refusal> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !same_origin(origin, headers)
        || !keys
            .cookies
            .csrf_valid(&visit.nonce, field("csrf").unwrap_or_default())
    {
        return Err(Refusal::Forbidden);
    }
    match (
        field("version").and_then(|v| v.parse::<u64>().ok()),
        field("key").and_then(|k| oms_domain::ids::IdempotencyKey::parse(k).ok()),
    ) {
        (Some(version), Some(key)) => Ok((version, key)),
        _ => Err(Refusal::Forbidden),
    }
}

/// `POST /shop/orders/{id}/cancel-units`: cancels some items (`units-<sku>`, how many of each)
/// as `POST /orders/{id}/cancel-units` does for its customer, on the version the page showed
/// and once per page shown (its key): the form sent twice changes the order once.
async fn cancel_units<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Refusal> {
    let now = Utc::now();
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    let (version, key) = versioned_form(&app.origin, &headers, &keys, &visit, &fields)?;
    let language = language_of(&order);
    let lines: Vec<serde_json::Value> = fields
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("units-")?, value.trim())))
        .filter_map(|(sku, value)| {
            let n = value.parse::<u32>().ok().filter(|n| *n > 0)?;
            Some(serde_json::json!({"sku": sku, "quantity": n}))
        })
        .collect();
    let refused = |why: &str, current: Order, status: StatusCode| {
        order_response(
            &app,
            &keys,
            &visit,
            &current,
            status,
            None,
            Some(why.to_owned()),
        )
    };
    if lines.is_empty() {
        return Ok(refused(
            text(language, "order.units.none"),
            order,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let request = oms_domain::request::staff::UnitCancelRequest::parse(&serde_json::json!({
        "lines": lines,
        "reason": "cancelled by the customer on the order's page",
    }))
    .map_err(|_| Refusal::Forbidden)?;
    let customer = customer_of(&order);
    match oms_domain::app::returns::cancel_units(
        &app.store,
        &app.locations,
        &customer,
        &order.id,
        &request,
        &key,
        Some(version),
        now,
    )
    .await
    {
        Ok(done) => {
            let what = if done.status == oms_domain::order::OrderStatus::Cancelled {
                "cancelled"
            } else {
                "units-cancelled"
            };
            Ok(Redirect::to(&format!("{BASE}/orders/{id}?done={what}")).into_response())
        }
        Err(error) => refused_cancellation(&app, &keys, &visit, order, &error).await,
    }
}

/// `POST /shop/orders/{id}/address`: the customer changes where the order goes, as
/// `POST /orders/{id}/edits` does for them, on the version the page showed and once per page
/// shown (its key). A new address that costs more once the order is paid needs a payment of
/// the whole new total: where the site takes payments, the change waits for it (the payment
/// page comes next; not paid in time, the change is undone); where it does not, it is refused,
/// saying so, before anything changes.
async fn change_address<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Refusal> {
    let now = Utc::now();
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let (version, key) = versioned_form(&app.origin, &headers, &keys, &visit, &fields)?;
    let language = language_of(&order);
    let refused = |why: &str, current: Order, status: StatusCode| {
        order_response(
            &app,
            &keys,
            &visit,
            &current,
            status,
            None,
            Some(why.to_owned()),
        )
    };
    let mut address = serde_json::Map::new();
    for name in [
        "name",
        "line1",
        "line2",
        "city",
        "region",
        "postalCode",
        "country",
    ] {
        if let Some(value) = field(name) {
            let value = match name {
                "country" => value.to_ascii_uppercase(),
                _ => value.to_owned(),
            };
            address.insert(name.to_owned(), value.into());
        }
    }
    let Ok(request) = oms_domain::request::staff::OrderEditRequest::parse(&serde_json::json!({
        "shippingAddress": address,
        "reason": "changed by the customer on the order's page",
    })) else {
        return Ok(refused(
            text(language, "order.address.invalid"),
            order,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    // What the change would do, tried on the order as the page read it (a form sent again is
    // answered by its key below).
    if order.edit_for_key(key.as_str()).is_none() {
        let places = app
            .locations
            .current(&app.store)
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let zone_of = |location: Option<&str>| places.zone_of(location).map(str::to_owned);
        let tried = order.edit(
            &request,
            key.as_str(),
            "customer",
            app.locations.shipping(),
            zone_of,
            &[],
            chrono::Duration::zero(),
            now,
        );
        let why = match tried {
            // Dearer once paid, where the site takes no payments; or while a capture is on its
            // way (the new payment would replace one not yet settled): said as such, not as
            // too late.
            Ok(change) if change.order.awaiting_edit().is_some() && app.checkout.is_none() => {
                Some((text(language, "order.address.dearer"), StatusCode::CONFLICT))
            }
            Err(oms_domain::order::edits::EditError::CaptureOnItsWay) => Some((
                text(
                    language,
                    match app.checkout {
                        Some(_) => "order.address.busy",
                        None => "order.address.dearer",
                    },
                ),
                StatusCode::CONFLICT,
            )),
            Err(oms_domain::order::edits::EditError::Fields(_)) => Some((
                text(language, "order.address.unserved"),
                StatusCode::UNPROCESSABLE_ENTITY,
            )),
            _ => None,
        };
        if let Some((why, status)) = why {
            return Ok(refused(why, order, status));
        }
    }
    let window = app
        .checkout
        .as_ref()
        .map_or(chrono::Duration::zero(), |c| c.window);
    match edit_as_customer(&app, &order, &request, &key, version, window, now).await {
        // Dearer: paid on the next page.
        Ok(changed) if changed.awaiting_edit().is_some() => {
            Ok(Redirect::to(&format!("{BASE}/orders/{id}/pay")).into_response())
        }
        Ok(_) => {
            Ok(Redirect::to(&format!("{BASE}/orders/{id}?done=address-changed")).into_response())
        }
        Err(error) => refused_cancellation(&app, &keys, &visit, order, &error).await,
    }
}

/// `POST /shop/orders/{id}/ship-ahead`: the customer of an order waiting whole for stock asks
/// for what is here now, as `POST /orders/{id}/edits` with `shipComplete: false` does for them,
/// on the version the page showed and once per page shown (its key). Nothing costs more.
async fn ship_ahead<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Refusal> {
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    let (version, key) = versioned_form(&app.origin, &headers, &keys, &visit, &fields)?;
    let request = oms_domain::request::staff::OrderEditRequest::parse(&serde_json::json!({
        "shipComplete": false,
        "reason": "asked by the customer on the order's page",
    }))
    .map_err(|e| Refusal::Internal(e.to_string()))?;
    match edit_as_customer(
        &app,
        &order,
        &request,
        &key,
        version,
        chrono::Duration::zero(),
        Utc::now(),
    )
    .await
    {
        Ok(_) => {
            Ok(Redirect::to(&format!("{BASE}/orders/{id}?done=shipping-ahead")).into_response())
        }
        // Gone ahead already, or past changing: said so, with the order as it is now.
        Err(ReturnsAppError::Edit(_)) => {
            let why = text(language_of(&order), "order.ahead.too-late");
            refused_as_it_is(&app, &keys, &visit, order, why).await
        }
        Err(error) => refused_cancellation(&app, &keys, &visit, order, &error).await,
    }
}

/// The lines of `order` its customer may send back now, with how many of each and what each
/// may be exchanged for.
async fn returnable_lines<S: Store>(
    store: &S,
    order: &Order,
    policy: &ReturnPolicy,
) -> Result<Vec<ReturnableLine>, Refusal> {
    let now = Utc::now();
    let mut lines = Vec::new();
    for (index, line) in order.lines.iter().enumerate() {
        let most = order.returnable_units(&line.sku, policy, now);
        if most == 0 {
            continue;
        }
        // A refund needs no catalog: if it cannot be read, the line is offered for a refund.
        let choices = exchange_choices(store, order, line)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "exchange choices unread; a refund only");
                Vec::new()
            });
        lines.push(ReturnableLine {
            index,
            name: line.name.clone(),
            most,
            exchanges: choices
                .into_iter()
                .map(|p| ExchangeChoice {
                    same: p.sku == line.sku,
                    // The item itself costs what was paid for it.
                    difference: (p.sku != line.sku)
                        .then(|| {
                            price_difference(language_of(order), line.unit_price, p.unit_price)
                        })
                        .flatten(),
                    sku: p.sku.to_string(),
                    name: p.name,
                })
                .collect(),
        });
    }
    Ok(lines)
}

/// What exchanging an item bought at `paid` a unit for one at `price` does to the money, in
/// `language`: nothing (the same price), a difference paid before it ships, or one refunded.
fn price_difference(
    language: &str,
    paid: oms_domain::money::Money,
    price: oms_domain::money::Money,
) -> Option<String> {
    let difference = price.minor_units() - paid.minor_units();
    let amount = oms_domain::money::Money::new(difference.abs(), paid.currency()).ok()?;
    let key = match difference.signum() {
        1 => "return.dearer",
        -1 => "return.cheaper",
        _ => return None,
    };
    Some(text(language, key).replace("{amount}", &format_money(amount, language)))
}

/// The return form of `order`, with a refusal above it and what was typed put back if given.
async fn return_form<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    app: &Shop<S, K, P>,
    keys: &Keys,
    visit: &Visit,
    order: &Order,
    status: StatusCode,
    refused: Option<(&str, &[(String, String)])>,
) -> Result<Response, Refusal> {
    let language = language_of(order);
    let lines = returnable_lines(&app.store, order, &app.returns).await?;
    let (refused, typed) = match refused {
        Some((words, typed)) => (Some(words), typed.iter().cloned().collect()),
        None => (None, std::collections::HashMap::new()),
    };
    if lines.is_empty() {
        // Nothing (left) to send back: the order's page says why.
        return Ok(Redirect::to(&format!("{BASE}/orders/{}", order.id)).into_response());
    }
    Ok(page(
        status,
        "return.html",
        language,
        context! {
            order_id => order.id.to_string(),
            lines => minijinja::Value::from(minijinja::value::Serde(lines)),
            reasons => reasons(language),
            csrf => keys.cookies.csrf_token(&visit.nonce),
            // The request's idempotency key: a form sent twice opens one return.
            key => format!("shop-{}", ulid::Ulid::new()),
            refused,
            typed,
        },
    ))
}

/// `GET /shop/orders/{id}/return`: what may be sent back, and why.
async fn return_page<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    return_form(&app, &keys, &visit, &order, StatusCode::OK, None).await
}

/// `POST /shop/orders/{id}/returns`: asks for the return as `POST /orders/{id}/returns` does
/// for its customer, once per the form's key.
async fn open_return<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Refusal> {
    let now = Utc::now();
    let (keys, visit, order) = proved(&app, &headers, &id).await?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    if !same_origin(&app.origin, &headers) || !keys.cookies.csrf_valid(&visit.nonce, &field("csrf"))
    {
        return Err(Refusal::Forbidden);
    }
    let language = language_of(&order);
    // What was chosen, put back into the form if it is refused (the lines' own fields only).
    let typed: Vec<(String, String)> = fields
        .iter()
        .filter(|(name, _)| {
            ["quantity-", "reason-", "exchange-", "comment-"]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .map(|(name, value)| (name.clone(), value.chars().take(500).collect()))
        .collect();
    let refuse = |words: &'static str| {
        return_form(
            &app,
            &keys,
            &visit,
            &order,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((words, typed.as_slice())),
        )
    };
    let offered = returnable_lines(&app.store, &order, &app.returns).await?;
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for (index, line) in order.lines.iter().enumerate() {
        let Ok(quantity) = field(&format!("quantity-{index}")).parse::<u32>() else {
            continue;
        };
        if quantity == 0 {
            continue;
        }
        let mut wanted = serde_json::json!({
            "sku": line.sku.as_str(),
            "quantity": quantity,
            "reason": field(&format!("reason-{index}")),
        });
        let exchange = field(&format!("exchange-{index}"));
        if !exchange.is_empty() {
            // Only what the form offered: an item that is no variant of this one (or sold
            // out since) is not an exchange this page makes.
            let was_offered = offered
                .iter()
                .find(|l| l.index == index)
                .is_some_and(|l| l.exchanges.iter().any(|c| c.sku == exchange));
            if !was_offered {
                return refuse(text(language, "return.exchange-unavailable")).await;
            }
            wanted["exchangeSku"] = exchange.into();
        }
        let comment = field(&format!("comment-{index}"));
        if !comment.is_empty() {
            wanted["comment"] = comment.chars().take(500).collect::<String>().into();
        }
        lines.push(wanted);
    }
    if lines.is_empty() {
        return refuse(text(language, "return.none")).await;
    }
    let (Ok(request), Ok(key)) = (
        oms_domain::request::returns::ReturnRequest::parse(&serde_json::json!({ "lines": lines })),
        oms_domain::ids::IdempotencyKey::parse(&field("key")),
    ) else {
        return refuse(text(language, "return.refused")).await;
    };
    let customer = customer_of(&order);
    match oms_domain::app::returns::request_return(
        &app.store,
        &app.returns,
        &customer,
        &order.id,
        &request,
        key,
        now,
    )
    .await
    {
        Ok(requested) => {
            tracing::info!(
                return_id = %requested.rma.return_id,
                status = requested.rma.status.as_str(),
                "return requested on the order's page"
            );
            Ok(Redirect::to(&format!("{BASE}/orders/{id}?done=returned")).into_response())
        }
        Err(ReturnsAppError::Store(e)) => Err(Refusal::Internal(e.to_string())),
        Err(ReturnsAppError::Contended) => refuse(text(language, "order.try-again")).await,
        Err(ReturnsAppError::ExchangeUnavailable(_)) => {
            refuse(text(language, "return.exchange-unavailable")).await
        }
        Err(refusal) => {
            tracing::info!(error = %refusal, "a return refused on the order's page");
            refuse(text(language, "return.refused")).await
        }
    }
}

/// `GET /shop/orders/{id}/returns/{rma}/label`: an approved return's label, the API's PDF.
async fn return_label<S: Store, K: SecretSource + 'static, P: PaymentProvider + 'static>(
    State(app): State<App<S, K, P>>,
    Path((id, rma)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let language = browser_language(&headers);
    let (_, _, order) = proved(&app, &headers, &id).await?;
    let found = oms_domain::ids::ReturnId::parse(&rma)
        .ok()
        .and_then(|rma| order.find_return(&rma).cloned())
        .filter(oms_adapters::label::is_issued)
        .ok_or(Refusal::NotFound(language))?;
    let pdf = oms_adapters::label::render(&order, &found, &app.returns.return_address)
        .map_err(|e| Refusal::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{}.pdf\"", found.return_id),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        pdf,
    )
        .into_response())
}

#[cfg(test)]
mod tests;
