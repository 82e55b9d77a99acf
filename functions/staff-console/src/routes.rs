//! Every screen and form of the console, and what each needs.
//!
//! | screen | path | scope |
//! |---|---|---|
//! | order queue (by status and age; search by order or customer) | `/console/orders` | `oms:admin` |
//! | an order: lines, totals, shipment, returns, payment, timeline; cancel, decide, receive | `/console/orders/{id}` | `oms:admin` (receiving: `oms:warehouse`) |
//! | inventory: availability, low stock first, search | `/console/inventory` | `oms:admin` or `oms:warehouse` |
//! | a SKU: receipt, count and write-off forms, adjustment history | `/console/inventory/{sku}` | forms: `oms:admin` |
//! | the warehouse: pick list, pick, pack and ship | `/console/warehouse` | `oms:warehouse` |
//! | returns waiting for a decision | `/console/returns` | `oms:admin` |
//! | exceptions: stuck orders, money that needs staff, dead-letter queues and their redrive | `/console/exceptions` | `oms:admin` |
//!
//! Every form is a POST that carries the session's CSRF token, and is refused unless it comes
//! from the console's own origin; every form that changes an order carries the version (ETag) of
//! the order the page showed, so a stale page is told so and overwrites nothing. A successful
//! form redirects (303) to the page it changed, with a `done` word for the banner. Every answer
//! is `no-store` with a strict Content-Security-Policy.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use minijinja::{context, Value};
use oms_adapters::config;
use oms_adapters::dead_letters::DeadLetters;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::ApiError;
use oms_adapters::secrets::{SecretCache, SecretSource};
use oms_domain::app::caller::{SCOPE_ADMIN, SCOPE_WAREHOUSE};
use oms_domain::app::fulfillment::{self, WarehouseAction};
use oms_domain::app::inventory::{self, AdjustmentView, ProductView};
use oms_domain::app::queries::{self, OrderSummary};
use oms_domain::app::returns::{cancel_order, decide_return, pending_returns, receive_return};
use oms_domain::app::staff::{self, CatalogOrder, QueueFilter};
use oms_domain::app::views::{OrderView, PaymentAttentionView};
use oms_domain::app::Caller;
use oms_domain::ids::{CustomerId, OrderId, ReturnId, Sku};
use oms_domain::order::fulfillment::FulfillmentStatus;
use oms_domain::order::returns::policy::ReturnPolicy;
use oms_domain::order::OrderStatus;
use oms_domain::ports::{InventoryStore, OrderStore, OrderTransactions};
use oms_domain::request::returns::ReceiptRequest;
use oms_domain::request::staff::{CancelRequest, DecisionRequest};
use oms_domain::shipping::ShippingPolicy;
use serde::Deserialize;
use serde_json::json;

use crate::pages::{ser, Pages, STYLESHEET};
use crate::session::{
    removal, PendingSignIn, Session, SessionKeys, MAX_SESSION_SECONDS, SESSION_COOKIE,
    SIGN_IN_COOKIE,
};
use crate::signin::{SignIn, SIGN_IN_SECONDS};

/// Where the console lives on the API.
pub const BASE: &str = "/console";

/// What every page's answer says about itself: only the console's own styles, no scripts, no
/// frames, forms only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The ports the console uses.
pub trait Store: OrderStore + InventoryStore + OrderTransactions + 'static {}
impl<T: OrderStore + InventoryStore + OrderTransactions + 'static> Store for T {}

/// What the console needs, built once per cold start.
pub struct Console<S, K> {
    pub store: S,
    pub shipping: ShippingPolicy,
    pub returns: ReturnPolicy,
    /// The secret the session's keys derive from.
    pub secret: K,
    pub signin: SignIn,
    /// The dead-letter queues; `None` where none are configured (handler tests).
    pub dead_letters: Option<DeadLetters>,
    pub pages: Pages,
    /// The console's own origin (`https://host`): a form from any other is refused.
    pub origin: String,
}

impl Console<DynamoStore, SecretCache> {
    pub fn from_env() -> Result<Self, lambda_http::Error> {
        let console_url = std::env::var("CONSOLE_URL")
            .map_err(|_| config::ConfigError::Missing("CONSOLE_URL"))?;
        let issuer = std::env::var("CONSOLE_ISSUER_URL")
            .map_err(|_| config::ConfigError::Missing("CONSOLE_ISSUER_URL"))?;
        let client_id = std::env::var("CONSOLE_CLIENT_ID")
            .map_err(|_| config::ConfigError::Missing("CONSOLE_CLIENT_ID"))?;
        Ok(Console {
            store: DynamoStore::from_env()?,
            shipping: config::shipping_policy_from_env()?,
            returns: config::return_policy_from_env()?,
            secret: SecretCache::from_env("CONSOLE_SESSION_SECRET_ARN")?,
            signin: SignIn::new(&issuer, &client_id, &console_url)?,
            dead_letters: Some(DeadLetters::from_env()?),
            pages: Pages::new(),
            origin: origin_of(&console_url),
        })
    }
}

/// `https://host:port/path` → `https://host:port`.
pub fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

type App<S, K> = Arc<Console<S, K>>;

/// The console's router: every screen and form under [`BASE`].
pub fn router<S: Store, K: SecretSource + 'static>(console: Console<S, K>) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/orders") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/orders") }),
        )
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/sign-in", get(sign_in::<S, K>))
        .route("/console/auth/callback", get(callback::<S, K>))
        .route("/console/sign-out", post(sign_out::<S, K>))
        .route("/console/orders", get(orders::<S, K>))
        .route("/console/orders/search", post(search::<S, K>))
        .route("/console/orders/{id}", get(order::<S, K>))
        .route("/console/orders/{id}/cancel", post(cancel::<S, K>))
        .route("/console/returns", get(returns::<S, K>))
        .route("/console/returns/{id}/label", get(return_label::<S, K>))
        .route("/console/returns/{id}/{decision}", post(decide::<S, K>))
        .route("/console/inventory", get(inventory_list::<S, K>))
        .route("/console/inventory/{sku}", get(product::<S, K>))
        .route("/console/inventory/{sku}/adjustments", post(adjust::<S, K>))
        .route("/console/warehouse", get(warehouse::<S, K>))
        .route(
            "/console/warehouse/{id}/{step}",
            post(warehouse_step::<S, K>),
        )
        .route("/console/exceptions", get(exceptions::<S, K>))
        .route(
            "/console/exceptions/dead-letters/{name}/redrive",
            post(redrive::<S, K>),
        )
        .fallback(|| async { PageError::NotFound("There is no such page.".into()) })
        .layer(axum::middleware::map_response(harden))
        .with_state(Arc::new(console))
}

/// Headers on every answer: never cached (pages show names and addresses), the CSP, and no
/// framing, sniffing, or referrer to other sites. (`no-referrer` would also make the browser
/// send `Origin: null` with the console's own forms, which the origin check then refuses.)
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

// ------------------------------------------------------------------------------- errors

/// Why a page or a form could not be answered as asked; each becomes a page with its status.
#[derive(Debug)]
pub enum PageError {
    /// No session, or one that ran out: to the sign-in.
    SignIn,
    Forbidden(String),
    NotFound(String),
    /// The page was stale: what it showed changed since.
    Stale(String),
    Invalid(Vec<String>),
    Conflict(String),
    Unavailable(String),
    Internal(String),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Forbidden(scope) => {
                PageError::Forbidden(format!("This needs the scope {scope}."))
            }
            ApiError::NotFound(what) => PageError::NotFound(what),
            ApiError::Invalid(errors) => PageError::Invalid(
                errors
                    .0
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect(),
            ),
            ApiError::PreconditionFailed { current } => PageError::Stale(format!(
                "This changed since your page was loaded (it is now at version {current}). \
                 Nothing was changed: reload the page and try again."
            )),
            ApiError::Unavailable(detail) => PageError::Unavailable(detail),
            ApiError::Internal(detail) => PageError::Internal(detail),
            other @ (ApiError::Conflict { .. } | ApiError::BadRequest { .. }) => {
                PageError::Conflict(other.to_string())
            }
            other => PageError::Internal(other.to_string()),
        }
    }
}

/// Every application error converts as the JSON API converts it, so a refusal reads the same.
macro_rules! page_error_from {
    ($($error:ty),*) => {$(
        impl From<$error> for PageError {
            fn from(error: $error) -> Self {
                ApiError::from(error).into()
            }
        }
    )*};
}
page_error_from!(
    oms_domain::app::fulfillment::FulfillmentAppError,
    oms_domain::app::returns::ReturnsAppError,
    oms_domain::app::inventory::InventoryError,
    oms_domain::app::staff::StaffError,
    oms_domain::app::queries::QueryError,
    oms_domain::ports::StoreError
);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, lines) = match self {
            PageError::SignIn => {
                return Redirect::to("/console/sign-in").into_response();
            }
            PageError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", vec![m]),
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", vec![m]),
            PageError::Stale(m) => (StatusCode::CONFLICT, "The page was out of date", vec![m]),
            PageError::Invalid(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please correct the form",
                m,
            ),
            PageError::Conflict(m) => (StatusCode::CONFLICT, "Refused", vec![m]),
            PageError::Unavailable(m) => {
                tracing::warn!(error = %m, "console: a dependency is busy");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    vec!["The system is busy; try again in a moment.".into()],
                )
            }
            PageError::Internal(m) => {
                tracing::error!(error = %m, "console: internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    vec!["The error was logged; nothing was changed.".into()],
                )
            }
        };
        let html = Pages::new()
            .render(
                "message.html",
                context! { title, lines, status => status.as_u16() },
            )
            .unwrap_or_else(|_| title.to_owned());
        (status, html_headers(), html).into_response()
    }
}

fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}

// ------------------------------------------------------------------------------- sessions

/// The signed-in staff member, the keys of the session, and the caller the application layer
/// checks.
struct Staff {
    session: Session,
    keys: SessionKeys,
    caller: Caller,
}

impl Staff {
    fn require(&self, scope: &'static str) -> Result<(), PageError> {
        if self.session.has_scope(scope) {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "You are signed in as {} without the scope {scope}, which this needs.",
                self.session.sub
            )))
        }
    }

    fn require_any(&self, scopes: &[&'static str]) -> Result<(), PageError> {
        if scopes.iter().any(|s| self.session.has_scope(s)) {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "You are signed in as {} without any of the scopes {}, which this needs.",
                self.session.sub,
                scopes.join(", ")
            )))
        }
    }

    /// What every page's layout needs: who is signed in, which screens they may open, the CSRF
    /// token for the forms, and the banner.
    fn layout(&self, done: Option<&str>) -> Value {
        ser(json!({
            "sub": self.session.sub,
            "admin": self.session.has_scope(SCOPE_ADMIN),
            "warehouse": self.session.has_scope(SCOPE_WAREHOUSE),
            "csrf": self.keys.csrf_token(&self.session),
            "done": done.and_then(banner),
        }))
    }
}

/// The banner of a `done` word a form's redirect carries; unknown words show none.
fn banner(done: &str) -> Option<&'static str> {
    Some(match done {
        "cancelled" => "The order was cancelled and its stock released.",
        "approved" => "The return was approved; its label is issued.",
        "rejected" => "The return was rejected.",
        "received" => "The return was received.",
        "adjusted" => "The stock adjustment was recorded.",
        "picked" => "Picked.",
        "packed" => "Packed.",
        "shipped" => "Shipped: the customer is told.",
        "redriven" => "The dead-letter queue's messages are moving back to their queue.",
        _ => return None,
    })
}

async fn keys<S, K: SecretSource>(app: &Console<S, K>) -> Result<SessionKeys, PageError> {
    let secret = app.secret.value().await?;
    SessionKeys::derive(&secret).map_err(|e| PageError::Internal(e.into()))
}

fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The session of the request, if it has a live one.
async fn staff<S, K: SecretSource>(
    app: &Console<S, K>,
    headers: &HeaderMap,
) -> Result<Staff, PageError> {
    let keys = keys(app).await?;
    let session: Session = keys
        .read(&cookie_header(headers), SESSION_COOKIE)
        .filter(|s: &Session| s.expires_at > Utc::now())
        .ok_or(PageError::SignIn)?;
    let caller = session.caller().ok_or(PageError::SignIn)?;
    Ok(Staff {
        session,
        keys,
        caller,
    })
}

/// A form's fields, as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's text, trimmed, `None` when blank.
    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A field as the JSON body's number, for the request reader to check: the number typed,
    /// the text as typed if it is none (the reader names it), or null when blank.
    fn number(&self, name: &str) -> serde_json::Value {
        match self.text(name).map(str::parse::<i64>) {
            Some(Ok(n)) => json!(n),
            Some(Err(_)) => json!(self.get(name)),
            None => serde_json::Value::Null,
        }
    }

    /// The order version the page showed (its ETag).
    fn version(&self) -> Result<u64, PageError> {
        self.get("version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                PageError::Invalid(vec![
                    "version: the form lost its version; reload the page".into()
                ])
            })
    }
}

/// A form may change something only if it came from the console's own pages: the browser's
/// `Origin` (and `Sec-Fetch-Site`, where sent) name this origin, and it carries the session's
/// CSRF token.
async fn form_staff<S, K: SecretSource>(
    app: &Console<S, K>,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<Staff, PageError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site" || site == "same-site");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin != app.origin);
    if cross_site || foreign_origin {
        tracing::warn!("console: a form from another origin was refused");
        return Err(PageError::Forbidden(
            "This form was not sent from the console's own pages, so nothing was done.".into(),
        ));
    }
    let staff = staff(app, headers).await?;
    let token = fields.get("csrf").unwrap_or_default();
    if !staff.keys.csrf_valid(&staff.session, token) {
        tracing::warn!("console: a form without its session's CSRF token was refused");
        return Err(PageError::Forbidden(
            "This form's security token is missing or belongs to another session; reload the page."
                .into(),
        ));
    }
    Ok(staff)
}

fn page<S, K>(app: &Console<S, K>, name: &str, context: Value) -> Result<Response, PageError> {
    let html = app
        .pages
        .render(name, context)
        .map_err(|e| PageError::Internal(format!("rendering {name}: {e:#}")))?;
    Ok((StatusCode::OK, html_headers(), html).into_response())
}

fn done(to: &str, word: &str) -> Response {
    let separator = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{separator}done={word}")).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct Banner {
    done: Option<String>,
}

// ------------------------------------------------------------------------------- sign-in

async fn sign_in<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
) -> Result<Response, PageError> {
    let keys = keys(&app).await?;
    let (url, pending) = app
        .signin
        .start(Utc::now())
        .await
        .map_err(|e| PageError::Unavailable(e.to_string()))?;
    let cookie = keys.write(SIGN_IN_COOKIE, &pending, "/console/auth", SIGN_IN_SECONDS);
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, url), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, PageError> {
    if let Some(error) = callback.error {
        return Err(PageError::Forbidden(format!(
            "The identity provider did not sign you in ({error})."
        )));
    }
    let (Some(code), Some(state)) = (callback.code, callback.state) else {
        return Err(PageError::Invalid(vec![
            "the sign-in answer has no code".into()
        ]));
    };
    let keys = keys(&app).await?;
    let pending: Option<PendingSignIn> = keys.read(&cookie_header(&headers), SIGN_IN_COOKIE);
    let session = app
        .signin
        .finish(pending, &code, &state, Utc::now())
        .await
        .map_err(|e| PageError::Forbidden(e.to_string()))?;
    if session.caller().is_none() {
        return Err(PageError::Forbidden(
            "The identity provider's subject is not usable here.".into(),
        ));
    }
    tracing::info!(scopes = ?session.scopes, "console: signed in");
    let lifetime = (session.expires_at - Utc::now())
        .num_seconds()
        .clamp(1, MAX_SESSION_SECONDS);
    let home = if session.has_scope(SCOPE_ADMIN) {
        "/console/orders"
    } else {
        "/console/warehouse"
    };
    let mut response = Redirect::to(home).into_response();
    let headers = response.headers_mut();
    for cookie in [
        keys.write(SESSION_COOKIE, &session, BASE, lifetime),
        removal(SIGN_IN_COOKIE, "/console/auth"),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).map_err(|e| PageError::Internal(e.to_string()))?,
        );
    }
    Ok(response)
}

async fn sign_out<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    form_staff(&app, &headers, &fields).await?;
    let html = app
        .pages
        .render(
            "message.html",
            context! { title => "Signed out", lines => ["You are signed out of the console."], sign_in => true },
        )
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::SET_COOKIE, removal(SESSION_COOKIE, BASE)),
        ],
        html,
    )
        .into_response())
}

// ------------------------------------------------------------------------------- orders

#[derive(Debug, Default, Deserialize)]
struct QueueQuery {
    status: Option<String>,
    #[serde(rename = "minAgeMinutes")]
    min_age_minutes: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

/// How many rows a console list shows at once.
const PAGE_ROWS: u32 = 25;

fn summaries(orders: &[oms_domain::order::Order]) -> Value {
    ser(orders
        .iter()
        .map(|o| {
            let mut row = serde_json::to_value(OrderSummary::from(o)).unwrap_or_default();
            row["statusSince"] = json!(o.status_since());
            row["payment"] = json!(o.payment_status());
            row
        })
        .collect::<Vec<_>>())
}

async fn orders<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require(SCOPE_ADMIN)?;
    let status = match query.status.as_deref() {
        // The open orders in the warehouse: what customer service is asked about most.
        None | Some("") => OrderStatus::Fulfilling,
        Some(s) => OrderStatus::parse(s)
            .ok_or_else(|| PageError::NotFound(format!("{s} is not an order status")))?,
    };
    let min_age: u32 = match query.min_age_minutes.as_deref() {
        None | Some("") => 0,
        Some(m) => m.parse().map_err(|_| {
            PageError::Invalid(vec!["minAgeMinutes: a whole number of minutes".into()])
        })?,
    };
    let filter = QueueFilter::Status {
        status,
        min_age: chrono::Duration::minutes(i64::from(min_age)),
    };
    let found = staff::order_queue(
        &app.store,
        &staff.caller,
        &filter,
        Utc::now(),
        PAGE_ROWS,
        query.cursor.as_deref(),
    )
    .await?;
    page(
        &app,
        "orders.html",
        context! {
            me => staff.layout(query.done.as_deref()),
            statuses => OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            status => status.as_str(),
            min_age,
            orders => summaries(&found.items),
            next_cursor => found.next_cursor,
        },
    )
}

/// Searching by order id opens the order; by customer id lists their orders. The search is a
/// POST so a customer's id never lands in a URL, a history or a log.
async fn search<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let staff = form_staff(&app, &headers, &fields).await?;
    staff.require(SCOPE_ADMIN)?;
    let q = fields.text("q").unwrap_or_default();
    if let Ok(id) = OrderId::parse(q.to_ascii_uppercase()) {
        if app.store.get(&id).await?.is_some() {
            return Ok(Redirect::to(&format!("/console/orders/{id}")).into_response());
        }
    }
    let customer = CustomerId::parse(q)
        .map_err(|_| PageError::NotFound("No order or customer has that id.".into()))?;
    let found = staff::order_queue(
        &app.store,
        &staff.caller,
        &QueueFilter::Customer(customer),
        Utc::now(),
        PAGE_ROWS,
        None,
    )
    .await?;
    page(
        &app,
        "orders.html",
        context! {
            me => staff.layout(None),
            statuses => OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            searched => q,
            orders => summaries(&found.items),
        },
    )
}

fn order_id(raw: &str) -> Result<OrderId, PageError> {
    OrderId::parse(raw).map_err(|_| PageError::NotFound("No such order.".into()))
}

async fn order<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(banner): Query<Banner>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require(SCOPE_ADMIN)?;
    let order = queries::get_order(&app.store, &staff.caller, &order_id(&id)?).await?;
    let view = OrderView::for_caller(&order, true);
    // Whether the cancel form is offered: the rule itself, tried on the order as read.
    let cancellable = order.cancel("-".into(), "console", Utc::now()).is_ok();
    page(
        &app,
        "order.html",
        context! {
            me => staff.layout(banner.done.as_deref()),
            order => ser(&view),
            status_since => order.status_since().to_rfc3339(),
            cancellable,
            dispositions => oms_domain::order::returns::Disposition::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        },
    )
}

async fn cancel<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let staff = form_staff(&app, &headers, &fields).await?;
    staff.require(SCOPE_ADMIN)?;
    let id = order_id(&id)?;
    let version = fields.version()?;
    let CancelRequest { reason } =
        CancelRequest::parse(&json!({ "reason": fields.get("reason").unwrap_or_default() }))
            .map_err(ApiError::Invalid)?;
    // The store's conditional write decides whether the page's version is still the order's.
    let order = cancel_order(
        &app.store,
        &staff.caller,
        &id,
        reason,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, "console: order cancelled");
    Ok(done(&format!("/console/orders/{id}"), "cancelled"))
}

// ------------------------------------------------------------------------------- returns

async fn returns<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(banner): Query<Banner>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require(SCOPE_ADMIN)?;
    let (waiting, _) = pending_returns(&app.store, PAGE_ROWS, None).await?;
    let rows: Vec<_> = waiting
        .iter()
        .map(|r| {
            let mut row = serde_json::to_value(r).unwrap_or_default();
            row["orderId"] = json!(r.return_id.order_id());
            row
        })
        .collect();
    page(
        &app,
        "returns.html",
        context! {
            me => staff.layout(banner.done.as_deref()),
            returns => ser(&rows),
        },
    )
}

/// The return's printable label (a PDF to download and print), once the return is approved:
/// for the staff who send a replacement label or receive the parcel.
async fn return_label<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require_any(&[SCOPE_ADMIN, SCOPE_WAREHOUSE])?;
    let id = ReturnId::parse(&id).map_err(|_| PageError::NotFound("No such return.".into()))?;
    let order = app
        .store
        .get(id.order_id())
        .await?
        .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
    let rma = order
        .find_return(&id)
        .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
    if !oms_adapters::label::is_issued(rma) {
        return Err(PageError::Conflict(format!(
            "The return is {}; its label is issued once it is approved.",
            rma.status.as_str()
        )));
    }
    let pdf = oms_adapters::label::render(&order, rma, &app.returns.return_address)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.pdf\""),
            ),
        ],
        pdf,
    )
        .into_response())
}

/// Approve, reject or receive a return. The form names the version of the order it showed.
async fn decide<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let staff = form_staff(&app, &headers, &fields).await?;
    let id = ReturnId::parse(&id).map_err(|_| PageError::NotFound("No such return.".into()))?;
    let version = fields.version()?;
    // Read for the receipt's lines; whether the page's version is still the order's is decided
    // by the store's conditional write.
    let order = app
        .store
        .get(id.order_id())
        .await?
        .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
    let now = Utc::now();
    let word = match decision.as_str() {
        "approve" | "reject" => {
            staff.require(SCOPE_ADMIN)?;
            let DecisionRequest { note } = DecisionRequest::parse(&match fields.text("note") {
                Some(note) => json!({ "note": note }),
                None => json!({}),
            })
            .map_err(ApiError::Invalid)?;
            let approved = decision == "approve";
            decide_return(
                &app.store,
                &staff.caller,
                &id,
                approved,
                note,
                Some(version),
                now,
            )
            .await?;
            if approved {
                "approved"
            } else {
                "rejected"
            }
        }
        "receive" => {
            staff.require(SCOPE_WAREHOUSE)?;
            let rma = order
                .find_return(&id)
                .ok_or_else(|| PageError::NotFound("No such return.".into()))?;
            // One line per returned SKU: the quantity that arrived and what becomes of it.
            let lines: Vec<serde_json::Value> = rma
                .lines
                .iter()
                .map(|line| {
                    let sku = line.sku.as_str();
                    let quantity = fields
                        .get(&format!("quantity-{sku}"))
                        .and_then(|q| q.trim().parse::<u64>().ok());
                    json!({
                        "sku": sku,
                        "quantity": quantity.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null),
                        "disposition": fields.get(&format!("disposition-{sku}")).unwrap_or_default(),
                    })
                })
                .filter(|l| l["quantity"] != json!(0))
                .collect();
            let mut body = json!({ "lines": lines });
            if let Some(note) = fields.text("note") {
                body["note"] = json!(note);
            }
            let receipt = ReceiptRequest::parse(&body).map_err(ApiError::Invalid)?;
            receive_return(
                &app.store,
                &app.returns,
                &app.shipping,
                &staff.caller,
                &id,
                &receipt,
                Some(version),
                now,
            )
            .await?;
            "received"
        }
        _ => return Err(PageError::NotFound("There is no such action.".into())),
    };
    tracing::info!(return_id = %id, decision = word, "console: return changed");
    Ok(done(&format!("/console/orders/{}", id.order_id()), word))
}

// ------------------------------------------------------------------------------- inventory

#[derive(Debug, Default, Deserialize)]
struct CatalogQuery {
    q: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

async fn inventory_list<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(query): Query<CatalogQuery>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require_any(&[SCOPE_ADMIN, SCOPE_WAREHOUSE])?;
    let low_first = query.sort.as_deref() == Some("lowStock");
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let found = staff::catalog(
        &app.store,
        &staff.caller,
        if low_first {
            CatalogOrder::LowStockFirst
        } else {
            CatalogOrder::Sku
        },
        search,
        PAGE_ROWS,
        query.cursor.as_deref(),
    )
    .await?;
    let rows: Vec<_> = found.items.iter().map(ProductView::from).collect();
    page(
        &app,
        "inventory.html",
        context! {
            me => staff.layout(None),
            products => ser(&rows),
            q => search,
            low_first,
            next_cursor => found.next_cursor,
        },
    )
}

fn sku_of(raw: &str) -> Result<Sku, PageError> {
    Sku::parse(raw).map_err(|_| PageError::NotFound(format!("SKU {raw} does not exist.")))
}

async fn product<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    Query(banner): Query<Banner>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require_any(&[SCOPE_ADMIN, SCOPE_WAREHOUSE])?;
    let sku = sku_of(&sku)?;
    let product = inventory::get_product(&app.store, &sku).await?;
    let history =
        staff::adjustment_history(&app.store, &staff.caller, &sku, PAGE_ROWS, None).await?;
    let history: Vec<_> = history.items.iter().map(AdjustmentView::from).collect();
    page(
        &app,
        "product.html",
        context! {
            me => staff.layout(banner.done.as_deref()),
            product => ser(&product),
            low => product.available < product.low_stock_threshold,
            history => ser(&history),
        },
    )
}

/// A receipt, a count or a write-off, as the JSON API's adjustment body.
async fn adjust<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let staff = form_staff(&app, &headers, &fields).await?;
    staff.require(SCOPE_ADMIN)?;
    let sku = sku_of(&sku)?;
    let reason = fields.get("reason").unwrap_or_default();
    let number = |name: &str| fields.number(name);
    let mut body = match reason {
        "COUNT" => json!({ "reason": reason, "countedOnHand": number("countedOnHand") }),
        // A write-off is entered as the units lost; the stock moves down by them.
        "DAMAGE" | "SHRINKAGE" => json!({
            "reason": reason,
            "delta": match number("units") { serde_json::Value::Number(n) => json!(-n.as_i64().unwrap_or(0)), other => other },
        }),
        _ => json!({ "reason": reason, "delta": number("units") }),
    };
    if let Some(note) = fields.text("note") {
        body["note"] = json!(note);
    }
    inventory::adjust_stock(&app.store, &staff.caller, &sku, &body, Utc::now()).await?;
    tracing::info!(sku = %sku, reason, "console: stock adjusted");
    Ok(done(&format!("/console/inventory/{sku}"), "adjusted"))
}

// ------------------------------------------------------------------------------- warehouse

#[derive(Debug, Default, Deserialize)]
struct WarehouseQuery {
    /// One shipment, by its order id (a packer scanning a pick slip).
    order: Option<String>,
    /// One step's next page: the step and its cursor.
    status: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

fn shipment_row(o: &oms_domain::order::Order) -> serde_json::Value {
    json!({
        "orderId": o.id,
        "version": o.version,
        "lines": o.lines.iter().map(|l| json!({"sku": l.sku, "name": l.name, "quantity": l.quantity})).collect::<Vec<_>>(),
        "method": o.shipping.method,
        "country": o.shipping.address.country(),
        "queuedAt": o.fulfillment.as_ref().map(|f| f.queued_at),
    })
}

/// The warehouse's three steps, the oldest shipment first, a page of each; or one step's next
/// page; or one shipment found by its order id.
async fn warehouse<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(query): Query<WarehouseQuery>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require(SCOPE_WAREHOUSE)?;
    let steps = [
        FulfillmentStatus::AwaitingPick,
        FulfillmentStatus::Picked,
        FulfillmentStatus::Packed,
    ];
    let mut sections = Vec::new();
    if let Some(raw) = query
        .order
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let id = order_id(&raw.to_ascii_uppercase())?;
        let order = fulfillment::get_fulfillment(&app.store, &id).await?;
        let status = order.fulfillment.as_ref().map(|f| f.status);
        if order.status == OrderStatus::Reserved {
            return Err(PageError::Conflict(format!(
                "Order {id} is held: the payment provider released its payment, so it waits for \
                 the customer to pay again (its shipment stays {} until then, and the order \
                 expires if no payment comes).",
                status.map(|s| s.as_str()).unwrap_or("not started")
            )));
        }
        for step in steps {
            let here = status == Some(step);
            sections.push(json!({
                "status": step.as_str(),
                "orders": if here { vec![shipment_row(&order)] } else { vec![] },
                "more": false,
            }));
        }
        if !steps.iter().any(|s| Some(*s) == status) {
            return Err(PageError::Conflict(format!(
                "Order {id} has no warehouse work left: its shipment is {}.",
                status.map(|s| s.as_str()).unwrap_or("not started")
            )));
        }
    } else {
        let only = match query.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                FulfillmentStatus::parse(s)
                    .filter(|s| steps.contains(s))
                    .ok_or_else(|| PageError::NotFound(format!("{s} is not a warehouse step")))?,
            ),
        };
        for step in steps {
            if only.is_some_and(|o| o != step) {
                continue;
            }
            let cursor = if only.is_some() {
                query.cursor.as_deref()
            } else {
                None
            };
            let found = fulfillment::pick_list(
                &app.store,
                app.shipping.warehouse(),
                step,
                PAGE_ROWS,
                cursor,
            )
            .await?;
            sections.push(json!({
                "status": step.as_str(),
                "orders": found.items.iter().map(shipment_row).collect::<Vec<_>>(),
                "more": found.next_cursor.is_some(),
                "nextCursor": found.next_cursor,
            }));
        }
    }
    page(
        &app,
        "warehouse.html",
        context! {
            me => staff.layout(query.done.as_deref()),
            sections => ser(&sections),
            order => query.order,
        },
    )
}

async fn warehouse_step<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path((id, step)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let staff = form_staff(&app, &headers, &fields).await?;
    staff.require(SCOPE_WAREHOUSE)?;
    let id = order_id(&id)?;
    let version = fields.version()?;
    let number = |name: &str| fields.number(name);
    let (action, word) = match step.as_str() {
        "pick" => (WarehouseAction::Pick, "picked"),
        "pack" => (
            WarehouseAction::pack(&json!({
                "weightGrams": number("weightGrams"),
                "lengthCm": number("lengthCm"),
                "widthCm": number("widthCm"),
                "heightCm": number("heightCm"),
            }))
            .map_err(ApiError::Invalid)?,
            "packed",
        ),
        "ship" => (
            WarehouseAction::ship(&json!({
                "carrier": fields.get("carrier").unwrap_or_default(),
                "trackingNumber": fields.get("trackingNumber").unwrap_or_default(),
                "trackingUrl": fields.get("trackingUrl").unwrap_or_default(),
            }))
            .map_err(ApiError::Invalid)?,
            "shipped",
        ),
        _ => return Err(PageError::NotFound("There is no such step.".into())),
    };
    fulfillment::warehouse_step(
        &app.store,
        &app.shipping,
        &staff.caller,
        &id,
        action,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %id, step = word, "console: warehouse step");
    // Back to the same shipment, showing its next step's form; once shipped, to the pick list.
    Ok(if word == "shipped" {
        done("/console/warehouse", word)
    } else {
        done(&format!("/console/warehouse?order={id}"), word)
    })
}

// ------------------------------------------------------------------------------- exceptions

async fn exceptions<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(banner): Query<Banner>,
) -> Result<Response, PageError> {
    let staff = staff(&app, &headers).await?;
    staff.require(SCOPE_ADMIN)?;
    let found = staff::exceptions(&app.store, &staff.caller, Utc::now()).await?;
    let stuck: Vec<_> = found
        .stuck
        .iter()
        .map(|s| {
            json!({
                "status": s.rule.status.as_str(),
                "afterMinutes": s.rule.after.num_minutes(),
                "meaning": s.rule.meaning,
                "orders": summaries(&s.orders),
                "more": s.more,
            })
        })
        .collect();
    let payments: Vec<_> = found
        .payments
        .iter()
        .filter_map(PaymentAttentionView::of)
        .collect();
    let queues = match &app.dead_letters {
        Some(dead_letters) => Some(dead_letters.list().await?),
        None => None,
    };
    page(
        &app,
        "exceptions.html",
        context! {
            me => staff.layout(banner.done.as_deref()),
            stuck => ser(&stuck),
            payments => ser(&payments),
            more_payments => found.more_payments,
            queues => ser(&queues),
        },
    )
}

async fn redrive<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    let staff = form_staff(&app, &headers, &fields).await?;
    staff.require(SCOPE_ADMIN)?;
    let dead_letters = app
        .dead_letters
        .as_ref()
        .ok_or_else(|| PageError::NotFound("No dead-letter queues are configured.".into()))?;
    dead_letters
        .redrive(&name)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no dead-letter queue {name}.")))?;
    Ok(done("/console/exceptions", "redriven"))
}

#[cfg(test)]
mod tests {
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
            returns: ReturnPolicy::default_policy(),
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
        let keys = SessionKeys::derive(SECRET).unwrap();
        let set = keys.write(SESSION_COOKIE, session, BASE, 60);
        set.split(';').next().unwrap().to_owned()
    }

    fn csrf(session: &Session) -> String {
        SessionKeys::derive(SECRET).unwrap().csrf_token(session)
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
            .reserve(at)
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
            assert_eq!(headers[header::LOCATION], "/console/sign-in");
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
            "/console/warehouse",
            &format!("/console/orders/{ORDER}"),
        ] {
            let (status, headers, body) = call(&app, get(path, Some(&admin))).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
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
            post(&pick, &packer, ORIGIN, &format!("csrf={token}&version=1")),
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
        let next = format!("/console/warehouse?order={ORDER}&done=picked");
        assert_eq!(headers[header::LOCATION], next.as_str());
        let (_, _, page) = call(&app, get(&next, Some(&packer))).await;
        assert!(page.contains("Picked."), "the banner says what was done");
        assert!(
            page.contains("name=\"weightGrams\""),
            "the order now waits to be packed"
        );
    }
}
