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

use oms_domain::ids::OrderId;
use oms_domain::money::Money;
use oms_domain::ports::{PaymentIntent, PaymentProvider, ProviderError};
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
}

impl StripeClient<SecretCache> {
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let base = std::env::var("STRIPE_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "https://api.stripe.com".to_owned());
        Ok(Self::new(
            base,
            SecretCache::from_env("STRIPE_API_KEY_ARN")?,
        ))
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
        }
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
        let key = self
            .key
            .value()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the Stripe key: {e}")))?;
        let key = String::from_utf8_lossy(&key).trim().to_owned();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency_key)
            .header("Stripe-Version", STRIPE_API_VERSION)
            .form(form)
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
        let why = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|b| {
                format!(
                    "{}{}",
                    b.error.code.map(|c| format!("{c}: ")).unwrap_or_default(),
                    b.error.message.unwrap_or_default()
                )
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        // Stripe's own advice: 429 and 5xx are worth asking again; a 409 is an idempotent
        // request still in flight; any other 4xx is final.
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
        let intent: Intent = self
            .post(
                "/v1/payment_intents",
                &[
                    ("amount", amount.minor_units().to_string()),
                    ("currency", amount.currency().to_string().to_lowercase()),
                    // Held at checkout, taken when the parcel ships.
                    ("capture_method", "manual".to_owned()),
                    ("metadata[order_id]", order.to_string()),
                ],
                idempotency_key,
            )
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
}
