//! The small bodies of actions on an order: why it is cancelled, what staff note on a decision,
//! where and how it ships after an edit.

use serde_json::Value;

use crate::contact::Address;
use crate::request::{one_of, one_per_sku, text, Fields};
use crate::shipping::ShippingMethod;
use crate::validation::ValidationErrors;

use crate::order::commands::RequestedLine;
pub use crate::order::commands::{OrderEditRequest, UnitCancelRequest};

/// A validated `POST /orders/{id}/cancel` body: `{reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub reason: String,
}

impl CancelRequest {
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["reason"]) else {
            return Err(errors);
        };
        let reason = fields.required(&mut errors, "reason", text(500));
        match reason {
            Some(reason) if errors.is_empty() => Ok(Self { reason }),
            _ => Err(errors),
        }
    }
}

/// A validated `POST /orders/{id}/payment/acknowledge` body: `{note}`, how staff dealt with
/// what the order's money needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgeRequest {
    pub note: String,
}

impl AcknowledgeRequest {
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["note"]) else {
            return Err(errors);
        };
        let note = fields.required(&mut errors, "note", text(500));
        match note {
            Some(note) if errors.is_empty() => Ok(Self { note }),
            _ => Err(errors),
        }
    }
}

/// A validated body of a staff decision (`approve`, `reject`): an optional `{note}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecisionRequest {
    pub note: Option<String>,
}

impl DecisionRequest {
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["note"]) else {
            return Err(errors);
        };
        let note = fields.note(&mut errors, "note", 500);
        errors.into_result(|| Self { note })
    }
}

impl UnitCancelRequest {
    /// Parses `{lines: [{sku, quantity}], reason}`, naming every bad field: at most one line per
    /// SKU, as in an order.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["lines", "reason"]) else {
            return Err(errors);
        };
        let lines = fields.sku_lines(&mut errors, &[], |_, _, sku, quantity| {
            Some(RequestedLine {
                sku: sku?,
                quantity: quantity?,
            })
        });
        let lines = lines.filter(|lines| one_per_sku(&mut errors, lines, |l| &l.sku));
        let reason = fields.required(&mut errors, "reason", text(500));
        match (lines, reason) {
            (Some(lines), Some(reason)) if errors.is_empty() => Ok(Self { lines, reason }),
            _ => Err(errors),
        }
    }

    /// A digest of the validated body: the same cancellation asked again under the same
    /// `Idempotency-Key` has the same fingerprint, however its JSON was spaced or ordered.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_vec(self).expect("a cancellation always serializes");
        hex::encode(Sha256::digest(canonical))
    }
}

impl OrderEditRequest {
    /// Parses `{shippingAddress?, shippingMethod?, addLines?, shipComplete?, reason}`, naming
    /// every bad field: the new address (whole, as at checkout), the new method, units to add,
    /// whether it leaves whole, or several.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = [
            "shippingAddress",
            "shippingMethod",
            "addLines",
            "shipComplete",
            "reason",
        ];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let shipping_address = fields
            .get("shippingAddress")
            .and_then(|v| Address::parse(&mut errors, "shippingAddress", Some(v)));
        let shipping_method = fields.optional(
            &mut errors,
            "shippingMethod",
            one_of(&ShippingMethod::ALL, ShippingMethod::as_str),
        );
        let add_lines = match fields.get("addLines") {
            None => Some(Vec::new()),
            Some(_) => fields.objects(
                &mut errors,
                "addLines",
                crate::MAX_ORDER_LINES,
                &["sku", "quantity"],
                |errors, line| {
                    let (sku, quantity) = crate::request::sku_and_quantity(errors, &line);
                    Some(RequestedLine {
                        sku: sku?,
                        quantity: quantity?,
                    })
                },
            ),
        };
        if let Some(lines) = &add_lines {
            for (index, line) in lines.iter().enumerate() {
                if lines[..index].iter().any(|l| l.sku == line.sku) {
                    errors.add(
                        format!("addLines[{index}].sku"),
                        format!("'{}' appears on more than one line", line.sku),
                    );
                }
            }
        }
        let ship_complete = fields.optional(&mut errors, "shipComplete", |v| {
            v.as_bool().ok_or("must be true or false")
        });
        let reason = fields.required(&mut errors, "reason", text(500));
        if fields.get("shippingAddress").is_none()
            && fields.get("shippingMethod").is_none()
            && fields.get("shipComplete").is_none()
            && add_lines.as_ref().is_some_and(Vec::is_empty)
        {
            errors.add(
                "shippingAddress",
                "name a new shippingAddress, a new shippingMethod, addLines, shipComplete, or several",
            );
        }
        match (reason, add_lines) {
            (Some(reason), Some(add_lines)) if errors.is_empty() => Ok(Self {
                shipping_address,
                shipping_method,
                add_lines,
                ship_complete,
                reason,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cancel_needs_a_reason_and_nothing_else() {
        assert_eq!(
            CancelRequest::parse(&json!({"reason": "  ordered twice "}))
                .unwrap()
                .reason,
            "ordered twice"
        );
        let fields: Vec<_> = CancelRequest::parse(&json!({"why": "x"}))
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["why", "reason"]);
        assert!(CancelRequest::parse(&json!({"reason": ""})).is_err());
    }

    #[test]
    fn a_unit_cancellation_names_its_lines_and_every_bad_field() {
        let request = UnitCancelRequest::parse(
            &json!({"lines": [{"sku": "MUG-1", "quantity": 2}], "reason": "one is enough"}),
        )
        .unwrap();
        assert_eq!(request.lines[0].quantity.get(), 2);
        let same = UnitCancelRequest::parse(
            &json!({"reason": "one is enough", "lines": [{"quantity": 2, "sku": "MUG-1"}]}),
        )
        .unwrap();
        assert_eq!(request.fingerprint(), same.fingerprint());
        let fields: Vec<_> = UnitCancelRequest::parse(&json!({
            "lines": [{"sku": "A", "quantity": 0}, {"sku": "B", "quantity": 1}, {"sku": "B", "quantity": 1}]
        }))
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect();
        assert_eq!(fields, ["lines[0].quantity", "reason"]);
        let fields: Vec<_> = UnitCancelRequest::parse(&json!({
            "lines": [{"sku": "B", "quantity": 1}, {"sku": "B", "quantity": 1}], "reason": "x"
        }))
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect();
        assert_eq!(fields, ["lines[1].sku"]);
        assert!(UnitCancelRequest::parse(&json!({"lines": [], "reason": "x"})).is_err());
    }

    #[test]
    fn a_decision_note_is_optional() {
        assert_eq!(DecisionRequest::parse(&json!({})).unwrap().note, None);
        assert_eq!(
            DecisionRequest::parse(&json!({"note": "ok"}))
                .unwrap()
                .note
                .as_deref(),
            Some("ok")
        );
        assert!(DecisionRequest::parse(&json!({"note": 1})).is_err());
    }
}
