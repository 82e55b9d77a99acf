//! The HTTP handler: parse the request, place the order, answer `202 Accepted`.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::{
    caller, idempotency_key, json_body, raw_json_response, respond, ApiError,
};
use oms_domain::app::intake::{place_order, IntakePolicies};
use oms_domain::app::locations::LocationDirectory;
use oms_domain::order::OrderLimits;
use oms_domain::ports::{InventoryStore, LocationStore, OrderStore};
use oms_domain::shipping::ShippingPolicy;

/// What the function needs, built once per cold start.
pub struct App<S> {
    pub store: S,
    pub policy: ShippingPolicy,
    /// What one order may hold (`MAX_UNITS_PER_LINE`).
    pub limits: OrderLimits,
    /// Where an in-store pickup may be collected, and where a cart's parcels leave from.
    pub locations: LocationDirectory,
}

impl App<DynamoStore> {
    pub async fn from_env() -> Result<Self, Error> {
        let policy = config::shipping_policy_from_env()?;
        let limits = config::order_limits_from_env()?;
        let store = DynamoStore::from_env()?;
        Ok(App {
            store,
            locations: config::location_directory_from_env(&policy)?,
            policy,
            limits,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn handle<S: OrderStore + InventoryStore + LocationStore>(
    app: &App<S>,
    request: Request,
) -> Result<Response<Body>, Error> {
    Ok(respond(place(app, &request).await))
}

async fn place<S: OrderStore + InventoryStore + LocationStore>(
    app: &App<S>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = caller(request)?;
    let key = idempotency_key(request, "POST /orders")?;
    let body = json_body(request)?;
    let locations = app.locations.current(&app.store).await?;
    let accepted = place_order(
        &app.store,
        &app.store,
        IntakePolicies {
            shipping: &app.policy,
            limits: &app.limits,
            locations: &locations,
        },
        &caller,
        &key,
        &body,
        chrono::Utc::now(),
    )
    .await?;
    tracing::info!(order_id = %accepted.order_id, replayed = accepted.replayed, "order accepted");

    let mut response = raw_json_response(StatusCode::ACCEPTED, accepted.body);
    let location = HeaderValue::from_str(&format!("/orders/{}", accepted.order_id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    response.headers_mut().insert(header::LOCATION, location);
    if accepted.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::memory::InMemoryStore;

    fn app() -> App<InMemoryStore> {
        let product = |sku| oms_domain::fixtures::product(sku, 2500, 10);
        App {
            store: InMemoryStore::with_products([product("TSHIRT-RED-M"), product("MUG-WHITE")]),
            policy: ShippingPolicy::default_policy(),
            limits: OrderLimits::default(),
            locations: LocationDirectory::demo(),
        }
    }

    fn event(name: &str) -> Request {
        let json = oms_domain::fixtures::event_text(&format!("order-intake/{name}.json"));
        lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("order-intake/{name}: {e}"))
    }

    async fn call(
        app: &App<InMemoryStore>,
        name: &str,
    ) -> (StatusCode, serde_json::Value, Response<Body>) {
        let response = handle(app, event(name)).await.unwrap();
        let body =
            serde_json::from_slice(response.body().as_ref()).unwrap_or(serde_json::Value::Null);
        (response.status(), body, response)
    }

    #[tokio::test]
    async fn accepts_an_order_and_replays_the_same_answer() {
        let app = app();
        let (status, body, response) = call(&app, "place-order").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["status"], "PENDING");
        // 2 × 25.00 + 1 × 25.00, and 3 × 300 g standard to DE: 4.90 + 1 × 0.50.
        assert_eq!(body["totals"]["total"]["amount"], 7500 + 540);
        let order_id = body["orderId"].as_str().unwrap().to_owned();
        assert_eq!(
            response.headers()[header::LOCATION],
            format!("/orders/{order_id}").as_str()
        );

        let (status, again, response) = call(&app, "place-order").await;
        assert_eq!((status, again), (StatusCode::ACCEPTED, body));
        assert_eq!(response.headers()["idempotent-replayed"], "true");
        assert_eq!(app.store.order_count(), 1);
    }

    #[tokio::test]
    async fn the_same_key_with_another_body_is_a_conflict() {
        let app = app();
        call(&app, "place-order").await;
        let (status, body, _) = call(&app, "place-order-same-key-other-body").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["type"], "/problems/idempotency-key-reused");
        assert_eq!(app.store.order_count(), 1);
    }

    #[tokio::test]
    async fn bad_requests_get_problems_and_write_nothing() {
        let app = app();
        for (name, status, kind) in [
            ("invalid-fields", 422, "validation-error"),
            ("unknown-sku", 422, "validation-error"),
            ("malformed-json", 400, "malformed-json"),
            ("missing-idempotency-key", 400, "missing-idempotency-key"),
            ("no-claims", 401, "unauthenticated"),
        ] {
            let (actual, body, response) = call(&app, name).await;
            assert_eq!(actual.as_u16(), status, "{name}: {body}");
            assert_eq!(body["type"], format!("/problems/{kind}"), "{name}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
        }
        let (_, body, _) = call(&app, "invalid-fields").await;
        let fields = oms_domain::fixtures::error_fields(&body);
        assert_eq!(
            fields,
            [
                "lines[0].quantity",
                "lines[1].quantity",
                "shippingAddress.country",
                "contact.email"
            ]
        );
        assert_eq!(app.store.order_count(), 0);
    }
}
