//! How many units of a SKU a line asks for.

use serde::{Deserialize, Serialize};

/// A line's quantity: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number from 1 to {max}", max = Quantity::MAX)]
pub struct QuantityError;

impl Quantity {
    /// The most units of one SKU a single order line may ask for.
    pub const MAX: u32 = 999;

    pub fn new(value: u32) -> Result<Self, QuantityError> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(QuantityError)
        }
    }

    /// Parses any JSON number: fractions, negatives and huge values are all refused.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, QuantityError> {
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(QuantityError)
            .and_then(Self::new)
    }

    pub fn get(&self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = QuantityError;
    fn try_from(value: u32) -> Result<Self, QuantityError> {
        Self::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> u32 {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_one_to_max_only() {
        for bad in [
            json!(0),
            json!(-1),
            json!(1_000_000_000),
            json!(1.5),
            json!("2"),
            json!(null),
        ] {
            assert_eq!(Quantity::from_json(&bad), Err(QuantityError), "{bad}");
        }
        assert_eq!(Quantity::from_json(&json!(1)).unwrap().get(), 1);
        assert_eq!(Quantity::from_json(&json!(999)).unwrap().get(), 999);
    }
}
