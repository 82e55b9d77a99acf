//! The HTTP handler: route, check the caller, run the operation, answer.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::{
    caller, idempotency_key, if_match, json_body, json_response, page_limit, path_id,
    path_parameter, require_scope, respond, route_key, unknown_route, ApiError, Listing,
    ProblemType,
};
use oms_domain::app::caller::{SCOPE_ADMIN, SCOPE_WAREHOUSE};
use oms_domain::app::locations::LocationDirectory;
use oms_domain::app::returns::{
    close_return, decide_return, get_return, pending_returns, receive_return, request_return,
};
use oms_domain::ids::{OrderId, ReturnId};
use oms_domain::order::refunds::Refund;
use oms_domain::order::returns::policy::ReturnPolicy;
use oms_domain::order::returns::{Return, ReturnStatus};
use oms_domain::order::Order;
use oms_domain::ports::{InventoryStore, LocationStore, OrderStore, OrderTransactions};
use oms_domain::request::returns::{ReceiptRequest, ReturnRequest};
use oms_domain::request::staff::DecisionRequest;
use serde::Serialize;

use oms_adapters::label;

/// What the function needs, built once per cold start.
pub struct App<S> {
    pub store: S,
    pub returns: ReturnPolicy,
    /// Where stock is kept and what each location sends where, with the rate table: a refund
    /// re-quotes shipping by it, and restocked units go to the orders that location can serve.
    pub locations: LocationDirectory,
}

impl App<DynamoStore> {
    pub async fn from_env() -> Result<Self, Error> {
        Ok(App {
            store: DynamoStore::from_env()?,
            returns: config::return_policy_from_env()?,
            locations: config::location_directory_from_env(&config::shipping_policy_from_env()?)?,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn handle<S: OrderStore + InventoryStore + OrderTransactions + LocationStore>(
    app: &App<S>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let result = match route_key(&request) {
        Some("POST /orders/{id}/returns") => open(app, &request).await,
        Some("GET /returns") => list_pending(app, &request).await,
        Some("GET /returns/{id}") => show(app, &request).await,
        Some("GET /returns/{id}/label") => label(app, &request).await,
        Some("POST /returns/{id}/approve") => decide(app, &request, true).await,
        Some("POST /returns/{id}/reject") => decide(app, &request, false).await,
        Some("POST /returns/{id}/close") => close(app, &request).await,
        Some("POST /returns/{id}/receive") => receive(app, &request).await,
        _ => Err(unknown_route(&request)),
    };
    Ok(respond(result))
}

/// A return as the API shows it: the RMA, its order, its refund and where its label is.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReturnView<'a> {
    #[serde(flatten)]
    rma: oms_domain::app::views::ReturnView<'a>,
    order_id: &'a OrderId,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund: Option<&'a Refund>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_url: Option<String>,
}

fn view<'a>(rma: &'a Return, order: &'a Order) -> ReturnView<'a> {
    let id = &rma.return_id;
    ReturnView {
        rma: oms_domain::app::views::ReturnView::of(rma),
        order_id: id.order_id(),
        refund: rma
            .refund_id
            .as_ref()
            .and_then(|r| order.refunds.iter().find(|f| &f.refund_id == r)),
        label_url: has_label(rma).then(|| format!("/returns/{id}/label")),
    }
}

/// A label is issued once a return is approved; it stays available after receipt for records.
fn has_label(rma: &Return) -> bool {
    label::is_issued(rma)
}

/// The RMA number in the path. A malformed one names no return: the same 404 as a missing one.
fn return_id(request: &Request) -> Result<ReturnId, ApiError> {
    path_id(
        request,
        "id",
        |raw| ReturnId::parse(raw),
        |_| "no such return".into(),
    )
}

/// The return in a response of `status`, with its `Location`.
/// The return `rma` of `order` as `caller` sees it: its customer sees who decided and received
/// it by role (`staff`, `warehouse`), without the receipt's note.
fn return_response(
    status: StatusCode,
    caller: &oms_domain::app::Caller,
    rma: &Return,
    order: &Order,
) -> Response<Body> {
    let staff = caller.is_admin() || caller.has_scope(SCOPE_WAREHOUSE);
    let seen = oms_domain::app::views::as_seen_by(order, staff);
    let rma = seen
        .returns
        .iter()
        .find(|r| r.return_id == rma.return_id)
        .unwrap_or(rma);
    let mut response = json_response(status, &view(rma, &seen));
    if let Ok(location) = HeaderValue::from_str(&format!("/returns/{}", rma.return_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A body that may be absent (`POST` without one): an empty object.
fn optional_body(request: &Request) -> Result<serde_json::Value, ApiError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    json_body(request)
}

/// `POST /orders/{id}/returns`: the order's customer asks to send lines back.
async fn open<S: OrderStore + InventoryStore + OrderTransactions>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let id = OrderId::parse(path_parameter(request, "id")?)
        .map_err(|_| ApiError::NotFound("no such order".into()))?;
    let key = idempotency_key(request, "POST /orders/{id}/returns")?;
    let body = ReturnRequest::parse(&json_body(request)?).map_err(ApiError::Invalid)?;
    let now = chrono::Utc::now();
    let requested = request_return(&app.store, &app.returns, &caller, &id, &body, key, now).await?;
    tracing::info!(
        return_id = %requested.rma.return_id,
        status = requested.rma.status.as_str(),
        created = requested.created,
        "return requested"
    );
    let mut response = return_response(
        StatusCode::CREATED,
        &caller,
        &requested.rma,
        &requested.order,
    );
    if !requested.created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /returns?status=PENDING_APPROVAL&limit=&cursor=` (`oms:admin`): the approval queue.
async fn list_pending<S: OrderStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_ADMIN)?;
    let query = request.query_string_parameters();
    let bad = |detail: String| ApiError::BadRequest {
        problem: ProblemType::InvalidQuery,
        detail,
    };
    if query.first("status") != Some(ReturnStatus::PendingApproval.as_str()) {
        return Err(bad(
            "status=PENDING_APPROVAL is required: the returns waiting for staff".into(),
        ));
    }
    let limit = page_limit(request)?;
    let (returns, next_cursor) = pending_returns(&app.store, limit, query.first("cursor")).await?;
    let body = Listing {
        items: returns
            .iter()
            .map(|rma| ReturnView {
                rma: oms_domain::app::views::ReturnView::of(rma),
                order_id: rma.return_id.order_id(),
                refund: None,
                label_url: None,
            })
            .collect(),
        next_cursor,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /returns/{id}`: its customer, administrators and the warehouse.
async fn show<S: OrderStore>(app: &App<S>, request: &Request) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let (rma, order) = get_return(&app.store, &caller, &return_id(request)?).await?;
    Ok(return_response(StatusCode::OK, &caller, &rma, &order))
}

/// `GET /returns/{id}/label`: the printable label, once the return is approved.
async fn label<S: OrderStore>(app: &App<S>, request: &Request) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let (rma, order) = get_return(&app.store, &caller, &return_id(request)?).await?;
    if !has_label(&rma) {
        return Err(ApiError::Conflict {
            problem: ProblemType::LabelNotIssued,
            title: None,
            detail: format!(
                "the return is {}; its label is issued once it is approved",
                rma.status.as_str()
            ),
        });
    }
    let pdf = label::render(&order, &rma, &app.returns.return_address)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = Response::new(Body::Binary(pdf));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("inline; filename=\"{}.pdf\"", rma.return_id))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// What staff's decision on a return carries (`oms:admin`): who, which return, their optional
/// `note`, and the order's version they saw (`If-Match`).
fn staff_decision(
    request: &Request,
) -> Result<
    (
        oms_domain::app::Caller,
        ReturnId,
        Option<String>,
        Option<u64>,
    ),
    ApiError,
> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_ADMIN)?;
    let id = return_id(request)?;
    let DecisionRequest { note } =
        DecisionRequest::parse(&optional_body(request)?).map_err(ApiError::Invalid)?;
    Ok((caller, id, note, if_match(request)?))
}

/// `POST /returns/{id}/approve` and `/reject` (`oms:admin`), with an optional `note`.
async fn decide<S: OrderStore + OrderTransactions>(
    app: &App<S>,
    request: &Request,
    approved: bool,
) -> Result<Response<Body>, ApiError> {
    let (caller, id, note, seen) = staff_decision(request)?;
    let (rma, order) = decide_return(
        &app.store,
        &caller,
        &id,
        approved,
        note,
        seen,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(return_id = %id, status = rma.status.as_str(), "return decided");
    Ok(return_response(StatusCode::OK, &caller, &rma, &order))
}

/// `POST /returns/{id}/close` (`oms:admin`), with an optional `note`: an approved return
/// nothing arrived for, closed before its time.
async fn close<S: OrderStore + OrderTransactions + InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (caller, id, note, seen) = staff_decision(request)?;
    let (rma, order) = close_return(
        &app.store,
        &app.locations,
        &caller,
        &id,
        note,
        seen,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(return_id = %id, "return closed before anything arrived");
    Ok(return_response(StatusCode::OK, &caller, &rma, &order))
}

/// `POST /returns/{id}/receive` (`oms:warehouse`): what arrived, with a disposition per line.
async fn receive<S: OrderStore + OrderTransactions + InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_WAREHOUSE)?;
    let id = return_id(request)?;
    let receipt = ReceiptRequest::parse(&json_body(request)?).map_err(ApiError::Invalid)?;
    let seen = if_match(request)?;
    let now = chrono::Utc::now();
    let (rma, order) = receive_return(
        &app.store,
        &app.returns,
        &app.locations,
        &caller,
        &id,
        &receipt,
        seen,
        now,
    )
    .await?;
    tracing::info!(return_id = %id, refund = ?rma.refund_id, replacement = ?rma.replacement_order_id, "return received");
    Ok(return_response(StatusCode::OK, &caller, &rma, &order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::fixtures::{delivered_order, event_text, product};
    use oms_domain::memory::InMemoryStore;

    fn event(name: &str) -> Request {
        let json = event_text(&format!("returns-api/{name}.json"));
        lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("returns-api/{name}: {e}"))
    }

    async fn call(app: &App<InMemoryStore>, name: &str) -> Response<Body> {
        handle(app, event(name)).await.unwrap()
    }

    async fn call_json(app: &App<InMemoryStore>, name: &str) -> (u16, serde_json::Value) {
        let response = call(app, name).await;
        (
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    /// The sample order of `customer-ada`, delivered two days ago, with its SKUs in stock; a
    /// policy that leaves every return to staff.
    fn app() -> App<InMemoryStore> {
        let order = delivered_order(
            "01KAZ3Q6W8T2Y7X9V5N4M3K2J1",
            "customer-ada",
            chrono::Utc::now() - chrono::Days::new(2),
        );
        let store = InMemoryStore::with_products(
            order
                .lines
                .iter()
                .map(|l| product(l.sku.as_str(), 2500, 10)),
        );
        store.insert_order(order);
        let mut returns = ReturnPolicy::default_policy();
        returns.auto_approval.reasons.clear();
        App {
            store,
            returns,
            locations: LocationDirectory::demo(),
        }
    }

    async fn available(app: &App<InMemoryStore>, sku: &str) -> u32 {
        let sku = oms_domain::ids::Sku::parse(sku).unwrap();
        app.store
            .product(&sku)
            .await
            .unwrap()
            .unwrap()
            .stock
            .available()
    }

    #[tokio::test]
    async fn a_bad_request_names_every_field_and_opens_nothing() {
        let app = app();
        let (status, body) = call_json(&app, "request-return-invalid").await;
        assert_eq!(status, 422);
        let fields = oms_domain::fixtures::error_fields(&body);
        assert_eq!(
            fields,
            [
                "refundTo",
                "lines[0].quantity",
                "lines[0].reason",
                "lines[1].sku",
                "lines[1].reason"
            ]
        );
        let (status, _) = call_json(&app, "get-return").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn a_return_is_requested_approved_labelled_and_received() {
        let app = app();
        let response = call(&app, "request-return").await;
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/returns/RMA-01KAZ3Q6W8T2Y7X9V5N4M3K2J1-1"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["status"], "PENDING_APPROVAL");
        assert!(body.get("labelUrl").is_none());
        // The key it was asked under and its digest are the caller's own, kept for retries.
        assert!(
            body.get("idempotencyKey").is_none() && body.get("fingerprint").is_none(),
            "{body}"
        );

        // A retry with the same key answers the same return.
        let retry = call(&app, "request-return").await;
        assert_eq!(retry.headers()["idempotent-replayed"], "true");

        let (status, body) = call_json(&app, "get-return-label").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (409, Some("/problems/label-not-issued"))
        );
        let (status, _) = call_json(&app, "receive-return-as-customer").await;
        assert_eq!(status, 403);

        // Staff find it in the approval queue until they decide.
        let (status, body) = call_json(&app, "list-pending-returns").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["items"][0]["returnId"],
            "RMA-01KAZ3Q6W8T2Y7X9V5N4M3K2J1-1"
        );

        let (status, body) = call_json(&app, "approve-return").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("APPROVED")));
        assert_eq!(body["decision"]["note"], "photos show the damage");
        let (_, body) = call_json(&app, "list-pending-returns").await;
        assert_eq!(body["items"].as_array().map(Vec::len), Some(0));

        let label = call(&app, "get-return-label").await;
        assert_eq!(label.status(), 200);
        assert_eq!(label.headers()[header::CONTENT_TYPE], "application/pdf");
        assert!(label.body().as_ref().starts_with(b"%PDF-"));

        let (status, body) = call_json(&app, "receive-return").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("RECEIVED")));
        // A damaged mug: the policy refunds the shipping charge with the two items.
        let order = app.store.stored("01KAZ3Q6W8T2Y7X9V5N4M3K2J1");
        assert_eq!(
            body["refund"]["amount"]["amount"],
            2500 + 2500 + order.totals.shipping.minor_units()
        );
        assert_eq!(available(&app, "TSHIRT-RED-M").await, 11, "restocked");
        assert_eq!(available(&app, "MUG-WHITE").await, 10, "recycled");

        let (status, body) = call_json(&app, "receive-return").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (409, Some("/problems/return-already-received"))
        );
        assert_eq!(available(&app, "TSHIRT-RED-M").await, 11);
    }
}
