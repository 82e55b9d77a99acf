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
use oms_domain::ports::{
    CaptureAsk, PaymentIntent, PaymentProvider, ProviderAnswer, ProviderError,
};
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

/// The state a capture left its intent in: `succeeded` (all taken, or the rest released), or
/// the rest still held after `received-<amount so far>` was taken — named by what only that
/// capture's answer shows, so each part of a multicapture is its own entry.
fn taken_state(intent: &IntentState) -> String {
    if intent.status == "succeeded" {
        intent.status.clone()
    } else {
        format!("received-{}", intent.amount_received)
    }
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
        // The option is part of the key: a deployment that turns multicapture on or off does
        // not send a payment's key again with other parameters (a refusal for a day).
        let key = if self.multicapture {
            format!("{idempotency_key}-MC")
        } else {
            idempotency_key.to_owned()
        };
        let intent: Intent = self.post("/v1/payment_intents", &form, &key).await?;
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
        ask: &CaptureAsk,
    ) -> Result<ProviderAnswer, ProviderError> {
        // The card's multicapture is read (from its charge) only where a share is to leave the
        // rest held.
        let path = if ask.more_follow {
            format!("/v1/payment_intents/{reference}?expand[]=latest_charge")
        } else {
            format!("/v1/payment_intents/{reference}")
        };
        let held: IntentState = self.get(&path).await?;
        // Stripe shows more taken than the ledger: this capture was made (asked before, its
        // answer never recorded). Answered from Stripe's state, never asked again: Stripe forgets
        // an idempotency key after a day, and a multicapture intent would take it twice.
        if held.amount_received > ask.taken_minor {
            return Ok(ProviderAnswer {
                state_id: state_id(&held.id, &taken_state(&held)),
                kind: Some(PaymentEventKind::CaptureSucceeded),
                amount: money(held.amount_received - ask.taken_minor, &held.currency)?,
                reason: None,
            });
        }
        // A parcel's share with more to follow: with multicapture, taken with the rest kept
        // held for the next parcels (`final_capture=false`). Without it Stripe captures an
        // intent once and releases what is not taken, so the next parcels' money would be
        // lost: refused, before anything moves, in front of staff. Both rest on what does not
        // change when the request is sent again (the request's own `more_follow`, the card's
        // multicapture), so a request retried under its key sends the same parameters.
        let mut form = vec![("amount_to_capture", ask.amount.minor_units().to_string())];
        if ask.more_follow {
            if !held.multicapture_available() {
                return Err(ProviderError::Refused(format!(
                    "Stripe captures {reference} once, releasing the rest: its {} would be \
                     lost to take {}; a parcel's share needs multicapture (StripeMulticapture, \
                     and a card whose network allows it)",
                    held.amount,
                    ask.amount.minor_units()
                )));
            }
            form.push(("final_capture", "false".to_owned()));
        }
        let intent: IntentState = self
            .post(
                &format!("/v1/payment_intents/{reference}/capture"),
                &form,
                &ask.idempotency_key,
            )
            .await?;
        // Taken: the intent succeeded (its last capture), or holds the rest after this share.
        let taken = intent.status == "succeeded"
            || (ask.more_follow
                && intent.status == "requires_capture"
                && intent.amount_received > 0);
        Ok(ProviderAnswer {
            state_id: state_id(&intent.id, &taken_state(&intent)),
            kind: taken.then_some(PaymentEventKind::CaptureSucceeded),
            // Exactly what was asked: Stripe takes the amount asked or refuses.
            amount: ask.amount,
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

/// How long one reconciliation run reads Stripe's events before it records what it has: well
/// inside the function's 30 s, with time left to record them. A window holding more is logged;
/// the next runs (their windows overlap) and the webhook's own retries bring the rest.
const EVENT_LISTING_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

impl<K: SecretSource> StripeClient<K> {
    /// Stripe's events created from `since` to `until`, newest first, read page by page.
    async fn list_events(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<serde_json::Value>, ProviderError> {
        let started = std::time::Instant::now();
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        // Only the types that can change a ledger: a busy account's other events are not read.
        let types: String = oms_domain::request::stripe::RECORDED_TYPES
            .iter()
            .map(|t| format!("&types[]={t}"))
            .collect();
        while started.elapsed() < EVENT_LISTING_BUDGET {
            let mut path = format!(
                "/v1/events?limit=100&created[gte]={}&created[lte]={}{types}",
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
            "more Stripe events in the reconciliation's window than one run reads in its time"
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
            stripe
                .capture(
                    "pi_1",
                    &CaptureAsk {
                        amount: eur(100),
                        idempotency_key: "k".into(),
                        more_follow: false,
                        taken_minor: 0
                    }
                )
                .await,
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

    /// A Stripe that answers each request with the next of `answers` (status, JSON body) and
    /// keeps each request's first line and body: its URL and what it answers.
    async fn scripted_stripe(
        answers: Vec<(u16, serde_json::Value)>,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The head, then as much body as its Content-Length says.
                loop {
                    let n = socket.read(&mut buffer).await.unwrap();
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length || n == 0 {
                            let first = text.lines().next().unwrap_or_default().to_owned();
                            kept.lock()
                                .unwrap()
                                .push(format!("{first} {}", &text[end + 4..]));
                            break;
                        }
                    }
                }
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        (url, seen)
    }

    fn intent(status: &str, received: i64, multicapture: &str) -> serde_json::Value {
        serde_json::json!({
            "id": "pi_1", "amount": 1000, "amount_received": received, "currency": "eur",
            "status": status,
            "latest_charge": {"payment_method_details": {"card": {"multicapture": {"status": multicapture}}}}
        })
    }

    fn share(minor: i64, more_follow: bool, taken_minor: i64) -> CaptureAsk {
        CaptureAsk {
            amount: eur(minor),
            idempotency_key: "ORDER-CAPTURE-1".into(),
            more_follow,
            taken_minor,
        }
    }

    #[tokio::test]
    async fn a_share_keeps_the_rest_held_and_a_capture_stripe_made_is_never_asked_again() {
        let (url, seen) = scripted_stripe(vec![
            (200, intent("requires_capture", 0, "available")),
            (200, intent("requires_capture", 400, "available")),
            // Asked again after the answer was lost: Stripe shows it taken.
            (200, intent("requires_capture", 400, "available")),
        ])
        .await;
        let stripe = StripeClient::new(url, FixedSecret::new(b"sk_test_x"));
        let answer = stripe.capture("pi_1", &share(400, true, 0)).await.unwrap();
        assert_eq!(answer.state_id, "stripe:pi_1:received-400");
        assert_eq!(answer.kind, Some(PaymentEventKind::CaptureSucceeded));
        assert_eq!(answer.amount, eur(400));
        let again = stripe.capture("pi_1", &share(400, true, 0)).await.unwrap();
        assert_eq!(
            again.state_id, answer.state_id,
            "the same state, recorded once"
        );
        assert_eq!(again.amount, eur(400));
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert!(requests[0].starts_with("GET /v1/payment_intents/pi_1?expand[]=latest_charge"));
        assert!(requests[1].starts_with("POST /v1/payment_intents/pi_1/capture"));
        assert!(
            requests[1].contains("amount_to_capture=400&final_capture=false"),
            "{}",
            requests[1]
        );
        assert!(
            requests[2].starts_with("GET "),
            "never posted twice: {requests:?}"
        );
    }

    #[tokio::test]
    async fn a_share_without_multicapture_is_refused_before_anything_moves() {
        let (url, seen) =
            scripted_stripe(vec![(200, intent("requires_capture", 0, "unavailable"))]).await;
        let stripe = StripeClient::new(url, FixedSecret::new(b"sk_test_x"));
        let refused = stripe.capture("pi_1", &share(400, true, 0)).await;
        assert!(
            matches!(refused, Err(ProviderError::Refused(_))),
            "{refused:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "only read");
    }

    #[tokio::test]
    async fn the_reconciliation_reads_every_page_of_the_types_it_records() {
        let event = |id: &str, kind: &str| {
            serde_json::json!({"id": id, "type": kind, "created": 1_764_590_340,
                "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 1000,
                    "amount_capturable": 1000, "amount_received": 0, "currency": "eur",
                    "status": "requires_capture", "metadata": {"order_id": "01KAZ3Q6W8T2Y7X9V5N4M3K2J1"}}}})
        };
        let (url, seen) = scripted_stripe(vec![
            (200, serde_json::json!({"data": [event("evt_2", "payment_intent.amount_capturable_updated"), event("evt_x", "customer.created")], "has_more": true})),
            (200, serde_json::json!({"data": [event("evt_1", "payment_intent.amount_capturable_updated")], "has_more": false})),
        ])
        .await;
        let stripe = StripeClient::new(url, FixedSecret::new(b"sk_test_x"));
        let since = DateTime::from_timestamp(1_764_590_000, 0).unwrap();
        let until = DateTime::from_timestamp(1_764_590_400, 0).unwrap();
        let found = stripe.events(since, until).await.unwrap();
        assert_eq!(found.len(), 2, "both pages, the unneeded event left out");
        let requests = seen.lock().unwrap().clone();
        assert!(
            requests[0].contains("created[gte]=1764590000&created[lte]=1764590400"),
            "{}",
            requests[0]
        );
        assert!(
            requests[0].contains("types[]=payment_intent.succeeded"),
            "{}",
            requests[0]
        );
        assert!(
            requests[1].contains("starting_after=evt_x"),
            "{}",
            requests[1]
        );
    }
}
