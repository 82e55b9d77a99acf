//! Identifiers: orders, shipments, returns, customers, SKUs and idempotency keys.
//!
//! Every identifier is free of `#`, the separator of the table's composite keys, so no value can
//! forge another item's key.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("may only contain {0}")]
    BadCharacters(&'static str),
    #[error("is not a valid order id")]
    NotAnOrderId,
    #[error("is not a valid RMA number")]
    NotAReturnId,
    #[error("is not a valid shipment id (an order id, or an order id and -<n>)")]
    NotAShipmentId,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, allowed = $allowed:expr, describe = $describe:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an untrusted string.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                if value.is_empty() {
                    return Err(IdError::Empty);
                }
                if value.chars().count() > $max {
                    return Err(IdError::TooLong($max));
                }
                let allowed: fn(char) -> bool = $allowed;
                if !value.chars().all(allowed) {
                    return Err(IdError::BadCharacters($describe));
                }
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A stock-keeping unit: letters, digits, `-`, `_` and `.`, up to 64 characters.
    Sku,
    max = 64,
    allowed = |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
    describe = "letters, digits, '-', '_' and '.'"
);

string_id!(
    /// The customer, as the `sub` claim of their token names them.
    CustomerId,
    max = 128,
    allowed = |c| !c.is_control() && c != '#',
    describe = "printable characters other than '#'"
);

string_id!(
    /// The client's `Idempotency-Key`: a retry of the same request carries the same key.
    IdempotencyKey,
    max = 128,
    allowed = |c| c.is_ascii_graphic() && c != '#',
    describe = "printable ASCII other than '#'"
);

/// An order's id: a ULID, so ids sort by creation time and never collide across functions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    /// A fresh id for an order created at `at`.
    pub fn generate(at: chrono::DateTime<chrono::Utc>) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        Self(ulid::Ulid::from_parts(ms, rand_bits()).to_string())
    }

    /// Parses an untrusted string, such as a path parameter.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        ulid::Ulid::from_string(&value).map_err(|_| IdError::NotAnOrderId)?;
        Ok(Self(value.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn rand_bits() -> u128 {
    // `Ulid::new()` takes its randomness from the thread-local generator; only its random half is
    // kept, so the time half follows the clock this crate was given.
    ulid::Ulid::new().random()
}

impl TryFrom<String> for OrderId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(value)
    }
}

impl From<OrderId> for String {
    fn from(value: OrderId) -> String {
        value.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A return's RMA number: `RMA-<order id>-<n>` for the order's n-th return, so the number alone
/// finds the order it belongs to, and is short enough for a Code 128 barcode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReturnId {
    order: OrderId,
    number: u32,
}

impl ReturnId {
    pub fn new(order: OrderId, number: u32) -> Self {
        Self { order, number }
    }

    /// Parses an untrusted string, such as a path parameter.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let rest = value
            .strip_prefix("RMA-")
            .or_else(|| value.strip_prefix("rma-"))
            .ok_or(IdError::NotAReturnId)?;
        let (order, number) = rest.rsplit_once('-').ok_or(IdError::NotAReturnId)?;
        let number: u32 = number
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(IdError::NotAReturnId)?;
        let order = OrderId::parse(order).map_err(|_| IdError::NotAReturnId)?;
        Ok(Self { order, number })
    }

    pub fn order_id(&self) -> &OrderId {
        &self.order
    }
}

impl TryFrom<String> for ReturnId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<ReturnId> for String {
    fn from(value: ReturnId) -> String {
        value.to_string()
    }
}

impl fmt::Display for ReturnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RMA-{}-{}", self.order, self.number)
    }
}

/// A shipment: `<order id>-<n>` for the order's n-th parcel (one per location its units ship
/// from). The order id alone names its first shipment, which is what it was called when every
/// order left as one parcel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShipmentId {
    order: OrderId,
    number: u32,
}

impl ShipmentId {
    pub fn new(order: OrderId, number: u32) -> Self {
        Self { order, number }
    }

    /// Parses an untrusted string, such as a path parameter.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let (order, number) = match value.split_once('-') {
            None => (value, 1),
            Some((order, number)) => {
                let number = number
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=99).contains(n) && !number.starts_with('0'))
                    .ok_or(IdError::NotAShipmentId)?;
                (order, number)
            }
        };
        let order = OrderId::parse(order).map_err(|_| IdError::NotAShipmentId)?;
        Ok(Self { order, number })
    }

    pub fn order_id(&self) -> &OrderId {
        &self.order
    }

    /// Its place among the order's shipments, from 1.
    pub fn number(&self) -> u32 {
        self.number
    }
}

impl TryFrom<String> for ShipmentId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<ShipmentId> for String {
    fn from(value: ShipmentId) -> String {
        value.to_string()
    }
}

impl fmt::Display for ShipmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.order, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipment_id_is_its_order_and_number_and_the_order_alone_is_the_first() {
        let order = OrderId::generate(chrono::Utc::now());
        let second = ShipmentId::parse(&format!("{order}-2")).unwrap();
        assert_eq!((second.order_id(), second.number()), (&order, 2));
        assert_eq!(second.to_string(), format!("{order}-2"));
        assert_eq!(ShipmentId::parse(order.as_str()).unwrap().number(), 1);
        for bad in ["-1", "0", "100", "02", "x"] {
            assert_eq!(
                ShipmentId::parse(&format!("{order}-{bad}")),
                Err(IdError::NotAShipmentId),
                "{bad}"
            );
        }
        assert_eq!(ShipmentId::parse("nope-1"), Err(IdError::NotAShipmentId));
    }

    #[test]
    fn sku_accepts_catalog_codes_and_refuses_key_separators() {
        assert!(Sku::parse("TSHIRT-RED_M.2").is_ok());
        assert_eq!(Sku::parse(""), Err(IdError::Empty));
        assert!(matches!(Sku::parse("A#B"), Err(IdError::BadCharacters(_))));
        assert_eq!(Sku::parse("X".repeat(65)), Err(IdError::TooLong(64)));
    }

    #[test]
    fn customer_id_refuses_the_key_separator() {
        assert!(CustomerId::parse("auth0|123").is_ok());
        assert!(CustomerId::parse("a#b").is_err());
    }

    #[test]
    fn order_ids_sort_by_creation_time() {
        let early = OrderId::generate(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let late = OrderId::generate(chrono::DateTime::from_timestamp(1_700_000_001, 0).unwrap());
        assert!(early < late);
        assert_eq!(
            OrderId::parse(early.as_str().to_lowercase()).unwrap(),
            early
        );
        assert_eq!(OrderId::parse("not-a-ulid"), Err(IdError::NotAnOrderId));
    }

    #[test]
    fn an_rma_number_names_its_order() {
        let order = OrderId::generate(chrono::Utc::now());
        let rma = ReturnId::new(order.clone(), 2);
        let text = rma.to_string();
        assert_eq!(text, format!("RMA-{order}-2"));
        assert_eq!(ReturnId::parse(&text).unwrap().order_id(), &order);
        for bad in [
            "RMA-x-1",
            "RMA-",
            &format!("RMA-{order}-0"),
            &format!("{order}-1"),
        ] {
            assert_eq!(ReturnId::parse(bad), Err(IdError::NotAReturnId), "{bad}");
        }
    }
}

/// Each SKU once, in the order first named: a batch read or a transaction may name an item only
/// once.
pub fn distinct_skus<'a>(skus: impl IntoIterator<Item = &'a Sku>) -> Vec<&'a Sku> {
    let mut seen: Vec<&Sku> = Vec::new();
    for sku in skus {
        if !seen.contains(&sku) {
            seen.push(sku);
        }
    }
    seen
}
