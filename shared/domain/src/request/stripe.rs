//! Stripe's webhook events, read as the PSP events the order's ledger records.
//!
//! Stripe sends every event of the account; the few that move an order's money become a
//! [`PspEvent`], the rest are acknowledged and left alone — and so are those about money that
//! name no order of this system (another integration's payment, a refund made in Stripe's
//! Dashboard, whose refund carries no metadata), logged as unmatched. The order is the one the
//! PaymentIntent (or the refund) names in its metadata (`order_id`, set when it was created);
//! the PSP reference is the PaymentIntent's id, so a customer who pays again under a new intent
//! is a second payment, as with any PSP.
//!
//! | Stripe event | recorded as |
//! |---|---|
//! | `payment_intent.amount_capturable_updated` (status `requires_capture`, nothing received yet) | `authorization.succeeded` of `amount_capturable` |
//! | `payment_intent.succeeded` | `capture.succeeded` of `amount_received` |
//! | `payment_intent.payment_failed` | `authorization.failed`, Stripe's message as the reason |
//! | `payment_intent.canceled` | `void.succeeded` of the intent's amount |
//! | `refund.created`, `refund.updated`, `charge.refund.updated` (status `succeeded` or `failed`), `refund.failed` | `refund.succeeded` / `refund.failed` of the refund named in its metadata (`refund_id`) |

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::order::payments::PaymentEventKind;
use crate::request::payments::PspEvent;
use crate::validation::ValidationErrors;

/// What a Stripe event is to the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeEvent {
    /// It moves an order's money: recorded in its ledger.
    Payment(PspEvent),
    /// Not one the system needs (its type, or a state that moves nothing): acknowledged.
    Ignored { event_id: String, kind: String },
    /// About money, but naming no order of this system (no `metadata.order_id`: another
    /// integration's payment, a refund made in Stripe's Dashboard): acknowledged — Stripe would
    /// send a refused event again for days — and logged for staff to look at.
    Unmatched { event_id: String, kind: String },
}

/// Where each field of the generic PSP event comes from in Stripe's, to name it in an error.
const STRIPE_FIELDS: [(&str, &str); 7] = [
    ("id", "id"),
    ("type", "type"),
    ("orderId", "data.object.metadata.order_id"),
    ("amount", "data.object.amount"),
    ("occurredAt", "created"),
    ("pspReference", "data.object.id"),
    ("refundId", "data.object.metadata.refund_id"),
];

/// The types of Stripe's events that can change an order's ledger (the rest are acknowledged
/// and left alone): what the reconciliation asks Stripe for.
pub const RECORDED_TYPES: [&str; 8] = [
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
];

impl StripeEvent {
    /// Reads a Stripe event (`{id, type, created, data: {object}}`). Like every PSP payload it
    /// is read open: Stripe adds fields without notice.
    pub fn parse(body: &Value, now: DateTime<Utc>) -> Result<Self, ValidationErrors> {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let event_id = text(&body["id"])
            .ok_or_else(|| ValidationErrors::one("id", "is required: the event's id"))?;
        let kind = text(&body["type"])
            .ok_or_else(|| ValidationErrors::one("type", "is required: the event's type"))?;
        let object = &body["data"]["object"];
        if !object.is_object() {
            return Err(ValidationErrors::one(
                "data.object",
                "is required: the object the event is about",
            ));
        }
        let minor = |name: &str| object[name].as_i64();
        let status = object["status"].as_str().unwrap_or_default();
        let ignored = || {
            Ok(StripeEvent::Ignored {
                event_id: event_id.clone(),
                kind: kind.clone(),
            })
        };
        let (recorded, amount, reference) = match kind.as_str() {
            "payment_intent.amount_capturable_updated"
                if status == "requires_capture" && minor("amount_received") == Some(0) =>
            {
                (
                    PaymentEventKind::AuthorizationSucceeded,
                    minor("amount_capturable"),
                    object["id"].clone(),
                )
            }
            // A payment opened for multicapture may be taken in several parts, which the
            // system asks for and records from Stripe's answers, one by one; its `succeeded`
            // tells only the sum, already recorded part by part.
            "payment_intent.succeeded"
                if object["payment_method_options"]["card"]["request_multicapture"]
                    == "if_available" =>
            {
                return ignored()
            }
            "payment_intent.succeeded" => (
                PaymentEventKind::CaptureSucceeded,
                minor("amount_received"),
                object["id"].clone(),
            ),
            "payment_intent.payment_failed" => (
                PaymentEventKind::AuthorizationFailed,
                minor("amount"),
                object["id"].clone(),
            ),
            "payment_intent.canceled" => (
                PaymentEventKind::VoidSucceeded,
                minor("amount"),
                object["id"].clone(),
            ),
            "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
                let kind = match (kind.as_str(), status) {
                    ("refund.failed", _) | (_, "failed" | "canceled") => {
                        PaymentEventKind::RefundFailed
                    }
                    (_, "succeeded") => PaymentEventKind::RefundSucceeded,
                    // Pending, or waiting for the customer: nothing has moved yet.
                    _ => return ignored(),
                };
                (kind, minor("amount"), object["payment_intent"].clone())
            }
            _ => return ignored(),
        };
        if !object["metadata"]["order_id"].is_string() {
            return Ok(StripeEvent::Unmatched { event_id, kind });
        }
        let reason = object["last_payment_error"]["message"]
            .as_str()
            .or_else(|| object["failure_reason"].as_str())
            .or_else(|| object["cancellation_reason"].as_str());
        let occurred_at = body["created"]
            .as_i64()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .map(|t| t.to_rfc3339());
        // The ledger's id of the state reached — the PaymentIntent's or the refund's — so the
        // same state heard from Stripe's answer to a request and from this event is recorded
        // once (`stripe:<object id>:<state>`); a failed attempt is Stripe's event itself.
        let ledger_id = match (recorded, object["id"].as_str()) {
            (PaymentEventKind::AuthorizationFailed, _) | (_, None) => event_id.clone(),
            (PaymentEventKind::AuthorizationSucceeded, Some(id)) => {
                format!("stripe:{id}:capturable")
            }
            (PaymentEventKind::RefundFailed, Some(id)) => format!("stripe:{id}:failed"),
            (_, Some(id)) => format!("stripe:{id}:{status}"),
        };
        let mut generic = json!({
            "id": ledger_id,
            "type": recorded.as_str(),
            "orderId": object["metadata"]["order_id"],
            "amount": {
                "amount": amount,
                "currency": object["currency"].as_str().map(str::to_ascii_uppercase),
            },
            "occurredAt": occurred_at,
            "pspReference": reference,
        });
        if recorded.is_refund() {
            generic["refundId"] = object["metadata"]["refund_id"].clone();
        }
        if let Some(reason) = reason {
            generic["reason"] = json!(reason);
        }
        PspEvent::parse(&generic, now)
            .map(StripeEvent::Payment)
            .map_err(|errors| {
                // Named as Stripe's fields, where the generic one came from.
                let mut named = ValidationErrors::default();
                for error in errors.0 {
                    let field = STRIPE_FIELDS
                        .iter()
                        .find(|(generic, _)| *generic == error.field)
                        .map_or(error.field.as_str(), |(_, stripe)| stripe);
                    named.add(field, error.message);
                }
                named
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    const ORDER: &str = "01KAZ3Q6W8T2Y7X9V5N4M3K2J1";

    fn intent(kind: &str, status: &str) -> Value {
        json!({
            "id": "evt_1", "object": "event", "type": kind, "created": 1_764_590_340, "livemode": false,
            "data": {"object": {
                "id": "pi_1", "object": "payment_intent", "amount": 4990, "amount_capturable": 4990,
                "amount_received": 0, "currency": "eur", "status": status,
                "metadata": {"order_id": ORDER}
            }}
        })
    }

    fn recorded(body: &Value) -> PspEvent {
        match StripeEvent::parse(body, now()).unwrap() {
            StripeEvent::Payment(event) => event,
            other => panic!("not recorded: {other:?}"),
        }
    }

    #[test]
    fn a_capturable_intent_is_an_authorization_of_its_order() {
        let event = recorded(&intent(
            "payment_intent.amount_capturable_updated",
            "requires_capture",
        ));
        assert_eq!(event.order_id.as_str(), ORDER);
        assert_eq!(event.event.kind, PaymentEventKind::AuthorizationSucceeded);
        assert_eq!(event.event.amount.minor_units(), 4990);
        assert_eq!(
            event.event.amount.currency(),
            crate::money::Currency::parse("EUR").unwrap()
        );
        assert_eq!(event.event.psp_reference.as_deref(), Some("pi_1"));
        assert_eq!(
            event.event.event_id, "stripe:pi_1:capturable",
            "the state, not the message"
        );
        assert_eq!(
            event.event.occurred_at.to_rfc3339(),
            "2025-12-01T11:59:00+00:00"
        );
    }

    #[test]
    fn captures_failures_and_cancellations_map_to_their_ledger_kinds() {
        let mut succeeded = intent("payment_intent.succeeded", "succeeded");
        succeeded["data"]["object"]["amount_received"] = json!(4990);
        assert_eq!(
            recorded(&succeeded).event.kind,
            PaymentEventKind::CaptureSucceeded
        );
        assert_eq!(recorded(&succeeded).event.amount.minor_units(), 4990);
        let mut failed = intent("payment_intent.payment_failed", "requires_payment_method");
        failed["data"]["object"]["last_payment_error"] =
            json!({"message": "Your card was declined."});
        let failed = recorded(&failed);
        assert_eq!(failed.event.kind, PaymentEventKind::AuthorizationFailed);
        assert_eq!(
            failed.event.reason.as_deref(),
            Some("Your card was declined.")
        );
        let canceled = recorded(&intent("payment_intent.canceled", "canceled"));
        assert_eq!(canceled.event.kind, PaymentEventKind::VoidSucceeded);
        assert_eq!(canceled.event.amount.minor_units(), 4990);
    }

    #[test]
    fn refunds_name_the_refund_they_settle_and_pending_ones_are_left_alone() {
        let refund = |kind: &str, status: &str| {
            json!({
                "id": "evt_9", "type": kind, "created": 1_764_590_340,
                "data": {"object": {
                    "id": "re_1", "object": "refund", "amount": 1000, "currency": "eur",
                    "payment_intent": "pi_1", "status": status,
                    "metadata": {"order_id": ORDER, "refund_id": format!("{ORDER}-REFUND-1")}
                }}
            })
        };
        let paid = recorded(&refund("refund.updated", "succeeded"));
        assert_eq!(paid.event.kind, PaymentEventKind::RefundSucceeded);
        assert_eq!(
            paid.event.refund_id.as_deref(),
            Some(format!("{ORDER}-REFUND-1").as_str())
        );
        assert_eq!(paid.event.psp_reference.as_deref(), Some("pi_1"));
        assert_eq!(
            recorded(&refund("refund.failed", "failed")).event.kind,
            PaymentEventKind::RefundFailed
        );
        assert!(matches!(
            StripeEvent::parse(&refund("refund.created", "pending"), now()),
            Ok(StripeEvent::Ignored { .. })
        ));
    }

    #[test]
    fn the_types_asked_for_are_the_ones_the_parser_reads() {
        let source = include_str!("stripe.rs");
        let parser = &source[..source.find("mod tests").unwrap()];
        for kind in RECORDED_TYPES {
            let quoted = format!("\"{kind}\"");
            assert!(
                parser.matches(&quoted).count() >= 2,
                "{kind} is listed and read by the parser"
            );
        }
    }

    #[test]
    fn the_sum_of_a_payment_taken_in_parts_is_left_to_its_parts() {
        let mut body = intent("payment_intent.succeeded", "succeeded");
        body["data"]["object"]["payment_method_options"] =
            json!({"card": {"request_multicapture": "if_available"}});
        assert!(matches!(
            StripeEvent::parse(&body, now()),
            Ok(StripeEvent::Ignored { .. })
        ));
    }

    #[test]
    fn events_the_system_does_not_need_are_ignored_and_bad_ones_named() {
        assert!(matches!(
            StripeEvent::parse(&intent("customer.created", "x"), now()),
            Ok(StripeEvent::Ignored { ref kind, .. }) if kind == "customer.created"
        ));
        // A capturable update after a partial capture is not a new authorization.
        let mut later = intent(
            "payment_intent.amount_capturable_updated",
            "requires_capture",
        );
        later["data"]["object"]["amount_received"] = json!(1000);
        assert!(matches!(
            StripeEvent::parse(&later, now()),
            Ok(StripeEvent::Ignored { .. })
        ));
        let mut orphan = intent("payment_intent.succeeded", "succeeded");
        orphan["data"]["object"]["metadata"] = json!({});
        assert!(
            matches!(
                StripeEvent::parse(&orphan, now()),
                Ok(StripeEvent::Unmatched { .. })
            ),
            "another integration's payment"
        );
        let mut odd = intent("payment_intent.succeeded", "succeeded");
        odd["data"]["object"]["currency"] = json!("euro");
        odd["data"]["object"]["metadata"]["order_id"] = json!("not-an-order");
        let errors = StripeEvent::parse(&odd, now()).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"data.object.metadata.order_id"),
            "{fields:?}"
        );
        assert!(fields.contains(&"data.object.amount"), "{fields:?}");
        assert!(StripeEvent::parse(&json!({"type": "x"}), now()).is_err());
    }
}
