//! Shipping methods and the business's rate table.
//!
//! Rates are data (`shipping-policy.json` beside this crate is the default the functions load),
//! not constants in code: a zone groups destination countries, and a rate prices one method in one
//! zone as a base amount plus an amount per started kilogram. A method without a rate for the
//! destination's zone does not serve it.

use serde::{Deserialize, Serialize};

use crate::contact::CountryCode;
use crate::money::{Currency, Money, MoneyError};

/// How an order travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShippingMethod {
    Standard,
    Express,
    Overnight,
}

impl ShippingMethod {
    pub const ALL: [ShippingMethod; 3] = [Self::Standard, Self::Express, Self::Overnight];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::Express => "EXPRESS",
            Self::Overnight => "OVERNIGHT",
        }
    }
}

/// Why a shipment cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShippingError {
    #[error("we do not ship to {0}")]
    UnsupportedCountry(String),
    #[error("{method} shipping is not available to {country}")]
    MethodNotServed {
        method: &'static str,
        country: String,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

#[derive(Debug, Clone, Deserialize)]
struct Zone {
    name: String,
    countries: Vec<CountryCode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rate {
    method: ShippingMethod,
    zone: String,
    base: i64,
    per_kg: i64,
}

/// The business's shipping rate table, in the store's currency.
#[derive(Debug, Clone, Deserialize)]
pub struct ShippingPolicy {
    currency: Currency,
    zones: Vec<Zone>,
    rates: Vec<Rate>,
}

/// Why a rate table was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the shipping policy is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the shipping policy is inconsistent: {0}")]
    Inconsistent(String),
}

impl ShippingPolicy {
    /// The default rate table shipped with the system.
    pub fn default_policy() -> Self {
        Self::from_json(include_str!("../shipping-policy.json"))
            .expect("the bundled shipping policy is valid; a unit test proves it")
    }

    /// Parses and checks a rate table: every rate names a known zone, no amount is negative.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let policy: ShippingPolicy = serde_json::from_str(json)?;
        for rate in &policy.rates {
            if !policy.zones.iter().any(|z| z.name == rate.zone) {
                return Err(PolicyError::Inconsistent(format!(
                    "unknown zone '{}'",
                    rate.zone
                )));
            }
            if rate.base < 0 || rate.per_kg < 0 {
                return Err(PolicyError::Inconsistent("negative rate".into()));
            }
        }
        Ok(policy)
    }

    /// The store's currency: catalog prices and shipping are all in it.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the business ships to `country` at all.
    pub fn ships_to(&self, country: &CountryCode) -> bool {
        self.zone_of(country).is_some()
    }

    fn zone_of(&self, country: &CountryCode) -> Option<&Zone> {
        self.zones.iter().find(|z| z.countries.contains(country))
    }

    /// The price of sending a parcel of `weight_grams` to `country` by `method`.
    pub fn quote(
        &self,
        method: ShippingMethod,
        country: &CountryCode,
        weight_grams: u64,
    ) -> Result<Money, ShippingError> {
        let zone = self
            .zone_of(country)
            .ok_or_else(|| ShippingError::UnsupportedCountry(country.as_str().to_owned()))?;
        let rate = self
            .rates
            .iter()
            .find(|r| r.method == method && r.zone == zone.name)
            .ok_or_else(|| ShippingError::MethodNotServed {
                method: method.as_str(),
                country: country.as_str().to_owned(),
            })?;
        let started_kg = weight_grams.div_ceil(1000);
        let per_kg = i64::try_from(started_kg)
            .ok()
            .and_then(|kg| rate.per_kg.checked_mul(kg))
            .ok_or(MoneyError::Overflow)?;
        let amount = rate.base.checked_add(per_kg).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(code: &str) -> CountryCode {
        CountryCode::parse(code).unwrap()
    }

    #[test]
    fn the_bundled_policy_loads() {
        let policy = ShippingPolicy::default_policy();
        assert_eq!(policy.currency().code(), "EUR");
        assert!(policy.ships_to(&country("DE")));
        assert!(!policy.ships_to(&country("AQ")));
    }

    #[test]
    fn prices_by_zone_and_started_kilogram() {
        let policy = ShippingPolicy::default_policy();
        let quote = |m, c, g| policy.quote(m, &country(c), g).map(|m| m.minor_units());
        assert_eq!(quote(ShippingMethod::Standard, "DE", 0), Ok(490));
        assert_eq!(quote(ShippingMethod::Standard, "DE", 1), Ok(540));
        assert_eq!(quote(ShippingMethod::Standard, "DE", 1000), Ok(540));
        assert_eq!(quote(ShippingMethod::Standard, "DE", 1001), Ok(590));
        assert_eq!(
            quote(ShippingMethod::Express, "FR", 2500),
            Ok(1990 + 3 * 200)
        );
        assert!(matches!(
            quote(ShippingMethod::Overnight, "FR", 100),
            Err(ShippingError::MethodNotServed { .. })
        ));
        assert!(matches!(
            quote(ShippingMethod::Standard, "AQ", 100),
            Err(ShippingError::UnsupportedCountry(_))
        ));
    }

    #[test]
    fn refuses_a_rate_for_an_unknown_zone() {
        let json = r#"{"currency":"EUR","zones":[],"rates":[{"method":"STANDARD","zone":"x","base":1,"perKg":1}]}"#;
        assert!(matches!(
            ShippingPolicy::from_json(json),
            Err(PolicyError::Inconsistent(_))
        ));
    }
}
