//! The HTTP handler: route, check the scope or the signature, call the fulfillment operation,
//! answer with the shipment and its `ETag` (the shipment's own version: each parcel of a split
//! order is worked on by its own location without the other's steps refusing it).

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::{
    caller, etag, if_match, json_body, json_response, page_limit, path_id, require_scope, respond,
    route_key, unknown_route, ApiError, Listing, ProblemType,
};
use oms_adapters::secrets::{SecretCache, SecretSource};
use oms_domain::app::caller::{SCOPE_ADMIN, SCOPE_WAREHOUSE};
use oms_domain::app::fulfillment::{
    self, CarrierEvent, CarrierResult, MoveShipment, StepConditions, WarehouseAction,
};
use oms_domain::app::locations::LocationDirectory;
use oms_domain::contact::Address;
use oms_domain::ids::{OrderId, ShipmentId, Sku};
use oms_domain::order::fulfillment::{
    Fulfillment, FulfillmentStatus, FulfillmentStep, Parcel, Tracking,
};
use oms_domain::order::{Order, OrderStatus};
use oms_domain::ports::{InventoryStore, LocationStore, OrderStore, OrderTransactions};
use oms_domain::quantity::Quantity;
use oms_domain::shipping::{ShippingMethod, ShippingPolicy};
use serde::Serialize;
use sha2::Sha256;

/// The header that carries a carrier webhook's signature: `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "x-carrier-signature";

/// What the function needs, built once per cold start.
pub struct App<S, K> {
    pub store: S,
    pub policy: ShippingPolicy,
    /// The business's locations: where a shipment may be moved to.
    pub locations: LocationDirectory,
    /// The carriers' signing secret: from Secrets Manager (`CARRIER_WEBHOOK_SECRET_ARN`), read
    /// on the first carrier event and cached.
    pub carrier_secret: K,
}

impl App<DynamoStore, SecretCache> {
    pub async fn from_env() -> Result<Self, Error> {
        let policy = config::shipping_policy_from_env()?;
        Ok(App {
            store: DynamoStore::from_env()?,
            locations: config::location_directory_from_env(&policy)?,
            policy,
            carrier_secret: SecretCache::from_env("CARRIER_WEBHOOK_SECRET_ARN")?,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn handle<
    S: OrderStore + OrderTransactions + LocationStore + InventoryStore,
    K: SecretSource,
>(
    app: &App<S, K>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let result = match route_key(&request) {
        Some("GET /fulfillments") => pick_list(app, &request).await,
        Some("GET /fulfillments/{shipmentId}") => get(app, &request).await,
        Some("POST /fulfillments/{shipmentId}/pick") => {
            warehouse_action(app, &request, WarehouseRoute::Pick).await
        }
        Some("POST /fulfillments/{shipmentId}/pack") => {
            warehouse_action(app, &request, WarehouseRoute::Pack).await
        }
        Some("POST /fulfillments/{shipmentId}/ship") => {
            warehouse_action(app, &request, WarehouseRoute::Ship).await
        }
        Some("POST /fulfillments/{shipmentId}/move") => move_shipment(app, &request).await,
        Some("POST /carrier/events") => carrier(app, &request).await,
        _ => Err(unknown_route(&request)),
    };
    Ok(respond(result))
}

/// A line as the warehouse needs it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PickLine {
    sku: Sku,
    name: String,
    quantity: Quantity,
}

/// A shipment as the warehouse sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentView {
    shipment_id: ShipmentId,
    order_id: OrderId,
    order_status: OrderStatus,
    /// Its place among the order's parcels now ("2 of 2"), and how many there are.
    number: u32,
    of: usize,
    status: FulfillmentStatus,
    warehouse: String,
    queued_at: DateTime<Utc>,
    lines: Vec<PickLine>,
    shipping_method: ShippingMethod,
    ship_to: Address,
    estimated_delivery: EstimateView,
    #[serde(skip_serializing_if = "Option::is_none")]
    parcel: Option<Parcel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking: Option<Tracking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipped_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_at: Option<DateTime<Utc>>,
    steps: Vec<FulfillmentStep>,
    /// Why the warehouse may not work on it now: `AWAITING_PAYMENT` when the PSP released the
    /// order's hold and it waits for a new payment (off the pick list until then).
    #[serde(skip_serializing_if = "Option::is_none")]
    hold: Option<&'static str>,
    version: u64,
}

#[derive(Serialize)]
struct EstimateView {
    earliest: NaiveDate,
    latest: NaiveDate,
}

impl FulfillmentView {
    fn of(order: &Order, f: &Fulfillment) -> Self {
        FulfillmentView {
            shipment_id: f.id(order),
            order_id: order.id.clone(),
            order_status: order.status,
            number: order.parcel_position(f.number),
            of: order.parcels_expected() as usize,
            status: f.status,
            warehouse: f.warehouse.clone(),
            queued_at: f.queued_at,
            lines: f
                .lines
                .iter()
                .map(|l| PickLine {
                    sku: l.sku.clone(),
                    name: order.line_name(&l.sku).to_owned(),
                    quantity: l.quantity,
                })
                .collect(),
            shipping_method: order.shipping.method,
            ship_to: order.shipping.address.clone(),
            estimated_delivery: {
                let estimate = f.estimate.unwrap_or(order.shipping.estimate);
                EstimateView {
                    earliest: estimate.earliest,
                    latest: estimate.latest,
                }
            },
            parcel: f.parcel,
            tracking: f.tracking.clone(),
            shipped_at: f.shipped_at,
            delivered_at: f.delivered_at,
            steps: f.steps.clone(),
            hold: (order.status == OrderStatus::Reserved).then_some("AWAITING_PAYMENT"),
            version: f.version(),
        }
    }
}

fn shipment_response(order: &Order, id: &ShipmentId) -> Result<Response<Body>, ApiError> {
    let shipment = order
        .shipment(id.number())
        .map_err(|_| ApiError::NotFound("no such shipment".into()))?;
    let view = FulfillmentView::of(order, shipment);
    let mut response = json_response(StatusCode::OK, &view);
    response
        .headers_mut()
        .insert(header::ETAG, etag(shipment.version()));
    Ok(response)
}

fn shipment_id(request: &Request) -> Result<ShipmentId, ApiError> {
    path_id(request, "shipmentId", ShipmentId::parse, |_| {
        "no such shipment".into()
    })
}

async fn pick_list<S: OrderStore, K>(
    app: &App<S, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    require_scope(&caller(request)?, SCOPE_WAREHOUSE)?;
    let query = request.query_string_parameters();
    let invalid = |detail: String| ApiError::BadRequest {
        problem: ProblemType::InvalidQuery,
        detail,
    };
    let warehouse = query
        .first("warehouse")
        .unwrap_or(app.policy.warehouse())
        .to_owned();
    let status = match query.first("status") {
        None => FulfillmentStatus::AwaitingPick,
        Some(s) => FulfillmentStatus::parse(s)
            .filter(FulfillmentStatus::is_warehouse_work)
            .ok_or_else(|| invalid("status must be AWAITING_PICK, PICKED or PACKED".into()))?,
    };
    let limit = page_limit(request)?;
    let page = fulfillment::pick_list(&app.store, &warehouse, status, limit, query.first("cursor"))
        .await?;
    Ok(Listing::of(&page, |order: &Order| {
        order
            .shipment_in(&warehouse, status)
            .map(|f| FulfillmentView::of(order, f))
    })
    .response())
}

async fn get<S: OrderStore, K>(
    app: &App<S, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    require_scope(&caller(request)?, SCOPE_WAREHOUSE)?;
    let id = shipment_id(request)?;
    shipment_response(&fulfillment::get_fulfillment(&app.store, &id).await?, &id)
}

/// Which warehouse route was called; its body becomes the [`WarehouseAction`].
enum WarehouseRoute {
    Pick,
    Pack,
    Ship,
}

async fn warehouse_action<S: OrderStore + OrderTransactions, K>(
    app: &App<S, K>,
    request: &Request,
    route: WarehouseRoute,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_WAREHOUSE)?;
    let id = shipment_id(request)?;
    let conditions = StepConditions {
        if_match: if_match(request)?,
        location: request
            .query_string_parameters()
            .first("location")
            .map(str::to_owned),
    };
    let action = match route {
        WarehouseRoute::Pick => WarehouseAction::Pick,
        WarehouseRoute::Pack => {
            WarehouseAction::pack(&json_body(request)?).map_err(ApiError::Invalid)?
        }
        WarehouseRoute::Ship => {
            WarehouseAction::ship(&json_body(request)?).map_err(ApiError::Invalid)?
        }
    };
    let order = fulfillment::warehouse_step(
        &app.store,
        &app.policy,
        &caller,
        &id,
        action,
        conditions,
        Utc::now(),
    )
    .await?;
    tracing::info!(shipment_id = %id, status = ?order.shipment(id.number()).map(|f| f.status).ok(), "shipment step done");
    shipment_response(&order, &id)
}

/// Moves a shipment (or some of its units) to another location before it is picked.
async fn move_shipment<S: OrderStore + OrderTransactions + LocationStore + InventoryStore, K>(
    app: &App<S, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    // Moving a reservation between locations is staff's decision, not a packer's.
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_ADMIN)?;
    let id = shipment_id(request)?;
    let expected = if_match(request)?;
    let body = MoveShipment::parse(&json_body(request)?).map_err(ApiError::Invalid)?;
    let locations = app.locations.current(&app.store).await?;
    let order = fulfillment::move_shipment(
        &app.store,
        &locations,
        &caller,
        &id,
        &body,
        expected,
        Utc::now(),
    )
    .await?;
    tracing::info!(shipment_id = %id, to = %body.to, "shipment moved");
    // The units that moved are in the order's shipment at their new location.
    let moved = order
        .shipment_in(&body.to, FulfillmentStatus::AwaitingPick)
        .or_else(|| order.shipment_at(&body.to))
        .map(|s| ShipmentId::new(order.id.clone(), s.number))
        .ok_or_else(|| ApiError::NotFound("no such shipment".into()))?;
    shipment_response(&order, &moved)
}

/// Checks `sha256=<hex>` against the HMAC-SHA256 of the raw body, in constant time.
fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(signature) = header
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h.trim()).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[derive(Serialize)]
struct CarrierAck {
    outcome: &'static str,
    #[serde(rename = "orderStatus", skip_serializing_if = "Option::is_none")]
    order_status: Option<OrderStatus>,
}

async fn carrier<S: OrderStore, K: SecretSource>(
    app: &App<S, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: &[u8] = request.body().as_ref();
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let secret = app.carrier_secret.value().await?;
    if !signature_valid(&secret, body, signature) {
        tracing::warn!("a carrier event with a missing or wrong signature was refused");
        return Err(ApiError::InvalidSignature(
            "X-Carrier-Signature is missing or is not the HMAC-SHA256 of the body under the \
             carrier's secret"
                .into(),
        ));
    }
    let event = CarrierEvent::parse(&json_body(request)?).map_err(ApiError::Invalid)?;
    let ack = match fulfillment::carrier_event(&app.store, &event, Utc::now()).await? {
        CarrierResult::Applied(order) => CarrierAck {
            outcome: "applied",
            order_status: Some(order.status),
        },
        CarrierResult::Duplicate => CarrierAck {
            outcome: "duplicate",
            order_status: None,
        },
        CarrierResult::Superseded => CarrierAck {
            outcome: "superseded",
            order_status: None,
        },
    };
    tracing::info!(shipment_id = %event.shipment, event_id = %event.event_id, outcome = ack.outcome, "carrier event");
    Ok(json_response(StatusCode::OK, &ack))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::memory::InMemoryStore;

    #[test]
    fn signatures_are_checked_over_the_exact_body() {
        let secret = b"local-carrier-secret";
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(b"{\"a\":1}");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_valid(secret, b"{\"a\":1}", Some(&good)));
        assert!(!signature_valid(secret, b"{\"a\":2}", Some(&good)));
        assert!(!signature_valid(
            b"another-secret-xx",
            b"{\"a\":1}",
            Some(&good)
        ));
        assert!(!signature_valid(secret, b"{\"a\":1}", None));
        assert!(!signature_valid(secret, b"{\"a\":1}", Some("sha256=zz")));
    }

    fn event(name: &str) -> Request {
        let json = oms_domain::fixtures::event_text(&format!("fulfillment-api/{name}.json"));
        lambda_http::request::from_str(&json)
            .unwrap_or_else(|e| panic!("fulfillment-api/{name}: {e}"))
    }

    async fn call(
        app: &App<InMemoryStore, oms_adapters::secrets::FixedSecret>,
        name: &str,
    ) -> (u16, serde_json::Value) {
        let response = handle(app, event(name)).await.unwrap();
        (
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_ref()).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn the_warehouse_scope_and_a_valid_signature_are_required() {
        let app = App {
            store: InMemoryStore::default(),
            policy: ShippingPolicy::default_policy(),
            locations: LocationDirectory::demo(),
            carrier_secret: oms_adapters::secrets::FixedSecret::new(b"local-carrier-secret"),
        };
        let (status, body) = call(&app, "pick-list").await;
        assert_eq!(
            (status, body["items"].as_array().map(Vec::len)),
            (200, Some(0))
        );
        // Each refused with its status and, where named, its problem type.
        for (name, refused, problem) in [
            ("pick-list-as-customer", 403, Some("/problems/forbidden")),
            (
                "carrier-event-bad-signature",
                401,
                Some("/problems/invalid-signature"),
            ),
            // Signed, but for no known shipment.
            ("carrier-event", 404, Some("/problems/not-found")),
            ("pack-without-if-match", 428, None),
        ] {
            let (status, body) = call(&app, name).await;
            assert_eq!(status, refused, "{name}");
            if let Some(problem) = problem {
                assert_eq!(body["type"].as_str(), Some(problem), "{name}");
            }
        }
    }
}
