//! `POST /orders`: an untrusted order request into a validated [`OrderRequest`].

use sha2::{Digest, Sha256};

use crate::contact::{Address, Contact};
pub use crate::order::commands::{OrderRequest, RequestedLine};
use crate::request::{one_of, one_per_sku, Fields};
use crate::shipping::ShippingMethod;
use crate::validation::ValidationErrors;
use serde_json::Value;

impl OrderRequest {
    /// Parses the request body, naming every bad field.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = [
            "lines",
            "shippingMethod",
            "shippingAddress",
            "contact",
            "pickupLocation",
            "shipComplete",
        ];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let lines = fields.sku_lines(&mut errors, &[], |_, _, sku, quantity| {
            Some(RequestedLine {
                sku: sku?,
                quantity: quantity?,
            })
        });
        // One transaction cannot touch the same stock item twice: one line per SKU.
        let lines = lines.filter(|lines| one_per_sku(&mut errors, lines, |l| &l.sku));
        let shipping_method = fields.required(
            &mut errors,
            "shippingMethod",
            one_of(&ShippingMethod::ALL, ShippingMethod::as_str),
        );
        let shipping_address = Address::parse(
            &mut errors,
            "shippingAddress",
            fields.get("shippingAddress"),
        );
        let contact = Contact::parse(&mut errors, "contact", fields.get("contact"));
        // Its shape here; intake checks that it names a store that hands orders over.
        let pickup_location = fields.optional(&mut errors, "pickupLocation", |v| {
            v.as_str()
                .filter(|id| {
                    (1..=32).contains(&id.len())
                        && id
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
                })
                .map(str::to_owned)
                .ok_or("must be a location id (`GET /locations`)")
        });
        let ship_complete = fields
            .optional(&mut errors, "shipComplete", |v| {
                v.as_bool().ok_or("must be true or false")
            })
            .unwrap_or(true);
        if pickup_location.is_some() && shipping_method != Some(ShippingMethod::InStorePickup) {
            errors.add(
                "pickupLocation",
                "only an IN_STORE_PICKUP order names a store",
            );
        }
        match (lines, shipping_method, shipping_address, contact) {
            (Some(lines), Some(shipping_method), Some(shipping_address), Some(contact))
                if errors.is_empty() =>
            {
                Ok(Self {
                    lines,
                    shipping_method,
                    shipping_address,
                    contact,
                    pickup_location,
                    ship_complete,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::refused_fields;
    use serde_json::json;

    fn body(lines: serde_json::Value) -> serde_json::Value {
        json!({
            "lines": lines,
            "shippingMethod": "EXPRESS",
            "shippingAddress": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "de"},
            "contact": {"email": "ada@example.com"}
        })
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
            refused_fields(result),
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
        assert_eq!(
            refused_fields(OrderRequest::parse(&body(json!([])))),
            ["lines"]
        );
        let many: Vec<_> = (0..=crate::MAX_ORDER_LINES)
            .map(|i| json!({"sku": format!("S{i}"), "quantity": 1}))
            .collect();
        assert_eq!(
            refused_fields(OrderRequest::parse(&body(json!(many)))),
            ["lines"]
        );
        let dup = json!([{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]);
        assert_eq!(
            refused_fields(OrderRequest::parse(&body(dup))),
            ["lines[1].sku"]
        );
    }

    #[test]
    fn names_missing_top_level_fields() {
        assert_eq!(
            refused_fields(OrderRequest::parse(&json!({"shippingMethod": "BY_PIGEON"}))),
            ["lines", "shippingMethod", "shippingAddress", "contact"]
        );
        assert_eq!(refused_fields(OrderRequest::parse(&json!([1]))), [""]);
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

    #[test]
    fn a_pickup_store_is_named_only_by_a_pickup_order() {
        let mut body = json!({
            "lines": [{"sku": "A", "quantity": 1}],
            "shippingMethod": "IN_STORE_PICKUP",
            "shippingAddress": {"name": "Ada", "line1": "1 Street", "city": "Berlin", "postalCode": "10115", "country": "DE"},
            "contact": {"email": "ada@example.com"},
            "pickupLocation": "BER-STORE-1"
        });
        let parsed = OrderRequest::parse(&body).unwrap();
        assert_eq!(parsed.pickup_location.as_deref(), Some("BER-STORE-1"));
        body["shippingMethod"] = json!("STANDARD");
        assert_eq!(
            refused_fields(OrderRequest::parse(&body)),
            ["pickupLocation"]
        );
        body["shippingMethod"] = json!("IN_STORE_PICKUP");
        body["pickupLocation"] = json!("a store");
        assert_eq!(
            refused_fields(OrderRequest::parse(&body)),
            ["pickupLocation"]
        );
        // The fingerprint of a request that names no store is what it always was.
        body.as_object_mut().unwrap().remove("pickupLocation");
        let without = OrderRequest::parse(&body).unwrap();
        assert!(!serde_json::to_string(&without)
            .unwrap()
            .contains("pickupLocation"));
    }
}
