//! `POST /orders/{id}/returns` and `POST /returns/{id}/receive`: what a customer asks to send
//! back, and what the warehouse found in the parcel.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::Sku;
pub use crate::order::commands::{ReceiptRequest, RequestedReturnLine, ReturnRequest};
use crate::order::returns::{Disposition, ReceivedLine, ReturnReason};
use crate::request::{one_of, one_per_sku, string, Fields};
use crate::validation::ValidationErrors;

impl ReturnRequest {
    /// Parses an untrusted body, naming every bad field.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["lines"]) else {
            return Err(errors);
        };
        let other = ["reason", "comment", "exchangeSku"];
        let lines = fields.sku_lines(&mut errors, &other, |errors, line, sku, quantity| {
            let reason = line.required(
                errors,
                "reason",
                one_of(&ReturnReason::ALL, ReturnReason::as_str),
            );
            let comment = line.note(errors, "comment", 500);
            let exchange_sku = line.optional(errors, "exchangeSku", string(Sku::parse));
            Some(RequestedReturnLine {
                sku: sku?,
                quantity: quantity?,
                reason: reason?,
                comment,
                exchange_sku,
            })
        });
        let lines = lines.filter(|lines| one_per_sku(&mut errors, lines, |l| &l.sku));
        match lines {
            Some(lines) if errors.is_empty() => Ok(ReturnRequest { lines }),
            _ => Err(errors),
        }
    }

    /// A digest of the request's meaning, so a retry under the same `Idempotency-Key` is
    /// recognised however its JSON was spaced or ordered.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a return request always serializes");
        hex::encode(Sha256::digest(canonical))
    }
}

impl ReceiptRequest {
    /// Parses an untrusted body, naming every bad field.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["lines", "note"]) else {
            return Err(errors);
        };
        let note = fields.note(&mut errors, "note", 500);
        let lines = fields.sku_lines(
            &mut errors,
            &["disposition"],
            |errors, line, sku, quantity| {
                let disposition = line.required(
                    errors,
                    "disposition",
                    one_of(&Disposition::ALL, Disposition::as_str),
                );
                Some(ReceivedLine {
                    sku: sku?,
                    quantity: quantity?,
                    disposition: disposition?,
                })
            },
        );
        match lines {
            Some(lines) if errors.is_empty() => Ok(ReceiptRequest { lines, note }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::refused_fields;
    use serde_json::json;

    #[test]
    fn a_return_request_names_every_bad_field() {
        let bad = ReturnRequest::parse(&json!({
            "lines": [
                {"sku": "A", "quantity": 0, "reason": "DAMAGED"},
                {"sku": "B", "quantity": 1, "reason": "BORED", "colour": "red"},
                {"sku": "C", "quantity": 1, "reason": "OTHER", "comment": 5, "exchangeSku": "a#b"}
            ],
            "refund": true
        }));
        assert_eq!(
            refused_fields(bad),
            [
                "refund",
                "lines[0].quantity",
                "lines[1].colour",
                "lines[1].reason",
                "lines[2].comment",
                "lines[2].exchangeSku"
            ]
        );
    }

    #[test]
    fn a_return_request_has_one_line_per_sku_and_a_blank_comment_is_none() {
        let dup = ReturnRequest::parse(&json!({"lines": [
            {"sku": "A", "quantity": 1, "reason": "DAMAGED"},
            {"sku": "A", "quantity": 1, "reason": "OTHER"}
        ]}));
        assert_eq!(refused_fields(dup), ["lines[1].sku"]);
        let ok = ReturnRequest::parse(&json!({"lines": [
            {"sku": "A", "quantity": 2, "reason": "DOES_NOT_FIT", "comment": "   ", "exchangeSku": "B"}
        ]}))
        .unwrap();
        assert_eq!(ok.lines[0].comment, None);
        assert_eq!(
            ok.lines[0].exchange_sku.as_ref().map(Sku::as_str),
            Some("B")
        );
    }

    #[test]
    fn the_fingerprint_ignores_formatting_but_not_content() {
        let a = ReturnRequest::parse(
            &json!({"lines": [{"sku": "A", "quantity": 1, "reason": "OTHER"}]}),
        );
        let b = ReturnRequest::parse(
            &serde_json::from_str(r#"{ "lines" : [ {"reason":"OTHER","quantity":1,"sku":"A"} ] }"#)
                .unwrap(),
        );
        let c = ReturnRequest::parse(
            &json!({"lines": [{"sku": "A", "quantity": 2, "reason": "OTHER"}]}),
        );
        assert_eq!(a.unwrap().fingerprint(), b.unwrap().fingerprint());
        assert_ne!(
            ReturnRequest::parse(
                &json!({"lines": [{"sku": "A", "quantity": 1, "reason": "OTHER"}]})
            )
            .unwrap()
            .fingerprint(),
            c.unwrap().fingerprint()
        );
    }

    #[test]
    fn a_receipt_names_bad_dispositions_and_keeps_its_note() {
        let bad = ReceiptRequest::parse(
            &json!({"lines": [{"sku": "A", "quantity": 1, "disposition": "BURN"}]}),
        );
        assert_eq!(refused_fields(bad), ["lines[0].disposition"]);
        let ok = ReceiptRequest::parse(&json!({
            "lines": [{"sku": "A", "quantity": 1, "disposition": "RESTOCK"}],
            "note": "  box dented "
        }))
        .unwrap();
        assert_eq!(ok.note.as_deref(), Some("box dented"));
        assert_eq!(ok.lines[0].disposition, Disposition::Restock);
    }
}
