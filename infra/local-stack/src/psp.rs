//! Playing the payment service provider: `oms-local psp <type> <orderId>` sends the signed
//! webhook a PSP would send about the order, so that an order can be paid for (or declined,
//! captured, voided, refunded) by hand or from a test, without a PSP.
//!
//! The amount is what the order expects — its total, or for a refund event the refund's — read
//! through the API with a staff token, unless given. The body is signed as the PSP signs it
//! (`Psp-Signature: t=…,v1=…`, with `oms_adapters::signing`, the code the webhook verifies
//! with) under the local secret, or under each `--secret` given, as during a rotation.

use chrono::{DateTime, SecondsFormat, Utc};
use oms_adapters::signing::{self, PSP_SIGNATURE_HEADER, TOLERANCE_SECONDS};
use oms_domain::order::payments::PaymentEventKind;
use serde_json::{json, Map, Value};

/// The short forms of the PSP's event types.
pub const SHORT_FORMS: [(&str, PaymentEventKind); 7] = [
    ("authorize", PaymentEventKind::AuthorizationSucceeded),
    ("decline", PaymentEventKind::AuthorizationFailed),
    ("capture", PaymentEventKind::CaptureSucceeded),
    ("capture-failed", PaymentEventKind::CaptureFailed),
    ("void", PaymentEventKind::VoidSucceeded),
    ("refund", PaymentEventKind::RefundSucceeded),
    ("refund-failed", PaymentEventKind::RefundFailed),
];

/// The event type named by its wire name (`authorization.succeeded`) or its short form
/// (`authorize`).
pub fn event_kind(name: &str) -> Result<PaymentEventKind, String> {
    PaymentEventKind::parse(name)
        .or_else(|| {
            SHORT_FORMS
                .iter()
                .find(|(short, _)| *short == name)
                .map(|(_, kind)| *kind)
        })
        .ok_or_else(|| {
            let wire: Vec<&str> = PaymentEventKind::ALL.iter().map(|k| k.as_str()).collect();
            let short: Vec<&str> = SHORT_FORMS.iter().map(|(s, _)| *s).collect();
            format!(
                "unknown PSP event type {name:?}: one of {} or {}",
                short.join(", "),
                wire.join(", ")
            )
        })
}

/// What the event should say; what is not given comes from the order. The `psp` command's
/// arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EventSpec {
    /// authorize, decline, capture, capture-failed, void, refund, refund-failed, or the PSP's
    /// own name (authorization.succeeded, authorization.failed, capture.succeeded, …).
    #[arg(value_name = "TYPE", value_parser = event_kind)]
    pub kind: PaymentEventKind,
    /// The order the event is about.
    pub order_id: String,
    /// Minor units [default: the order's total, or for refund.* the refund's amount].
    #[arg(long)]
    pub amount: Option<i64>,
    /// ISO 4217 code [default: the order's].
    #[arg(long)]
    pub currency: Option<String>,
    /// For refund.*: the refund the event settles [default: the order's latest].
    #[arg(long)]
    pub refund_id: Option<String>,
    /// The PSP's reason (a decline's, a failure's).
    #[arg(long)]
    pub reason: Option<String>,
    /// The PSP's event id; send one twice to see a repeat acknowledged [default: a new evt_<ulid>].
    #[arg(long)]
    pub event_id: Option<String>,
    /// When the PSP says it happened, RFC 3339 [default: now].
    #[arg(long)]
    pub occurred_at: Option<String>,
    /// The PSP's payment id [default: psp-<orderId>].
    #[arg(long)]
    pub psp_reference: Option<String>,
}

impl EventSpec {
    /// Whether the body needs the order (`GET /orders/{id}`): for an amount or currency not
    /// given, or the refund a refund event is about.
    pub fn needs_order(&self) -> bool {
        self.amount.is_none()
            || self.currency.is_none()
            || (self.kind.is_refund() && self.refund_id.is_none())
    }

    /// The webhook's body, from what was given and the order's JSON (`GET /orders/{id}`).
    pub fn body(&self, order: Option<&Value>, now: DateTime<Utc>) -> Result<Value, String> {
        let no_order = || "the order is needed (give --amount and --currency)".to_owned();
        let refund_id = match (&self.refund_id, self.kind.is_refund()) {
            (Some(id), _) => Some(id.clone()),
            (None, false) => None,
            (None, true) => {
                let order = order.ok_or_else(no_order)?;
                let latest = order["refunds"].as_array().and_then(|r| r.last());
                Some(
                    latest
                        .and_then(|r| r["refundId"].as_str())
                        .ok_or_else(|| {
                            format!(
                                "order {} has no refund yet (--refund-id names one)",
                                self.order_id
                            )
                        })?
                        .to_owned(),
                )
            }
        };
        let expected = if self.amount.is_some() && self.currency.is_some() {
            None
        } else {
            let order = order.ok_or_else(no_order)?;
            let money = match &refund_id {
                Some(id) if self.kind.is_refund() => order["refunds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["refundId"] == id.as_str())
                    .map(|r| &r["amount"])
                    .ok_or_else(|| {
                        format!(
                            "order {} has no refund {id} (give --amount and --currency)",
                            self.order_id
                        )
                    })?,
                _ => &order["totals"]["total"],
            };
            Some((
                money["amount"]
                    .as_i64()
                    .ok_or("the order's amount is not a whole number")?,
                money["currency"]
                    .as_str()
                    .ok_or("the order's amount has no currency")?
                    .to_owned(),
            ))
        };
        let amount = self
            .amount
            .or(expected.as_ref().map(|(a, _)| *a))
            .ok_or_else(no_order)?;
        let currency = self
            .currency
            .clone()
            .or(expected.map(|(_, c)| c))
            .ok_or_else(no_order)?;

        let mut body = Map::new();
        let event_id = self
            .event_id
            .clone()
            .unwrap_or_else(|| format!("evt_{}", ulid::Ulid::new()));
        body.insert("id".into(), event_id.into());
        body.insert("type".into(), self.kind.as_str().into());
        body.insert("orderId".into(), self.order_id.clone().into());
        body.insert(
            "amount".into(),
            json!({"amount": amount, "currency": currency}),
        );
        body.insert(
            "occurredAt".into(),
            self.occurred_at
                .clone()
                .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Millis, true))
                .into(),
        );
        // One PSP payment per order: captures and voids name the authorization's.
        body.insert(
            "pspReference".into(),
            self.psp_reference
                .clone()
                .unwrap_or_else(|| format!("psp-{}", self.order_id))
                .into(),
        );
        if let Some(id) = refund_id {
            body.insert("refundId".into(), id.into());
        }
        if let Some(reason) = &self.reason {
            body.insert("reason".into(), reason.clone().into());
        }
        Ok(Value::Object(body))
    }
}

/// The `Psp-Signature` header for `body` under each of `secrets`, signed now, or with `stale`
/// twice the webhook's tolerance ago (which the webhook must refuse).
pub fn signature(secrets: &[String], body: &[u8], now: DateTime<Utc>, stale: bool) -> String {
    let at = now.timestamp() - if stale { 2 * TOLERANCE_SECONDS } else { 0 };
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
    signing::signature_header(&secrets, at, body)
}

/// How the event is sent.
pub struct Delivery<'a> {
    pub http: &'a reqwest::Client,
    /// The HTTP API, `http://127.0.0.1:3000`.
    pub api: &'a str,
    /// A token with `oms:admin`, to read the order.
    pub admin_token: &'a str,
    pub secrets: &'a [String],
    pub stale: bool,
}

/// What the webhook answered.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: String,
    /// What was sent.
    pub event: Value,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the event (reading the order if it must), signs it and posts it to
/// `/payments/events`.
pub async fn send(spec: &EventSpec, delivery: &Delivery<'_>) -> Result<Answer, BoxError> {
    let order = if spec.needs_order() {
        let url = format!("{}/orders/{}", delivery.api, spec.order_id);
        let response = delivery
            .http
            .get(&url)
            .bearer_auth(delivery.admin_token)
            .send()
            .await
            .map_err(|e| format!("cannot read the order at {url}: {e}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}: {text}").into());
        }
        Some(serde_json::from_str::<Value>(&text)?)
    } else {
        None
    };
    let now = Utc::now();
    let event = spec.body(order.as_ref(), now)?;
    let body = event.to_string();
    let header = signature(delivery.secrets, body.as_bytes(), now, delivery.stale);
    let url = format!("{}/payments/events", delivery.api);
    let response = delivery
        .http
        .post(&url)
        .header(PSP_SIGNATURE_HEADER, header)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    Ok(Answer {
        status: response.status(),
        body: response.text().await?,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "01KAZ3Q6W8T2Y7X9V5N4M3K2J1";

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn spec(kind: &str) -> EventSpec {
        EventSpec {
            kind: event_kind(kind).unwrap(),
            order_id: ORDER.into(),
            amount: None,
            currency: None,
            refund_id: None,
            reason: None,
            event_id: None,
            occurred_at: None,
            psp_reference: None,
        }
    }

    fn order() -> Value {
        json!({
            "orderId": ORDER,
            "totals": {"total": {"amount": 5980, "currency": "EUR"}},
            "refunds": [
                {"refundId": format!("{ORDER}-REFUND-1"), "amount": {"amount": 1290, "currency": "EUR"}, "state": "ISSUED"},
                {"refundId": format!("{ORDER}-REFUND-2"), "amount": {"amount": 990, "currency": "EUR"}, "state": "REQUESTED"}
            ],
            "payment": {"status": "PAID", "ledger": [], "requests": []}
        })
    }

    #[test]
    fn short_forms_and_wire_names_name_every_event_type() {
        for kind in PaymentEventKind::ALL {
            assert_eq!(event_kind(kind.as_str()), Ok(kind));
            assert!(
                SHORT_FORMS.iter().any(|(_, k)| *k == kind),
                "{kind:?} has no short form"
            );
        }
        assert_eq!(
            event_kind("authorize"),
            Ok(PaymentEventKind::AuthorizationSucceeded)
        );
        assert_eq!(
            event_kind("capture-failed"),
            Ok(PaymentEventKind::CaptureFailed)
        );
        assert!(event_kind("charge").unwrap_err().contains("authorize"));
    }

    #[test]
    fn an_authorization_is_for_the_orders_total_and_parses_as_the_webhook_parses() {
        let body = spec("authorize").body(Some(&order()), now()).unwrap();
        assert_eq!(body["type"], "authorization.succeeded");
        assert_eq!(body["orderId"], ORDER);
        assert_eq!(body["amount"], json!({"amount": 5980, "currency": "EUR"}));
        assert_eq!(body["occurredAt"], "2026-12-01T12:00:00.000Z");
        assert_eq!(body["pspReference"], format!("psp-{ORDER}"));
        assert!(body.get("refundId").is_none());
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("evt_") && id.len() == 30, "{id}");
        let other = spec("authorize").body(Some(&order()), now()).unwrap();
        assert_ne!(other["id"], body["id"], "a fresh event id each time");
        let parsed = oms_domain::request::payments::PspEvent::parse(&body, now()).unwrap();
        assert_eq!(parsed.event.amount.minor_units(), 5980);
    }

    #[test]
    fn a_refund_is_for_the_latest_refund_or_the_one_named() {
        let body = spec("refund").body(Some(&order()), now()).unwrap();
        assert_eq!(body["refundId"], format!("{ORDER}-REFUND-2"));
        assert_eq!(body["amount"]["amount"], 990);
        let mut named = spec("refund-failed");
        named.refund_id = Some(format!("{ORDER}-REFUND-1"));
        named.reason = Some("card expired".into());
        let body = named.body(Some(&order()), now()).unwrap();
        assert_eq!(body["type"], "refund.failed");
        assert_eq!(body["amount"]["amount"], 1290);
        assert_eq!(body["reason"], "card expired");
        oms_domain::request::payments::PspEvent::parse(&body, now()).unwrap();

        let mut unknown = spec("refund");
        unknown.refund_id = Some("nope".into());
        assert!(unknown.body(Some(&order()), now()).is_err());
        let mut none = order();
        none["refunds"] = json!([]);
        assert!(spec("refund")
            .body(Some(&none), now())
            .unwrap_err()
            .contains("no refund"));
    }

    #[test]
    fn what_is_given_wins_and_needs_no_order() {
        let mut given = spec("capture");
        given.amount = Some(1);
        given.currency = Some("USD".into());
        given.event_id = Some("evt_fixed".into());
        given.occurred_at = Some("2026-12-01T11:00:00Z".into());
        given.psp_reference = Some("pi_9".into());
        assert!(!given.needs_order());
        let body = given.body(None, now()).unwrap();
        assert_eq!(
            body,
            json!({"id": "evt_fixed", "type": "capture.succeeded", "orderId": ORDER,
                   "amount": {"amount": 1, "currency": "USD"}, "occurredAt": "2026-12-01T11:00:00Z",
                   "pspReference": "pi_9"})
        );
        assert!(spec("capture").needs_order());
        let mut refund = spec("refund");
        refund.amount = Some(1);
        refund.currency = Some("EUR".into());
        assert!(refund.needs_order(), "the refund id comes from the order");
        assert!(spec("void").body(None, now()).is_err());
    }

    #[test]
    fn the_signature_verifies_under_each_secret_and_a_stale_one_does_not() {
        let secrets = vec![
            "old-secret-0123456".to_owned(),
            "new-secret-0123456".to_owned(),
        ];
        let header = signature(&secrets, b"{}", now(), false);
        assert_eq!(header.matches("v1=").count(), 2);
        for secret in &secrets {
            assert_eq!(
                signing::verify(secret.as_bytes(), Some(&header), b"{}", now().timestamp()),
                Ok(())
            );
        }
        let stale = signature(&secrets[..1], b"{}", now(), true);
        assert_eq!(
            signing::verify(
                secrets[0].as_bytes(),
                Some(&stale),
                b"{}",
                now().timestamp()
            ),
            Err(signing::SignatureError::Stale)
        );
    }
}
