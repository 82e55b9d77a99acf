//! The payment service provider's webhook body.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::OrderId;
use crate::money::Money;
use crate::order::payments::{PaymentEvent, PaymentEventKind};
use crate::request::{one_of, text, Fields};
use crate::validation::ValidationErrors;

/// How far ahead of this system's clock a PSP's event time may be; beyond it the event is
/// refused.
pub const PSP_CLOCK_SKEW_SECONDS: i64 = 300;

/// One PSP transaction event and the order it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PspEvent {
    pub order_id: OrderId,
    pub event: PaymentEvent,
}

/// A PSP's identifier: 1 to 128 of `A-Z a-z 0-9 _ - . :`.
fn identifier(value: &Value) -> Result<String, String> {
    text(128)(value).and_then(|id| {
        if id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            Ok(id)
        } else {
            Err("may hold only letters, digits and _ - . :".to_owned())
        }
    })
}

impl PspEvent {
    /// Parses `{id, type, orderId, amount: {amount, currency}, occurredAt, pspReference?,
    /// refundId?, reason?}`. A refund event names the refund it settles (`refundId`). Like a
    /// carrier's, a PSP's payload is read open: PSPs add fields without notice.
    pub fn parse(body: &Value, now: DateTime<Utc>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::open_body(&mut errors, body) else {
            return Err(errors);
        };
        let event_id = fields.required(&mut errors, "id", identifier);
        let kind = fields.required(
            &mut errors,
            "type",
            one_of(&PaymentEventKind::ALL, PaymentEventKind::as_str),
        );
        let order_id = fields.required(&mut errors, "orderId", |v| {
            text(26)(v).and_then(|r| OrderId::parse(r).map_err(|e| e.to_string()))
        });
        let amount = fields.required(&mut errors, "amount", |v| {
            serde_json::from_value::<Money>(v.clone()).map_err(|_| {
                "must be {\"amount\": minor units (a whole number, not negative), \"currency\": an ISO 4217 code}"
                    .to_owned()
            })
        });
        let occurred_at = fields.required(&mut errors, "occurredAt", |v| {
            let at = v
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| "must be an RFC 3339 time".to_owned())?;
            if at > now + chrono::Duration::seconds(PSP_CLOCK_SKEW_SECONDS) {
                return Err(format!(
                    "is in the future (more than {PSP_CLOCK_SKEW_SECONDS} s ahead of this system's clock)"
                ));
            }
            Ok(at)
        });
        let psp_reference = fields.optional(&mut errors, "pspReference", identifier);
        let refund_id = fields.optional(&mut errors, "refundId", identifier);
        let request_id = fields.optional(&mut errors, "requestId", identifier);
        // Free text from a third party: kept short and printable rather than refused.
        let reason = fields.get("reason").and_then(Value::as_str).map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        });
        if kind.is_some_and(|k| k.is_refund()) && refund_id.is_none() && !fields.has("refundId") {
            errors.add("refundId", "is required for a refund event");
        }
        match (event_id, kind, order_id, amount, occurred_at) {
            (Some(event_id), Some(kind), Some(order_id), Some(amount), Some(occurred_at))
                if errors.is_empty() =>
            {
                Ok(PspEvent {
                    order_id,
                    event: PaymentEvent {
                        event_id,
                        kind,
                        amount,
                        occurred_at,
                        psp_reference,
                        refund_id,
                        request_id,
                        reason,
                    },
                })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::refused_fields;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn body() -> Value {
        json!({
            "id": "evt_1", "type": "authorization.succeeded", "orderId": "01KAZ3Q6W8T2Y7X9V5N4M3K2J1",
            "amount": {"amount": 4990, "currency": "EUR"}, "occurredAt": "2026-12-01T11:59:00Z",
            "pspReference": "pi_1", "livemode": false
        })
    }

    #[test]
    fn a_psp_event_parses_and_unknown_fields_are_ignored() {
        let parsed = PspEvent::parse(&body(), now()).unwrap();
        assert_eq!(parsed.event.kind, PaymentEventKind::AuthorizationSucceeded);
        assert_eq!(parsed.event.amount.minor_units(), 4990);
        assert_eq!(parsed.event.psp_reference.as_deref(), Some("pi_1"));
    }

    #[test]
    fn bad_fields_are_named() {
        let mut bad = body();
        bad["id"] = json!("evt 1");
        bad["type"] = json!("charge.succeeded");
        bad["amount"] = json!({"amount": -1, "currency": "EUR"});
        bad["occurredAt"] = json!("2026-12-01T12:06:00Z");
        assert_eq!(
            refused_fields(PspEvent::parse(&bad, now())),
            ["id", "type", "amount", "occurredAt"]
        );
        let mut refund = body();
        refund["type"] = json!("refund.succeeded");
        assert_eq!(
            refused_fields(PspEvent::parse(&refund, now())),
            ["refundId"]
        );
    }
}
