//! Stripe's API, as the system calls it: its form-encoded requests over `reqwest`, typed by hand
//! for the few calls made. No Stripe crate: the maintained one (`async-stripe`) generates a type
//! for every object of Stripe's API, which would more than double the workspace's build on the
//! machines it is built on, for four calls.
//!
//! The secret key is read from Secrets Manager (`STRIPE_API_KEY_ARN`, cached as every secret);
//! the API's address is `STRIPE_API_URL` (Stripe's own unless set: the local stack points it at
//! its emulator). Every request that changes something carries an `Idempotency-Key`, so a
//! request sent again (a retried Lambda, a redelivered message) is answered with the first
//! answer and changes nothing twice.

use chrono::{DateTime, Utc};
use oms_domain::ids::OrderId;
use oms_domain::money::Money;
use oms_domain::order::payments::PaymentEventKind;
use oms_domain::ports::{PaymentIntent, PaymentProvider, ProviderAnswer, ProviderError};
use oms_domain::request::payments::PspEvent;
use oms_domain::request::stripe::StripeEvent;
use serde::Deserialize;

use crate::secrets::{SecretCache, SecretSource};

/// The version of Stripe's API the system speaks (its requests name it; the webhook endpoint is
/// meant to be created on it): refunds are announced as `refund.*` and a capture of part of an
/// authorization releases the rest.
pub const STRIPE_API_VERSION: &str = "2025-03-31.basil";

/// Currencies Stripe counts in other units than ISO 4217's minor units (ISK, MGA), or takes only
/// in multiples of ten of them (the three-decimal ones): refused rather than charged wrongly.
const UNLIKE_ISO: [&str; 7] = ["ISK", "MGA", "BHD", "JOD", "KWD", "OMR", "TND"];

/// Stripe's API, reached with a secret key.
pub struct StripeClient<K> {
    http: reqwest::Client,
    base: String,
    key: K,
    /// Whether payments are opened with multicapture requested (`if_available`), so an order
    /// that leaves as several parcels is captured parcel by parcel under one authorization.
    multicapture: bool,
}

impl StripeClient<SecretCache> {
    /// `STRIPE_API_URL` (Stripe's own unless set), `STRIPE_API_KEY_ARN`, and
    /// `STRIPE_MULTICAPTURE`: `if_available` or `never` (the default: multicapture is an
    /// IC+ pricing feature of Stripe's that an account must have).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let base = std::env::var("STRIPE_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "https://api.stripe.com".to_owned());
        let multicapture = match std::env::var("STRIPE_MULTICAPTURE").as_deref() {
            Ok("if_available") => true,
            Ok("never" | "") | Err(_) => false,
            Ok(_) => {
                return Err(crate::config::ConfigError::Invalid(
                    "STRIPE_MULTICAPTURE",
                    "if_available or never",
                ))
            }
        };
        Ok(
            Self::new(base, SecretCache::from_env("STRIPE_API_KEY_ARN")?)
                .with_multicapture(multicapture),
        )
    }
}

impl<K> StripeClient<K> {
    pub fn new(base: String, key: K) -> Self {
        let http = reqwest::Client::builder()
            .timeout(crate::config::OPERATION_TIMEOUT)
            .build()
            .unwrap_or_default();
        StripeClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
            multicapture: false,
        }
    }

    /// Payments opened with multicapture requested, or not.
    pub fn with_multicapture(mut self, multicapture: bool) -> Self {
        self.multicapture = multicapture;
        self
    }
}

/// A PaymentIntent as Stripe answers it (the fields used).
#[derive(Deserialize)]
struct Intent {
    id: String,
    client_secret: String,
    amount: i64,
    currency: String,
    status: String,
}

/// A PaymentIntent as a capture or cancellation answers it.
#[derive(Deserialize)]
struct IntentState {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_received: i64,
    currency: String,
    status: String,
    /// Its charge, when asked expanded (`expand[]=latest_charge`): an id otherwise.
    #[serde(default)]
    latest_charge: serde_json::Value,
}

impl IntentState {
    /// Whether the card's network lets Stripe capture this payment several times.
    fn multicapture_available(&self) -> bool {
        self.latest_charge["payment_method_details"]["card"]["multicapture"]["status"]
            == "available"
    }
}

/// A refund as Stripe answers it.
#[derive(Deserialize)]
struct RefundState {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    #[serde(default)]
    failure_reason: Option<String>,
}

/// The ledger's id of a state Stripe reached (`stripe:<object id>:<state>`): the same whether
/// the system hears of it from Stripe's answer or from Stripe's webhook, so it is recorded once.
pub fn state_id(object: &str, state: &str) -> String {
    format!("stripe:{object}:{state}")
}

/// An amount from one of Stripe's answers. One not understood is not Stripe's refusal: the
/// request may have moved money, so it is asked again (under its key) rather than recorded as
/// failed.
fn money(minor: i64, currency: &str) -> Result<Money, ProviderError> {
    let currency = oms_domain::money::Currency::parse(&currency.to_uppercase())
        .map_err(|e| ProviderError::Unavailable(format!("Stripe's currency: {e}")))?;
    Money::new(minor, currency)
        .map_err(|e| ProviderError::Unavailable(format!("Stripe's amount: {e}")))
}

/// Stripe's error body: `{"error": {"type", "code"?, "message"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl<K: SecretSource> StripeClient<K> {
    /// POSTs `form` to `path` under `idempotency_key`, and reads Stripe's answer.
    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, ProviderError> {
        self.call(path, Some((form, idempotency_key))).await
    }

    /// GETs `path`, and reads Stripe's answer.
    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ProviderError> {
        self.call(path, None).await
    }

    /// Calls Stripe: a POST of a form under an idempotency key, or a GET.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        post: Option<(&[(&str, String)], &str)>,
    ) -> Result<T, ProviderError> {
        let key = self
            .key
            .value()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the Stripe key: {e}")))?;
        let key = String::from_utf8_lossy(&key).trim().to_owned();
        // The template generates a placeholder so the stack starts without Stripe: until a
        // secret (`sk_…`) or restricted (`rk_…`) key is put there, Stripe is not this
        // deployment's provider, and nothing is asked of it.
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(ProviderError::NotConfigured(
                "StripeApiKey holds no Stripe secret (sk_) or restricted (rk_) key".into(),
            ));
        }
        let url = format!("{}{path}", self.base);
        let request = match post {
            Some((form, idempotency_key)) => self
                .http
                .post(url)
                .header("Idempotency-Key", idempotency_key)
                .form(form),
            None => self.http.get(url),
        };
        let response = request
            .bearer_auth(key)
            .header("Stripe-Version", STRIPE_API_VERSION)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("Stripe {path}: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("Stripe {path}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                ProviderError::Unavailable(format!("Stripe {path}: an answer not understood: {e}"))
            });
        }
        let error = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|b| b.error);
        let code = error
            .as_ref()
            .and_then(|e| e.code.clone())
            .unwrap_or_default();
        let why = error
            .map(|e| {
                format!(
                    "{}{}",
                    e.code.map(|c| format!("{c}: ")).unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        // A payment Stripe does not hold (in the path: 404; named in the form: 400
        // `resource_missing`) is another provider's.
        if code == "resource_missing" {
            return Err(ProviderError::UnknownPayment(format!(
                "Stripe {path}: {why}"
            )));
        }
        // A key refused or without the permission, an idempotency key misused, a dependency of
        // Stripe's failing: this deployment's or Stripe's trouble, never the payment's — tried
        // again, then in the dead-letter queue, whose alarm calls someone.
        if matches!(status.as_u16(), 401 | 403 | 424) || code.starts_with("idempotency") {
            return Err(ProviderError::Unavailable(format!("Stripe {path}: {why}")));
        }
        // Stripe's own advice: 429 and 5xx are worth asking again; a 409 is an idempotent
        // request still in flight; a 404 names a payment Stripe does not hold; any other 4xx
        // is final.
        if status.as_u16() == 404 {
            return Err(ProviderError::UnknownPayment(format!(
                "Stripe {path}: {why}"
            )));
        }
        if status.as_u16() == 429 || status.as_u16() == 409 || status.is_server_error() {
            Err(ProviderError::Unavailable(format!("Stripe {path}: {why}")))
        } else {
            Err(ProviderError::Refused(format!("Stripe {path}: {why}")))
        }
    }
}

impl<K: SecretSource> PaymentProvider for StripeClient<K> {
    async fn create_payment_intent(
        &self,
        order: &OrderId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, ProviderError> {
        let code = amount.currency().to_string();
        if UNLIKE_ISO.contains(&code.as_str()) {
            return Err(ProviderError::Refused(format!(
                "{code}: Stripe counts it in other units than the system's minor units"
            )));
        }
        let mut form = vec![
            ("amount", amount.minor_units().to_string()),
            ("currency", amount.currency().to_string().to_lowercase()),
            // Held at checkout, taken when the parcel ships.
            ("capture_method", "manual".to_owned()),
            ("metadata[order_id]", order.to_string()),
        ];
        if self.multicapture {
            // Taken parcel by parcel where the card's network allows it.
            form.push((
                "payment_method_options[card][request_multicapture]",
                "if_available".to_owned(),
            ));
        }
        let intent: Intent = self
            .post("/v1/payment_intents", &form, idempotency_key)
            .await?;
        let currency = oms_domain::money::Currency::parse(&intent.currency.to_uppercase())
            .map_err(|e| ProviderError::Refused(format!("Stripe's currency: {e}")))?;
        let amount = Money::new(intent.amount, currency)
            .map_err(|e| ProviderError::Refused(format!("Stripe's amount: {e}")))?;
        Ok(PaymentIntent {
            payment_intent_id: intent.id,
            client_secret: intent.client_secret,
            amount,
            status: intent.status,
        })
    }

    async fn capture(
        &self,
        reference: &str,
        amount: Money,
        idempotency_key: &str,
        last: bool,
    ) -> Result<ProviderAnswer, ProviderError> {
        let held: IntentState = self
            .get(&format!(
                "/v1/payment_intents/{reference}?expand[]=latest_charge"
            ))
            .await?;
        // A parcel's share with more to follow: with multicapture, taken with the rest kept
        // held for the next parcels (`final_capture=false`). Without it Stripe captures an
        // intent once and releases what is not taken, so the next parcels' money would be
        // lost: refused, before anything moves, in front of staff. The choice rests on what does
        // not change when the request is sent again (its `last`, the card's multicapture), so a
        // request retried under its key sends the same parameters.
        let mut form = vec![("amount_to_capture", amount.minor_units().to_string())];
        if !last {
            if !held.multicapture_available() {
                return Err(ProviderError::Refused(format!(
                    "Stripe captures {reference} once, releasing the rest: its {} would be \
                     lost to take {}; a parcel's share needs multicapture (StripeMulticapture, \
                     and a card whose network allows it)",
                    held.amount,
                    amount.minor_units()
                )));
            }
            form.push(("final_capture", "false".to_owned()));
        }
        let intent: IntentState = self
            .post(
                &format!("/v1/payment_intents/{reference}/capture"),
                &form,
                idempotency_key,
            )
            .await?;
        // This capture's own state: the intent succeeded (its last capture), or holds the rest
        // after taking this share (named by what it has received so far, which only this
        // capture's answer shows).
        let taken = intent.status == "succeeded"
            || (!last && intent.status == "requires_capture" && intent.amount_received > 0);
        let state = if intent.status == "succeeded" {
            intent.status.clone()
        } else {
            format!("received-{}", intent.amount_received)
        };
        Ok(ProviderAnswer {
            state_id: state_id(&intent.id, &state),
            kind: taken.then_some(PaymentEventKind::CaptureSucceeded),
            // Exactly what was asked: Stripe takes the amount asked or refuses.
            amount,
            reason: None,
        })
    }

    async fn cancel(
        &self,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ProviderAnswer, ProviderError> {
        let intent: IntentState = self
            .post(
                &format!("/v1/payment_intents/{reference}/cancel"),
                &[],
                idempotency_key,
            )
            .await?;
        Ok(ProviderAnswer {
            state_id: state_id(&intent.id, &intent.status),
            kind: (intent.status == "canceled").then_some(PaymentEventKind::VoidSucceeded),
            amount: money(intent.amount, &intent.currency)?,
            reason: None,
        })
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Money,
        order: &OrderId,
        refund_id: &str,
    ) -> Result<ProviderAnswer, ProviderError> {
        let refund: RefundState = self
            .post(
                "/v1/refunds",
                &[
                    ("payment_intent", reference.to_owned()),
                    ("amount", amount.minor_units().to_string()),
                    ("metadata[order_id]", order.to_string()),
                    ("metadata[refund_id]", refund_id.to_owned()),
                ],
                refund_id,
            )
            .await?;
        let (kind, state) = match refund.status.as_str() {
            "succeeded" => (Some(PaymentEventKind::RefundSucceeded), "succeeded"),
            "failed" | "canceled" => (Some(PaymentEventKind::RefundFailed), "failed"),
            // Pending: Stripe's webhook says how it ends.
            other => (None, other),
        };
        Ok(ProviderAnswer {
            state_id: state_id(&refund.id, state),
            kind,
            amount: money(refund.amount, &refund.currency)?,
            reason: refund.failure_reason,
        })
    }

    async fn events(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<PspEvent>, ProviderError> {
        let now = Utc::now();
        let mut found = Vec::new();
        for event in self.list_events(since, until).await? {
            // Read as the webhook reads it: the same events recorded, the same ones left alone.
            match StripeEvent::parse(&event, now) {
                Ok(StripeEvent::Payment(event)) => found.push(event),
                Ok(StripeEvent::Ignored { .. }) => {}
                Ok(StripeEvent::Unmatched { event_id, kind }) => {
                    tracing::info!(%event_id, %kind, "a Stripe event naming no order of this system")
                }
                Err(errors) => {
                    let id = event["id"].as_str().unwrap_or_default();
                    tracing::warn!(event_id = id, %errors, "a Stripe event not understood")
                }
            }
        }
        Ok(found)
    }
}

/// One page of Stripe's events (`GET /v1/events`), newest first.
#[derive(Deserialize)]
struct EventPage {
    data: Vec<serde_json::Value>,
    #[serde(default)]
    has_more: bool,
}

/// The most pages of events one reconciliation reads (a hundred events each): a window holding
/// more is logged, and the webhook's own retries are left to bring the rest.
const MAX_EVENT_PAGES: usize = 100;

impl<K: SecretSource> StripeClient<K> {
    /// Stripe's events created from `since` to `until`, newest first, read page by page.
    async fn list_events(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<serde_json::Value>, ProviderError> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_EVENT_PAGES {
            let mut path = format!(
                "/v1/events?limit=100&created[gte]={}&created[lte]={}",
                since.timestamp(),
                until.timestamp()
            );
            if let Some(last) = &after {
                path.push_str(&format!("&starting_after={last}"));
            }
            let page: EventPage = self.get(&path).await?;
            after = page
                .data
                .last()
                .and_then(|e| e["id"].as_str())
                .map(str::to_owned);
            events.extend(page.data);
            if !page.has_more || after.is_none() {
                return Ok(events);
            }
        }
        tracing::warn!(
            events = events.len(),
            "more Stripe events in the reconciliation's window than one run reads"
        );
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::FixedSecret;
    use oms_domain::money::Currency;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    #[tokio::test]
    async fn without_a_stripe_key_nothing_is_asked_of_stripe() {
        // Nothing listens on port 9: a request made would be Unavailable, not NotConfigured.
        let stripe = StripeClient::new(
            "http://127.0.0.1:9".into(),
            FixedSecret::new(b"placeholder"),
        );
        let order = OrderId::parse("01KAZ3Q6W8T2Y7X9V5N4M3K2J1").unwrap();
        assert!(matches!(
            stripe.create_payment_intent(&order, eur(100), "k").await,
            Err(ProviderError::NotConfigured(_))
        ));
        assert!(matches!(
            stripe.capture("pi_1", eur(100), "k", true).await,
            Err(ProviderError::NotConfigured(_))
        ));
    }

    #[tokio::test]
    async fn a_currency_stripe_counts_otherwise_is_refused_and_an_unreachable_stripe_is_unavailable(
    ) {
        let stripe = StripeClient::new("http://127.0.0.1:9".into(), FixedSecret::new(b"sk_test_x"));
        let order = OrderId::parse("01KAZ3Q6W8T2Y7X9V5N4M3K2J1").unwrap();
        let isk = Money::new(1000, Currency::parse("ISK").unwrap()).unwrap();
        assert!(matches!(
            stripe.create_payment_intent(&order, isk, "k").await,
            Err(ProviderError::Refused(_))
        ));
        assert!(matches!(
            stripe.create_payment_intent(&order, eur(100), "k").await,
            Err(ProviderError::Unavailable(_))
        ));
        assert_eq!(state_id("pi_1", "succeeded"), "stripe:pi_1:succeeded");
    }
}
