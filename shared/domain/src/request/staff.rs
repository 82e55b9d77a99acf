//! The small bodies of actions on an order: why it is cancelled, what staff note on a decision.

use serde_json::Value;

use crate::request::{text, Fields};
use crate::validation::ValidationErrors;

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
