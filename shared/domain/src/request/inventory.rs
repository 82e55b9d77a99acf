//! `PUT /inventory/{sku}` and `POST /inventory/{sku}/adjustments`: a product as staff describe
//! it, and a receipt, count or write-off of its stock.

use serde_json::Value;

use crate::backorder::{SellingPolicy, MAX_BACKORDER_LIMIT};
use crate::location::Locations;
use crate::money::{Currency, Money};
use crate::replenishment::Replenishment;
use crate::request::{boolean, one_of, text, whole, Fields};
use crate::stock::{AdjustmentReason, StockLevel};
use crate::validation::ValidationErrors;

/// A validated `PUT /inventory/{sku}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRequest {
    pub name: String,
    pub unit_price: Money,
    pub weight_grams: u32,
    /// Required to create a SKU; on an existing one, a stock count.
    pub on_hand: Option<u32>,
    /// Where `onHand` stands: the default location unless the body names one.
    pub location: String,
    pub active: bool,
    pub low_stock_threshold: u32,
    /// `leadTimeDays` and `safetyStock`, their defaults where absent.
    pub replenishment: Replenishment,
    /// `selling`: what orders for more than is available get (`DENY` where absent).
    pub selling: SellingPolicy,
}

/// The low-stock threshold of a product whose request names none.
pub const DEFAULT_LOW_STOCK_THRESHOLD: u32 = 5;

impl ProductRequest {
    /// Parses an untrusted body; prices must be in the store's `currency`.
    pub fn parse(
        body: &Value,
        currency: Currency,
        locations: &Locations,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = [
            "name",
            "unitPrice",
            "weightGrams",
            "onHand",
            "location",
            "active",
            "lowStockThreshold",
            "leadTimeDays",
            "safetyStock",
            "selling",
        ];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let name = fields.required(&mut errors, "name", text(200));
        let unit_price = fields.required(&mut errors, "unitPrice", |v| {
            serde_json::from_value::<Money>(v.clone()).map_err(|_| {
                "must be {\"amount\": minor units ≥ 0, \"currency\": ISO 4217 code}".to_owned()
            })
        });
        let unit_price = unit_price.filter(|price| {
            price.currency() == currency || {
                errors.add(
                    "unitPrice.currency",
                    format!("must be the store currency, {currency}"),
                );
                false
            }
        });
        let weight_grams = fields.required(&mut errors, "weightGrams", whole(0..=1_000_000));
        let on_hand = fields.optional(&mut errors, "onHand", whole(0..=StockLevel::MAX_UNITS));
        let location = fields
            .optional(&mut errors, "location", location_of(locations))
            .unwrap_or_else(|| locations.default_location().id.clone());
        let low_stock_threshold = fields
            .optional(
                &mut errors,
                "lowStockThreshold",
                whole(0..=StockLevel::MAX_UNITS),
            )
            .unwrap_or(DEFAULT_LOW_STOCK_THRESHOLD);
        let active = fields
            .optional(&mut errors, "active", boolean)
            .unwrap_or(true);
        let lead_time_days = fields
            .optional(
                &mut errors,
                "leadTimeDays",
                whole(0..=Replenishment::MAX_LEAD_TIME_DAYS),
            )
            .unwrap_or(Replenishment::DEFAULT_LEAD_TIME_DAYS);
        let safety_stock = fields
            .optional(&mut errors, "safetyStock", whole(0..=StockLevel::MAX_UNITS))
            .unwrap_or(0);
        let selling = selling_policy(&mut errors, fields.get("selling")).unwrap_or_default();
        match (name, unit_price, weight_grams) {
            (Some(name), Some(unit_price), Some(weight_grams)) if errors.is_empty() => Ok(Self {
                selling,
                name,
                unit_price,
                weight_grams,
                on_hand,
                location,
                active,
                low_stock_threshold,
                replenishment: Replenishment {
                    lead_time_days,
                    safety_stock,
                },
            }),
            _ => Err(errors),
        }
    }
}

/// `selling`: `{"policy": "DENY"}`, `{"policy": "BACKORDER", "limit": n}` or
/// `{"policy": "PRE_ORDER", "releaseOn": "YYYY-MM-DD", "cap": n}`, each field named where wrong.
fn selling_policy(errors: &mut ValidationErrors, value: Option<&Value>) -> Option<SellingPolicy> {
    let value = value.filter(|v| !v.is_null())?;
    let Some(object) = value.as_object() else {
        errors.add("selling", "must be an object naming its policy");
        return None;
    };
    let units = |errors: &mut ValidationErrors, name: &str| {
        let field = format!("selling.{name}");
        match object.get(name).and_then(Value::as_u64) {
            Some(n) if (1..=u64::from(MAX_BACKORDER_LIMIT)).contains(&n) => Some(n as u32),
            Some(_) | None if object.contains_key(name) => {
                errors.add(
                    field,
                    format!("must be a whole number from 1 to {MAX_BACKORDER_LIMIT}"),
                );
                None
            }
            _ => {
                errors.add(field, "is required for this policy");
                None
            }
        }
    };
    let known: &[&str] = match object.get("policy").and_then(Value::as_str) {
        Some("DENY") => &["policy"],
        Some("BACKORDER") => &["policy", "limit"],
        Some("PRE_ORDER") => &["policy", "releaseOn", "cap"],
        _ => {
            errors.add(
                "selling.policy",
                "must be one of DENY, BACKORDER, PRE_ORDER",
            );
            return None;
        }
    };
    for name in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.add(format!("selling.{name}"), "is not a field of this policy");
    }
    match object["policy"].as_str() {
        Some("BACKORDER") => Some(SellingPolicy::Backorder {
            limit: units(errors, "limit")?,
        }),
        Some("PRE_ORDER") => {
            let cap = units(errors, "cap");
            let release_on = match object
                .get("releaseOn")
                .and_then(Value::as_str)
                .map(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d"))
            {
                Some(Ok(on)) => Some(on),
                _ => {
                    errors.add("selling.releaseOn", "must be a date, YYYY-MM-DD");
                    None
                }
            };
            Some(SellingPolicy::PreOrder {
                release_on: release_on?,
                cap: cap?,
            })
        }
        _ => Some(SellingPolicy::Deny),
    }
}

/// How an adjustment changes the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// Units in (> 0) or out (< 0) of `available`.
    Delta(i64),
    /// A count of what is on the shelves: `onHand` becomes this.
    Count(u32),
}

/// A validated `POST /inventory/{sku}/adjustments` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentRequest {
    /// Where the units are: the default location unless the body names one.
    pub location: String,
    pub reason: AdjustmentReason,
    pub change: StockChange,
    pub note: Option<String>,
    /// The units on hand at `location` the caller saw (`expectedOnHand`): the change applies
    /// only while they are still there, so a form sent again from an older page (a second tab)
    /// is refused rather than counted twice.
    pub expected_on_hand: Option<u32>,
}

impl AdjustmentRequest {
    /// Parses an untrusted body: a `COUNT` takes `countedOnHand`, every other reason a `delta`
    /// whose sign fits it.
    pub fn parse(body: &Value, locations: &Locations) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = [
            "location",
            "reason",
            "delta",
            "countedOnHand",
            "note",
            "expectedOnHand",
        ];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let reason = fields.required(
            &mut errors,
            "reason",
            one_of(&AdjustmentReason::ALL, AdjustmentReason::as_str),
        );
        let note = fields.note(&mut errors, "note", 500);
        let expected_on_hand = fields.optional(
            &mut errors,
            "expectedOnHand",
            whole(0..=StockLevel::MAX_UNITS),
        );
        let location = fields
            .optional(&mut errors, "location", location_of(locations))
            .unwrap_or_else(|| locations.default_location().id.clone());
        let limit = i64::from(StockLevel::MAX_UNITS);
        let change = match reason {
            Some(AdjustmentReason::Count) => {
                let counted = fields.required(&mut errors, "countedOnHand", |v| {
                    whole(0..=StockLevel::MAX_UNITS)(v).map_err(|_| {
                        "a COUNT takes countedOnHand, a whole number ≥ 0, and no delta"
                    })
                });
                if fields.has("delta") {
                    errors.add("delta", "a COUNT takes countedOnHand, not a delta");
                }
                counted.map(StockChange::Count)
            }
            Some(reason) => {
                let fits = move |d: i64| match reason {
                    AdjustmentReason::Receipt => d > 0,
                    AdjustmentReason::Damage | AdjustmentReason::Shrinkage => d < 0,
                    _ => d != 0,
                };
                let delta = fields.required(&mut errors, "delta", |v| {
                    v.as_i64()
                        .filter(|d| d.abs() <= limit && fits(*d))
                        .ok_or("must be a whole number: > 0 for RECEIPT, < 0 for DAMAGE and SHRINKAGE, ≠ 0 for CORRECTION")
                });
                if fields.has("countedOnHand") {
                    errors.add("countedOnHand", "only a COUNT takes countedOnHand");
                }
                delta.map(StockChange::Delta)
            }
            None => None,
        };
        match (reason, change) {
            (Some(reason), Some(change)) if errors.is_empty() => Ok(Self {
                location,
                reason,
                change,
                note,
                expected_on_hand,
            }),
            _ => Err(errors),
        }
    }
}

/// A validated `POST /inventory/{sku}/transfers` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub from: String,
    pub to: String,
    pub quantity: u32,
    pub note: Option<String>,
}

impl TransferRequest {
    /// Parses an untrusted body: two different locations and the units to send.
    pub fn parse(body: &Value, locations: &Locations) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = ["from", "to", "quantity", "note"];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let from = fields.required(&mut errors, "from", location_of(locations));
        let to = fields.required(&mut errors, "to", location_of(locations));
        let quantity = fields.required(&mut errors, "quantity", whole(1..=StockLevel::MAX_UNITS));
        let note = fields.note(&mut errors, "note", 500);
        if let (Some(from), Some(to)) = (&from, &to) {
            if from == to {
                errors.add("to", "must be another location than `from`");
            }
        }
        match (from, to, quantity) {
            (Some(from), Some(to), Some(quantity)) if errors.is_empty() => Ok(Self {
                from,
                to,
                quantity,
                note,
            }),
            _ => Err(errors),
        }
    }
}

/// A validated `POST /inventory/{sku}/purchase-orders` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrderRequest {
    /// Where the units go: the default location unless the body names one.
    pub location: String,
    pub quantity: u32,
    pub expected_on: chrono::NaiveDate,
    pub supplier_reference: Option<String>,
    pub note: Option<String>,
}

impl PurchaseOrderRequest {
    /// Parses an untrusted body; with `today`, `expectedOn` must be within a year before it
    /// (an order placed earlier and running late) and two years after it. Without `today` any
    /// date is taken: what a retry's `Idempotency-Key` is compared with, so a retry after
    /// midnight still finds the order it placed.
    pub fn parse(
        body: &Value,
        locations: &Locations,
        today: Option<chrono::NaiveDate>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = [
            "location",
            "quantity",
            "expectedOn",
            "supplierReference",
            "note",
        ];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let location = fields
            .optional(&mut errors, "location", location_of(locations))
            .unwrap_or_else(|| locations.default_location().id.clone());
        let quantity = fields.required(&mut errors, "quantity", whole(1..=StockLevel::MAX_UNITS));
        let window = today.map(|today| {
            let earliest = today
                .checked_sub_days(chrono::Days::new(365))
                .unwrap_or(today);
            let latest = today
                .checked_add_days(chrono::Days::new(731))
                .unwrap_or(today);
            (earliest, latest)
        });
        let expected_on = fields.required(&mut errors, "expectedOn", |v| {
            let date = v.as_str().and_then(|s| s.parse::<chrono::NaiveDate>().ok());
            match (date, window) {
                (Some(date), None) => Ok(date),
                (Some(date), Some((earliest, latest))) if (earliest..=latest).contains(&date) => {
                    Ok(date)
                }
                (_, Some((earliest, latest))) => Err(format!(
                    "must be a date (YYYY-MM-DD) from {earliest} to {latest}"
                )),
                (None, None) => Err("must be a date (YYYY-MM-DD)".to_owned()),
            }
        });
        let supplier_reference = fields.note(&mut errors, "supplierReference", 100);
        let note = fields.note(&mut errors, "note", 500);
        match (quantity, expected_on) {
            (Some(quantity), Some(expected_on)) if errors.is_empty() => Ok(Self {
                location,
                quantity,
                expected_on,
                supplier_reference,
                note,
            }),
            _ => Err(errors),
        }
    }
}

/// A validated `POST /inventory/{sku}/purchase-orders/{id}/receive` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRequest {
    /// The units that arrived.
    pub quantity: u32,
    /// The units the caller saw had arrived before (`expectedReceived`): the delivery is
    /// recorded only while that is still so, so the same delivery sent again (a retry, a
    /// second tab, two packers at once) is refused rather than counted twice.
    pub expected_received: u32,
}

impl DeliveryRequest {
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["quantity", "expectedReceived"])
        else {
            return Err(errors);
        };
        let quantity = fields.required(&mut errors, "quantity", whole(1..=StockLevel::MAX_UNITS));
        let expected_received = fields.required(
            &mut errors,
            "expectedReceived",
            whole(0..=StockLevel::MAX_UNITS),
        );
        match (quantity, expected_received) {
            (Some(quantity), Some(expected_received)) if errors.is_empty() => Ok(Self {
                quantity,
                expected_received,
            }),
            _ => Err(errors),
        }
    }
}

/// A location's id, one of the business's locations.
pub fn location_of(locations: &Locations) -> impl Fn(&Value) -> Result<String, String> + '_ {
    move |value| {
        value
            .as_str()
            .and_then(|id| locations.get(id))
            .map(|l| l.id.clone())
            .ok_or_else(|| {
                let ids: Vec<&str> = locations.all().iter().map(|l| l.id.as_str()).collect();
                format!("must be one of the locations: {}", ids.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::refused_fields;
    use serde_json::json;

    fn here() -> Locations {
        Locations::default_locations()
    }

    #[test]
    fn a_location_is_one_of_the_business_s_and_the_default_when_absent() {
        let receipt = AdjustmentRequest::parse(&json!({"reason": "RECEIPT", "delta": 5}), &here());
        assert_eq!(receipt.unwrap().location, "BER-1");
        let there = json!({"reason": "RECEIPT", "delta": 5, "location": "AMS-1"});
        assert_eq!(
            AdjustmentRequest::parse(&there, &here()).unwrap().location,
            "AMS-1"
        );
        let nowhere = json!({"reason": "RECEIPT", "delta": 5, "location": "NOWHERE"});
        assert_eq!(
            refused_fields(AdjustmentRequest::parse(&nowhere, &here())),
            ["location"]
        );
    }

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn a_product_needs_name_price_and_weight_in_the_store_currency() {
        assert_eq!(
            refused_fields(ProductRequest::parse(
                &json!({"colour": "red"}),
                eur(),
                &here()
            )),
            ["colour", "name", "unitPrice", "weightGrams"]
        );
        let usd = json!({"name": "Mug", "unitPrice": {"amount": 900, "currency": "USD"}, "weightGrams": 300});
        assert_eq!(
            refused_fields(ProductRequest::parse(&usd, eur(), &here())),
            ["unitPrice.currency"]
        );
        let ok = json!({"name": "Mug", "unitPrice": {"amount": 900, "currency": "EUR"}, "weightGrams": 300});
        let ok = ProductRequest::parse(&ok, eur(), &here()).unwrap();
        assert_eq!(
            (ok.active, ok.low_stock_threshold, ok.on_hand),
            (true, 5, None)
        );
    }

    #[test]
    fn an_adjustment_fits_its_reason() {
        let receipt = AdjustmentRequest::parse(
            &json!({"reason": "RECEIPT", "delta": 5, "note": "PO-1"}),
            &here(),
        );
        assert_eq!(receipt.unwrap().change, StockChange::Delta(5));
        assert_eq!(
            refused_fields(AdjustmentRequest::parse(
                &json!({"reason": "DAMAGE", "delta": 2}),
                &here()
            )),
            ["delta"]
        );
        assert_eq!(
            refused_fields(AdjustmentRequest::parse(
                &json!({"reason": "COUNT"}),
                &here()
            )),
            ["countedOnHand"]
        );
        assert_eq!(
            refused_fields(AdjustmentRequest::parse(
                &json!({"reason": "COUNT", "countedOnHand": 3, "delta": 1}),
                &here()
            )),
            ["delta"]
        );
        assert_eq!(
            refused_fields(AdjustmentRequest::parse(
                &json!({"reason": "THEFT", "delta": -1}),
                &here()
            )),
            ["reason"]
        );
    }
}
