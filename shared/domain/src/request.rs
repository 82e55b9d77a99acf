//! Parsing an untrusted order request into a validated [`OrderRequest`].
//!
//! The body is read as a JSON value and each field parsed on its own, so a wrong type names its
//! field (`lines[0].quantity: must be a whole number from 1 to 999`) instead of failing the whole
//! body on the first serde error, and every bad field is reported at once.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::contact::{Address, Contact};
use crate::ids::Sku;
use crate::quantity::Quantity;
use crate::shipping::ShippingMethod;
use crate::validation::ValidationErrors;
use crate::MAX_ORDER_LINES;

/// One line as the client asked for it: a SKU and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestedLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A well-formed order request, not yet priced or checked against the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    pub lines: Vec<RequestedLine>,
    pub shipping_method: ShippingMethod,
    pub shipping_address: Address,
    pub contact: Contact,
}

const KNOWN_FIELDS: [&str; 4] = ["lines", "shippingMethod", "shippingAddress", "contact"];

impl OrderRequest {
    /// Parses the request body, naming every bad field.
    pub fn parse(body: &serde_json::Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(object) = body.as_object() else {
            return Err(ValidationErrors::one("", "the body must be a JSON object"));
        };
        for key in object
            .keys()
            .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        {
            errors.add(key.as_str(), "is not a known field");
        }
        let lines = parse_lines(&mut errors, object.get("lines"));
        let shipping_method = match object.get("shippingMethod") {
            None | Some(serde_json::Value::Null) => {
                errors.add("shippingMethod", "is required");
                None
            }
            Some(value) => {
                let method = value.as_str().and_then(ShippingMethod::parse);
                if method.is_none() {
                    let names: Vec<_> = ShippingMethod::ALL.iter().map(|m| m.as_str()).collect();
                    errors.add(
                        "shippingMethod",
                        format!("must be one of {}", names.join(", ")),
                    );
                }
                method
            }
        };
        let shipping_address = Address::parse(
            &mut errors,
            "shippingAddress",
            object.get("shippingAddress"),
        );
        let contact = Contact::parse(&mut errors, "contact", object.get("contact"));
        match (lines, shipping_method, shipping_address, contact) {
            (Some(lines), Some(shipping_method), Some(shipping_address), Some(contact))
                if errors.is_empty() =>
            {
                Ok(Self {
                    lines,
                    shipping_method,
                    shipping_address,
                    contact,
                })
            }
            _ => Err(errors),
        }
    }

    /// A digest of the validated request: the same order asked again with the same
    /// `Idempotency-Key` has the same fingerprint, however its JSON was spaced or ordered.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("an order request always serializes");
        hex::encode(Sha256::digest(canonical))
    }
}

fn parse_lines(
    errors: &mut ValidationErrors,
    value: Option<&serde_json::Value>,
) -> Option<Vec<RequestedLine>> {
    let items = match value {
        None | Some(serde_json::Value::Null) => {
            errors.add("lines", "is required");
            return None;
        }
        Some(serde_json::Value::Array(items)) => items,
        Some(_) => {
            errors.add("lines", "must be an array");
            return None;
        }
    };
    if items.is_empty() {
        errors.add("lines", "must have at least one line");
        return None;
    }
    if items.len() > MAX_ORDER_LINES {
        errors.add(
            "lines",
            format!("must have at most {MAX_ORDER_LINES} lines"),
        );
        return None;
    }
    let before = errors.0.len();
    let mut lines: Vec<RequestedLine> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Some(line) = item.as_object() else {
            errors.add(format!("lines[{index}]"), "must be an object");
            continue;
        };
        let sku = match line.get("sku") {
            Some(serde_json::Value::String(s)) => {
                errors.check(format!("lines[{index}].sku"), Sku::parse(s.as_str()))
            }
            None | Some(serde_json::Value::Null) => {
                errors.add(format!("lines[{index}].sku"), "is required");
                None
            }
            Some(_) => {
                errors.add(format!("lines[{index}].sku"), "must be a string");
                None
            }
        };
        let quantity = match line.get("quantity") {
            None | Some(serde_json::Value::Null) => {
                errors.add(format!("lines[{index}].quantity"), "is required");
                None
            }
            Some(value) => errors.check(
                format!("lines[{index}].quantity"),
                Quantity::from_json(value),
            ),
        };
        for key in line
            .keys()
            .filter(|k| !["sku", "quantity"].contains(&k.as_str()))
        {
            errors.add(format!("lines[{index}].{key}"), "is not a known field");
        }
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            if lines.iter().any(|l| l.sku == sku) {
                // One transaction cannot touch the same stock item twice; one line per SKU.
                errors.add(
                    format!("lines[{index}].sku"),
                    format!("'{sku}' appears on more than one line"),
                );
            } else {
                lines.push(RequestedLine { sku, quantity });
            }
        }
    }
    (errors.0.len() == before).then_some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(lines: serde_json::Value) -> serde_json::Value {
        json!({
            "lines": lines,
            "shippingMethod": "EXPRESS",
            "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "de"},
            "contact": {"email": "ada@example.com"}
        })
    }

    fn fields(result: Result<OrderRequest, ValidationErrors>) -> Vec<String> {
        result.unwrap_err().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn parses_a_valid_request() {
        let request = OrderRequest::parse(&body(json!([{"sku": "A-1", "quantity": 2}]))).unwrap();
        assert_eq!(request.lines[0].quantity.get(), 2);
        assert_eq!(request.shipping_address.country().as_str(), "DE");
    }

    #[test]
    fn names_each_bad_line_field() {
        let result = OrderRequest::parse(&body(json!([
            {"sku": "A", "quantity": 0},
            {"sku": "B", "quantity": -1},
            {"sku": "C", "quantity": 1_000_000_000u64},
            {"sku": 7, "quantity": "1"},
            {"quantity": 1},
            {"sku": "A", "quantity": 1, "price": 1}
        ])));
        assert_eq!(
            fields(result),
            [
                "lines[0].quantity",
                "lines[1].quantity",
                "lines[2].quantity",
                "lines[3].sku",
                "lines[3].quantity",
                "lines[4].sku",
                "lines[5].price"
            ]
        );
    }

    #[test]
    fn refuses_empty_too_many_and_duplicate_lines() {
        assert_eq!(fields(OrderRequest::parse(&body(json!([])))), ["lines"]);
        let many: Vec<_> = (0..=MAX_ORDER_LINES)
            .map(|i| json!({"sku": format!("S{i}"), "quantity": 1}))
            .collect();
        assert_eq!(fields(OrderRequest::parse(&body(json!(many)))), ["lines"]);
        let dup = json!([{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]);
        assert_eq!(fields(OrderRequest::parse(&body(dup))), ["lines[1].sku"]);
    }

    #[test]
    fn names_missing_top_level_fields() {
        assert_eq!(
            fields(OrderRequest::parse(&json!({"shippingMethod": "BY_PIGEON"}))),
            ["lines", "shippingMethod", "shippingAddress", "contact"]
        );
        assert_eq!(fields(OrderRequest::parse(&json!([1]))), [""]);
    }

    #[test]
    fn the_fingerprint_ignores_formatting_but_not_content() {
        let a = OrderRequest::parse(&body(json!([{"sku": "A", "quantity": 1}]))).unwrap();
        let b = OrderRequest::parse(
            &serde_json::from_str(&body(json!([{"quantity": 1, "sku": "A"}])).to_string()).unwrap(),
        )
        .unwrap();
        let c = OrderRequest::parse(&body(json!([{"sku": "A", "quantity": 2}]))).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
