//! Every screen and form of the console, and what each needs.
//!
//! | screen | path | scope |
//! |---|---|---|
//! | order queue (by status and age; search by order or customer) | `/console/orders` | `oms:admin` |
//! | an order: lines, totals, shipment, returns, payment, timeline; cancel, decide, receive | `/console/orders/{id}` | `oms:admin` (receiving: `oms:warehouse`) |
//! | inventory: availability, low stock first, search | `/console/inventory` | `oms:admin` or `oms:warehouse` |
//! | a SKU: its health, stock per location, receipt, count, write-off, transfer and purchase order forms, history, transfers and purchase orders | `/console/inventory/{sku}` | forms: `oms:admin` (receiving a transfer or a delivery: or `oms:warehouse`) |
//! | locations: every warehouse and store, what each can do; change one, add one | `/console/locations` | `oms:admin` or `oms:warehouse` (forms: `oms:admin`) |
//! | the warehouse: pick list, pick, pack and ship | `/console/warehouse` | `oms:warehouse` |
//! | a shipment's packing slip, to print | `/console/warehouse/{shipmentId}/slip` | `oms:warehouse` |
//! | returns waiting for a decision | `/console/returns` | `oms:admin` |
//! | exceptions: stuck orders, money that needs staff, dead-letter queues and their redrive | `/console/exceptions` | `oms:admin` |
//! | a dead-letter queue's messages: read one, discard it | `/console/exceptions/dead-letters/{name}` | `oms:admin` |
//!
//! Every form is a POST that carries the session's CSRF token, and is refused unless it comes
//! from the console's own origin; every form that changes an order carries the version (ETag) of
//! the order the page showed, and the application layer writes on condition that it is still
//! the order's, so a stale page is told so and overwrites nothing. A successful form redirects
//! (303) to the page it changed, with a `done` word for the banner. Every answer is `no-store`
//! (but the stylesheet, kept a year at an address that changes with it) with a strict
//! Content-Security-Policy.
//!
//! ## Layout
//! One module per screen — [`orders`], [`returns`], [`stock`] (inventory), [`locations`],
//! [`warehouse`], [`exceptions`] — beside [`auth`] (sign-in and out), [`access`] (the extractors every page and
//! form goes through: [`Staff`] for a page's session, [`Holding`] for a page's session and the
//! scope the page needs, [`StaffForm`] for a form's session, origin, CSRF token, scope and
//! version) and [`errors`] (the one mapping of errors to pages).

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
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
use oms_domain::app::returns::{
    cancel_order, close_return, decide_return, pending_returns, receive_return,
};
use oms_domain::app::staff::{self, CatalogOrder, HealthReading, QueueFilter};
use oms_domain::app::views::{OrderView, PaymentAttentionView};
use oms_domain::app::Caller;
use oms_domain::ids::{CustomerId, OrderId, ReturnId, Sku};
use oms_domain::order::fulfillment::FulfillmentStatus;
use oms_domain::order::payments::PaymentStatus;
use oms_domain::order::returns::policy::ReturnPolicy;
use oms_domain::order::OrderStatus;
use oms_domain::ports::{InventoryStore, OrderStore, OrderTransactions};
use oms_domain::replenishment::day_of;
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

mod access;
mod auth;
mod errors;
mod exceptions;
mod locations;
mod orders;
mod returns;
mod stock;
mod warehouse;

use access::*;
use auth::*;
pub use errors::PageError;
use errors::*;
use exceptions::*;
use locations::*;
use orders::*;
use returns::*;
use stock::*;
use warehouse::*;

/// Where the console lives on the API.
pub const BASE: &str = "/console";

use oms_domain::app::locations::LocationDirectory;
use oms_domain::location::Locations;
use oms_domain::ports::LocationStore;

/// The ports the console uses.
pub trait Store: OrderStore + InventoryStore + OrderTransactions + LocationStore + 'static {}
impl<T: OrderStore + InventoryStore + OrderTransactions + LocationStore + 'static> Store for T {}

/// What the console needs, built once per cold start.
pub struct Console<S, K> {
    pub store: S,
    pub shipping: ShippingPolicy,
    /// How long an order may wait for stock before the exceptions screen shows it.
    pub backorder_alert: chrono::Duration,
    /// Where stock is kept, as staff keep the list.
    pub locations: LocationDirectory,
    pub returns: ReturnPolicy,
    /// When unpaid orders expire (the order page says when).
    pub payments: oms_domain::order::payments::PaymentPolicy,
    /// The business's stock targets, which the inventory screens' health figures read.
    pub health: oms_domain::replenishment::HealthPolicy,
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
        let shipping = config::shipping_policy_from_env()?;
        crate::pages::configured_time_zone()?;
        Ok(Console {
            store: DynamoStore::from_env()?,
            locations: config::location_directory_from_env(&shipping)?,
            shipping,
            backorder_alert: config::backorder_alert_from_env()?,
            returns: config::return_policy_from_env()?,
            payments: config::payment_policy_from_env()?,
            health: config::health_policy_from_env()?,
            secret: SecretCache::from_env("CONSOLE_SESSION_SECRET_ARN")?,
            signin: SignIn::new(&issuer, &client_id, &console_url)?,
            dead_letters: Some(DeadLetters::from_env()?),
            pages: Pages::new(),
            origin: origin_of(&console_url),
        })
    }
}

impl<S: Store, K> Console<S, K> {
    /// The locations now (the list staff keep, briefly cached).
    async fn locations(&self) -> Result<Arc<Locations>, PageError> {
        Ok(self.locations.current(&self.store).await?)
    }
}

/// The console's address alone: each staff member's home screen, or the sign-in.
async fn landing<S: Store, K: SecretSource + 'static>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
) -> Response {
    match staff(&app, &headers).await {
        Ok(staff) => Redirect::to(home(&staff.session)).into_response(),
        Err(_) => Redirect::to("/console/sign-in").into_response(),
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
    let state = Arc::new(console);
    let routes = Router::new()
        .route("/console", get(landing::<S, K>))
        .route("/console/", get(landing::<S, K>))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/sign-in", get(sign_in::<S, K>))
        .route("/console/auth/callback", get(callback::<S, K>))
        .route("/console/sign-out", post(sign_out::<S, K>))
        .route("/console/orders", get(orders::<S, K>))
        .route("/console/orders/search", post(search::<S, K>))
        .route("/console/orders/{id}", get(order::<S, K>))
        .route("/console/orders/{id}/cancel", post(cancel::<S, K>))
        .route(
            "/console/orders/{id}/cancel-units",
            post(orders::cancel_units::<S, K>),
        )
        .route("/console/orders/{id}/edits", post(orders::edit::<S, K>))
        .route(
            "/console/orders/{id}/shipments/{number}/move",
            post(move_shipment::<S, K>),
        )
        .route(
            "/console/orders/{id}/payment/acknowledge",
            post(acknowledge_payment::<S, K>),
        )
        .route("/console/returns", get(returns::<S, K>))
        .route("/console/returns/{id}/label", get(return_label::<S, K>))
        .route("/console/returns/{id}/{decision}", post(decide::<S, K>))
        .route("/console/inventory", get(inventory_list::<S, K>))
        .route("/console/inventory/{sku}", get(product::<S, K>))
        .route("/console/inventory/{sku}/adjustments", post(adjust::<S, K>))
        .route(
            "/console/inventory/{sku}/selling",
            post(stock::set_selling::<S, K>),
        )
        .route(
            "/console/inventory/{sku}/transfers",
            post(dispatch_transfer::<S, K>),
        )
        .route(
            "/console/inventory/{sku}/transfers/{id}/receive",
            post(receive_transfer::<S, K>),
        )
        .route(
            "/console/inventory/{sku}/purchase-orders",
            post(place_purchase_order::<S, K>),
        )
        .route(
            "/console/inventory/{sku}/purchase-orders/{id}/{step}",
            post(step_purchase_order::<S, K>),
        )
        .route("/console/locations", get(locations::<S, K>))
        .route("/console/locations", post(add_location::<S, K>))
        .route("/console/locations/{id}", post(update_location::<S, K>))
        .route("/console/warehouse", get(warehouse::<S, K>))
        .route(
            "/console/warehouse/{id}/{step}",
            post(warehouse_step::<S, K>),
        )
        .route("/console/warehouse/{id}/slip", get(packing_slip::<S, K>))
        .route("/console/warehouse/bulk", post(bulk::<S, K>))
        .route("/console/warehouse/pick-list", get(pick_list::<S, K>))
        .route("/console/exceptions", get(exceptions::<S, K>))
        .route(
            "/console/exceptions/dead-letters/{name}/redrive",
            post(redrive::<S, K>),
        )
        .route(
            "/console/exceptions/dead-letters/{name}",
            get(dead_letter_queue::<S, K>),
        )
        .route(
            "/console/exceptions/dead-letters/{name}/discard",
            post(discard::<S, K>),
        )
        .fallback(|| async { PageError::NotFound("There is no such page.".into()) })
        .with_state(state.clone());
    // The pages as they are, for showing a refused form again on its own page.
    let navigation = Navigation {
        app: state,
        pages: routes.clone(),
    };
    routes
        .layer(axum::middleware::from_fn_with_state(
            navigation,
            with_navigation::<S, K>,
        ))
        .layer(axum::middleware::map_response(harden))
}

/// Headers on every answer: never cached (pages show names and addresses), the CSP, and no
/// framing, sniffing, or referrer to other sites. (`no-referrer` would also make the browser
/// send `Origin: null` with the console's own forms, which the origin check then refuses.)
async fn harden(mut response: Response) -> Response {
    oms_adapters::web::harden(response.headers_mut());
    response
}

/// The stylesheet, kept a year by browsers: pages link it by the digest of its contents
/// ([`crate::pages::stylesheet_href`]), so a changed one is fetched at its new address.
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

fn page<S, K>(app: &Console<S, K>, name: &str, context: Value) -> Result<Response, PageError> {
    let html = app
        .pages
        .render(name, context)
        .map_err(|e| PageError::Internal(format!("rendering {name}: {e:#}")))?;
    Ok((StatusCode::OK, html_headers(), html).into_response())
}

fn done(to: &str, word: &str) -> Response {
    // The word goes in the query, before any fragment (the row the page opens at).
    let (path, fragment) = match to.split_once('#') {
        Some((path, fragment)) => (path, format!("#{fragment}")),
        None => (to, String::new()),
    };
    let separator = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{separator}done={word}{fragment}")).into_response()
}

/// The `done` word of a form's redirect, for the page's banner.
#[derive(Debug, Default, Deserialize)]
struct Banner {
    done: Option<String>,
}

#[cfg(test)]
mod tests;
