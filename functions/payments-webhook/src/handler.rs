//! The HTTP handler: check the signature, parse the PSP's event, record it in the order.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::http::{json_body, json_response, respond, route_key, unknown_route, ApiError};
use oms_adapters::secrets::{SecretCache, SecretSource};
use oms_adapters::signing::{self, PSP_SIGNATURE_HEADER};
use oms_domain::app::payments::{self, Recorded};
use oms_domain::order::payments::{PaymentPolicy, PaymentStatus};
use oms_domain::ports::OrderStore;
use oms_domain::request::payments::PspEvent;
use oms_domain::request::stripe::StripeEvent;
use serde::Serialize;

/// What the function needs, built once per cold start.
pub struct App<S, K> {
    pub store: S,
    pub policy: PaymentPolicy,
    /// The generic webhook's signing secret.
    pub secret: K,
    /// Stripe's webhook signing secret (`whsec_…`, the endpoint's in Stripe's dashboard).
    pub stripe_secret: K,
}

impl App<DynamoStore, SecretCache> {
    pub fn from_env() -> Result<Self, Error> {
        Ok(App {
            store: DynamoStore::from_env()?,
            policy: config::payment_policy_from_env()?,
            secret: SecretCache::from_env("PSP_WEBHOOK_SECRET_ARN")?,
            stripe_secret: SecretCache::from_env("STRIPE_WEBHOOK_SECRET_ARN")?,
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn handle<S: OrderStore, K: SecretSource>(
    app: &App<S, K>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let result = match route_key(&request) {
        Some("POST /payments/events") => psp_event(app, &request).await,
        Some("POST /payments/stripe/events") => stripe_event(app, &request).await,
        _ => Err(unknown_route(&request)),
    };
    Ok(respond(result))
}

/// What the PSP is answered: the event was taken (or had been), and where the money now is.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentAck {
    outcome: &'static str,
    order_id: String,
    payment_status: PaymentStatus,
}

/// Checks the request's signature in `header` under `secret` at `now`, before its body is read:
/// a missing, stale or wrong one is a 401 that changes nothing.
async fn verify<K: SecretSource>(
    secret: &K,
    request: &Request,
    header: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let body: &[u8] = request.body().as_ref();
    let signature = request.headers().get(header).and_then(|v| v.to_str().ok());
    let secret = secret.value().await?;
    signing::verify(&secret, signature, body, now.timestamp()).map_err(|refused| {
        tracing::warn!(reason = %refused, header, "a payment event with a bad signature was refused");
        ApiError::InvalidSignature(refused.to_string())
    })
}

/// The PSP's answer once `recorded`: taken (or taken before), and where the money now is.
fn acknowledged(recorded: &Recorded, event_id: &str, kind: &str, source: &str) -> Response<Body> {
    let Recorded { order, new } = recorded;
    let ack = PaymentAck {
        outcome: if *new { "recorded" } else { "duplicate" },
        order_id: order.id.to_string(),
        payment_status: order.payment_status(),
    };
    tracing::info!(order_id = %order.id, event_id, kind, outcome = ack.outcome, payment_status = ack.payment_status.as_str(), source, "payment event");
    json_response(StatusCode::OK, &ack)
}

async fn psp_event<S: OrderStore, K: SecretSource>(
    app: &App<S, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let now = Utc::now();
    verify(&app.secret, request, PSP_SIGNATURE_HEADER, now).await?;
    let PspEvent { order_id, event } =
        PspEvent::parse(&json_body(request)?, now).map_err(ApiError::Invalid)?;
    let recorded =
        payments::record_psp_event(&app.store, &app.policy, &order_id, &event, now).await?;
    Ok(acknowledged(
        &recorded,
        &event.event_id,
        event.kind.as_str(),
        "PSP",
    ))
}

/// Stripe's header: the same scheme (`t=…,v1=…` over `"<t>.<raw body>"`), Stripe's name.
const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";

/// What Stripe is answered for an event the system does not need: taken, and left alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IgnoredAck {
    outcome: &'static str,
    event_type: String,
}

/// An event as Stripe sends it: its signature checked (Stripe's scheme, tolerance and rotation
/// as the generic webhook's), the payment-relevant ones recorded in their order's ledger through
/// the same path, every other one acknowledged and left alone.
async fn stripe_event<S: OrderStore, K: SecretSource>(
    app: &App<S, K>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let now = Utc::now();
    verify(&app.stripe_secret, request, STRIPE_SIGNATURE_HEADER, now).await?;
    let PspEvent { order_id, event } =
        match StripeEvent::parse(&json_body(request)?, now).map_err(ApiError::Invalid)? {
            StripeEvent::Payment(event) => event,
            StripeEvent::Ignored { event_id, kind } => {
                tracing::info!(event_id = %event_id, kind = %kind, "Stripe event not needed");
                return Ok(json_response(
                    StatusCode::OK,
                    &IgnoredAck {
                        outcome: "ignored",
                        event_type: kind,
                    },
                ));
            }
            StripeEvent::Unmatched { event_id, kind } => return Ok(unmatched(&event_id, kind)),
        };
    let recorded =
        match payments::record_psp_event(&app.store, &app.policy, &order_id, &event, now).await {
            Ok(recorded) => recorded,
            // Stripe would send it again for days: taken, and logged for staff.
            Err(payments::PaymentAppError::NotFound) => {
                return Ok(unmatched(&event.event_id, event.kind.as_str().to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
    Ok(acknowledged(
        &recorded,
        &event.event_id,
        event.kind.as_str(),
        "Stripe",
    ))
}

/// The answer to a Stripe event about money that names no order here: taken (Stripe would
/// otherwise send it again for three days and disable the endpoint), and logged as a warning
/// for staff to look at in Stripe.
fn unmatched(event_id: &str, kind: String) -> Response<Body> {
    tracing::warn!(event_id, kind = %kind, "a Stripe payment event that names no order of this system");
    json_response(
        StatusCode::OK,
        &IgnoredAck {
            outcome: "unmatched",
            event_type: kind,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_adapters::secrets::FixedSecret;
    use oms_domain::fixtures;
    use oms_domain::memory::InMemoryStore;
    use oms_domain::order::Order;

    const SECRET: &[u8] = b"local-psp-secret-0123";

    fn app(order: &Order) -> App<InMemoryStore, FixedSecret> {
        let store = InMemoryStore::default();
        store.insert_order(order.clone());
        App {
            store,
            policy: PaymentPolicy::default(),
            secret: FixedSecret::new(SECRET),
            stripe_secret: FixedSecret::new(STRIPE_SECRET),
        }
    }

    const STRIPE_SECRET: &[u8] = b"whsec_local_stripe_0123456789";

    /// A Stripe fixture made for `order`, signed now under `secret` in Stripe's header.
    fn stripe(name: &str, order: &Order, secret: &[u8]) -> Request {
        let mut event: serde_json::Value =
            fixtures::event(&format!("payments-webhook/{name}.json"));
        let mut body: serde_json::Value =
            serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        let object = &mut body["data"]["object"];
        if object["object"] == "payment_intent" {
            object["metadata"]["order_id"] = order.id.to_string().into();
            object["amount"] = order.totals.total.minor_units().into();
            object["amount_capturable"] = order.totals.total.minor_units().into();
        }
        body["created"] = Utc::now().timestamp().into();
        let body = body.to_string();
        event["headers"][STRIPE_SIGNATURE_HEADER] =
            signing::signature_header(&[secret], Utc::now().timestamp(), body.as_bytes()).into();
        event["body"] = body.into();
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[tokio::test]
    async fn stripes_events_are_recorded_once_others_acknowledged_and_forgeries_refused() {
        let order = order();
        let app = app(&order);
        let capturable = "stripe-amount-capturable-updated";
        let (status, body) = call(&app, stripe(capturable, &order, SECRET)).await;
        assert_eq!(
            status, 401,
            "the generic webhook's secret is not Stripe's: {body}"
        );
        let (status, body) = call(&app, stripe(capturable, &order, STRIPE_SECRET)).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("recorded")),
            "{body}"
        );
        assert_eq!(body["paymentStatus"], "AUTHORIZED");
        let stored = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(
            stored.payment.ledger[0].psp_reference.as_deref(),
            Some("pi_3Q0001")
        );
        let (_, body) = call(&app, stripe(capturable, &order, STRIPE_SECRET)).await;
        assert_eq!(body["outcome"], "duplicate");
        let (status, body) = call(
            &app,
            stripe("stripe-customer-created", &order, STRIPE_SECRET),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["outcome"], "ignored");
        assert_eq!(body["eventType"], "customer.created");
        let stored = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(stored.version, order.version + 1, "one change, once");
    }

    /// The fixture's request with its body made for `order`, signed at `at` under `secrets`
    /// (none: unsigned).
    fn request(name: &str, order: &Order, secrets: &[&[u8]], at: i64) -> Request {
        let mut event: serde_json::Value =
            fixtures::event(&format!("payments-webhook/{name}.json"));
        let mut body: serde_json::Value =
            serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        body["orderId"] = order.id.to_string().into();
        body["amount"] = serde_json::to_value(order.totals.total).unwrap();
        body["occurredAt"] = Utc::now().to_rfc3339().into();
        let body = body.to_string();
        if !secrets.is_empty() {
            event["headers"][PSP_SIGNATURE_HEADER] =
                signing::signature_header(secrets, at, body.as_bytes()).into();
        }
        event["body"] = body.into();
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    /// The fixture's request made for `order`, signed now with the PSP's secret.
    fn signed(name: &str, order: &Order) -> Request {
        request(name, order, &[SECRET], Utc::now().timestamp())
    }

    async fn call(
        app: &App<InMemoryStore, FixedSecret>,
        request: Request,
    ) -> (u16, serde_json::Value) {
        let response = handle(app, request).await.unwrap();
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body().as_ref()).unwrap();
        (status, body)
    }

    fn order() -> Order {
        fixtures::sample_order("01JDCCCCCCCCCCCCCCCCCCCCCC", "customer-ada", Utc::now())
    }

    #[tokio::test]
    async fn a_signed_authorization_is_recorded_once() {
        let order = order();
        let app = app(&order);
        let (status, body) = call(&app, signed("authorization-succeeded", &order)).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("recorded")),
            "{body}"
        );
        assert_eq!(body["paymentStatus"], "AUTHORIZED");
        let (status, body) = call(&app, signed("authorization-succeeded", &order)).await;
        assert_eq!((status, body["outcome"].as_str()), (200, Some("duplicate")));
        let stored = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(stored.version, order.version + 1);
    }

    #[tokio::test]
    async fn forged_stale_and_unsigned_events_are_refused_and_change_nothing() {
        let order = order();
        let app = app(&order);
        let now = Utc::now().timestamp();
        for request in [
            request(
                "authorization-succeeded",
                &order,
                &[b"another-secret-0123"],
                now,
            ),
            request("authorization-succeeded", &order, &[SECRET], now - 301),
            request("authorization-succeeded", &order, &[SECRET], now + 301),
            request("authorization-succeeded", &order, &[], now),
        ] {
            let (status, body) = call(&app, request).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["type"], "/problems/invalid-signature");
        }
        let stored = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(stored.version, order.version, "nothing changed");
        // Signed with the old and the new secret during a rotation: accepted.
        let (status, _) = call(
            &app,
            request(
                "authorization-succeeded",
                &order,
                &[b"old-secret-0123456", SECRET],
                now,
            ),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn a_bad_body_names_its_fields_and_an_unknown_order_is_not_found() {
        let order = order();
        let app = app(&order);
        let (status, body) = call(&app, signed("refund-without-refund-id", &order)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["errors"][0]["field"], "refundId");
        let other =
            fixtures::sample_order("01JDDDDDDDDDDDDDDDDDDDDDDD", "customer-ada", Utc::now());
        let (status, _) = call(&app, signed("authorization-succeeded", &other)).await;
        assert_eq!(status, 404);
    }
}
