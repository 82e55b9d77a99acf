//! The HTTP handler: route, check the scope, call the inventory operation, answer.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::{
    caller, etag, idempotency_key, if_match, json_body, json_response, optional_idempotency_key,
    path_id, path_parameter, require_scope, respond, route_key, unknown_route, ApiError, Listing,
};
use oms_adapters::http::{page_limit, ProblemType};
use oms_domain::app::caller::{SCOPE_ADMIN, SCOPE_WAREHOUSE};
use oms_domain::app::inventory::{self, AdjustmentView, ProductView};
use oms_domain::app::locations::{self, LocationDirectory};
use oms_domain::app::staff::{self, CatalogOrder, HealthReading};
use oms_domain::app::Caller;
use oms_domain::ids::Sku;
use oms_domain::location::{Location, Locations};
use oms_domain::ports::{InventoryStore, LocationStore, OrderStore};
use oms_domain::purchase::PurchaseOrder;
use oms_domain::replenishment::{day_of, HealthPolicy};
use oms_domain::shipping::ShippingPolicy;
use oms_domain::stock::Product;
use oms_domain::stock::Transfer;
use oms_domain::validation::ValidationErrors;

/// What the function needs, built once per cold start.
pub struct App<S> {
    pub store: S,
    pub policy: ShippingPolicy,
    /// Where stock is kept (adjustments name one of them), as staff keep the list.
    pub locations: LocationDirectory,
    /// The business's stock targets, which staff's views of a SKU's health read.
    pub health: HealthPolicy,
}

impl<S> App<S> {
    /// A product as `caller` may see it: staff with its demand and health, anyone else its
    /// availability alone.
    fn view(&self, caller: &Caller, product: &Product) -> ProductView {
        if caller.has_scope(SCOPE_ADMIN) || caller.has_scope(SCOPE_WAREHOUSE) {
            ProductView::for_staff(product, chrono::Utc::now(), self.health)
        } else {
            ProductView::public(product)
        }
    }
}

impl App<DynamoStore> {
    pub async fn from_env() -> Result<Self, Error> {
        let policy = config::shipping_policy_from_env()?;
        Ok(App {
            store: DynamoStore::from_env()?,
            locations: config::location_directory_from_env(&policy)?,
            health: config::health_policy_from_env()?,
            policy,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn handle<S: InventoryStore + LocationStore + OrderStore>(
    app: &App<S>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let result = match route_key(&request) {
        Some("GET /inventory") => list(app, &request).await,
        Some("GET /inventory/{sku}/adjustments") => history(app, &request, false).await,
        Some("GET /inventory/{sku}") => get(app, &request).await,
        Some("PUT /inventory/{sku}") => put(app, &request).await,
        Some("POST /inventory/{sku}/adjustments") => adjust(app, &request).await,
        Some("GET /shipping/options") => shipping_options(app, &request).await,
        Some("GET /locations") => list_locations(app, &request).await,
        Some("PUT /locations/{id}") => put_location(app, &request).await,
        Some("GET /inventory/{sku}/transfers") => history(app, &request, true).await,
        Some("POST /inventory/{sku}/transfers") => dispatch(app, &request).await,
        Some("POST /inventory/{sku}/transfers/{id}/receive") => receive(app, &request).await,
        Some("GET /inventory/{sku}/purchase-orders") => purchase_orders(app, &request).await,
        Some("POST /inventory/{sku}/purchase-orders") => place_purchase(app, &request).await,
        Some("POST /inventory/{sku}/purchase-orders/{id}/receive") => {
            step_purchase(app, &request, true).await
        }
        Some("POST /inventory/{sku}/purchase-orders/{id}/close") => {
            step_purchase(app, &request, false).await
        }
        _ => Err(unknown_route(&request)),
    };
    Ok(respond(result))
}

async fn get<S: InventoryStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let sku = sku_in_path(request)?;
    let product = inventory::get_product(&app.store, &sku).await?;
    Ok(json_response(StatusCode::OK, &app.view(&caller, &product)))
}

/// `GET /locations`: the business's warehouses and stores, what each can do and how the
/// routing planner ranks them (any caller: a storefront lists its pickup stores). Its ETag is
/// the list's version, which `PUT /locations/{id}` may name in `If-Match`. Staff who may change
/// it get it read fresh (one small item), so the version is the list's; every other caller the
/// instance's cached list.
async fn list_locations<S: LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let here = if caller(request)?.is_admin() {
        app.locations.fresh(&app.store).await?
    } else {
        app.locations.current(&app.store).await?
    };
    Ok(locations_response(StatusCode::OK, &here, None))
}

/// `PUT /locations/{id}` (`oms:admin`): adds a location or replaces the one of that id; with
/// `If-Match`, only if the list is still the version the caller read.
async fn put_location<S: LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_ADMIN)?;
    let id = path_parameter(request, "id")?;
    let expected = if_match(request)?;
    let body = json_body(request)?;
    let (store, at) = (&app.store, chrono::Utc::now());
    let saved =
        locations::put_location(store, &app.locations, &caller, &id, &body, expected, at).await?;
    tracing::info!(location = %id, created = saved.created, version = saved.locations.version(), "location saved");
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(locations_response(status, &saved.locations, Some(&id)))
}

/// The list (or, with `only`, the one location it names) with the list's version as ETag.
fn locations_response(status: StatusCode, here: &Locations, only: Option<&str>) -> Response<Body> {
    let default = &here.default_location().id;
    let view = |l: &'_ Location| LocationView {
        location: l.clone(),
        default: &l.id == default,
    };
    let mut response = match only.and_then(|id| here.get(id)) {
        Some(location) => json_response(status, &view(location)),
        None => {
            let items: Vec<_> = here.all().iter().map(view).collect();
            json_response(status, &serde_json::json!({ "items": items }))
        }
    };
    response
        .headers_mut()
        .insert(lambda_http::http::header::ETAG, etag(here.version()));
    response
}

/// A location as `GET /locations` answers it: as the business lists it, and whether it is the
/// default location (where stock and orders from before there were locations belong).
#[derive(serde::Serialize)]
struct LocationView {
    #[serde(flatten)]
    location: Location,
    default: bool,
}

fn invalid_query(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        problem: ProblemType::InvalidQuery,
        detail: detail.into(),
    }
}

/// `GET /inventory?skus=A,B,C`: the availability of several SKUs in one read (any caller: a
/// storefront's product page), unknown ones left out. Without `skus`: the catalog for staff
/// (`oms:admin` or `oms:warehouse`), by SKU or `sort=lowStock`, searched with `q`, paged.
async fn list<S: InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let query = request.query_string_parameters();
    if let Some(raw) = query.first("skus") {
        if ["q", "sort", "location", "cursor", "limit"]
            .iter()
            .any(|k| query.first(k).is_some())
        {
            return Err(invalid_query(
                "skus stands alone: no q, sort, location, cursor or limit with it",
            ));
        }
        let skus = raw
            .split(',')
            .map(|s| Sku::parse(s.trim()).map_err(|e| invalid_query(format!("skus: {s}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let products = staff::availability(&app.store, &skus).await?;
        let items: Vec<ProductView> = products.iter().map(|p| app.view(&caller, p)).collect();
        return Ok(json_response(
            StatusCode::OK,
            &Listing {
                items,
                next_cursor: None,
            },
        ));
    }
    // A health order may read one location's figures (staff's listing: its scope first).
    let location = match query.first("location") {
        None => None,
        Some(_) if !(caller.has_scope(SCOPE_ADMIN) || caller.has_scope(SCOPE_WAREHOUSE)) => {
            return Err(ApiError::Forbidden("oms:admin or oms:warehouse"))
        }
        Some(id) => {
            let here = app.locations.current(&app.store).await?;
            match here.get(id) {
                Some(l) => Some(l.id.clone()),
                None => {
                    return Err(invalid_query(format!(
                        "location: {id} is not one of the locations"
                    )))
                }
            }
        }
    };
    let by_health = matches!(query.first("sort"), Some("reorder" | "cover" | "overstock"));
    if location.is_some() && !by_health {
        return Err(invalid_query(
            "location goes with sort=reorder, cover or overstock",
        ));
    }
    let reading = HealthReading {
        today: day_of(chrono::Utc::now()),
        policy: app.health,
        location,
    };
    let order = match query.first("sort") {
        None | Some("sku") => CatalogOrder::Sku,
        Some("lowStock") => CatalogOrder::LowStockFirst,
        Some("reorder") => CatalogOrder::ReorderFirst(reading.clone()),
        Some("cover") => CatalogOrder::LeastCoverFirst(reading.clone()),
        Some("overstock") => CatalogOrder::OverstockFirst(reading),
        Some(other) => {
            return Err(invalid_query(format!(
                "sort: {other} is not one of sku, lowStock, reorder, cover, overstock"
            )))
        }
    };
    let search = query.first("q").map(str::trim);
    if search.is_some_and(|q| q.chars().count() > 64) {
        return Err(invalid_query("q: at most 64 characters"));
    }
    let page = staff::catalog(
        &app.store,
        &caller,
        order,
        search,
        page_limit(request)?,
        query.first("cursor"),
    )
    .await?;
    Ok(Listing::of(&page, |p| Some(app.view(&caller, p))).response())
}

/// `GET /inventory/{sku}/adjustments` and `GET /inventory/{sku}/transfers`: the SKU's
/// adjustment history or its transfers between locations, newest first (`oms:admin` or
/// `oms:warehouse`).
async fn history<S: InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
    of_transfers: bool,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let sku = &sku_in_path(request)?;
    let limit = page_limit(request)?;
    let query = request.query_string_parameters();
    let cursor = query.first("cursor");
    if of_transfers {
        let read = |n| app.store.transfers(sku, n, cursor);
        let page = staff::sku_history(&caller, limit, read).await?;
        return Ok(Listing::of(&page, |t| Some(t.clone())).response());
    }
    let read = |n| app.store.adjustments(sku, n, cursor);
    let page = staff::sku_history(&caller, limit, read).await?;
    let here = app.locations.current(&app.store).await?;
    let default = &here.default_location().id;
    Ok(Listing::of(&page, |a| Some(AdjustmentView::of(a, default))).response())
}

/// `POST /inventory/{sku}/transfers` (`oms:admin`): units leave one location for another.
async fn dispatch<S: InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (caller, sku, body) = admin_write(request, sku_in_path)?;
    let key = idempotency_key(request, "POST /inventory/{sku}/transfers")?;
    let (store, here, at) = (
        &app.store,
        app.locations.current(&app.store).await?,
        chrono::Utc::now(),
    );
    let sent = inventory::dispatch_transfer(store, &here, &caller, &sku, &key, &body, at).await?;
    let id = &sent.transfer.id;
    tracing::info!(sku = %sku, transfer = %id, replayed = sent.replayed, "transfer dispatched");
    Ok(created(&sent.transfer, sent.replayed))
}

/// `POST /inventory/{sku}/transfers/{id}/receive` (`oms:admin` or `oms:warehouse`: the
/// destination's staff): the units arrive.
async fn receive<S: InventoryStore + OrderStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    if !(caller.has_scope(SCOPE_ADMIN) || caller.has_scope(SCOPE_WAREHOUSE)) {
        return Err(ApiError::Forbidden("oms:admin or oms:warehouse"));
    }
    let sku = sku_in_path(request)?;
    let id = path_id(
        request,
        "id",
        |raw| Transfer::is_id(raw).then(|| raw.to_owned()).ok_or(()),
        |raw| format!("transfer {raw} does not exist"),
    )?;
    let here = app.locations.current(&app.store).await?;
    let transfer =
        inventory::receive_transfer(&app.store, &here, &caller, &sku, &id, chrono::Utc::now())
            .await?;
    tracing::info!(sku = %sku, transfer = %transfer.id, "transfer received");
    Ok(json_response(StatusCode::OK, &transfer))
}

/// `GET /inventory/{sku}/purchase-orders` (`oms:admin` or `oms:warehouse`): the SKU's
/// purchase orders, newest first.
async fn purchase_orders<S: InventoryStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let sku = &sku_in_path(request)?;
    let limit = page_limit(request)?;
    let cursor = request
        .query_string_parameters()
        .first("cursor")
        .map(str::to_owned);
    let read = |n| app.store.purchase_orders(sku, n, cursor.as_deref());
    let page = staff::sku_history(&caller, limit, read).await?;
    Ok(Listing::of(&page, |o| Some(o.clone())).response())
}

/// `POST /inventory/{sku}/purchase-orders` (`oms:admin`, `Idempotency-Key`): units ordered
/// from a supplier, incoming at their location.
async fn place_purchase<S: InventoryStore + LocationStore + oms_domain::ports::OrderStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (caller, sku, body) = admin_write(request, sku_in_path)?;
    let key = idempotency_key(request, "POST /inventory/{sku}/purchase-orders")?;
    let (store, here, at) = (
        &app.store,
        app.locations.current(&app.store).await?,
        chrono::Utc::now(),
    );
    let placed =
        inventory::place_purchase_order(store, &here, &caller, &sku, &key, &body, at).await?;
    let id = &placed.order.id;
    tracing::info!(sku = %sku, purchase_order = %id, replayed = placed.replayed, "purchase order placed");
    Ok(created(&placed.order, placed.replayed))
}

/// `POST /inventory/{sku}/purchase-orders/{id}/receive` (`oms:admin` or `oms:warehouse`:
/// `{quantity}` arrived) and `…/close` (`oms:admin`: the rest will not come).
async fn step_purchase<S: InventoryStore + OrderStore + LocationStore>(
    app: &App<S>,
    request: &Request,
    receipt: bool,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    if receipt {
        if !(caller.has_scope(SCOPE_ADMIN) || caller.has_scope(SCOPE_WAREHOUSE)) {
            return Err(ApiError::Forbidden("oms:admin or oms:warehouse"));
        }
    } else {
        require_scope(&caller, SCOPE_ADMIN)?;
    }
    let sku = sku_in_path(request)?;
    let id = path_id(
        request,
        "id",
        |raw| PurchaseOrder::is_id(raw).then(|| raw.to_owned()).ok_or(()),
        |raw| format!("purchase order {raw} does not exist"),
    )?;
    let body = if receipt {
        Some(json_body(request)?)
    } else {
        None
    };
    let at = chrono::Utc::now();
    let here = app.locations.current(&app.store).await?;
    let order =
        inventory::step_purchase_order(&app.store, &here, &caller, &sku, &id, body.as_ref(), at)
            .await?;
    tracing::info!(sku = %sku, purchase_order = %order.id, status = order.status.as_str(), received = order.received, "purchase order step");
    Ok(json_response(StatusCode::OK, &order))
}

/// A `201` with what a request under an `Idempotency-Key` made, marked `Idempotent-Replayed`
/// when the key had made it before.
fn created(made: &impl serde::Serialize, replayed: bool) -> Response<Body> {
    let mut response = json_response(StatusCode::CREATED, made);
    if replayed {
        let replayed = lambda_http::http::HeaderValue::from_static("true");
        response
            .headers_mut()
            .insert("idempotent-replayed", replayed);
    }
    response
}

/// An administrator's write to the SKU in the path: the caller (their scope checked first),
/// the SKU as `sku_of` reads it, and the body.
fn admin_write(
    request: &Request,
    sku_of: fn(&Request) -> Result<Sku, ApiError>,
) -> Result<(Caller, Sku, serde_json::Value), ApiError> {
    let caller = caller(request)?;
    require_scope(&caller, SCOPE_ADMIN)?;
    Ok((caller, sku_of(request)?, json_body(request)?))
}

/// The SKU a read names; a malformed one names nothing: the same 404 as one not stored.
fn sku_in_path(request: &Request) -> Result<Sku, ApiError> {
    path_id(
        request,
        "sku",
        |raw| Sku::parse(raw),
        |raw| format!("SKU {raw} does not exist"),
    )
}

/// The SKU a write names; a malformed one is a field error, since the write would create it.
fn sku_to_write(request: &Request) -> Result<Sku, ApiError> {
    let raw = path_parameter(request, "sku")?;
    Sku::parse(raw.as_str())
        .map_err(|e| ApiError::Invalid(ValidationErrors::one("sku", e.to_string())))
}

async fn put<S: InventoryStore + LocationStore + OrderStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (caller, sku, body) = admin_write(request, sku_to_write)?;
    let here = app.locations.current(&app.store).await?;
    let (product, created) = inventory::put_product(
        &app.store,
        &app.policy,
        &here,
        &caller,
        &sku,
        &body,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(sku = %sku, created, "product saved");
    Ok(json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &app.view(&caller, &product),
    ))
}

async fn adjust<S: InventoryStore + LocationStore + OrderStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (caller, sku, body) = admin_write(request, sku_to_write)?;
    let (store, at) = (&app.store, chrono::Utc::now());
    let here = app.locations.current(&app.store).await?;
    let key = optional_idempotency_key(request, "POST /inventory/{sku}/adjustments")?;
    let product =
        inventory::adjust_stock(store, &here, &caller, &sku, &body, key.as_ref(), at).await?;
    tracing::info!(sku = %sku, available = product.stock.available(), "stock adjusted");
    Ok(json_response(StatusCode::OK, &app.view(&caller, &product)))
}

/// `GET /shipping/options?country=DE&postalCode=10115&items=SKU:2,OTHER:1`: every method that
/// serves the destination, with its price and delivery estimate as the routing plan would send
/// the cart from the stock now.
async fn shipping_options<S: InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    caller(request)?;
    let query = request.query_string_parameters();
    let here = app.locations.current(&app.store).await?;
    let quotes = inventory::shipping_options(
        &app.store,
        &app.policy,
        &here,
        query.first("country"),
        query.first("postalCode"),
        query.first("items"),
        chrono::Utc::now(),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "options": quotes }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::memory::InMemoryStore;

    fn event(name: &str) -> Request {
        let json = oms_domain::fixtures::event_text(&format!("inventory-api/{name}.json"));
        lambda_http::request::from_str(&json)
            .unwrap_or_else(|e| panic!("inventory-api/{name}: {e}"))
    }

    async fn call(app: &App<InMemoryStore>, name: &str) -> (u16, serde_json::Value) {
        let response = handle(app, event(name)).await.unwrap();
        (
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    fn app() -> App<InMemoryStore> {
        App {
            store: InMemoryStore::default(),
            policy: ShippingPolicy::default_policy(),
            locations: LocationDirectory::demo(),
            health: HealthPolicy::default(),
        }
    }

    #[tokio::test]
    async fn an_admin_creates_a_sku_and_receives_stock() {
        let app = app();
        let (status, _) = call(&app, "get-inventory").await;
        assert_eq!(status, 404);
        let (status, body) = call(&app, "put-inventory").await;
        assert_eq!(status, 201, "{body}");
        // Staff see its replenishment and health: no demand yet, so the reorder point is the
        // safety stock and 40 units that sold nothing are overstock.
        assert_eq!(
            (body["leadTimeDays"].as_u64(), body["safetyStock"].as_u64()),
            (Some(10), Some(3))
        );
        assert_eq!(body["health"]["demand30Days"], 0);
        assert_eq!(body["health"]["daysOfCover"], serde_json::Value::Null);
        assert_eq!(body["health"]["reorderPoint"], 3);
        assert_eq!(body["health"]["overstock"], true);
        assert_eq!(body["locations"][0]["health"]["reorderPoint"], 3);
        let (status, body) = call(&app, "get-inventory").await;
        assert_eq!(status, 200);
        // A customer (a storefront) sees the availability, not what the SKU sells.
        for staff_only in ["health", "leadTimeDays", "safetyStock"] {
            assert!(body.get(staff_only).is_none(), "{staff_only}: {body}");
        }
        assert!(body["locations"][0].get("health").is_none());
        assert_eq!(
            (
                body["available"].as_u64(),
                body["reserved"].as_u64(),
                body["onHand"].as_u64()
            ),
            (Some(40), Some(0), Some(40))
        );
        let (status, body) = call(&app, "adjust-receipt").await;
        assert_eq!((status, body["onHand"].as_u64()), (200, Some(50)));
        let (status, _) = call(&app, "put-inventory").await;
        assert_eq!(status, 200, "a second PUT replaces");
    }

    /// The event `name` with `edit` applied to its JSON first (a date that must be in the
    /// future, an id only the test knows).
    async fn call_edited(
        app: &App<InMemoryStore>,
        name: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> (u16, serde_json::Value, Option<String>) {
        let text = oms_domain::fixtures::event_text(&format!("inventory-api/{name}.json"));
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut json);
        let request = lambda_http::request::from_str(&json.to_string()).unwrap();
        let response = handle(app, request).await.unwrap();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_ref()).unwrap(),
            replayed,
        )
    }

    #[tokio::test]
    async fn a_purchase_order_is_placed_once_listed_and_received_by_the_warehouse() {
        let app = app();
        call(&app, "put-inventory").await;
        let next_week = (chrono::Utc::now() + chrono::Duration::days(7)).date_naive();
        let in_a_week = |event: &mut serde_json::Value| {
            let mut body: serde_json::Value =
                serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
            body["expectedOn"] = serde_json::json!(next_week.to_string());
            event["body"] = serde_json::json!(body.to_string());
        };
        let (status, placed, replayed) = call_edited(&app, "place-purchase-order", in_a_week).await;
        assert_eq!((status, replayed), (201, None), "{placed}");
        assert_eq!(
            (
                placed["status"].as_str(),
                placed["quantity"].as_u64(),
                placed["supplierReference"].as_str()
            ),
            (Some("OPEN"), Some(24), Some("ACME-4711"))
        );
        let (status, again, replayed) = call_edited(&app, "place-purchase-order", in_a_week).await;
        assert_eq!(
            (status, again["id"].clone(), replayed.as_deref()),
            (201, placed["id"].clone(), Some("true"))
        );
        // Not yet here: incoming, not available.
        let (_, product, _) = call_edited(&app, "adjust-receipt", |e| {
            e["body"] = serde_json::json!("{\"reason\": \"RECEIPT\", \"delta\": 1}");
        })
        .await;
        assert_eq!(
            (product["available"].as_u64(), product["incoming"].as_u64()),
            (Some(41), Some(24))
        );

        let (status, listed) = call(&app, "list-purchase-orders").await;
        assert_eq!(
            (status, listed["items"][0]["id"].clone()),
            (200, placed["id"].clone())
        );
        let id = placed["id"].as_str().unwrap().to_owned();
        let this_one = |event: &mut serde_json::Value| {
            let path = format!("/inventory/CUP-WHITE/purchase-orders/{id}/receive");
            event["rawPath"] = serde_json::json!(path);
            event["requestContext"]["http"]["path"] = serde_json::json!(path);
            event["pathParameters"]["id"] = serde_json::json!(id);
        };
        let (status, received, _) =
            call_edited(&app, "receive-purchase-order", this_one.clone()).await;
        assert_eq!(
            (
                status,
                received["status"].as_str(),
                received["received"].as_u64()
            ),
            (200, Some("RECEIVED"), Some(24))
        );
        // The same delivery sent again (it saw none arrived): refused, counted once.
        let (status, again, _) =
            call_edited(&app, "receive-purchase-order", this_one.clone()).await;
        assert_eq!(
            (status, again["type"].as_str()),
            (409, Some("/problems/concurrent-modification"))
        );
        let (status, refused, _) = call_edited(&app, "receive-purchase-order", |event| {
            this_one(event);
            event["body"] = serde_json::json!(r#"{"quantity": 1, "expectedReceived": 24}"#);
        })
        .await;
        assert_eq!(
            (status, refused["type"].as_str()),
            (409, Some("/problems/purchase-order-not-open"))
        );
        let (status, unknown) = call(&app, "receive-purchase-order").await;
        assert_eq!(
            (status, unknown["type"].as_str()),
            (404, Some("/problems/not-found"))
        );
        let product = app
            .store
            .product(&Sku::parse("CUP-WHITE").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (product.stock.available(), product.incoming_total()),
            (65, 0),
            "received once"
        );
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        let app = app();
        let (status, body) = call(&app, "put-inventory-as-customer").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (403, Some("/problems/forbidden"))
        );
        let (status, body) = call(&app, "put-inventory-invalid").await;
        assert_eq!(status, 422);
        let fields = oms_domain::fixtures::error_fields(&body);
        assert_eq!(fields, ["name", "unitPrice", "weightGrams", "onHand"]);
        assert!(app.store.catalog().is_empty());

        call(&app, "put-inventory").await;
        let (status, body) = call(&app, "adjust-below-zero").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (409, Some("/problems/insufficient-stock"))
        );
        let (_, body) = call(&app, "get-inventory").await;
        assert_eq!(body["available"], 40);
    }

    #[tokio::test]
    async fn quotes_every_method_that_serves_the_cart() {
        let app = app();
        call(&app, "put-inventory").await;
        let (status, body) = call(&app, "shipping-options").await;
        assert_eq!(status, 200, "{body}");
        let methods: Vec<_> = body["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["method"].as_str().unwrap())
            .collect();
        assert_eq!(
            methods,
            ["IN_STORE_PICKUP", "STANDARD", "EXPRESS", "OVERNIGHT"]
        );
        // 4 cups × 250 g = 1 kg: standard domestic 4.90 + 1 × 0.50.
        assert_eq!(body["options"][1]["price"]["amount"], 540);
        assert!(body["options"][1]["estimate"]["earliest"].is_string());
        let (status, body) = call(&app, "shipping-options-unknown-country").await;
        assert_eq!(
            (status, body["errors"][0]["field"].as_str()),
            (422, Some("country"))
        );
    }

    async fn call_with_etag(
        app: &App<InMemoryStore>,
        name: &str,
    ) -> (u16, Option<String>, serde_json::Value) {
        let response = handle(app, event(name)).await.unwrap();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            response.status().as_u16(),
            etag,
            serde_json::from_slice(response.body().as_ref()).unwrap(),
        )
    }

    #[tokio::test]
    async fn staff_add_a_location_and_every_caller_lists_it() {
        let app = app();
        let (status, etag, body) = call_with_etag(&app, "list-locations").await;
        assert_eq!((status, etag.as_deref()), (200, Some("\"v0\"")));
        assert_eq!(body["items"].as_array().unwrap().len(), 3);

        let (status, etag, body) = call_with_etag(&app, "put-location").await;
        assert_eq!((status, etag.as_deref()), (201, Some("\"v1\"")), "{body}");
        assert_eq!(
            (body["id"].as_str(), body["default"].as_bool()),
            (Some("HAM-1"), Some(false))
        );
        let (status, etag, body) = call_with_etag(&app, "list-locations").await;
        assert_eq!((status, etag.as_deref()), (200, Some("\"v1\"")));
        assert_eq!(body["items"][3]["name"], "Hamburg warehouse");
        // The same PUT again replaces it: 200, the list's next version.
        let (status, etag, _) = call_with_etag(&app, "put-location").await;
        assert_eq!((status, etag.as_deref()), (200, Some("\"v2\"")));
    }

    #[tokio::test]
    async fn a_location_refused_changes_nothing() {
        let app = app();
        let (status, body) = call(&app, "put-location-as-warehouse").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (403, Some("/problems/forbidden"))
        );
        let (status, body) = call(&app, "put-location-invalid").await;
        assert_eq!(status, 422);
        assert_eq!(
            oms_domain::fixtures::error_fields(&body),
            ["zone", "cutoffHourUtc"]
        );
        call(&app, "put-location").await;
        // A PUT naming the list as it was before that change.
        let (status, body) = call(&app, "put-location-stale").await;
        assert_eq!(
            (status, body["type"].as_str()),
            (412, Some("/problems/precondition-failed"))
        );
        let (_, body) = call(&app, "list-locations").await;
        assert_eq!(
            body["items"][3]["priority"], 4,
            "the stale PUT wrote nothing"
        );
    }
}
