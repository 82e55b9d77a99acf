//! Money: integer minor units and an ISO 4217 currency. Never floating point.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(iso_currency::Currency);

/// Why an amount of money was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("must not be negative")]
    Negative,
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount is too large")]
    Overflow,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        iso_currency::Currency::from_code(code)
            .map(Self)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(8).collect()))
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, MoneyError> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.code().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A non-negative amount in the currency's minor units (cents for EUR, yen for JPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr", into = "MoneyRepr")]
pub struct Money {
    minor_units: i64,
    currency: Currency,
}

/// The wire and storage form: `{"amount": 1999, "currency": "EUR"}`, amount in minor units;
/// nothing else (a price with a field of its own is refused, not half read).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyRepr {
    amount: i64,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;
    fn try_from(repr: MoneyRepr) -> Result<Self, MoneyError> {
        Money::new(repr.amount, repr.currency)
    }
}

impl From<Money> for MoneyRepr {
    fn from(money: Money) -> Self {
        MoneyRepr {
            amount: money.minor_units,
            currency: money.currency,
        }
    }
}

impl Money {
    pub fn new(minor_units: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor_units < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Self {
            minor_units,
            currency,
        })
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            minor_units: 0,
            currency,
        }
    }

    pub fn minor_units(&self) -> i64 {
        self.minor_units
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// How many decimal places the currency's minor unit has (2 for EUR, 0 for JPY).
    pub fn currency_exponent(&self) -> u32 {
        u32::from(self.currency.0.exponent().unwrap_or(0))
    }

    /// The symbol people write the currency with (`€`, `$`).
    pub fn currency_symbol(&self) -> String {
        self.currency.0.symbol().to_string()
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let sum = self
            .minor_units
            .checked_add(other.minor_units)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor_units: sum,
            currency: self.currency,
        })
    }

    pub fn checked_mul(self, factor: u32) -> Result<Money, MoneyError> {
        let product = self
            .minor_units
            .checked_mul(i64::from(factor))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor_units: product,
            currency: self.currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = self.currency.0.exponent().unwrap_or(0) as u32;
        if exponent == 0 {
            return write!(f, "{} {}", self.minor_units, self.currency);
        }
        let scale = 10_i64.pow(exponent);
        write!(
            f,
            "{}.{:0width$} {}",
            self.minor_units / scale,
            self.minor_units % scale,
            self.currency,
            width = exponent as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn parses_iso_codes_only() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(matches!(
            Currency::parse("EURO"),
            Err(MoneyError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn refuses_negative_amounts_and_mixed_currencies() {
        assert_eq!(Money::new(-1, eur()), Err(MoneyError::Negative));
        let usd = Money::new(1, Currency::parse("USD").unwrap()).unwrap();
        assert!(matches!(
            Money::new(1, eur()).unwrap().checked_add(usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    #[test]
    fn formats_with_the_currencys_minor_unit() {
        assert_eq!(Money::new(1999, eur()).unwrap().to_string(), "19.99 EUR");
        assert_eq!(
            Money::new(500, Currency::parse("JPY").unwrap())
                .unwrap()
                .to_string(),
            "500 JPY"
        );
    }

    #[test]
    fn round_trips_through_json_in_minor_units() {
        let money = Money::new(1999, eur()).unwrap();
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(json, serde_json::json!({"amount": 1999, "currency": "EUR"}));
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
        assert!(serde_json::from_value::<Money>(
            serde_json::json!({"amount": -5, "currency": "EUR"})
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn multiplication_is_repeated_addition(units in 0i64..1_000_000, factor in 0u32..1000) {
            let price = Money::new(units, eur()).unwrap();
            let mut sum = Money::zero(eur());
            for _ in 0..factor {
                sum = sum.checked_add(price).unwrap();
            }
            prop_assert_eq!(price.checked_mul(factor).unwrap(), sum);
        }
    }
}
