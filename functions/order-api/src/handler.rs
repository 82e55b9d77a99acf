//! The HTTP handler: route, read, answer.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::ProblemType;
use oms_adapters::http::{
    caller, idempotency_key, if_match, json_body, json_response, page_limit, path_id,
    path_parameter, require_scope, respond, route_key, unknown_route, ApiError, Listing,
};
use oms_adapters::secrets::{SecretCache, SecretSource};
use oms_adapters::stripe::StripeClient;
use oms_domain::app::caller::SCOPE_ADMIN;
use oms_domain::app::locations::LocationDirectory;
use oms_domain::app::queries::{self, OrderSummary};
use oms_domain::app::returns::{self, cancel_order};
use oms_domain::app::staff::{self, QueueFilter};
use oms_domain::app::views::PaymentAttentionView;
use oms_domain::app::views::{as_seen_by, OrderView};
use oms_domain::ids::CustomerId;
use oms_domain::ids::OrderId;
use oms_domain::order::OrderStatus;
use oms_domain::ports::PaymentWatch;
use oms_domain::ports::{
    InventoryStore, LocationStore, OrderStore, OrderTransactions, PaymentProvider,
};
use oms_domain::request::staff::{
    AcknowledgeRequest, CancelRequest, OrderEditRequest, UnitCancelRequest,
};
use serde::Serialize;

/// What the function needs, built once per cold start: the store, the payment service provider
/// the customer's payment is opened at (Stripe), and the key of the links to an order's page.
pub struct App<S, P, K = SecretCache> {
    pub store: S,
    pub payments: P,
    /// `ShopSecret`: the customers' pages' link keys (the first signs).
    pub links: K,
    /// The API's public address, which the page links start with.
    pub public_url: String,
    /// The business's locations and rate table: a unit cancellation re-quotes the shipping of
    /// what still ships from where it leaves.
    pub locations: LocationDirectory,
    /// How long an order may wait for stock before `GET /exceptions` shows it.
    pub backorder_alert: chrono::Duration,
    /// How long a dearer edit of an order whose money is held waits for its new hold.
    pub edit_window: chrono::Duration,
}

impl App<DynamoStore, StripeClient<SecretCache>> {
    pub fn from_env() -> Result<Self, Error> {
        let shipping = oms_adapters::config::shipping_policy_from_env()?;
        Ok(App {
            locations: oms_adapters::config::location_directory_from_env(&shipping)?,
            backorder_alert: oms_adapters::config::backorder_alert_from_env()?,
            edit_window: oms_adapters::config::payment_policy_from_env()?.authorization_window,
            store: DynamoStore::from_env()?,
            payments: StripeClient::from_env()?,
            links: SecretCache::from_env("SHOP_SECRET_ARN")?,
            public_url: std::env::var("PUBLIC_API_URL").unwrap_or_default(),
        })
    }
}

/// How long a link handed to a signed-in customer's browser opens the page.
const PAGE_LINK_SECONDS: i64 = 3600;

/// A signed link to an order's page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageLink {
    url: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// `GET /orders/{id}/page`: a signed link to the order's page for its customer's browser.
async fn page_link<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = order_id(request)?;
    let order = queries::get_order(&app.store, &caller, &id).await?;
    let key = app.links.value().await?;
    let links = oms_adapters::web::OrderLinks::from_secret(&key)
        .map_err(|e| ApiError::Internal(e.to_owned()))?;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(PAGE_LINK_SECONDS);
    let token = links.token(order.id.as_str(), expires_at.timestamp());
    let link = PageLink {
        url: format!(
            "{}/shop/orders/{}?t={token}",
            app.public_url.trim_end_matches('/'),
            order.id
        ),
        expires_at,
    };
    Ok(json_response(StatusCode::OK, &link))
}

#[tracing::instrument(skip_all)]
pub async fn handle<
    S: OrderStore + OrderTransactions + LocationStore + InventoryStore,
    P: PaymentProvider,
    K: SecretSource,
>(
    app: &App<S, P, K>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let result = match route_key(&request) {
        Some("GET /orders/{id}") => get_order(app, &request).await,
        Some("GET /orders/{id}/page") => page_link(app, &request).await,
        Some("GET /orders") => list_orders(app, &request).await,
        Some("POST /orders/{id}/cancel") => cancel(app, &request).await,
        Some("POST /orders/{id}/cancel-units") => cancel_units(app, &request).await,
        Some("POST /orders/{id}/edits") => edit(app, &request).await,
        Some("POST /orders/{id}/payment-intent") => payment_intent(app, &request).await,
        Some("POST /orders/{id}/payment/acknowledge") => acknowledge(app, &request).await,
        Some("GET /payments/attention") => payment_attention(app, &request).await,
        Some("POST /orders/{id}/refunds/{refundId}/retry") => retry_refund(app, &request).await,
        Some("GET /exceptions") => exceptions(app, &request).await,
        _ => Err(unknown_route(&request)),
    };
    Ok(respond(result))
}

/// The order id in the path. A malformed id names no order: the same 404 as a missing one.
fn order_id(request: &Request) -> Result<OrderId, ApiError> {
    path_id(
        request,
        "id",
        |raw| OrderId::parse(raw),
        |_| "no such order".into(),
    )
}

async fn get_order<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = order_id(request)?;
    let order = queries::get_order(&app.store, &caller, &id).await?;
    Ok(json_response(
        StatusCode::OK,
        &OrderView::for_caller(&as_seen_by(&order, caller.is_admin()), caller.is_admin()),
    ))
}

/// `POST /orders/{id}/cancel` with `{"reason": "..."}`: the order's customer or an administrator
/// calls it off before it is packed; its stock is released in the same write.
async fn cancel<
    S: OrderStore + OrderTransactions + LocationStore + InventoryStore,
    P: PaymentProvider,
    K: SecretSource,
>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = order_id(request)?;
    let body = json_body(request)?;
    let CancelRequest { reason } = CancelRequest::parse(&body).map_err(ApiError::Invalid)?;
    let seen = if_match(request)?;
    let order = cancel_order(
        &app.store,
        &app.locations,
        &caller,
        &id,
        reason,
        seen,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, "order cancelled");
    Ok(json_response(
        StatusCode::OK,
        &OrderView::for_caller(&as_seen_by(&order, caller.is_admin()), caller.is_admin()),
    ))
}

/// `POST /orders/{id}/cancel-units` with `{"lines": [{"sku", "quantity"}], "reason"}` and an
/// `Idempotency-Key`: the order's customer or an administrator calls off some units before they
/// are packed; their stock is released in the same write, the totals shrink and the money
/// follows (a refund of what was taken, a smaller capture of what is held).
async fn cancel_units<
    S: OrderStore + OrderTransactions + LocationStore + InventoryStore,
    P: PaymentProvider,
    K: SecretSource,
>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = order_id(request)?;
    let key = idempotency_key(request, "POST /orders/{id}/cancel-units")?;
    let body = json_body(request)?;
    let wanted = UnitCancelRequest::parse(&body).map_err(ApiError::Invalid)?;
    let seen = if_match(request)?;
    let order = returns::cancel_units(
        &app.store,
        &app.locations,
        &caller,
        &id,
        &wanted,
        &key,
        seen,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, version = order.version, "units cancelled");
    Ok(json_response(
        StatusCode::OK,
        &OrderView::for_caller(&as_seen_by(&order, caller.is_admin()), caller.is_admin()),
    ))
}

/// `POST /orders/{id}/edits` with `{shippingAddress?, shippingMethod?, reason}`, an
/// `Idempotency-Key` and the `If-Match` of the version the caller saw: staff change where or how
/// the order ships before it is packed, its customer where it ships to; the charge is re-quoted
/// and the money follows (a refund, a smaller capture, or a new hold of a dearer total).
async fn edit<
    S: OrderStore + OrderTransactions + LocationStore + InventoryStore,
    P: PaymentProvider,
    K: SecretSource,
>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = order_id(request)?;
    let key = idempotency_key(request, "POST /orders/{id}/edits")?;
    let body = json_body(request)?;
    let wanted = OrderEditRequest::parse(&body).map_err(ApiError::Invalid)?;
    // The customer says where the parcel goes and whether what is in stock goes ahead; how it
    // ships, and what it holds, is staff's.
    if (wanted.shipping_method.is_some() || !wanted.add_lines.is_empty()) && !caller.is_admin() {
        return Err(ApiError::Forbidden(SCOPE_ADMIN));
    }
    let seen = if_match(request)?.ok_or(ApiError::PreconditionRequired)?;
    let order = returns::edit_order(
        &app.store,
        &app.locations,
        &caller,
        &id,
        &wanted,
        &key,
        seen,
        app.edit_window,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, version = order.version, "order edited");
    Ok(json_response(
        StatusCode::OK,
        &OrderView::for_caller(&as_seen_by(&order, caller.is_admin()), caller.is_admin()),
    ))
}

/// `GET /orders`: the caller's own orders, newest first; with `status` (and `minAgeMinutes`) or
/// `customerId`, the staff order queue (`oms:admin`).
/// Staff (`oms:admin`) say how they dealt with what the order's money needed (a mismatch voided
/// at the PSP, a second payment refunded there): every reason open now leaves the attention
/// list; one that arises later puts the order back on it.
async fn acknowledge<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_ADMIN)?;
    let id = order_id(request)?;
    let AcknowledgeRequest { note } =
        AcknowledgeRequest::parse(&json_body(request)?).map_err(ApiError::Invalid)?;
    let seen = if_match(request)?;
    let order = oms_domain::app::payments::acknowledge_attention(
        &app.store,
        &caller,
        &id,
        note,
        seen,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %order.id, "payment attention acknowledged");
    Ok(json_response(
        StatusCode::OK,
        &OrderView::for_caller(&order, true),
    ))
}

/// Opens the order's payment at the PSP for its customer: the PaymentIntent's id and client
/// secret, for the storefront to confirm with Stripe's own library.
async fn payment_intent<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = order_id(request)?;
    let intent =
        oms_domain::app::payments::start_payment(&app.store, &app.payments, &caller, &id).await?;
    // The client secret is the customer's alone: never logged.
    tracing::info!(order_id = %id, payment_intent = %intent.payment_intent_id, "payment opened");
    Ok(json_response(StatusCode::OK, &intent))
}

async fn list_orders<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let query = request.query_string_parameters();
    let limit = page_limit(request)?;
    let cursor = query.first("cursor");
    let page = match queue_filter(request)? {
        None => queries::list_orders(&app.store, &caller, limit, cursor).await?,
        Some(filter) => {
            staff::order_queue(
                &app.store,
                &caller,
                &filter,
                chrono::Utc::now(),
                limit,
                cursor,
            )
            .await?
        }
    };
    Ok(Listing::of(&page, |o| Some(OrderSummary::from(o))).response())
}

fn invalid_query(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        problem: ProblemType::InvalidQuery,
        detail: detail.into(),
    }
}

/// The staff queue's filter, if the query asks for one: `status` with an optional
/// `minAgeMinutes`, or `customerId` (not both).
fn queue_filter(request: &Request) -> Result<Option<QueueFilter>, ApiError> {
    let query = request.query_string_parameters();
    let status = query.first("status");
    let min_age = query.first("minAgeMinutes");
    let customer = query.first("customerId");
    match (status, customer) {
        (None, None) if min_age.is_some() => Err(invalid_query("minAgeMinutes needs a status")),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid_query("give status or customerId, not both")),
        (None, Some(customer)) if min_age.is_none() => CustomerId::parse(customer)
            .map(|c| Some(QueueFilter::Customer(c)))
            .map_err(|e| invalid_query(format!("customerId: {e}"))),
        (None, Some(_)) => Err(invalid_query(
            "minAgeMinutes goes with status, not customerId",
        )),
        (Some(status), None) => {
            let status = OrderStatus::parse(status)
                .ok_or_else(|| invalid_query(format!("status: {status} is not an order status")))?;
            let minutes = match min_age {
                None => 0,
                Some(raw) => raw
                    .parse::<u32>()
                    .ok()
                    .filter(|m| *m <= MAX_QUEUE_AGE_MINUTES)
                    .ok_or_else(|| {
                        invalid_query(format!(
                            "minAgeMinutes must be a whole number from 0 to {MAX_QUEUE_AGE_MINUTES}"
                        ))
                    })?,
            };
            Ok(Some(QueueFilter::Status {
                status,
                min_age: chrono::Duration::minutes(i64::from(minutes)),
            }))
        }
    }
}

/// A year: the oldest an age filter can ask for.
const MAX_QUEUE_AGE_MINUTES: u32 = 525_600;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StuckView {
    status: OrderStatus,
    after_minutes: i64,
    meaning: &'static str,
    orders: Vec<OrderSummary>,
    more: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExceptionsView<'a> {
    stuck: Vec<StuckView>,
    payments: Vec<PaymentAttentionView<'a>>,
    more_payments: bool,
}

/// `GET /exceptions` (`oms:admin`): what needs a person — orders late in a status, per rule, and
/// money that needs staff.
async fn exceptions<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let found =
        staff::exceptions(&app.store, &caller, app.backorder_alert, chrono::Utc::now()).await?;
    let body = ExceptionsView {
        stuck: found
            .stuck
            .iter()
            .map(|s| StuckView {
                status: s.rule.status,
                after_minutes: s.rule.after.num_minutes(),
                meaning: s.rule.meaning,
                orders: s.orders.iter().map(OrderSummary::from).collect(),
                more: s.more,
            })
            .collect(),
        payments: found
            .payments
            .iter()
            .filter_map(PaymentAttentionView::of)
            .collect(),
        more_payments: found.more_payments,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /orders/{id}/refunds/{refundId}/retry` (`oms:admin`): a refund the PSP could not pay
/// out is asked again, under an id of its own.
async fn retry_refund<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    require_scope(&caller(request)?, SCOPE_ADMIN)?;
    let id = order_id(request)?;
    let refund_id = path_parameter(request, "refundId")?;
    let order =
        oms_domain::app::payments::retry_refund(&app.store, &id, &refund_id, chrono::Utc::now())
            .await?;
    tracing::info!(order_id = %order.id, refund_id = %refund_id, "refund asked again");
    Ok(json_response(StatusCode::OK, &OrderView::from(&order)))
}

/// `GET /payments/attention` (`oms:admin`): orders whose money needs staff — an amount the PSP
/// reported that is not the order's, a refund or capture the PSP refused, an authorization near
/// its capture deadline — the longest waiting first.
async fn payment_attention<S: OrderStore, P: PaymentProvider, K: SecretSource>(
    app: &App<S, P, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    require_scope(&caller(request)?, SCOPE_ADMIN)?;
    let query = request.query_string_parameters();
    let limit = page_limit(request)?;
    let page = app
        .store
        .list_payment_watch(PaymentWatch::Attention, None, limit, query.first("cursor"))
        .await?;
    Ok(Listing::of(&page, PaymentAttentionView::of).response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::memory::InMemoryStore;
    use oms_domain::order::Order;

    fn event(name: &str) -> Request {
        let json = oms_domain::fixtures::event_text(&format!("order-api/{name}.json"));
        lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("order-api/{name}: {e}"))
    }

    use oms_adapters::secrets::FixedSecret;
    use oms_domain::fixtures::FakePsp as Psp;

    const LINK_KEY: &[u8] = b"a customer pages key that is long enough for HMAC";

    #[tokio::test]
    async fn a_customer_opens_the_payment_of_their_own_unpaid_order() {
        let app = App {
            locations: LocationDirectory::demo(),
            backorder_alert: chrono::Duration::days(14),
            edit_window: chrono::Duration::minutes(30),
            store: InMemoryStore::default(),
            payments: Psp::default(),
            links: FixedSecret::new(LINK_KEY),
            public_url: "https://shop.example".into(),
        };
        app.store
            .insert_order(stored_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 1_700_000_000));
        let (status, body) = call(&app, "payment-intent").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["paymentIntentId"],
            "pi_01KAZ3Q6W8T2Y7X9V5N4M3K2J1-INTENT-1"
        );
        assert_eq!(
            body["clientSecret"],
            "pi_01KAZ3Q6W8T2Y7X9V5N4M3K2J1-INTENT-1_secret_x"
        );
        assert_eq!(body["amount"]["currency"], "EUR");
        let (status, _) = call(&app, "get-order-of-another-customer").await;
        assert_eq!(status, 404);
    }

    /// An order of `customer-ada`, placed at `created` (epoch seconds).
    fn stored_order(id: &str, created: i64) -> Order {
        oms_domain::fixtures::sample_order(
            id,
            "customer-ada",
            chrono::DateTime::from_timestamp(created, 0).unwrap(),
        )
    }

    async fn call(
        app: &App<InMemoryStore, Psp, FixedSecret>,
        name: &str,
    ) -> (u16, serde_json::Value) {
        let response = handle(app, event(name)).await.unwrap();
        (
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_customer_reads_their_own_order_and_nobody_elses() {
        let app = App {
            locations: LocationDirectory::demo(),
            backorder_alert: chrono::Duration::days(14),
            edit_window: chrono::Duration::minutes(30),
            store: InMemoryStore::default(),
            payments: Psp::default(),
            links: FixedSecret::new(LINK_KEY),
            public_url: "https://shop.example".into(),
        };
        app.store
            .insert_order(stored_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 1_700_000_000));
        let (status, body) = call(&app, "get-order").await;
        assert_eq!(status, 200);
        assert_eq!(body["orderId"], "01KAZ3Q6W8T2Y7X9V5N4M3K2J1");
        assert_eq!(body["timeline"][0]["status"], "PENDING");
        assert_eq!(body["lines"][0]["unitPrice"]["amount"], 2500);

        let (status, body) = call(&app, "get-order-of-another-customer").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (404, Some("/problems/not-found"))
        );
        let (status, _) = call(&app, "get-order-bad-id").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn lists_newest_first_in_pages() {
        let app = App {
            locations: LocationDirectory::demo(),
            backorder_alert: chrono::Duration::days(14),
            edit_window: chrono::Duration::minutes(30),
            store: InMemoryStore::default(),
            payments: Psp::default(),
            links: FixedSecret::new(LINK_KEY),
            public_url: "https://shop.example".into(),
        };
        for (i, id) in [
            "01KAZ3Q6W8T2Y7X9V5N4M3K2J1",
            "01KAZ3Q6W8T2Y7X9V5N4M3K2J2",
            "01KAZ3Q6W8T2Y7X9V5N4M3K2J3",
        ]
        .iter()
        .enumerate()
        {
            app.store
                .insert_order(stored_order(id, 1_700_000_000 + i as i64));
        }
        let (status, body) = call(&app, "list-orders").await;
        assert_eq!(status, 200);
        let ids: Vec<_> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["01KAZ3Q6W8T2Y7X9V5N4M3K2J3", "01KAZ3Q6W8T2Y7X9V5N4M3K2J2"]
        );
        assert!(body["nextCursor"].is_string());
        assert!(
            body["items"][0].get("shippingAddress").is_none(),
            "listings carry no addresses"
        );

        let (status, body) = call(&app, "list-orders-bad-limit").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (400, Some("/problems/invalid-query"))
        );
    }

    #[tokio::test]
    async fn a_customer_cancels_a_reserved_order_and_its_stock_is_released() {
        let order = stored_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 1_700_000_000)
            .authorized_for_test(chrono::Utc::now());
        let products: Vec<_> = order
            .lines
            .iter()
            .map(|l| oms_domain::fixtures::product(l.sku.as_str(), 2500, 10))
            .collect();
        let app = App {
            locations: LocationDirectory::demo(),
            backorder_alert: chrono::Duration::days(14),
            edit_window: chrono::Duration::minutes(30),
            store: InMemoryStore::with_products(products),
            payments: Psp::default(),
            links: FixedSecret::new(LINK_KEY),
            public_url: "https://shop.example".into(),
        };
        app.store.insert_order(order.clone());
        oms_domain::app::reservation::reserve_order(
            &app.store,
            &app.store,
            oms_domain::app::reservation::Routing::demo(),
            &order.id,
            chrono::Utc::now(),
        )
        .await
        .unwrap();

        let (status, body) = call(&app, "cancel-order-without-reason").await;
        assert_eq!(status, 422);
        let fields = oms_domain::fixtures::error_fields(&body);
        assert_eq!(fields, ["why", "reason"]);

        let (status, body) = call(&app, "cancel-order").await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "CANCELLED");
        assert_eq!(body["cancellation"]["reason"], "ordered the wrong size");
        // Authorized, not captured: the hold is voided, nothing refunded. The customer sees
        // the payment's status, not what was asked of the PSP.
        assert!(body.get("refunds").is_none());
        assert!(body["payment"].get("requests").is_none());
        let stored = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(
            stored.payment.requests[0].kind,
            oms_domain::order::payments::PspRequestKind::Void
        );
        for line in &order.lines {
            let product = oms_domain::ports::InventoryStore::product(&app.store, &line.sku)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (product.stock.available(), product.stock.reserved()),
                (10, 0)
            );
        }
    }

    #[tokio::test]
    async fn a_customer_cancels_one_unit_once_and_only_what_the_order_holds() {
        let order = stored_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 1_700_000_000)
            .authorized_for_test(chrono::Utc::now());
        let products: Vec<_> = order
            .lines
            .iter()
            .map(|l| oms_domain::fixtures::product(l.sku.as_str(), 2500, 10))
            .collect();
        let app = App {
            locations: LocationDirectory::demo(),
            backorder_alert: chrono::Duration::days(14),
            edit_window: chrono::Duration::minutes(30),
            store: InMemoryStore::with_products(products),
            payments: Psp::default(),
            links: FixedSecret::new(LINK_KEY),
            public_url: "https://shop.example".into(),
        };
        app.store.insert_order(order.clone());
        oms_domain::app::reservation::reserve_order(
            &app.store,
            &app.store,
            oms_domain::app::reservation::Routing::demo(),
            &order.id,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let before = app.store.get(&order.id).await.unwrap().unwrap();

        let (status, body) = call(&app, "cancel-order-units-too-many").await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            oms_domain::fixtures::error_fields(&body),
            ["lines[0].quantity", "lines[1].sku"]
        );
        let unchanged = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(unchanged.version, before.version, "nothing changed");

        for _ in 0..2 {
            // Sent twice: one change.
            let (status, body) = call(&app, "cancel-order-units").await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["status"], "RESERVED");
            assert_eq!(body["lines"][0]["quantity"], 1);
            assert_eq!(body["unitCancellations"].as_array().unwrap().len(), 1);
            assert_eq!(body["unitCancellations"][0]["lines"][0]["quantity"], 1);
            assert!(body["unitCancellations"][0].get("key").is_none());
            assert_eq!(
                body["totals"]["subtotal"]["amount"],
                before.totals.subtotal.minor_units() - 2500
            );
        }
        let product = oms_domain::ports::InventoryStore::product(
            &app.store,
            &oms_domain::ids::Sku::parse("TSHIRT-RED-M").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            (product.stock.available(), product.stock.reserved()),
            (9, 1),
            "the unit is released in the same write"
        );
        let (status, body) = call(&app, "cancel-order-units-key-reused").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (409, Some("/problems/idempotency-key-reused"))
        );
    }

    #[tokio::test]
    async fn a_signed_in_customer_gets_a_link_that_opens_their_own_orders_page() {
        let app = App {
            locations: LocationDirectory::demo(),
            backorder_alert: chrono::Duration::days(14),
            edit_window: chrono::Duration::minutes(30),
            store: InMemoryStore::default(),
            payments: Psp::default(),
            links: FixedSecret::new(LINK_KEY),
            public_url: "https://shop.example/".into(),
        };
        app.store
            .insert_order(stored_order("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 1_700_000_000));
        let (status, body) = call(&app, "page-link").await;
        assert_eq!(status, 200, "{body}");
        let url = body["url"].as_str().unwrap();
        let token = url
            .strip_prefix("https://shop.example/shop/orders/01KAZ3Q6W8T2Y7X9V5N4M3K2J1?t=")
            .unwrap_or_else(|| panic!("{url}"));
        let links = oms_adapters::web::OrderLinks::from_secret(LINK_KEY).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(links.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", token, now));
        assert!(
            !links.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", token, now + 3601),
            "an hour"
        );
        assert!(body["expiresAt"].is_string());
    }
}
